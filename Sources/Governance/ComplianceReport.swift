import Foundation
import Moderation

// `steward compliance report`: one document for an auditor, built from what the components
// already record — the model store (digests, licences, lineage, signatures), the deployment
// policy, the key store (never secrets or their hashes), the audit chain, moderation settings,
// usage and evaluation results. The report is a plain model (`ComplianceReport`) turned into
// a small document (`ReportBlock`s) that two renderers write as Markdown and as self-contained
// HTML, so both files always say the same thing.

/// Everything the compliance report says, gathered at one moment.
public struct ComplianceReport: Sendable {
    public struct Options: Sendable {
        /// The Steward database (default `$STEWARD_HOME/steward.db`).
        public var databasePath: String
        /// The deployment policy file (nil: `$STEWARD_HOME/policy.json` when it exists, else none).
        public var policyPath: String?
        /// Trust files whose size+mtime+inode are unchanged instead of re-hashing them.
        public var quick = false
        public var stewardVersion: String
        /// The audit checkpoint signing key (public part is enough; default `$STEWARD_HOME/audit-signing.pem` when present).
        public var auditKeyPath: String?
        /// Where evaluation results are looked for (default `$STEWARD_HOME/evals`).
        public var evaluationsDirectory: String
        /// Days of usage summarised.
        public var usageDays = 30
        public var now = Date()

        public init(databasePath: String? = nil, policyPath: String? = nil, quick: Bool = false, stewardVersion: String,
                    auditKeyPath: String? = nil, evaluationsDirectory: String? = nil) {
            self.databasePath = databasePath ?? SQLiteStorage.defaultPath
            self.policyPath = policyPath
            self.quick = quick
            self.stewardVersion = stewardVersion
            self.auditKeyPath = auditKeyPath
            self.evaluationsDirectory = evaluationsDirectory ?? ComplianceReport.defaultEvaluationsDirectory
        }
    }

    /// Where an evaluation command is expected to leave one JSON file per run.
    public static var defaultEvaluationsDirectory: String { StewardPaths.home + "/evals" }

    public struct ModelEntry: Sendable {
        public var record: ModelRecord
        public var terms: LicenseTerms
        /// Ancestors, nearest first: (name, relation of the child to it). A name not in the store is kept.
        public var lineage: [(name: String, relation: String)]
        public var signature: ModelStore.SignatureStatus
        /// Whether the signer is in the policy's models.trusted_keys (nil: no trusted keys configured).
        public var signerTrusted: Bool?
        public var verification: [(path: String, status: ModelStore.FileStatus)]
        public var verificationSeconds: Double
        /// nil: no policy declared (nothing enforced).
        public var decision: LicenseDecision?
        public var disabled: Bool
        public var filesIntact: Bool {
            verification.allSatisfy { $0.status == .ok || $0.status == .trustedUnchanged }
        }
    }

    public struct PolicySummary: Sendable {
        /// The file read, or nil when no policy is declared.
        public var path: String?
        /// Top-level sections present, sorted.
        public var sections: [String]
        /// The file pretty-printed (sorted keys).
        public var prettyJSON: String?
        /// SHA-256 of the file's bytes, so the auditor can match it to a copy.
        public var sha256: String?
        public var deployment: DeploymentPolicy?
    }

    public struct AuditSummary: Sendable {
        public var policy: AuditPolicy
        public var verification: AuditVerification?
        /// Why the chain could not be read at all.
        public var error: String?
        public var firstTime: String?
        public var lastTime: String?
        public var checkpoints: [AuditCheckpoint]
        /// The checkpoint key used for verification ("none" when absent).
        public var signingKey: String?
    }

    public struct ModerationSummary: Sendable {
        /// false: no "moderation" section (moderation is off).
        public var configured: Bool
        public var config: ModerationConfig
        /// Policies shown: the file's, plus presets in use (default or selected by a key).
        public var policies: [ModerationPolicy]
        public var presetNames: Set<String>
    }

    public struct UsageSummary: Sendable {
        public var since: String
        public var rows: [UsageLedger.Row]
        public var currency: String?
    }

    public struct Evaluation: Sendable {
        public var file: String
        public var modified: Date
        /// Scalar fields, "metrics.x" for those inside a "metrics" (or "results") object.
        public var fields: [(String, String)]
        public var error: String?
    }

    public var generatedAt: String
    public var stewardVersion: String
    public var host: String
    public var databasePath: String
    public var quick: Bool
    public var models: [ModelEntry]
    public var policy: PolicySummary
    public var keys: [KeyRecord]
    public var keyStates: [String: KeyState]
    public var audit: AuditSummary
    public var moderation: ModerationSummary
    public var usage: UsageSummary
    public var evaluationsDirectory: String
    public var evaluations: [Evaluation]

    // MARK: Gathering

    /// Reads every component's state. A policy file that cannot be read or parsed is an error
    /// (the report would otherwise judge models against a policy nobody runs); a broken audit
    /// chain is not — it is what the report must show.
    public static func build(_ o: Options) throws -> ComplianceReport {
        let storage = try SQLiteStorage(path: o.databasePath)
        let policyPath = StewardPaths.policyFile(o.policyPath)

        // Policy: each component decodes its own section (as serve does).
        var policy = PolicySummary(path: policyPath, sections: [], prettyJSON: nil, sha256: nil, deployment: nil)
        var auditPolicy = AuditPolicy()
        var usagePolicy = UsagePolicy()
        var moderationConfig = ModerationConfig.presets(default: "off")
        var moderationConfigured = false
        if let policyPath {
            policy.deployment = try DeploymentPolicy.load(contentsOf: policyPath)
            auditPolicy = try AuditPolicy.load(policyFile: policyPath)
            usagePolicy = try UsagePolicy.load(policyFile: policyPath)
            moderationConfig = try ModerationConfig.load(policyFile: policyPath)
            if let data = FileManager.default.contents(atPath: policyPath),
               let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
                policy.sections = root.keys.filter { $0 != "$comment" }.sorted()
                moderationConfigured = root["moderation"] != nil
                policy.prettyJSON = prettyJSON(root)
                policy.sha256 = Secrets.sha256Hex(data)
            }
        }

        // Keys and the kill switch's disabled models.
        let keyStore = try KeyStore(storage: storage)
        let keys = try keyStore.list()
        let disabled = Set(try keyStore.disabledModels())
        var states: [String: KeyState] = [:]
        for k in keys { states[k.id] = k.state(at: o.now) }

        // Models.
        let store = try ModelStore(storage: storage)
        let records = try store.list()
        let byName = Dictionary(records.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let trusted = policy.deployment?.models.trustedKeys ?? []
        var models: [ModelEntry] = []
        for r in records {
            var lineage: [(String, String)] = []
            var cur: ModelRecord? = r
            var seen: Set<String> = [r.name]
            while let c = cur, let p = c.parent {
                lineage.append((p, c.relation?.rawValue ?? "derived"))
                guard seen.insert(p).inserted else { break }   // a cycle in edited data: stop
                cur = byName[p]
            }
            let v = store.verify(r, trustUnchanged: o.quick)
            var signerTrusted: Bool?
            if case let .valid(keyID, _) = v.signature, !trusted.isEmpty { signerTrusted = trusted.contains(keyID) }
            let decision = policy.deployment.map { LicensePolicy.evaluate(license: r.licenseAsWritten ?? r.license, policy: $0) }
            models.append(ModelEntry(record: r, terms: LicenseCatalog.terms(id: r.license) ?? LicenseCatalog.unknown,
                                     lineage: lineage, signature: v.signature, signerTrusted: signerTrusted,
                                     verification: v.files.map { ($0.file.path, $0.status) }, verificationSeconds: v.seconds,
                                     decision: decision, disabled: disabled.contains(r.name)))
        }

        // Audit chain. Opened with prompts "none": reading never logs text.
        var readPolicy = auditPolicy
        if readPolicy.prompts == .redacted { readPolicy.prompts = .none }
        var audit = AuditSummary(policy: auditPolicy, verification: nil, error: nil, firstTime: nil, lastTime: nil, checkpoints: [], signingKey: nil)
        do {
            let log = try AuditLog(storage: storage, policy: AuditPolicy(prompts: readPolicy.prompts), usage: nil)
            let keyPath = o.auditKeyPath ?? AuditLog.defaultSigningKeyPath
            var key: Ed25519Key?
            if FileManager.default.fileExists(atPath: keyPath) {
                let k = try AuditLog.signingKey(path: keyPath, create: false)
                key = k
                audit.signingKey = "\(keyPath) (key id \(k.publicKeyHex.prefix(16))…)"
            } else if o.auditKeyPath != nil {
                throw AuditError.signing("no key file at \(keyPath)")
            }
            audit.verification = try log.verify(trustedKey: key)
            audit.checkpoints = try log.checkpoints()
            let bounds = try storage.query("SELECT MIN(time) AS first, MAX(time) AS last FROM audit_log")
            audit.firstTime = bounds.first?["first"]?.string
            audit.lastTime = bounds.first?["last"]?.string
        } catch let e as AuditError {
            if case .signing = e { throw e }
            audit.error = e.description
        }

        // Moderation: the file's policies and the presets in use.
        var shown = moderationConfig.policies.values.sorted { $0.name < $1.name }
        var presets: Set<String> = []
        var inUse = [moderationConfig.defaultPolicy]
        inUse += keys.compactMap(\.moderationPolicy)
        for n in inUse where moderationConfig.policies[n] == nil {
            if let p = ModerationPolicy.presets[n], !presets.contains(n) { presets.insert(n); shown.append(p) }
        }

        // Usage over the last N days, by model.
        let sinceDate = o.now.addingTimeInterval(-Double(o.usageDays - 1) * 86400)
        let since = String(AuditTime.format(sinceDate).prefix(10))
        let usageRows = try UsageLedger(storage: storage).report(by: .model, since: since, prices: usagePolicy)

        return ComplianceReport(
            generatedAt: AuditTime.format(o.now), stewardVersion: o.stewardVersion, host: ProcessInfo.processInfo.hostName,
            databasePath: o.databasePath, quick: o.quick, models: models, policy: policy, keys: keys, keyStates: states,
            audit: audit,
            moderation: ModerationSummary(configured: moderationConfigured, config: moderationConfig, policies: shown, presetNames: presets),
            usage: UsageSummary(since: since, rows: usageRows, currency: usagePolicy.hasPrices ? usagePolicy.currency : nil),
            evaluationsDirectory: o.evaluationsDirectory, evaluations: readEvaluations(o.evaluationsDirectory))
    }

    /// Every `*.json` in the evaluations directory, newest first. The expected shape (for the
    /// evaluation command to come) is one object per run, e.g.
    /// `{"model": "smollm2-135m-instruct", "suite": "hellaswag", "finished_at": "…", "metrics": {"accuracy": 0.41}}`;
    /// any object is shown by its scalar fields.
    static func readEvaluations(_ dir: String) -> [Evaluation] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        var out: [Evaluation] = []
        for n in names.sorted() where n.hasSuffix(".json") {
            let path = dir + "/" + n
            let mtime = ((try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date) ?? .distantPast
            var e = Evaluation(file: n, modified: mtime, fields: [], error: nil)
            guard let data = FileManager.default.contents(atPath: path),
                  let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                e.error = "not a readable JSON object"
                out.append(e)
                continue
            }
            for k in obj.keys.sorted() {
                if let s = scalar(obj[k]) { e.fields.append((k, s)) }
                if let nested = obj[k] as? [String: Any], ["metrics", "results", "scores"].contains(k) {
                    for nk in nested.keys.sorted() { if let s = scalar(nested[nk]) { e.fields.append(("\(k).\(nk)", s)) } }
                }
            }
            out.append(e)
        }
        return out.sorted { $0.modified > $1.modified }
    }

    /// JSON with sorted keys and two-space indents (Foundation's pretty printer on Linux writes
    /// `"key" : value` and splits empty arrays over lines).
    static func prettyJSON(_ v: Any, indent: String = "") -> String {
        let inner = indent + "  "
        switch v {
        case let o as [String: Any]:
            if o.isEmpty { return "{}" }
            return "{\n" + o.keys.sorted().map { inner + jsonString($0) + ": " + prettyJSON(o[$0] as Any, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "}"
        case let a as [Any]:
            if a.isEmpty { return "[]" }
            if a.allSatisfy({ !($0 is [String: Any]) && !($0 is [Any]) }) {
                let one = "[" + a.map { prettyJSON($0, indent: inner) }.joined(separator: ", ") + "]"
                if one.count + indent.count <= 100 { return one }
            }
            return "[\n" + a.map { inner + prettyJSON($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case let s as String: return jsonString(s)
        case let n as NSNumber:
            if String(cString: n.objCType) == "c" { return n.boolValue ? "true" : "false" }
            let d = n.doubleValue
            if d.rounded() == d, abs(d) < 1e15 { return String(Int64(d)) }
            return "\(d)"
        case is NSNull: return "null"
        default: return "null"
        }
    }

    /// A JSON string literal: the same escaping as model manifests and the audit chain.
    static func jsonString(_ s: String) -> String { CanonicalJSON.text(s) }

    private static func scalar(_ v: Any?) -> String? {
        switch v {
        case let s as String: return s
        case let n as NSNumber:
            if String(cString: n.objCType) == "c" { return n.boolValue ? "true" : "false" }
            return "\(n)"
        default: return nil
        }
    }

    // MARK: Findings an auditor should look at first

    public var attention: [String] {
        var out: [String] = []
        for m in models {
            if !m.filesIntact { out.append("Model \(m.record.name): files changed or missing since they were registered.") }
            if case let .invalid(reason) = m.signature { out.append("Model \(m.record.name): signature does not verify (\(reason)).") }
            if m.signerTrusted == false { out.append("Model \(m.record.name): signed by a key not in models.trusted_keys.") }
            if let d = m.decision, !d.allowed {
                out.append("Model \(m.record.name): licence \(d.licenseID) is denied by the policy" + (m.record.licenseOverride != nil ? " (admitted with a recorded override)." : "."))
            }
            if m.terms.isUnknown { out.append("Model \(m.record.name): licence unknown.") }
        }
        if policy.path == nil { out.append("No deployment policy file: licences are reported but nothing is enforced.") }
        if let e = audit.error { out.append("Audit log could not be read: \(e)") }
        if let v = audit.verification, !v.ok { out.append("Audit chain: \(v.problems.count) problem\(v.problems.count == 1 ? "" : "s") found by verification.") }
        if !audit.policy.enabled { out.append("Audit logging is switched off by the policy (audit.enabled is false).") }
        if audit.policy.prompts == .full { out.append("Audit log keeps prompts and completions in full (audit.prompts is full).") }
        if keys.isEmpty { out.append("No API keys: a server is open to anyone who can reach it (loopback only by default).") }
        if !keys.isEmpty && !keys.contains(where: { $0.scopes.contains(.admin) && keyStates[$0.id] == .active }) {
            out.append("No active admin key: the admin API and live kill switch over HTTP are unavailable.")
        }
        if !moderation.configured { out.append("Moderation is off (no \"moderation\" section in the policy).") }
        return out
    }
}

// MARK: - The document

/// A run of inline text: plain, code (digests, ids, paths) or emphasised.
public enum ReportSpan: Sendable, Equatable {
    case text(String)
    case code(String)
    case strong(String)
}

public typealias ReportLine = [ReportSpan]

/// One block of the rendered document.
public enum ReportBlock: Sendable, Equatable {
    case heading(level: Int, String)
    case paragraph(ReportLine)
    case list([ReportLine])
    /// Two-column facts ("Digest: …").
    case facts([(String, ReportLine)])
    case table(header: [String], rows: [[ReportLine]])
    case preformatted(String)

    public static func == (a: ReportBlock, b: ReportBlock) -> Bool {
        switch (a, b) {
        case let (.heading(l1, s1), .heading(l2, s2)): return l1 == l2 && s1 == s2
        case let (.paragraph(x), .paragraph(y)): return x == y
        case let (.list(x), .list(y)): return x == y
        case let (.facts(x), .facts(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.table(h1, r1), .table(h2, r2)): return h1 == h2 && r1 == r2
        case let (.preformatted(x), .preformatted(y)): return x == y
        default: return false
        }
    }
}

extension ComplianceReport {
    static func size(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(bytes)
        var i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(bytes) B" : String(format: "%.1f %@ (%lld bytes)", v, units[i], bytes)
    }

    static func date(_ d: Date?) -> String { d.map(AuditTime.format) ?? "—" }

    static func describe(_ rule: ModerationRule) -> String {
        var what: String
        switch rule.kind {
        case let .detector(d): what = "detector \(d)"
        case let .keywords(k, whole, cs):
            what = "keywords [\(k.joined(separator: ", "))]" + (whole ? "" : ", substrings") + (cs ? ", case-sensitive" : "")
        case let .regex(r, cs): what = "regex /\(r)/" + (cs ? " (case-sensitive)" : "")
        case let .maxChars(n): what = "at most \(n) characters"
        case let .maxTokens(n): what = "at most \(n) tokens"
        case let .classifier(cats): what = "classifier" + (cats.map { " (\($0.joined(separator: ", ")))" } ?? "")
        }
        if let n = rule.name { what += " “\(n)”" }
        if let t = rule.threshold { what += ", threshold \(t)" }
        if let r = rule.replacement { what += ", replaced by \(r)" }
        return "\(what) → \(rule.action.rawValue)"
    }

    /// The report as document blocks, in reading order.
    public var document: [ReportBlock] {
        var b: [ReportBlock] = []
        b.append(.heading(level: 1, "Steward compliance report"))
        b.append(.facts([
            ("Generated at", [.text(generatedAt)]),
            ("Steward version", [.text(stewardVersion)]),
            ("Host", [.text(host)]),
            ("Database", [.code(databasePath)]),
            ("Policy file", policy.path.map { [.code($0)] } ?? [.text("none (nothing enforced)")]),
            ("Model verification", [.text(quick ? "quick: files with unchanged size, mtime and inode trusted, others re-hashed" : "every file re-hashed (SHA-256)")]),
        ]))
        b.append(.paragraph([.text("Licence summaries help decisions and are not legal advice; each names its source text, which governs.")]))

        b.append(.heading(level: 2, "Summary"))
        let att = attention
        b.append(.facts([
            ("Models", [.text("\(models.count) registered, \(models.filter { !$0.filesIntact }.count) failing verification, \(models.filter { $0.decision?.allowed == false }.count) denied by the policy")]),
            ("API keys", [.text("\(keys.count) (\(keys.filter { keyStates[$0.id] == .active }.count) active)")]),
            ("Audit chain", [.strong(audit.error != nil ? "UNREADABLE" : (audit.verification?.ok ?? false) ? "intact" : "PROBLEMS FOUND")]),
            ("Moderation", [.text(moderation.configured ? "on, default policy \(moderation.config.defaultPolicy)" : "off")]),
        ]))
        if att.isEmpty {
            b.append(.paragraph([.text("Nothing needs attention.")]))
        } else {
            b.append(.paragraph([.strong("Needs attention:")]))
            b.append(.list(att.map { [.text($0)] }))
        }

        // Models
        b.append(.heading(level: 2, "Models and licences"))
        if models.isEmpty {
            b.append(.paragraph([.text("No models are registered in the store (steward models add registers them).")]))
        } else {
            b.append(.table(header: ["Model", "Licence", "Quantization", "Size", "Files", "Signature", "Policy decision"], rows: models.map { m in
                [[.text(m.record.name)], [.text(m.record.license)], [.text(m.record.quantization ?? "—")], [.text(Self.size(m.record.size))],
                 [.text(m.filesIntact ? (m.verification.contains { $0.status == .trustedUnchanged } ? "unchanged (quick)" : "verified") : "CHANGED")],
                 [.text(Self.signatureWord(m))],
                 [.text(m.decision.map { $0.allowed ? "allowed" : "denied" } ?? "not enforced")]]
            }))
        }
        for m in models { b += modelBlocks(m) }

        // Policy
        b.append(.heading(level: 2, "Active deployment policy"))
        if let path = policy.path {
            b.append(.facts([("File", [.code(path)]), ("SHA-256 of the file", policy.sha256.map { [.code($0)] } ?? [.text("—")]), ("Sections", [.text(policy.sections.isEmpty ? "none" : policy.sections.joined(separator: ", "))])]))
            if let d = policy.deployment {
                let l = d.licenses, mp = d.models
                b.append(.facts([
                    ("Use", [.text(l.use.rawValue)]),
                    ("Distribution", [.text(l.distribution.rawValue)]),
                    ("Derivatives planned", [.text(l.derivatives.isEmpty ? "none" : l.derivatives.map(\.rawValue).sorted().joined(separator: ", "))]),
                    ("Allowed licences", [.text(l.allow.isEmpty ? "any catalogued licence not denied" : l.allow.joined(separator: ", "))]),
                    ("Denied licences", [.text(l.deny.isEmpty ? "none" : l.deny.joined(separator: ", "))]),
                    ("Unknown licences", [.text(l.acceptUnknown ? "accepted" : "refused")]),
                    ("Overrides", [.text(l.allowOverride ? "allowed (recorded in the audit log)" : "not allowed")]),
                    ("Registered models only", [.text(mp.requireRegistered ? "yes" : "no")]),
                    ("Signed models only", [.text(mp.requireSigned ? "yes" : "no")]),
                    ("Trusted signing keys", mp.trustedKeys.isEmpty ? [.text("any valid signature")] : mp.trustedKeys.map { .code($0) }),
                    ("Trust unchanged files at load", [.text(mp.trustUnchangedFiles ? "yes (size+mtime+inode)" : "no (re-hash on every load)")]),
                ]))
            }
            if let json = policy.prettyJSON {
                b.append(.paragraph([.text("The policy file as read (keys sorted):")]))
                b.append(.preformatted(json))
            }
        } else {
            b.append(.paragraph([.text("No policy file (\(StewardPaths.defaultPolicyFile) does not exist and none was given): licences are reported but not enforced, moderation is off, the audit log is on with prompts not logged.")]))
        }

        // Keys
        b.append(.heading(level: 2, "API keys"))
        b.append(.paragraph([.text("Key ids and settings only; secrets are shown once at creation and only their SHA-256 is stored, which this report never includes.")]))
        if keys.isEmpty {
            b.append(.paragraph([.text("No API keys exist.")]))
        } else {
            b.append(.table(header: ["Id", "Name", "Scopes", "Models", "Limits", "Moderation policy", "State", "Created", "Expires", "Last used"], rows: keys.map { k in
                var limits: [String] = []
                if let v = k.rpm { limits.append("\(v) rpm") }
                if let v = k.tpm { limits.append("\(v) tpm") }
                if let v = k.dailyTokens { limits.append("\(v) tokens/day") }
                return [[.code(k.id)], [.text(k.name)], [.text(k.scopes.map(\.rawValue).joined(separator: ", "))],
                        [.text(k.models?.joined(separator: ", ") ?? "all")], [.text(limits.isEmpty ? "none" : limits.joined(separator: ", "))],
                        [.text(k.moderationPolicy ?? "default")],
                        [.text((keyStates[k.id] ?? .active).rawValue + (k.revoked.map { " (\(Self.date($0)))" } ?? ""))],
                        [.text(Self.date(k.created))], [.text(k.expires.map(Self.date) ?? "never")], [.text(k.lastUsed.map(Self.date) ?? "never")]]
            }))
        }

        // Audit
        b.append(.heading(level: 2, "Audit log"))
        var af: [(String, ReportLine)] = [
            ("Logging", [.text(audit.policy.enabled ? "on" : "OFF (audit.enabled is false)")]),
            ("Prompt and completion logging", [.text(Self.promptWords(audit.policy.prompts))]),
            ("Retention", [.text(audit.policy.retentionDays.map { "\($0) days, pruned with a signed checkpoint" } ?? "records kept indefinitely")]),
            ("Durability", [.text(audit.policy.durable ? "fsync per record (survives power loss)" : "WAL synchronous=NORMAL (survives a killed process)")]),
            ("Checkpoint key", [.text(audit.signingKey ?? "none found (checkpoints cannot be checked)")]),
        ]
        if let e = audit.error {
            af.append(("Chain status", [.strong("UNREADABLE: \(e)")]))
            b.append(.facts(af))
        } else if let v = audit.verification {
            af.append(("Chain status", [.strong(v.ok ? "intact" : "\(v.problems.count) PROBLEM\(v.problems.count == 1 ? "" : "S")")]))
            af.append(("Records checked", [.text("\(v.recordsChecked)" + (v.firstSeq.map { " (seq \($0)…\(v.lastSeq ?? $0))" } ?? ""))]))
            af.append(("First record", [.text(audit.firstTime ?? "—")]))
            af.append(("Last record", [.text(audit.lastTime ?? "—")]))
            af.append(("Checkpoints", [.text(audit.checkpoints.isEmpty ? "none (nothing pruned)" : "\(audit.checkpoints.count); verification starts from seq \(v.checkpointSeq.map(String.init) ?? "—")")]))
            b.append(.facts(af))
            if !v.problems.isEmpty {
                b.append(.paragraph([.strong("Problems found by verification:")]))
                b.append(.list(v.problems.map { [.strong($0.kind.rawValue + ":"), .text(" " + $0.message)] }))
            }
            if !audit.checkpoints.isEmpty {
                b.append(.table(header: ["Checkpoint", "Time", "Pruned through seq", "Records pruned", "Signed by"], rows: audit.checkpoints.map { c in
                    [[.text(String(c.id))], [.text(c.time)], [.text(String(c.seq))], [.text(String(c.pruned))], [.code(String(c.publicKey.prefix(16)) + "…")]]
                }))
            }
        }

        // Moderation
        b.append(.heading(level: 2, "Moderation"))
        if !moderation.configured {
            b.append(.paragraph([.strong("off"), .text(": the policy has no \"moderation\" section, so requests and answers are not moderated.")]))
        } else {
            b.append(.facts([
                ("Default policy", [.text(moderation.config.defaultPolicy)]),
                ("Classifier", [.text(moderation.config.classifier.map { "model \($0.model), at most \($0.maxTokens) tokens" } ?? "none")]),
                ("Per-key policies", [.text(keys.contains { $0.moderationPolicy != nil } ? keys.compactMap { k in k.moderationPolicy.map { "\(k.name) → \($0)" } }.joined(separator: ", ") : "none (every key uses the default)")]),
            ]))
            for p in moderation.policies {
                b.append(.heading(level: 3, "Policy \(p.name)" + (moderation.presetNames.contains(p.name) ? " (built-in preset)" : "")))
                if p.isEmpty { b.append(.paragraph([.text("No rules: nothing is moderated.")])); continue }
                b.append(.facts([
                    ("Input", p.input.isEmpty ? [.text("no rules")] : [.text(p.input.map(Self.describe).joined(separator: "; "))]),
                    ("Output", p.output.isEmpty ? [.text("no rules")] : [.text(p.output.map(Self.describe).joined(separator: "; "))]),
                ]))
            }
        }

        // Usage
        b.append(.heading(level: 2, "Usage (last 30 days, by model)"))
        if usage.rows.isEmpty {
            b.append(.paragraph([.text("No usage recorded since \(usage.since).")]))
        } else {
            let costHeader = usage.currency.map { ["Cost (\($0))"] } ?? []
            b.append(.table(header: ["Model", "Requests", "Errors", "Tokens in", "Tokens out"] + costHeader, rows: usage.rows.map { r in
                [[.text(r.group)], [.text(String(r.requests))], [.text(String(r.errors))], [.text(String(r.tokensIn))], [.text(String(r.tokensOut))]]
                    + (r.cost.map { [[.text(String(format: "%.4f", $0))]] } ?? [])
            }))
            b.append(.paragraph([.text("From \(usage.since) (UTC) on.")]))
        }

        // Evaluations
        b.append(.heading(level: 2, "Evaluation results"))
        if evaluations.isEmpty {
            b.append(.paragraph([.text("No evaluation results recorded (looked for "), .code(evaluationsDirectory + "/*.json"), .text(").")]))
        } else {
            b.append(.paragraph([.text("From "), .code(evaluationsDirectory), .text(", newest first.")]))
            for e in evaluations {
                b.append(.heading(level: 3, e.file))
                if let err = e.error { b.append(.paragraph([.text(err)])); continue }
                b.append(.facts([("Recorded", [.text(AuditTime.format(e.modified))])] + e.fields.map { ($0.0, [.text($0.1)]) }))
            }
        }
        return b
    }

    static func signatureWord(_ m: ModelEntry) -> String {
        switch m.signature {
        case .unsigned: return "unsigned"
        case .valid: return m.signerTrusted == false ? "valid, UNTRUSTED key" : "valid"
        case .invalid: return "INVALID"
        }
    }

    static func promptWords(_ p: PromptLogging) -> String {
        switch p {
        case .none: return "none (prompts and completions are not logged)"
        case .hash: return "hash (SHA-256 of prompt and completion)"
        case .redacted: return "redacted (text with personal data and secrets removed)"
        case .full: return "full (prompts and completions kept as sent)"
        }
    }

    func modelBlocks(_ m: ModelEntry) -> [ReportBlock] {
        let r = m.record, t = m.terms
        var b: [ReportBlock] = [.heading(level: 3, r.name)]
        var facts: [(String, ReportLine)] = [
            ("Digest (SHA-256)", [.code(r.sha256)]),
            ("Size", [.text(Self.size(r.size))]),
            ("Format", [.text(r.format + (r.architecture.map { ", architecture \($0)" } ?? ""))]),
            ("Quantization", [.text(r.quantization ?? "—")]),
            ("Location", [.code(r.root)]),
            ("Source", [.text(r.source ?? "not recorded")]),
            ("Added", [.text(r.addedAt)]),
            ("Lineage", [.text(m.lineage.isEmpty ? "base model (no parent recorded)"
                                : m.lineage.map { "\($0.relation) from \($0.name)" }.joined(separator: ", which is "))]),
            ("Licence", [.text("\(t.name) (\(r.license))" + (r.licenseAsWritten.map { ", written \"\($0)\"" } ?? "") + (r.licenseSource.map { ", from \($0)" } ?? ""))]),
        ]
        switch m.signature {
        case .unsigned: facts.append(("Signature", [.text("unsigned")]))
        case let .valid(keyID, _):
            facts.append(("Signature", [.text("valid Ed25519 signature by key "), .code(keyID)]
                          + [.text((r.signedAt.map { ", signed \($0)" } ?? "") + (m.signerTrusted == nil ? "" : m.signerTrusted! ? ", a trusted key" : ", NOT a trusted key (models.trusted_keys)"))]))
        case let .invalid(reason): facts.append(("Signature", [.strong("INVALID: \(reason)")]))
        }
        let files = m.verification.map { f -> String in
            switch f.status {
            case .ok: return "\(f.path): ok (re-hashed)"
            case .trustedUnchanged: return "\(f.path): unchanged size, mtime and inode (not re-hashed)"
            case let .changed(actual): return "\(f.path): CHANGED (now sha256 \(actual))"
            case let .missing(reason): return "\(f.path): MISSING (\(reason))"
            }
        }
        facts.append(("Verification", [.text(files.joined(separator: "; ") + String(format: " — %.2f s", m.verificationSeconds))]))
        if m.disabled { facts.append(("Kill switch", [.strong("disabled: the server refuses requests for it")])) }
        if let o = r.licenseOverride { facts.append(("Licence override", [.text(o)])) }
        b.append(.facts(facts))

        var terms: [ReportLine] = [
            [.text("Commercial use: \(t.commercialUse)" + (t.commercialNote.map { " — \($0)" } ?? ""))],
            [.text("Redistribution: \(t.redistribution)" + (t.redistributionNote.map { " — \($0)" } ?? ""))],
            [.text("Derivatives: \(t.derivatives), merging: \(t.merging)" + (t.derivativesNote.map { " — \($0)" } ?? ""))],
        ]
        for a in t.attribution { terms.append([.text("Attribution duty: \(a)")]) }
        if let n = t.requiredNotice { terms.append([.text("Required notice: \(n)")]) }
        if let p = t.derivativeNamePrefix { terms.append([.text("Derivative names must begin with \"\(p)\".")]) }
        if let u = t.monthlyActiveUserLimit { terms.append([.text("User threshold: above \(LicenseCatalog.grouped(u)) monthly active users a separate licence is needed.")]) }
        if let a = t.acceptableUsePolicyURL { terms.append([.text("Acceptable-use policy: \(a)")]) }
        if t.shareAlike { terms.append([.text("Share-alike: \(t.shareAlikeNote ?? "yes")")]) }
        terms.append([.text("Openness: \(t.openness)")])
        if !t.sourceURL.isEmpty { terms.append([.text("Licence text: \(t.sourceURL)")]) }
        if let a = t.ambiguity { terms.append([.text("Note: \(a)")]) }
        b.append(.paragraph([.strong("Licence terms and obligations")]))
        b.append(.list(terms))

        if let d = m.decision {
            var line: ReportLine = [.strong(d.allowed ? "Allowed" : "Denied"), .text(" under the active policy")]
            line.append(.text(d.allowed ? "." : ", because:"))
            b.append(.paragraph(line))
            if !d.allowed { b.append(.list(d.reasons.map { [.text($0)] })) }
            if !d.obligations.isEmpty {
                b.append(.paragraph([.text("Obligations under this policy:")]))
                b.append(.list(d.obligations.map { [.text($0)] }))
            }
        } else {
            b.append(.paragraph([.text("No deployment policy: the licence is not checked.")]))
        }
        return b
    }
}

// MARK: - Renderers

/// Markdown (CommonMark with GitHub tables). Text from the store, keys or the policy file is
/// backslash-escaped so it can never become markup or raw HTML in a Markdown viewer.
public enum ReportMarkdown {
    public static func render(_ blocks: [ReportBlock]) -> String {
        var s = ""
        for block in blocks {
            switch block {
            case let .heading(level, text):
                s += String(repeating: "#", count: max(1, min(6, level))) + " " + escape(text) + "\n\n"
            case let .paragraph(line):
                s += inline(line) + "\n\n"
            case let .list(items):
                for i in items { s += "- " + inline(i) + "\n" }
                s += "\n"
            case let .facts(rows):
                for (k, v) in rows { s += "- **" + escape(k) + ":** " + inline(v) + "\n" }
                s += "\n"
            case let .table(header, rows):
                s += "| " + header.map(escape).joined(separator: " | ") + " |\n"
                s += "|" + String(repeating: " --- |", count: header.count) + "\n"
                for r in rows { s += "| " + r.map(inline).joined(separator: " | ") + " |\n" }
                s += "\n"
            case let .preformatted(text):
                // A fence longer than any run of backticks inside keeps the text literal.
                var longest = 0, run = 0
                for c in text { if c == "`" { run += 1; longest = max(longest, run) } else { run = 0 } }
                let fence = String(repeating: "`", count: max(3, longest + 1))
                s += fence + "json\n" + text + (text.hasSuffix("\n") ? "" : "\n") + fence + "\n\n"
            }
        }
        return s
    }

    static func inline(_ line: ReportLine) -> String {
        line.map { span -> String in
            switch span {
            case let .text(t): return escape(t)
            case let .strong(t): return "**" + escape(t) + "**"
            case let .code(t):
                // Code spans cannot escape backticks: fall back to escaped text for those.
                if t.contains("`") || t.contains("\n") { return escape(t) }
                return "`" + t.replacingOccurrences(of: "|", with: "\\|") + "`"
            }
        }.joined()
    }

    /// Backslash-escapes ASCII punctuation that is markup in CommonMark (including `<` and `&`,
    /// so no raw HTML or entity reaches a viewer); newlines become spaces (table cells, items).
    static func escape(_ t: String) -> String {
        var out = ""
        out.reserveCapacity(t.count)
        for c in t {
            switch c {
            case "\\", "`", "*", "_", "[", "]", "<", ">", "|", "&", "#", "!", "{", "}":
                out.append("\\"); out.append(c)
            case "\n", "\r": out.append(" ")
            default: out.append(c)
            }
        }
        return out
    }
}

/// Self-contained HTML: inline CSS, no scripts, no external resources (a Content-Security-Policy
/// forbids them), every piece of text entity-escaped.
public enum ReportHTML {
    static let css = """
    body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1d2327;line-height:1.45}
    h1{border-bottom:2px solid #1d2327;padding-bottom:.3rem}h2{margin-top:2.2rem;border-bottom:1px solid #c3c4c7;padding-bottom:.2rem}
    table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}th,td{border:1px solid #c3c4c7;padding:.3rem .5rem;text-align:left;vertical-align:top}
    th{background:#f0f0f1}dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
    code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.88rem}code{word-break:break-all}
    pre{background:#f6f7f7;border:1px solid #dcdcde;padding:.8rem;overflow-x:auto}
    @media print{body{margin:0;max-width:none}}
    """

    public static func render(_ blocks: [ReportBlock], title: String = "Steward compliance report") -> String {
        var s = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        <style>
        \(css)
        </style>
        </head>
        <body>

        """
        for block in blocks {
            switch block {
            case let .heading(level, text):
                let l = max(1, min(6, level))
                s += "<h\(l)>\(escape(text))</h\(l)>\n"
            case let .paragraph(line):
                s += "<p>\(inline(line))</p>\n"
            case let .list(items):
                s += "<ul>\n" + items.map { "<li>\(inline($0))</li>\n" }.joined() + "</ul>\n"
            case let .facts(rows):
                s += "<dl>\n" + rows.map { "<dt>\(escape($0.0))</dt><dd>\(inline($0.1))</dd>\n" }.joined() + "</dl>\n"
            case let .table(header, rows):
                s += "<table>\n<thead><tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
                for r in rows { s += "<tr>" + r.map { "<td>\(inline($0))</td>" }.joined() + "</tr>\n" }
                s += "</tbody>\n</table>\n"
            case let .preformatted(text):
                s += "<pre>\(escape(text))</pre>\n"
            }
        }
        return s + "</body>\n</html>\n"
    }

    static func inline(_ line: ReportLine) -> String {
        line.map { span -> String in
            switch span {
            case let .text(t): return escape(t)
            case let .strong(t): return "<strong>\(escape(t))</strong>"
            case let .code(t): return "<code>\(escape(t))</code>"
            }
        }.joined()
    }

    /// The five characters that matter in element content and attribute values.
    public static func escape(_ t: String) -> String {
        var out = ""
        out.reserveCapacity(t.utf8.count)
        for c in t.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

extension ComplianceReport {
    public var markdown: String { ReportMarkdown.render(document) }
    public var html: String { ReportHTML.render(document) }

    /// Writes DIR/compliance-report.md and DIR/compliance-report.html (0600; DIR created 0700
    /// when missing). Returns the two paths.
    @discardableResult
    public func write(to dir: String) throws -> (markdown: String, html: String) {
        try StewardPaths.makePrivateDirectory(dir)
        let md = dir + "/compliance-report.md", h = dir + "/compliance-report.html"
        try StewardPaths.writePrivateFile(Data(markdown.utf8), to: md)
        try StewardPaths.writePrivateFile(Data(html.utf8), to: h)
        return (md, h)
    }
}
