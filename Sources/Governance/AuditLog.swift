import CCrypto
import Foundation

// The audit log: one record per request and per admin action, append-only, chained by SHA-256
// so that an edited, deleted, inserted or reordered record is found by `verify`. Retention
// deletes a prefix of the chain and leaves an Ed25519-signed checkpoint (seq and hash of the
// last pruned record) that later verification starts from.

/// What the log keeps of prompts and completions (policy `audit.prompts`).
public enum PromptLogging: String, Sendable, CaseIterable, Codable {
    /// Nothing (default).
    case none
    /// SHA-256 of the text: proves what was sent without keeping it.
    case hash
    /// The text after an injected redactor (moderation's PII redactor) has run.
    case redacted
    /// The text as it was.
    case full
}

/// The policy file's "audit" section: `{"prompts": "none|hash|redacted|full",
/// "retention_days": 90, "durable": false, "enabled": true}`.
public struct AuditPolicy: Sendable, Equatable {
    public var prompts: PromptLogging = .none
    /// Records older than this many days are pruned (with a signed checkpoint); nil keeps all.
    public var retentionDays: Int?
    /// fsync every commit (SQLite synchronous=FULL): survives power loss, not only a killed process.
    public var durable = false
    /// false switches the audit log off (like `steward serve --no-audit`).
    public var enabled = true

    public init(prompts: PromptLogging = .none, retentionDays: Int? = nil, durable: Bool = false, enabled: Bool = true) {
        self.prompts = prompts; self.retentionDays = retentionDays; self.durable = durable; self.enabled = enabled
    }

    static let keys = ["prompts", "retention_days", "durable", "enabled"]

    /// Decodes the "audit" object of a policy file; unknown keys are an error naming the key.
    public init(section: [String: Any]) throws(AuditError) {
        for k in section.keys where !AuditPolicy.keys.contains(k) && k != "$comment" {
            throw .policy("unknown key '\(k)' in the \"audit\" section (known: \(AuditPolicy.keys.joined(separator: ", ")))")
        }
        if let p = section["prompts"] {
            guard let s = p as? String, let mode = PromptLogging(rawValue: s) else {
                throw .policy("\"audit.prompts\" must be one of none, hash, redacted, full (got \(p))")
            }
            prompts = mode
        }
        if let r = section["retention_days"], !(r is NSNull) {
            guard let n = PolicyFile.integer(r), n >= 1 else { throw .policy("\"audit.retention_days\" must be a whole number of days ≥ 1 (got \(r))") }
            retentionDays = n
        }
        if let d = section["durable"] {
            guard let b = PolicyFile.bool(d) else { throw .policy("\"audit.durable\" must be true or false (got \(d))") }
            durable = b
        }
        if let e = section["enabled"] {
            guard let b = PolicyFile.bool(e) else { throw .policy("\"audit.enabled\" must be true or false (got \(e))") }
            enabled = b
        }
    }

    /// The "audit" section of the policy file at `path` (defaults when the file has none).
    public static func load(policyFile path: String) throws(AuditError) -> AuditPolicy {
        guard let section = try PolicyFile.section("audit", in: path) else { return AuditPolicy() }
        return try AuditPolicy(section: section)
    }
}

/// Reading one top-level section of the deployment policy file (other sections are ignored).
public enum PolicyFile {
    /// The default policy file: `$STEWARD_HOME/policy.json`.
    public static var defaultPath: String { StewardPaths.defaultPolicyFile }

    public static func section(_ name: String, in path: String) throws(AuditError) -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .policy("cannot read the policy file \(path)")
        }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .policy("the policy file \(path) is not a JSON object")
        }
        guard let s = root[name] else { return nil }
        guard let obj = s as? [String: Any] else { throw .policy("the \"\(name)\" section of \(path) must be a JSON object") }
        return obj
    }

    /// JSONSerialization gives true/false as NSNumbers of ObjC type "c" (char).
    static func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    static func integer(_ v: Any) -> Int? {
        guard let n = v as? NSNumber, !isBoolean(n) else { return nil }
        let d = n.doubleValue
        guard d.rounded() == d, abs(d) < 1e15 else { return nil }
        return Int(d)
    }

    static func number(_ v: Any) -> Double? {
        guard let n = v as? NSNumber, !isBoolean(n), n.doubleValue.isFinite else { return nil }
        return n.doubleValue
    }

    static func bool(_ v: Any) -> Bool? {
        guard let n = v as? NSNumber, isBoolean(n) else { return nil }
        return n.boolValue
    }
}

public enum AuditError: Error, CustomStringConvertible, Equatable {
    case policy(String)
    case redactorMissing
    case storage(String)
    case signing(String)
    case invalidDate(String)

    public var description: String {
        switch self {
        case let .policy(m): return "audit policy: \(m)"
        case .redactorMissing:
            return "audit policy asks for prompts \"redacted\" but no redactor is available; use \"hash\" or \"none\" (raw text is never logged in its place)"
        case let .storage(m): return "audit log: \(m)"
        case let .signing(m): return "audit checkpoint signing: \(m)"
        case let .invalidDate(s): return "'\(s)' is not a date; use YYYY-MM-DD or an ISO 8601 time such as 2025-01-31T12:00:00Z"
        }
    }
}

/// What the server knows about one request when it has been answered.
public struct AuditRequestInfo: Sendable {
    public var requestID: String
    public var keyID: String?
    public var route: String
    public var method: String
    public var model: String?
    public var adapter: String?
    public var status: Int
    public var tokensIn = 0
    public var tokensOut = 0
    public var latencySeconds: Double = 0
    public var moderation: [String] = []
    public var overrides: [String] = []
    /// The prompt and completion text, when captured (logged per the policy's `prompts`).
    public var prompt: String?
    public var completion: String?
    /// How a stream ended when it did not end normally ("cancelled", an error code).
    public var error: String?

    public init(requestID: String, keyID: String? = nil, route: String, method: String, model: String? = nil, adapter: String? = nil,
                status: Int, tokensIn: Int = 0, tokensOut: Int = 0, latencySeconds: Double = 0, moderation: [String] = [],
                overrides: [String] = [], prompt: String? = nil, completion: String? = nil, error: String? = nil) {
        self.requestID = requestID; self.keyID = keyID; self.route = route; self.method = method; self.model = model
        self.adapter = adapter; self.status = status; self.tokensIn = tokensIn; self.tokensOut = tokensOut
        self.latencySeconds = latencySeconds; self.moderation = moderation; self.overrides = overrides
        self.prompt = prompt; self.completion = completion; self.error = error
    }
}

/// One stored record, as read back.
public struct AuditRecord: Sendable, Equatable {
    public var seq: Int64
    /// UTC ISO 8601 with milliseconds, e.g. 2025-01-31T12:00:00.123Z.
    public var time: String
    /// "request" or "admin".
    public var kind: String
    public var requestID: String?
    public var keyID: String?
    public var route: String?
    public var method: String?
    public var model: String?
    public var adapter: String?
    public var status: Int?
    public var tokensIn: Int
    public var tokensOut: Int
    public var latencyMicroseconds: Int64
    public var moderation: [String]
    public var overrides: [String]
    public var promptMode: String
    public var prompt: String?
    public var completion: String?
    public var action: String?
    public var target: String?
    public var details: [String: String]
    public var error: String?
    public var prevHash: String
    public var hash: String

    public var latencyMs: Double { Double(latencyMicroseconds) / 1000 }

    /// The record as one JSON object (export, tail --format json): every field plus seq and hashes.
    public var jsonObject: [String: Any] {
        var o: [String: Any] = ["seq": seq, "time": time, "kind": kind, "tokens_in": tokensIn, "tokens_out": tokensOut,
                                "latency_ms": latencyMs, "moderation": moderation, "overrides": overrides,
                                "prompt_mode": promptMode, "prev_hash": prevHash, "hash": hash]
        func put(_ k: String, _ v: Any?) { o[k] = v ?? NSNull() }
        put("request_id", requestID); put("key_id", keyID); put("route", route); put("method", method)
        put("model", model); put("adapter", adapter); put("status", status); put("prompt", prompt)
        put("completion", completion); put("action", action); put("target", target); put("error", error)
        o["details"] = details
        return o
    }
}

/// Columns of `audit_log`, in the order the canonical JSON and the export use.
enum AuditColumns {
    static let all = ["seq", "time", "kind", "request_id", "key_id", "route", "method", "model", "adapter", "status",
                      "tokens_in", "tokens_out", "latency_us", "moderation", "overrides", "prompt_mode", "prompt", "completion",
                      "action", "target", "details", "error", "prev_hash", "hash"]
}

/// A problem `verify` found, located by seq.
public struct AuditProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable { case edited, deleted, inserted, reordered, checkpoint }
    public var kind: Kind
    /// The seq of the record concerned (the first missing one for deletions); nil for checkpoints.
    public var seq: Int64?
    public var message: String
    public var description: String { message }
}

public struct AuditVerification: Sendable {
    public var recordsChecked: Int
    public var firstSeq: Int64?
    public var lastSeq: Int64?
    /// The signed checkpoint verification started from (after pruning), if any.
    public var checkpointSeq: Int64?
    public var checkpointsChecked: Int
    public var problems: [AuditProblem]
    public var ok: Bool { problems.isEmpty }
}

public struct AuditCheckpoint: Sendable, Equatable {
    public var id: Int64
    public var time: String
    /// Seq and hash of the last pruned record: the next record's prev_hash.
    public var seq: Int64
    public var hash: String
    public var pruned: Int64
    public var publicKey: String
    public var signature: String

    /// The exact bytes signed.
    public static func message(seq: Int64, hash: String, pruned: Int64, time: String) -> Data {
        Data("steward-audit-checkpoint v1\nseq=\(seq)\nhash=\(hash)\npruned=\(pruned)\ntime=\(time)\n".utf8)
    }
}

/// What other stores and commands call to put an admin action in the audit log (satisfied by
/// `AuditLog`; tests can pass a recorder of their own).
public protocol AdminActionRecorder: AnyObject, Sendable {
    @discardableResult
    func recordAdmin(action: String, keyID: String?, target: String?, details: [String: String]) throws(AuditError) -> AuditRecord
}

/// The audit log over a `SQLStorage` (component "audit"). Thread-safe: appends are serialized
/// by the storage's transaction, and the chain head is read inside it, so several processes
/// (the server and admin commands) can append to one database.
public final class AuditLog: AdminActionRecorder, @unchecked Sendable {
    public let storage: SQLStorage
    public let policy: AuditPolicy
    /// Usage accounting updated in the same transaction as each request record.
    public let usage: UsageLedger?
    private let redactor: (@Sendable (String) -> String)?

    public static let genesisHash = String(repeating: "0", count: 64)

    static let migrations: [String] = [
        """
        CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            time TEXT NOT NULL, kind TEXT NOT NULL,
            request_id TEXT, key_id TEXT, route TEXT, method TEXT, model TEXT, adapter TEXT, status INTEGER,
            tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0, latency_us INTEGER NOT NULL DEFAULT 0,
            moderation TEXT NOT NULL DEFAULT '[]', overrides TEXT NOT NULL DEFAULT '[]',
            prompt_mode TEXT NOT NULL, prompt TEXT, completion TEXT,
            action TEXT, target TEXT, details TEXT NOT NULL DEFAULT '{}', error TEXT,
            prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
        CREATE INDEX audit_log_time ON audit_log(time);
        CREATE INDEX audit_log_request ON audit_log(request_id);
        CREATE TABLE audit_checkpoints (
            id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,
            pruned INTEGER NOT NULL, public_key TEXT NOT NULL, signature TEXT NOT NULL);
        CREATE TABLE audit_prune_gate (open INTEGER NOT NULL);
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: records cannot be changed'); END;
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log WHEN (SELECT COUNT(*) FROM audit_prune_gate) = 0
            BEGIN SELECT RAISE(ABORT, 'audit records are removed only by steward audit prune'); END;
        CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
            BEGIN SELECT RAISE(ABORT, 'audit checkpoints cannot be changed'); END;
        """,
    ]

    /// Opens the log. `redactor` is required when the policy asks for redacted prompts: without
    /// one this refuses rather than log raw text.
    public init(storage: SQLStorage, policy: AuditPolicy = AuditPolicy(), redactor: (@Sendable (String) -> String)? = nil,
                usage: UsageLedger? = nil) throws(AuditError) {
        if policy.prompts == .redacted && redactor == nil { throw .redactorMissing }
        self.storage = storage
        self.policy = policy
        self.redactor = redactor
        self.usage = usage
        do {
            try storage.migrate(component: "audit", steps: AuditLog.migrations)
            if let s = storage as? SQLiteStorage { try s.setDurable(policy.durable) }
        } catch { throw .storage(error.description) }
    }

    // MARK: Checkpointing the WAL off the request path

    private var checkpointer: Thread?
    private let checkpointStop = NSCondition()
    private var checkpointStopping = false

    /// Moves SQLite's WAL checkpoints (which fsync) from the committing request threads to a
    /// background thread with its own connection: with autocheckpoint on, every ~50th append
    /// paid a checkpoint's fsyncs (10–30 ms here). A PASSIVE checkpoint never blocks the writer.
    /// For long-running processes (the server); a no-op for in-memory databases.
    public func startBackgroundCheckpoints(every interval: TimeInterval = 1) throws(AuditError) {
        guard let s = storage as? SQLiteStorage, s.path != ":memory:", checkpointer == nil else { return }
        let other: SQLiteStorage
        do {
            other = try SQLiteStorage(path: s.path)
            _ = try s.query("PRAGMA wal_autocheckpoint=0")
        } catch { throw .storage(error.description) }
        let t = Thread { [checkpointStop] in
            while true {
                checkpointStop.lock()
                if !self.checkpointStopping { _ = checkpointStop.wait(until: Date().addingTimeInterval(interval)) }
                let stopping = self.checkpointStopping
                checkpointStop.unlock()
                _ = try? other.query("PRAGMA wal_checkpoint(PASSIVE)")
                if stopping { return }
            }
        }
        t.name = "audit-wal-checkpoint"
        checkpointer = t
        t.start()
    }

    /// Stops the background checkpoints (after a last one) and restores SQLite's automatic ones.
    public func stopBackgroundCheckpoints() {
        guard checkpointer != nil else { return }
        checkpointStop.lock(); checkpointStopping = true; checkpointStop.broadcast(); checkpointStop.unlock()
        _ = try? storage.query("PRAGMA wal_autocheckpoint=1000")
        checkpointer = nil
    }

    // MARK: Appending

    /// Appends the record of one answered request (and its usage); returns the stored record.
    @discardableResult
    public func recordRequest(_ r: AuditRequestInfo) throws(AuditError) -> AuditRecord {
        var rec = AuditRecord(seq: 0, time: "", kind: "request", requestID: r.requestID, keyID: r.keyID, route: r.route,
                              method: r.method, model: r.model, adapter: r.adapter, status: r.status,
                              tokensIn: r.tokensIn, tokensOut: r.tokensOut,
                              latencyMicroseconds: Int64((max(0, r.latencySeconds) * 1e6).rounded()),
                              moderation: r.moderation, overrides: r.overrides, promptMode: policy.prompts.rawValue,
                              prompt: logged(r.prompt), completion: logged(r.completion), action: nil, target: nil,
                              details: [:], error: r.error, prevHash: "", hash: "")
        let failed = r.status >= 400 || r.error != nil
        return try append(&rec) { [usage] day in
            // Usage counts calls that named a model (health checks and scans are not usage).
            if let usage, let model = r.model {
                try usage.add(day: day, keyID: r.keyID, model: model, tokensIn: r.tokensIn, tokensOut: r.tokensOut, error: failed)
            }
        }
    }

    /// Appends the record of an admin action (a key created, a model removed, the log pruned).
    @discardableResult
    public func recordAdmin(action: String, keyID: String?, target: String?, details: [String: String] = [:]) throws(AuditError) -> AuditRecord {
        var rec = AuditRecord(seq: 0, time: "", kind: "admin", requestID: nil, keyID: keyID, route: nil, method: nil, model: nil,
                              adapter: nil, status: nil, tokensIn: 0, tokensOut: 0, latencyMicroseconds: 0, moderation: [],
                              overrides: [], promptMode: policy.prompts.rawValue, prompt: nil, completion: nil,
                              action: action, target: target, details: details, error: nil, prevHash: "", hash: "")
        return try append(&rec) { _ in }
    }

    /// Appends the record of one retrieval (kind "retrieval"): which collections were searched
    /// and the document and chunk ids returned, in `details`; the query as the prompt policy
    /// allows (not at all by default). `requestID` ties it to the request record of the same call.
    @discardableResult
    public func recordRetrieval(requestID: String?, keyID: String?, route: String?, query: String,
                                details: [String: String]) throws(AuditError) -> AuditRecord {
        var rec = AuditRecord(seq: 0, time: "", kind: "retrieval", requestID: requestID, keyID: keyID, route: route, method: nil,
                              model: nil, adapter: nil, status: nil, tokensIn: 0, tokensOut: 0, latencyMicroseconds: 0, moderation: [],
                              overrides: [], promptMode: policy.prompts.rawValue, prompt: logged(query), completion: nil,
                              action: "rag.retrieve", target: details["collections"], details: details, error: nil, prevHash: "", hash: "")
        return try append(&rec) { _ in }
    }

    private func logged(_ text: String?) -> String? {
        guard let text else { return nil }
        switch policy.prompts {
        case .none: return nil
        case .hash: return AuditLog.sha256Hex(text)
        case .redacted: return redactor.map { $0(text) }
        case .full: return text
        }
    }

    private func append(_ rec: inout AuditRecord, also: (String) throws -> Void) throws(AuditError) -> AuditRecord {
        do {
            let stored: AuditRecord = try storage.transaction {
                var r = rec
                let head = try chainHead()
                r.seq = head.seq + 1
                r.prevHash = head.hash
                r.time = AuditTime.now()
                r.hash = AuditLog.chainHash(prev: r.prevHash, record: r)
                try storage.execute("""
                    INSERT INTO audit_log (seq, time, kind, request_id, key_id, route, method, model, adapter, status,
                        tokens_in, tokens_out, latency_us, moderation, overrides, prompt_mode, prompt, completion,
                        action, target, details, error, prev_hash, hash)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, AuditLog.values(r))
                try also(String(r.time.prefix(10)))
                return r
            }
            return stored
        } catch let e as StorageError {
            throw .storage(e.description)
        } catch let e as AuditError {
            throw e
        } catch {
            throw .storage("\(error)")
        }
    }

    /// The last record's seq and hash: the newest row, or the newest checkpoint, or genesis.
    /// seq continues from SQLite's AUTOINCREMENT counter so a deleted last record's seq is never reused.
    private func chainHead() throws(StorageError) -> (seq: Int64, hash: String) {
        let counter = try storage.query("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").first?["seq"]?.int ?? 0
        if let last = try storage.query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").first,
           let s = last["seq"]?.int, let h = last["hash"]?.string {
            return (max(s, counter), h)
        }
        if let cp = try storage.query("SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1").first,
           let s = cp["seq"]?.int, let h = cp["hash"]?.string {
            return (max(s, counter), h)
        }
        return (counter, AuditLog.genesisHash)
    }

    static func values(_ r: AuditRecord) -> [SQLValue] {
        func t(_ s: String?) -> SQLValue { s.map { .text($0) } ?? .null }
        return [.integer(r.seq), .text(r.time), .text(r.kind), t(r.requestID), t(r.keyID), t(r.route), t(r.method), t(r.model),
                t(r.adapter), r.status.map { .integer(Int64($0)) } ?? .null, .integer(Int64(r.tokensIn)), .integer(Int64(r.tokensOut)),
                .integer(r.latencyMicroseconds), .text(CanonicalJSON.stringArray(r.moderation)), .text(CanonicalJSON.stringArray(r.overrides)),
                .text(r.promptMode), t(r.prompt), t(r.completion), t(r.action), t(r.target), .text(CanonicalJSON.stringObject(r.details)),
                t(r.error), .text(r.prevHash), .text(r.hash)]
    }

    // MARK: Hashing

    /// The canonical JSON of a record: its fields except seq, prev_hash and hash, keys sorted,
    /// no whitespace, strings escaped minimally (see `CanonicalJSON`, shared with model manifests). seq is left out so the
    /// chain, not the numbering, says what follows what; verify checks the numbering separately.
    public static func canonicalJSON(_ r: AuditRecord) -> String {
        // Keys in sorted order, written directly (this runs on every request).
        canonicalJSON(sorted: [
            ("action", CanonicalJSON.text(r.action)), ("adapter", CanonicalJSON.text(r.adapter)),
            ("completion", CanonicalJSON.text(r.completion)), ("details", CanonicalJSON.stringObject(r.details)),
            ("error", CanonicalJSON.text(r.error)), ("key_id", CanonicalJSON.text(r.keyID)),
            ("kind", CanonicalJSON.text(r.kind)), ("latency_us", String(r.latencyMicroseconds)),
            ("method", CanonicalJSON.text(r.method)), ("model", CanonicalJSON.text(r.model)),
            ("moderation", CanonicalJSON.stringArray(r.moderation)), ("overrides", CanonicalJSON.stringArray(r.overrides)),
            ("prompt", CanonicalJSON.text(r.prompt)), ("prompt_mode", CanonicalJSON.text(r.promptMode)),
            ("request_id", CanonicalJSON.text(r.requestID)), ("route", CanonicalJSON.text(r.route)),
            ("status", r.status.map(String.init) ?? "null"), ("time", CanonicalJSON.text(r.time)),
            ("tokens_in", String(r.tokensIn)), ("tokens_out", String(r.tokensOut)),
        ])
    }

    static func canonicalJSON(sorted fields: [(String, String)]) -> String {
        var out = "{"
        out.reserveCapacity(512)
        for (i, (k, v)) in fields.enumerated() {
            if i > 0 { out += "," }
            out += "\""; out += k; out += "\":"; out += v
        }
        return out + "}"
    }

    static func canonicalJSON(fields: [String: String]) -> String {
        canonicalJSON(sorted: fields.keys.sorted().map { ($0, fields[$0]!) })
    }

    /// hash = SHA-256(prev_hash || canonical JSON), lowercase hex; prev_hash as its 64 hex characters.
    public static func chainHash(prev: String, record: AuditRecord) -> String {
        sha256Hex(prev + canonicalJSON(record))
    }

    /// SHA-256 as lowercase hex (the same as `Secrets.sha256Hex`, without a formatter per byte).
    static func sha256Hex(_ text: String) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var s = text
        s.withUTF8 { buf in _ = SHA256(buf.baseAddress, buf.count, &digest) }
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: 64)
        for (i, b) in digest.enumerated() {
            out[2 * i] = hex[Int(b >> 4)]
            out[2 * i + 1] = hex[Int(b & 15)]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The canonical JSON as stored: the JSON-valued columns (moderation, overrides, details)
    /// go in verbatim, so any edit of their text changes the hash.
    static func canonicalJSON(row: SQLRow) -> String {
        func s(_ k: String) -> String { row[k]?.string.map { CanonicalJSON.text($0) } ?? "null" }
        func i(_ k: String) -> String { row[k]?.int.map { String($0) } ?? (row[k]?.double.map { String($0) } ?? (row[k]?.string.map { CanonicalJSON.text($0) } ?? "null")) }
        func raw(_ k: String) -> String { row[k]?.string ?? "null" }
        return canonicalJSON(fields: [
            "action": s("action"), "adapter": s("adapter"), "completion": s("completion"), "details": raw("details"),
            "error": s("error"), "key_id": s("key_id"), "kind": s("kind"), "latency_us": i("latency_us"),
            "method": s("method"), "model": s("model"), "moderation": raw("moderation"), "overrides": raw("overrides"),
            "prompt": s("prompt"), "prompt_mode": s("prompt_mode"), "request_id": s("request_id"), "route": s("route"),
            "status": i("status"), "time": s("time"), "tokens_in": i("tokens_in"), "tokens_out": i("tokens_out"),
        ])
    }

    // MARK: Reading

    static func record(_ row: SQLRow) -> AuditRecord {
        func arr(_ k: String) -> [String] {
            guard let d = row[k]?.string?.data(using: .utf8), let a = (try? JSONSerialization.jsonObject(with: d)) as? [String] else { return [] }
            return a
        }
        var details: [String: String] = [:]
        if let d = row["details"]?.string?.data(using: .utf8), let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: String] {
            details = o
        }
        return AuditRecord(seq: row["seq"]?.int ?? 0, time: row["time"]?.string ?? "", kind: row["kind"]?.string ?? "",
                           requestID: row["request_id"]?.string, keyID: row["key_id"]?.string, route: row["route"]?.string,
                           method: row["method"]?.string, model: row["model"]?.string, adapter: row["adapter"]?.string,
                           status: row["status"]?.int.map { Int($0) }, tokensIn: Int(row["tokens_in"]?.int ?? 0),
                           tokensOut: Int(row["tokens_out"]?.int ?? 0), latencyMicroseconds: row["latency_us"]?.int ?? 0,
                           moderation: arr("moderation"), overrides: arr("overrides"), promptMode: row["prompt_mode"]?.string ?? "",
                           prompt: row["prompt"]?.string, completion: row["completion"]?.string, action: row["action"]?.string,
                           target: row["target"]?.string, details: details, error: row["error"]?.string,
                           prevHash: row["prev_hash"]?.string ?? "", hash: row["hash"]?.string ?? "")
    }

    /// The newest `count` records, oldest first.
    public func tail(_ count: Int) throws(AuditError) -> [AuditRecord] {
        do {
            let rows = try storage.query("SELECT * FROM audit_log ORDER BY seq DESC LIMIT ?", .integer(Int64(max(0, count))))
            return rows.reversed().map(AuditLog.record)
        } catch { throw .storage(error.description) }
    }

    /// Records with seq > `seq`, oldest first (for `tail --follow`).
    public func records(after seq: Int64, limit: Int = 1000) throws(AuditError) -> [AuditRecord] {
        do {
            return try storage.query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", .integer(seq), .integer(Int64(limit)))
                .map(AuditLog.record)
        } catch { throw .storage(error.description) }
    }

    /// Records with since ≤ time < until (either bound optional), oldest first.
    public func records(since: Date? = nil, until: Date? = nil) throws(AuditError) -> [AuditRecord] {
        var sql = "SELECT * FROM audit_log WHERE 1=1"
        var params: [SQLValue] = []
        if let since { sql += " AND time >= ?"; params.append(.text(AuditTime.format(since))) }
        if let until { sql += " AND time < ?"; params.append(.text(AuditTime.format(until))) }
        do { return try storage.query(sql + " ORDER BY seq", params).map(AuditLog.record) } catch { throw .storage(error.description) }
    }

    public func checkpoints() throws(AuditError) -> [AuditCheckpoint] {
        do {
            return try storage.query("SELECT * FROM audit_checkpoints ORDER BY id").map {
                AuditCheckpoint(id: $0["id"]?.int ?? 0, time: $0["time"]?.string ?? "", seq: $0["seq"]?.int ?? 0,
                                hash: $0["hash"]?.string ?? "", pruned: $0["pruned"]?.int ?? 0,
                                publicKey: $0["public_key"]?.string ?? "", signature: $0["signature"]?.string ?? "")
            }
        } catch { throw .storage(error.description) }
    }

    // MARK: Export

    public enum ExportFormat: String, Sendable, CaseIterable { case jsonl, csv }

    /// The records as JSON lines (one object per record, keys sorted) or CSV (a header row, RFC 4180 quoting).
    public static func export(_ records: [AuditRecord], format: ExportFormat) -> String {
        switch format {
        case .jsonl:
            return records.map { r -> String in
                let d = (try? JSONSerialization.data(withJSONObject: r.jsonObject, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
                return String(decoding: d, as: UTF8.self) + "\n"
            }.joined()
        case .csv:
            let header = ["seq", "time", "kind", "request_id", "key_id", "route", "method", "model", "adapter", "status",
                          "tokens_in", "tokens_out", "latency_ms", "moderation", "overrides", "prompt_mode", "prompt", "completion",
                          "action", "target", "details", "error", "prev_hash", "hash"]
            var out = header.joined(separator: ",") + "\r\n"
            for r in records {
                let fields: [String] = [String(r.seq), r.time, r.kind, r.requestID ?? "", r.keyID ?? "", r.route ?? "", r.method ?? "",
                                        r.model ?? "", r.adapter ?? "", r.status.map(String.init) ?? "", String(r.tokensIn),
                                        String(r.tokensOut), String(format: "%.3f", r.latencyMs), r.moderation.joined(separator: ";"),
                                        r.overrides.joined(separator: ";"), r.promptMode, r.prompt ?? "", r.completion ?? "",
                                        r.action ?? "", r.target ?? "", r.details.isEmpty ? "" : CanonicalJSON.stringObject(r.details),
                                        r.error ?? "", r.prevHash, r.hash]
                out += fields.map(csvField).joined(separator: ",") + "\r\n"
            }
            return out
        }
    }

    static func csvField(_ s: String) -> String {
        // Quoted when needed; a leading =+-@ is prefixed with ' so spreadsheets don't run it as a formula.
        var v = s
        if let f = v.first, "=+-@".contains(f), Double(v) == nil { v = "'" + v }
        if v.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            return "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return v
    }

    // MARK: Retention

    /// The default checkpoint signing key file: `$STEWARD_HOME/audit-signing.pem`.
    public static var defaultSigningKeyPath: String { StewardPaths.home + "/audit-signing.pem" }

    /// Loads the checkpoint signing key at `path`, creating it (mode 0600) when missing.
    public static func signingKey(path: String = AuditLog.defaultSigningKeyPath, create: Bool = true) throws(AuditError) -> Ed25519Key {
        if FileManager.default.fileExists(atPath: path) {
            do { return try Ed25519Key.load(path: path) } catch { throw .signing(error.description) }
        }
        guard create else { throw .signing("no signing key at \(path)") }
        do {
            let key = try Ed25519Key.generate()
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try StewardPaths.makePrivateDirectory(dir) }
            try StewardPaths.writePrivateFile(try key.privatePEM(), to: path)
            return key
        } catch let e as SigningError {
            throw .signing(e.description)
        } catch {
            throw .signing("cannot write \(path): \(error)")
        }
    }

    public struct PruneResult: Sendable, Equatable {
        public var pruned: Int64
        /// The checkpoint written (nil when nothing was old enough).
        public var checkpoint: AuditCheckpoint?
    }

    /// Deletes every record older than `before` (a prefix of the chain) and writes a checkpoint
    /// signed by `key` holding the seq and hash of the last one deleted, then records the prune
    /// itself as an admin action.
    @discardableResult
    public func prune(before: Date, key: Ed25519Key, keyID: String? = nil) throws(AuditError) -> PruneResult {
        guard key.hasPrivateKey else { throw .signing("pruning signs a checkpoint: give the private key") }
        let cutoff = AuditTime.format(before)
        let result: PruneResult
        do {
            result = try storage.transaction {
                guard let last = try storage.query("SELECT seq, hash FROM audit_log WHERE seq <= (SELECT MAX(seq) FROM audit_log WHERE time < ?) ORDER BY seq DESC LIMIT 1", .text(cutoff)).first,
                      let seq = last["seq"]?.int, let hash = last["hash"]?.string else {
                    return PruneResult(pruned: 0, checkpoint: nil)
                }
                let count = try storage.query("SELECT COUNT(*) AS n FROM audit_log WHERE seq <= ?", .integer(seq)).first?["n"]?.int ?? 0
                let previous = try storage.query("SELECT COALESCE(SUM(pruned), 0) AS n FROM audit_checkpoints").first?["n"]?.int ?? 0
                let time = AuditTime.now()
                let total = previous + count
                let signature = try key.sign(AuditCheckpoint.message(seq: seq, hash: hash, pruned: total, time: time))
                try storage.execute("INSERT INTO audit_prune_gate (open) VALUES (1)")
                try storage.execute("DELETE FROM audit_log WHERE seq <= ?", .integer(seq))
                try storage.execute("DELETE FROM audit_prune_gate")
                try storage.execute("INSERT INTO audit_checkpoints (time, seq, hash, pruned, public_key, signature) VALUES (?, ?, ?, ?, ?, ?)",
                                    .text(time), .integer(seq), .text(hash), .integer(total), .text(key.publicKeyHex),
                                    .text(signature.map { String(format: "%02x", $0) }.joined()))
                let cp = AuditCheckpoint(id: 0, time: time, seq: seq, hash: hash, pruned: total, publicKey: key.publicKeyHex,
                                         signature: signature.map { String(format: "%02x", $0) }.joined())
                return PruneResult(pruned: count, checkpoint: cp)
            }
        } catch let e as StorageError {
            throw .storage(e.description)
        } catch let e as SigningError {
            throw .signing(e.description)
        } catch {
            throw .storage("\(error)")
        }
        if let cp = result.checkpoint {
            try recordAdmin(action: "audit.prune", keyID: keyID, target: "audit_log",
                            details: ["before": cutoff, "pruned": String(result.pruned), "checkpoint_seq": String(cp.seq)])
        }
        return result
    }

    /// Applies the policy's retention_days (nothing when unset).
    @discardableResult
    public func applyRetention(key: Ed25519Key, now: Date = Date()) throws(AuditError) -> PruneResult {
        guard let days = policy.retentionDays else { return PruneResult(pruned: 0, checkpoint: nil) }
        return try prune(before: now.addingTimeInterval(-Double(days) * 86400), key: key)
    }

    // MARK: Verification

    /// Walks the chain and reports every edited, deleted, inserted or reordered record, and any
    /// checkpoint not signed by `trustedKey` (the audit signing key, public part is enough).
    public func verify(trustedKey: Ed25519Key?) throws(AuditError) -> AuditVerification {
        let rows: [SQLRow]
        let counter: Int64
        do {
            rows = try storage.query("SELECT * FROM audit_log ORDER BY seq")
            counter = try storage.query("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").first?["seq"]?.int ?? 0
        } catch { throw .storage(error.description) }
        var problems: [AuditProblem] = []

        // The anchor: the latest checkpoint whose signature holds (a bad one is reported).
        var anchorSeq: Int64 = 0
        var anchorHash = AuditLog.genesisHash
        var cpSeq: Int64?
        let cps = try checkpoints()
        for cp in cps {
            guard let trustedKey else {
                problems.append(AuditProblem(kind: .checkpoint, seq: cp.seq,
                                             message: "checkpoint \(cp.id) (pruned through seq \(cp.seq)) cannot be checked: no audit signing key (give --key FILE)"))
                // Still start from it, so the chain after it is checked and the pruned records are not reported as deleted.
                if cp.seq >= anchorSeq { anchorSeq = cp.seq; anchorHash = cp.hash; cpSeq = cp.seq }
                continue
            }
            let message = AuditCheckpoint.message(seq: cp.seq, hash: cp.hash, pruned: cp.pruned, time: cp.time)
            if cp.publicKey != trustedKey.publicKeyHex {
                problems.append(AuditProblem(kind: .checkpoint, seq: cp.seq,
                                             message: "checkpoint \(cp.id) (pruned through seq \(cp.seq)) is forged: signed by key \(cp.publicKey.prefix(16))…, not the audit signing key \(trustedKey.publicKeyHex.prefix(16))…"))
                continue
            }
            guard let sig = auditHexData(cp.signature), trustedKey.verify(sig, for: message) else {
                problems.append(AuditProblem(kind: .checkpoint, seq: cp.seq,
                                             message: "checkpoint \(cp.id) (pruned through seq \(cp.seq)) is forged or altered: its signature does not match its contents"))
                continue
            }
            if cp.seq >= anchorSeq { anchorSeq = cp.seq; anchorHash = cp.hash; cpSeq = cp.seq }
        }

        struct Row { let seq: Int64; let prev: String; let hash: String; let contentOK: Bool }
        var arr = rows.map { row -> Row in
            let prev = row["prev_hash"]?.string ?? ""
            let hash = row["hash"]?.string ?? ""
            let ok = AuditLog.sha256Hex(prev + AuditLog.canonicalJSON(row: row)) == hash
            return Row(seq: row["seq"]?.int ?? 0, prev: prev, hash: hash, contentOK: ok)
        }
        // Records a checkpoint says were pruned but are still here came before the anchor.
        arr.removeAll { $0.seq <= anchorSeq && cpSeq != nil }
        let referenced = Set(arr.map(\.prev))
        var p = anchorHash
        var lastSeq = anchorSeq
        var i = 0
        var moves = 0
        func missing(_ from: Int64, _ to: Int64, before: Int64?) {
            let what = from == to ? "seq \(from) is missing" : "seq \(from)…\(to) are missing"
            let where_ = before.map { ": the record at seq \($0) does not follow seq \(from - 1)" } ?? " from the end of the log"
            problems.append(AuditProblem(kind: .deleted, seq: from, message: "\(what) (deleted)\(where_)"))
        }
        while i < arr.count {
            let r = arr[i]
            let next: Row? = i + 1 < arr.count ? arr[i + 1] : nil
            let nothingFollows = !referenced.contains(r.hash)
            if r.prev == p {
                if let next, next.prev == p, nothingFollows {
                    // Two records claim the same predecessor; the next one is the chain's.
                    problems.append(AuditProblem(kind: .inserted, seq: r.seq, message: "seq \(r.seq) was inserted: it is not part of the chain (the next record follows seq \(lastSeq) directly)"))
                    lastSeq = r.seq; i += 1; continue
                }
                if !r.contentOK {
                    problems.append(AuditProblem(kind: .edited, seq: r.seq, message: "seq \(r.seq) was edited: its contents no longer match its hash"))
                } else if r.seq > lastSeq + 1 {
                    missing(lastSeq + 1, r.seq - 1, before: r.seq)
                }
                p = r.hash; lastSeq = max(lastSeq, r.seq); i += 1; continue
            }
            // r does not follow the previous record.
            if moves < arr.count, let j = arr.indices.first(where: { $0 > i && arr[$0].hash == r.prev }) {
                let moved = arr.remove(at: j)
                arr.insert(moved, at: i)
                moves += 1
                problems.append(AuditProblem(kind: .reordered, seq: r.seq,
                                             message: "seq \(r.seq) is out of order: it follows the record stored at seq \(moved.seq), which the chain puts before it"))
                // Continue at the moved record, whose seq is then expected (no gap is reported for the swap).
                lastSeq = moved.seq - 1
                continue
            }
            if let next, next.prev == p, nothingFollows {
                problems.append(AuditProblem(kind: .inserted, seq: r.seq, message: "seq \(r.seq) was inserted: it is not part of the chain (the next record follows seq \(lastSeq) directly)"))
                lastSeq = r.seq; i += 1; continue
            }
            if !r.contentOK {
                problems.append(AuditProblem(kind: .edited, seq: r.seq, message: "seq \(r.seq) was edited: its link to the previous record or its contents no longer match its hash"))
            } else if r.seq > lastSeq + 1 {
                missing(lastSeq + 1, r.seq - 1, before: r.seq)
            } else {
                problems.append(AuditProblem(kind: .deleted, seq: r.seq, message: "the record before seq \(r.seq) is missing (deleted): seq \(r.seq) does not follow seq \(lastSeq)"))
            }
            p = r.hash; lastSeq = max(lastSeq, r.seq); i += 1
        }
        let maxSeq = arr.map(\.seq).max() ?? anchorSeq
        if counter > maxSeq {
            missing(maxSeq + 1, counter, before: nil)
        }
        return AuditVerification(recordsChecked: arr.count, firstSeq: arr.first?.seq, lastSeq: arr.last.map { _ in maxSeq },
                                 checkpointSeq: cpSeq, checkpointsChecked: cps.count, problems: problems)
    }
}

/// Times as UTC ISO 8601 with milliseconds (2025-01-31T12:00:00.123Z): fixed width, so text
/// order is time order.
public enum AuditTime {
    public static func now() -> String { format(Date()) }

    public static func format(_ d: Date) -> String {
        let ms = Int64((d.timeIntervalSince1970 * 1000).rounded(.down))
        var secs = time_t(ms / 1000)
        var tm = tm()
        gmtime_r(&secs, &tm)
        var out = [UInt8]()
        out.reserveCapacity(24)
        func digits(_ v: Int, _ n: Int) {
            var d = [UInt8](repeating: 48, count: n)
            var x = v
            for i in stride(from: n - 1, through: 0, by: -1) { d[i] = UInt8(48 + x % 10); x /= 10 }
            out += d
        }
        digits(Int(tm.tm_year) + 1900, 4); out.append(45); digits(Int(tm.tm_mon) + 1, 2); out.append(45); digits(Int(tm.tm_mday), 2)
        out.append(84); digits(Int(tm.tm_hour), 2); out.append(58); digits(Int(tm.tm_min), 2); out.append(58); digits(Int(tm.tm_sec), 2)
        out.append(46); digits(Int(ms % 1000), 3); out.append(90)
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses YYYY-MM-DD (midnight UTC) or an ISO 8601 time (with or without fractional seconds).
    public static func parse(_ s: String) throws(AuditError) -> Date {
        let t = s.trimmingCharacters(in: .whitespaces)
        if t.count == 10 {
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withFullDate]
            if let d = f.date(from: t) { return d }
        }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: t) { return d }
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: t) { return d }
        throw .invalidDate(s)
    }
}


private func auditHexData(_ hex: String) -> Data? {
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: return nil
        }
    }
    guard hex.utf8.count % 2 == 0 else { return nil }
    var bytes: [UInt8] = []
    var it = hex.utf8.makeIterator()
    while let a = it.next(), let b = it.next() {
        guard let h = nibble(a), let l = nibble(b) else { return nil }
        bytes.append(h << 4 | l)
    }
    return Data(bytes)
}
