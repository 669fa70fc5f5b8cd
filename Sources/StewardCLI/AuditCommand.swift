import Foundation
import Governance

/// `steward audit verify|tail|export|prune|bench`: the audit log of requests and admin actions.
struct AuditCommand: Command {
    let spec = CommandSpec(
        name: "audit",
        summary: "Check, read, export and prune the audit log.",
        usage: "steward audit verify|tail|export|prune|bench [options]",
        options: [
            .value("--db", valueName: "FILE", help: "The Steward database (default $STEWARD_HOME/steward.db)."),
            .value("--key", valueName: "FILE", help: "Checkpoint signing key, PEM (default $STEWARD_HOME/audit-signing.pem; verify accepts the public key)."),
            .value("-n", valueName: "N", help: "tail: how many records (default 20)."),
            .flag("--follow", "-f", help: "tail: keep printing new records until interrupted."),
            .value("--since", valueName: "DATE", help: "export: from this time on (YYYY-MM-DD or ISO 8601, UTC)."),
            .value("--until", valueName: "DATE", help: "export: before this time."),
            .value("--format", valueName: "FORMAT", help: "export: jsonl (default) or csv; tail: text (default) or jsonl."),
            .value("--out", valueName: "FILE", help: "export: write to FILE (mode 0600) instead of standard output."),
            .value("--before", valueName: "DATE", help: "prune: delete records older than this."),
            .value("--policy", valueName: "FILE", help: "prune: take audit.retention_days from this policy file (default $STEWARD_HOME/policy.json)."),
            .value("--records", valueName: "N", help: "bench: records to append (default 5000)."),
        ],
        discussion: """
        verify   walks the hash chain and names every edited, deleted, inserted or reordered record (exit 1 if any).
        tail     the newest records; --follow keeps printing.
        export   --since/--until --format jsonl|csv [--out FILE].
        prune    --before DATE (or the policy's audit.retention_days): deletes older records and writes a signed
                 checkpoint, so verify still works; the prune itself is recorded.
        bench    cost per appended record (audit + usage) in a temporary database (or --db).
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard let sub = a.positionals.first else { throw UsageError("give a subcommand: verify, tail, export, prune or bench") }
        guard a.positionals.count == 1 else { throw UsageError("unexpected argument '\(a.positionals[1])'") }
        switch sub {
        case "verify": return try verify(a, console)
        case "tail": return try tail(a, console)
        case "export": return try export(a, console)
        case "prune": return try prune(a, console)
        case "bench": return try bench(a, console)
        default: throw UsageError("unknown subcommand '\(sub)' (verify, tail, export, prune, bench)")
        }
    }

    static func openLog(_ a: ParsedArguments, policy: AuditPolicy = AuditPolicy()) throws -> AuditLog {
        let path = a.value("--db") ?? SQLiteStorage.defaultPath
        let storage = try SQLiteStorage(path: path)
        // Reading and pruning never log text: the prompt mode does not matter here.
        var p = policy
        if p.prompts == .redacted { p.prompts = .none }
        return try AuditLog(storage: storage, policy: p, usage: try UsageLedger(storage: storage))
    }

    func verify(_ a: ParsedArguments, _ console: Console) throws -> Int32 {
        let log = try AuditCommand.openLog(a)
        let keyPath = a.value("--key") ?? AuditLog.defaultSigningKeyPath
        var key: Ed25519Key?
        if FileManager.default.fileExists(atPath: keyPath) {
            key = try AuditLog.signingKey(path: keyPath, create: false)
        } else if a.value("--key") != nil {
            throw AuditError.signing("no key file at \(keyPath)")
        }
        let v = try log.verify(trustedKey: key)
        let range = v.firstSeq.map { "seq \($0)…\(v.lastSeq ?? $0)" } ?? "empty"
        let cp = v.checkpointSeq.map { ", starting from the signed checkpoint at seq \($0)" } ?? ""
        if v.ok {
            console.out("audit log OK: \(v.recordsChecked) record\(v.recordsChecked == 1 ? "" : "s") (\(range))\(cp); the hash chain is intact\n")
            return ExitCode.ok
        }
        console.out("audit log FAILED verification: \(v.problems.count) problem\(v.problems.count == 1 ? "" : "s") in \(v.recordsChecked) records (\(range))\(cp)\n")
        for p in v.problems { console.out("  \(p.kind.rawValue): \(p.message)\n") }
        return ExitCode.failure
    }

    static func line(_ r: AuditRecord) -> String {
        if r.kind == "admin" {
            let details = r.details.keys.sorted().map { "\($0)=\(r.details[$0]!)" }.joined(separator: " ")
            return "\(r.seq)  \(r.time)  admin  \(r.action ?? "-")  target=\(r.target ?? "-")  key=\(r.keyID ?? "-")\(details.isEmpty ? "" : "  " + details)\n"
        }
        var s = "\(r.seq)  \(r.time)  \(r.status.map(String.init) ?? "-")  \(r.method ?? "-") \(r.route ?? "-")  model=\(r.model ?? "-")  key=\(r.keyID ?? "-")"
        s += "  tokens=\(r.tokensIn)/\(r.tokensOut)  \(String(format: "%.1f", r.latencyMs)) ms  \(r.requestID ?? "")"
        if !r.moderation.isEmpty { s += "  moderation=\(r.moderation.joined(separator: ","))" }
        if !r.overrides.isEmpty { s += "  overrides=\(r.overrides.joined(separator: ","))" }
        if let e = r.error { s += "  error=\(e)" }
        return s + "\n"
    }

    func tail(_ a: ParsedArguments, _ console: Console) throws -> Int32 {
        let n = try a.int("-n") ?? 20
        guard n >= 0 else { throw UsageError("-n must be ≥ 0") }
        let format = a.value("--format") ?? "text"
        guard format == "text" || format == "jsonl" else { throw UsageError("tail --format is text or jsonl") }
        let log = try AuditCommand.openLog(a)
        func show(_ recs: [AuditRecord]) {
            for r in recs { console.out(format == "jsonl" ? AuditLog.export([r], format: .jsonl) : AuditCommand.line(r)) }
        }
        let recs = try log.tail(n)
        show(recs)
        guard a.flag("--follow") else { return ExitCode.ok }
        var last = try recs.last?.seq ?? (log.tail(1).last?.seq ?? 0)
        while true {
            Thread.sleep(forTimeInterval: 0.5)
            let more = try log.records(after: last)
            show(more)
            if let l = more.last { last = l.seq }
        }
    }

    func export(_ a: ParsedArguments, _ console: Console) throws -> Int32 {
        let formatName = a.value("--format") ?? "jsonl"
        guard let format = AuditLog.ExportFormat(rawValue: formatName) else { throw UsageError("--format is jsonl or csv, got '\(formatName)'") }
        let since = try a.value("--since").map(AuditTime.parse)
        let until = try a.value("--until").map(AuditTime.parse)
        let log = try AuditCommand.openLog(a)
        let recs = try log.records(since: since, until: until)
        let text = AuditLog.export(recs, format: format)
        if let out = a.value("--out") {
            // Records may hold prompts: the file is private like the database.
            try StewardPaths.writePrivateFile(Data(text.utf8), to: out)
            console.err("wrote \(recs.count) records to \(out)\n")
        } else {
            console.out(text)
        }
        return ExitCode.ok
    }

    func prune(_ a: ParsedArguments, _ console: Console) throws -> Int32 {
        var before: Date
        if let b = a.value("--before") {
            before = try AuditTime.parse(b)
        } else {
            let policyPath = a.value("--policy") ?? PolicyFile.defaultPath
            guard FileManager.default.fileExists(atPath: policyPath) else {
                throw UsageError("give --before DATE, or a policy file with audit.retention_days (--policy FILE)")
            }
            guard let days = try AuditPolicy.load(policyFile: policyPath).retentionDays else {
                throw UsageError("\(policyPath) sets no audit.retention_days; give --before DATE")
            }
            before = Date().addingTimeInterval(-Double(days) * 86400)
        }
        let log = try AuditCommand.openLog(a)
        let key = try AuditLog.signingKey(path: a.value("--key") ?? AuditLog.defaultSigningKeyPath)
        let r = try log.prune(before: before, key: key)
        if let cp = r.checkpoint {
            console.out("pruned \(r.pruned) records older than \(AuditTime.format(before)); signed checkpoint at seq \(cp.seq) (key \(cp.publicKey.prefix(16))…)\n")
        } else {
            console.out("nothing to prune: no record is older than \(AuditTime.format(before))\n")
        }
        return ExitCode.ok
    }

    func bench(_ a: ParsedArguments, _ console: Console) throws -> Int32 {
        let n = try a.int("--records") ?? 5000
        guard n >= 1 else { throw UsageError("--records must be ≥ 1") }
        var tmp: String?
        let path: String
        if let db = a.value("--db") { path = db } else {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("steward-audit-bench-\(UUID().uuidString)").path
            tmp = dir
            path = dir + "/steward.db"
        }
        defer { if let tmp { try? FileManager.default.removeItem(atPath: tmp) } }
        let storage = try SQLiteStorage(path: path)
        let log = try AuditLog(storage: storage, policy: AuditPolicy(prompts: .hash), usage: try UsageLedger(storage: storage))
        try log.startBackgroundCheckpoints()
        defer { log.stopBackgroundCheckpoints() }
        let prompt = "user: Summarize the attached quarterly report in three bullet points for the leadership team."
        func record(_ i: Int) throws {
            try log.recordRequest(AuditRequestInfo(requestID: "req_bench_\(i)", keyID: "key_bench", route: "/v1/chat/completions", method: "POST",
                                                   model: "smollm2-135m-instruct", status: 200, tokensIn: 42, tokensOut: 128,
                                                   latencySeconds: 0.8, moderation: ["input:pii.email:redact"], prompt: prompt, completion: prompt))
        }
        for i in 0..<min(100, n) { try record(i) }
        var samples: [Double] = []
        samples.reserveCapacity(n)
        let t0 = Date()
        for i in 0..<n {
            let s = DispatchTime.now().uptimeNanoseconds
            try record(i)
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1000)
        }
        let total = Date().timeIntervalSince(t0)
        samples.sort()
        let p50 = samples[samples.count / 2], p99 = samples[min(samples.count - 1, samples.count * 99 / 100)]
        console.out(String(format: "audit append (record + usage, prompts hashed, WAL synchronous=NORMAL): %d records, mean %.1f µs, p50 %.1f µs, p99 %.1f µs, max %.1f µs\n",
                           n, total / Double(n) * 1e6, p50, p99, samples.last ?? 0))
        let v = try log.verify(trustedKey: nil)
        console.out(String(format: "verify: %d records in %.3f s, %@\n", v.recordsChecked, Date().timeIntervalSince(t0) - total, v.ok ? "chain intact" : "PROBLEMS"))
        return ExitCode.ok
    }
}

/// `steward usage`: tokens, requests and errors per key, model or day (from the audit's usage ledger).
struct UsageCommand: Command {
    let spec = CommandSpec(
        name: "usage",
        summary: "Show token usage and cost per key, model or day.",
        usage: "steward usage [--by key|model|day] [--since DATE] [--format table|json] [--policy FILE]",
        options: [
            .value("--by", valueName: "GROUP", help: "key (default), model or day."),
            .value("--since", valueName: "DATE", help: "From this UTC day on (YYYY-MM-DD)."),
            .value("--format", valueName: "FORMAT", help: "table (default) or json."),
            .value("--policy", valueName: "FILE", help: "Prices from this policy file's \"usage\" section (default $STEWARD_HOME/policy.json)."),
            .value("--db", valueName: "FILE", help: "The Steward database (default $STEWARD_HOME/steward.db)."),
        ],
        discussion: "Counts every request that named a model (errors included). Cost = tokens / 1000 × the configured price per model (\"default\" for the rest), at today's prices."
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard a.positionals.isEmpty else { throw UsageError("unexpected argument '\(a.positionals[0])'") }
        let byName = a.value("--by") ?? "key"
        guard let by = UsageLedger.Grouping(rawValue: byName) else { throw UsageError("--by is key, model or day, got '\(byName)'") }
        let format = a.value("--format") ?? "table"
        guard format == "table" || format == "json" else { throw UsageError("--format is table or json, got '\(format)'") }
        let since = try a.value("--since").map { s -> String in AuditTime.format(try AuditTime.parse(s)).prefix(10).description }
        var prices = UsagePolicy()
        let policyPath = a.value("--policy") ?? PolicyFile.defaultPath
        if a.value("--policy") != nil || FileManager.default.fileExists(atPath: policyPath) {
            prices = try UsagePolicy.load(policyFile: policyPath)
        }
        let storage = try SQLiteStorage(path: a.value("--db") ?? SQLiteStorage.defaultPath)
        let rows = try UsageLedger(storage: storage).report(by: by, since: since, prices: prices)
        func name(_ g: String) -> String { by == .key && g.isEmpty ? "(no key)" : g }
        if format == "json" {
            let list: [[String: Any]] = rows.map { r in
                var o: [String: Any] = [by.rawValue: name(r.group), "tokens_in": r.tokensIn, "tokens_out": r.tokensOut,
                                        "requests": r.requests, "errors": r.errors]
                if let c = r.cost { o["cost"] = (c * 1e6).rounded() / 1e6; o["currency"] = prices.currency }
                return o
            }
            let data = try JSONSerialization.data(withJSONObject: list, options: [.sortedKeys, .prettyPrinted])
            console.out(String(decoding: data, as: UTF8.self) + "\n")
            return ExitCode.ok
        }
        var table: [[String]] = [[by.rawValue.uppercased(), "REQUESTS", "ERRORS", "TOKENS IN", "TOKENS OUT"] + (prices.hasPrices ? ["COST (\(prices.currency))"] : [])]
        for r in rows {
            table.append([name(r.group), String(r.requests), String(r.errors), String(r.tokensIn), String(r.tokensOut)]
                         + (r.cost.map { [String(format: "%.4f", $0)] } ?? []))
        }
        if rows.isEmpty { console.out("no usage recorded\(since.map { " since \($0)" } ?? "")\n"); return ExitCode.ok }
        let widths = (0..<table[0].count).map { c in table.map { $0[c].count }.max() ?? 0 }
        for row in table {
            console.out(row.enumerated().map { c, v in c == 0 ? v.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                                                   : String(repeating: " ", count: widths[c] - v.count) + v }.joined(separator: "  ") + "\n")
        }
        return ExitCode.ok
    }
}

/// For commands that change state (keys, models, policy overrides): one admin record in the
/// audit log of $STEWARD_HOME/steward.db (or `db`). The operator at the command line has no
/// API key, so keyID is nil and the local user name goes into the details.
/// Records a command's state change (an admin action) in the audit log of the database the
/// command uses. Installed as Governance's `AdminAudit` recorder for every command (CLI.run).
enum CLIAudit {
    static func record(action: String, keyID: String? = nil, target: String?, details: [String: String] = [:], db: String? = nil) throws {
        let storage = try SQLiteStorage(path: db ?? SQLiteStorage.defaultPath)
        let log = try AuditLog(storage: storage)
        var d = details
        d["via"] = "cli"
        if d["user"] == nil { d["user"] = NSUserName() }
        try log.recordAdmin(action: action, keyID: keyID, target: target, details: d)
    }
}
