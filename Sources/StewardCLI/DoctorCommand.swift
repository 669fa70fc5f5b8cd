import Foundation
import Governance

/// One thing `steward doctor` found.
public struct DoctorFinding: Sendable, Equatable {
    public enum Level: String, Sendable { case ok, warn, fix }
    public var level: Level
    public var message: String
    public init(_ level: Level, _ message: String) { self.level = level; self.message = message }
}

/// `steward doctor`: checks a deployment and says what to fix. Exit 1 when something must be
/// fixed, 0 when only warnings (or nothing) were found.
struct DoctorCommand: Command {
    let spec = CommandSpec(
        name: "doctor",
        summary: "Check a deployment (bind address vs keys, file modes, logging mode, policy, keys) and print what to fix.",
        usage: "steward doctor [--host ADDR] [--policy FILE] [--tls]",
        options: [
            .value("--host", valueName: "ADDR", help: "The address steward serve will listen on (default 127.0.0.1)."),
            .value("--policy", valueName: "FILE", help: "The deployment policy (default $STEWARD_HOME/policy.json)."),
            .flag("--tls", help: "The server will run with --tls-cert/--tls-key (no clear-text warning)."),
        ],
        discussion: """
        Lines start with ok, warn or FIX. Exit status: 0 nothing to fix, 1 something must be fixed.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard a.positionals.isEmpty else { throw UsageError("unexpected argument '\(a.positionals[0])'") }
        let host = a.value("--host") ?? "127.0.0.1"
        let home = StewardPaths.home
        let policyPath = a.value("--policy") ?? StewardPaths.defaultPolicyFile
        var findings = DoctorCommand.fileModes(home: home, policy: policyPath)
        findings += DoctorCommand.policy(policyPath)
        findings += DoctorCommand.access(host: host, tls: a.flag("--tls"), home: home)
        findings += DoctorCommand.models(db: SQLiteStorage.defaultPath)
        var fixes = 0, warnings = 0
        for f in findings {
            switch f.level {
            case .ok: console.out("ok    \(f.message)\n")
            case .warn: warnings += 1; console.out("warn  \(f.message)\n")
            case .fix: fixes += 1; console.out("FIX   \(f.message)\n")
            }
        }
        console.out("\(fixes) to fix, \(warnings) warning\(warnings == 1 ? "" : "s")\n")
        return fixes > 0 ? ExitCode.failure : ExitCode.ok
    }

    /// Every model in the store re-hashed (and its signature checked): a changed file is a FIX.
    static func models(db: String) -> [DoctorFinding] {
        guard FileManager.default.fileExists(atPath: db) else { return [DoctorFinding(.ok, "model store: no database yet (steward models add registers models)")] }
        do {
            let store = try ModelStore(databasePath: db)
            let records = try store.list()
            if records.isEmpty { return [DoctorFinding(.warn, "model store: no models registered; served models are not verified (steward models add NAME)")] }
            return records.map { r in
                let v = store.verify(r)
                if !v.filesIntact {
                    return DoctorFinding(.fix, "model \(r.name): files changed or missing since they were added; re-fetch them or run steward models verify \(r.name)")
                }
                if !v.signatureOK { return DoctorFinding(.fix, "model \(r.name): its signature does not verify; re-sign it (steward models sign) or remove it") }
                return DoctorFinding(.ok, "model \(r.name): \(r.files.count) file\(r.files.count == 1 ? "" : "s") verified (sha256)")
            }
        } catch {
            return [DoctorFinding(.fix, "model store: \(error)")]
        }
    }

    static func mode(_ path: String) -> Int? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int(st.st_mode) & 0o777
    }

    static func fileModes(home: String, policy: String) -> [DoctorFinding] {
        var out: [DoctorFinding] = []
        guard let m = mode(home) else {
            return [DoctorFinding(.warn, "\(home) ($STEWARD_HOME) does not exist yet: nothing is configured (it is created 0700 on first use)")]
        }
        if m & 0o077 != 0 {
            out.append(DoctorFinding(.fix, String(format: "%@ is mode %03o: other users can reach keys' hashes and the audit log; run chmod 700 %@", home, m, home)))
        } else {
            out.append(DoctorFinding(.ok, String(format: "%@ is mode %03o", home, m)))
        }
        for file in ["steward.db", "steward.db-wal", "steward.db-shm"] {
            let p = home + "/" + file
            guard let fm = mode(p) else { continue }
            if fm & 0o077 != 0 {
                out.append(DoctorFinding(.fix, String(format: "%@ is mode %03o; run chmod 600 %@", p, fm, p)))
            } else {
                out.append(DoctorFinding(.ok, String(format: "%@ is mode %03o", p, fm)))
            }
        }
        if let pm = mode(policy), pm & 0o077 != 0 {
            out.append(DoctorFinding(.fix, String(format: "%@ is mode %03o; run chmod 600 %@ (others must not read or change the policy)", policy, pm, policy)))
        }
        return out
    }

    static func policy(_ path: String) -> [DoctorFinding] {
        guard FileManager.default.fileExists(atPath: path) else {
            return [DoctorFinding(.warn, "no policy file at \(path): defaults apply (no licence policy, prompts not logged); write one to declare intent")]
        }
        guard let data = FileManager.default.contents(atPath: path),
              let obj = try? JSONSerialization.jsonObject(with: data), let root = obj as? [String: Any] else {
            return [DoctorFinding(.fix, "\(path) is not a valid JSON object: steward serve would refuse it; fix the JSON")]
        }
        var out = [DoctorFinding(.ok, "policy \(path) is valid JSON (sections: \(root.keys.sorted().joined(separator: ", ")))")]
        if let audit = root["audit"] as? [String: Any], let prompts = audit["prompts"] as? String {
            if prompts == "full" {
                out.append(DoctorFinding(.warn, "audit.prompts is \"full\": prompts and completions are stored in clear text in the audit log; use \"redacted\" or \"hash\" unless you must keep them"))
            } else {
                out.append(DoctorFinding(.ok, "audit.prompts is \"\(prompts)\""))
            }
        } else {
            out.append(DoctorFinding(.ok, "audit.prompts not set: prompts are not logged (none)"))
        }
        return out
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host.hasPrefix("127.") || host == "::1"
    }

    static func access(host: String, tls: Bool, home: String) -> [DoctorFinding] {
        var out: [DoctorFinding] = []
        let dbPath = home + "/steward.db"
        var keys: [KeyRecord] = []
        var disabled: [String] = []
        if FileManager.default.fileExists(atPath: dbPath) {
            do {
                let store = try KeyStore(storage: SQLiteStorage(path: dbPath))
                keys = try store.list()
                disabled = try store.disabledModels()
            } catch {
                out.append(DoctorFinding(.fix, "cannot read the key table in \(dbPath): \(error)"))
            }
        }
        let now = Date()
        let active = keys.filter { $0.state(at: now) == .active }
        if isLoopback(host) {
            out.append(DoctorFinding(.ok, "bind \(host) is loopback: only this machine can connect"
                                     + (keys.isEmpty ? " (no keys: open to local users)" : "")))
        } else if keys.isEmpty {
            out.append(DoctorFinding(.fix, "bind \(host) reaches other machines but no API key exists: steward serve refuses to start; create one (steward keys create --name NAME) or bind 127.0.0.1"))
        } else {
            out.append(DoctorFinding(.ok, "bind \(host) with \(active.count) active key\(active.count == 1 ? "" : "s"): every route but /health needs a key"))
            if !tls {
                out.append(DoctorFinding(.warn, "bind \(host) without TLS: keys and prompts cross the network in clear text; use --tls-cert/--tls-key or a TLS proxy"))
            }
        }
        if !keys.isEmpty && active.isEmpty {
            out.append(DoctorFinding(.warn, "every key is revoked or expired: nobody can use the server; create a key"))
        }
        let admins = active.filter { $0.allows(scope: .admin) }
        if !keys.isEmpty {
            if admins.isEmpty {
                out.append(DoctorFinding(.warn, "no active admin key: the admin API (kill switch, key management over HTTP) cannot be used; the CLI still can"))
            } else if admins.count > 3 {
                out.append(DoctorFinding(.warn, "\(admins.count) active admin keys (\(admins.map(\.name).joined(separator: ", "))): keep admin keys few; revoke the ones not needed"))
            } else {
                out.append(DoctorFinding(.ok, "\(admins.count) active admin key\(admins.count == 1 ? "" : "s")"))
            }
        }
        for k in active {
            if let e = k.expires, e.timeIntervalSince(now) < 7 * 86400 {
                let days = Int(e.timeIntervalSince(now) / 86400)
                out.append(DoctorFinding(.warn, "key \(k.id) (\(k.name)) expires in \(days == 0 ? "less than a day" : "\(days) day\(days == 1 ? "" : "s")") (\(KeysCommand.iso(e))); rotate callers to a new key"))
            }
            if k.rpm == nil && k.tpm == nil && k.dailyTokens == nil && !k.allows(scope: .admin) {
                out.append(DoctorFinding(.ok, "key \(k.id) (\(k.name)) has no rate limits"))
            }
        }
        for m in disabled {
            out.append(DoctorFinding(.warn, "model \(m) is disabled by the kill switch (steward kill-switch enable-model \(m) re-enables it)"))
        }
        return out
    }
}
