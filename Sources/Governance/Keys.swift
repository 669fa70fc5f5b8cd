import CCrypto
import Foundation

/// What an API key may do. Each scope opens a family of routes (see the server's access gate):
/// chat → /v1/chat/completions and /api/chat, completions → /v1/completions and /api/generate,
/// embeddings → /v1/embeddings and /api/embed, rag → retrieval routes, admin → /admin/*.
public enum KeyScope: String, Sendable, CaseIterable, Codable, Comparable {
    case chat, completions, embeddings, rag, admin

    /// Scopes a key gets when none are given: everything a client needs, never admin.
    public static let defaults: [KeyScope] = [.chat, .completions, .embeddings]

    public static func < (a: KeyScope, b: KeyScope) -> Bool {
        (allCases.firstIndex(of: a) ?? 0) < (allCases.firstIndex(of: b) ?? 0)
    }

    /// Parses "chat,completions" (spaces ignored); an unknown name is an error naming it.
    public static func parseList(_ text: String) throws(KeyError) -> [KeyScope] {
        var out: [KeyScope] = []
        for raw in text.split(separator: ",") {
            let name = raw.trimmingCharacters(in: .whitespaces).lowercased()
            if name.isEmpty { continue }
            guard let s = KeyScope(rawValue: name) else {
                throw .invalid("unknown scope '\(name)' (scopes: \(allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if !out.contains(s) { out.append(s) }
        }
        guard !out.isEmpty else { throw .invalid("no scopes given (scopes: \(allCases.map(\.rawValue).joined(separator: ", ")))") }
        return out.sorted()
    }
}

/// The state of a key at a moment.
public enum KeyState: String, Sendable, Codable {
    case active, revoked, expired
}

/// One API key as stored: everything but the secret (only its SHA-256 is kept).
public struct KeyRecord: Sendable, Equatable, Codable {
    /// The public part of the key (`sk-stw-<id>-…`): safe to log and show.
    public var id: String
    public var name: String
    public var scopes: [KeyScope]
    /// Models the key may use; nil means every model ("*").
    public var models: [String]?
    /// Requests per minute, tokens per minute, tokens per UTC day; nil = no limit.
    public var rpm: Int?
    public var tpm: Int?
    public var dailyTokens: Int?
    public var expires: Date?
    /// A moderation policy name this key's requests use instead of the default.
    public var moderationPolicy: String?
    /// RAG collections the key may retrieve from ("*": every collection); empty: none. Only
    /// with the `rag` scope.
    public var collections: [String] = []
    public var created: Date
    public var lastUsed: Date?
    public var revoked: Date?

    public init(id: String, name: String, scopes: [KeyScope], models: [String]?, rpm: Int?, tpm: Int?, dailyTokens: Int?,
                expires: Date?, moderationPolicy: String?, created: Date, lastUsed: Date?, revoked: Date?) {
        self.id = id; self.name = name; self.scopes = scopes; self.models = models
        self.rpm = rpm; self.tpm = tpm; self.dailyTokens = dailyTokens; self.expires = expires
        self.moderationPolicy = moderationPolicy; self.created = created; self.lastUsed = lastUsed; self.revoked = revoked
    }

    public func state(at now: Date = Date()) -> KeyState {
        if revoked != nil { return .revoked }
        if let e = expires, e <= now { return .expired }
        return .active
    }

    public func allows(scope: KeyScope) -> Bool { scopes.contains(scope) }

    public func allows(model: String) -> Bool { models.map { $0.contains(model) } ?? true }

    /// Whether the key may retrieve from this collection (needs the `rag` scope and a grant).
    public func allows(collection: String) -> Bool {
        allows(scope: .rag) && (collections.contains("*") || collections.contains(collection))
    }
}

public enum KeyError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case notFound(String)
    case duplicateName(String)
    case storage(String)

    public var description: String {
        switch self {
        case let .invalid(m): return m
        case let .notFound(k): return "no key with id or name '\(k)' (steward keys list shows them)"
        case let .duplicateName(n): return "a key named '\(n)' already exists; pick another name or rotate that key (steward keys rotate \(n))"
        case let .storage(m): return m
        }
    }
}

/// What to give a new key.
public struct NewKey: Sendable {
    public var name: String
    public var scopes: [KeyScope] = KeyScope.defaults
    public var models: [String]? = nil
    public var rpm: Int? = nil
    public var tpm: Int? = nil
    public var dailyTokens: Int? = nil
    public var expires: Date? = nil
    public var moderationPolicy: String? = nil
    /// RAG collections granted ("*": all); needs the `rag` scope.
    public var collections: [String] = []

    public init(name: String) { self.name = name }
}

/// The outcome of presenting a bearer token.
public enum KeyCheck: Sendable, Equatable {
    case valid(KeyRecord)
    /// Not a Steward key, unknown id, or wrong secret (the caller cannot tell which: by design).
    case unknown
    case revoked(KeyRecord)
    case expired(KeyRecord)
}

/// A consistent view of the access tables: keys by id with their secret hashes, disabled models.
public struct AccessSnapshot: Sendable {
    public var version: Int64
    public var keys: [String: KeyRecord]
    var hashes: [String: Data]
    public var disabledModels: Set<String>
    /// True once any key (in any state) exists: from then on the server requires a key. A
    /// revoked or expired key still counts, so revoking the last key never opens the server.
    public var requiresKeys: Bool { !keys.isEmpty }
}

/// API keys in the governance database (component "keys"). Keys look like
/// `sk-stw-<id>-<secret>`: the id (12 hex characters) finds the record in O(1); the secret is 32
/// bytes from the CSPRNG (base64url, 43 characters). Only SHA-256(secret) is stored and it is
/// compared in constant time. A fast hash is right here: the secret has 256 bits of entropy, so
/// there is nothing for a slow password hash (bcrypt, argon2) to protect against guessing, and
/// verification stays in the microseconds on every request.
///
/// The same tables hold the kill switch's disabled models, and a version counter every change
/// bumps; a server compares the counter on each request (one indexed read), so a key revoked or
/// a model disabled by the CLI in another process takes effect on the next request.
public final class KeyStore: @unchecked Sendable {
    public let storage: SQLStorage
    public static let prefix = "sk-stw-"

    private let lock = NSLock()
    private var cached: AccessSnapshot?
    private var lastUsedWritten: [String: Date] = [:]
    /// Set by the lead to the audit log's `recordAdmin` (nil: not recorded).
    /// Where key and model changes are recorded; nil: the process-wide `AdminAudit` recorder
    /// (the audit log of the database the command uses).
    public var adminRecorder: (@Sendable (_ action: String, _ keyID: String?, _ target: String?, _ details: [String: String]) -> Void)?

    static let migrations = [
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            secret_sha256 BLOB NOT NULL,
            scopes TEXT NOT NULL,
            models TEXT,
            rpm INTEGER, tpm INTEGER, daily_tokens INTEGER,
            expires_at REAL,
            moderation_policy TEXT,
            created_at REAL NOT NULL,
            last_used_at REAL,
            revoked_at REAL);
        CREATE TABLE disabled_models (
            model TEXT PRIMARY KEY, disabled_at REAL NOT NULL, reason TEXT);
        CREATE TABLE access_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
        INSERT INTO access_version (id, version) VALUES (1, 1);
        CREATE TABLE key_daily_tokens (
            key_id TEXT NOT NULL, day TEXT NOT NULL, tokens INTEGER NOT NULL,
            PRIMARY KEY (key_id, day));
        """,
        // RAG collections granted to the key (comma-separated, "*" for all; NULL: none).
        "ALTER TABLE api_keys ADD COLUMN collections TEXT;",
    ]

    public init(storage: SQLStorage) throws(StorageError) {
        self.storage = storage
        try storage.migrate(component: "keys", steps: KeyStore.migrations)
    }

    // MARK: - Managing keys

    /// Creates a key; returns its record and the full key text, which is shown once and never
    /// stored.
    public func create(_ k: NewKey, by actor: String? = nil, now: Date = Date()) throws(KeyError) -> (record: KeyRecord, key: String) {
        let name = k.name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty else { throw .invalid("a key needs a --name") }
        guard name.count <= 64, !name.contains(where: { $0.isNewline || $0 == "," }) else {
            throw .invalid("a key name must be one line of at most 64 characters without commas")
        }
        // A name that looks like an id would make `keys revoke ID|NAME` ambiguous.
        guard !KeyStore.looksLikeID(name) else { throw .invalid("'\(name)' looks like a key id; pick a name with other characters") }
        guard !k.scopes.isEmpty else { throw .invalid("a key needs at least one scope") }
        for (label, v) in [("--rpm", k.rpm), ("--tpm", k.tpm), ("--daily-tokens", k.dailyTokens)] {
            if let v, v < 1 { throw .invalid("\(label) must be ≥ 1 (leave it out for no limit)") }
        }
        if let m = k.models, m.isEmpty || m.contains(where: \.isEmpty) { throw .invalid("--models needs model ids, or * for every model") }
        if let e = k.expires, e <= now { throw .invalid("--expires is in the past") }
        let collections = try KeyStore.checkCollections(k.collections, scopes: k.scopes)
        let secret = try KeyStore.newSecret()
        // The date as the database will give it back (seconds since 1970 as a double).
        let now = Date(timeIntervalSince1970: now.timeIntervalSince1970)
        var record = KeyRecord(id: "", name: name, scopes: k.scopes.sorted(), models: k.models, rpm: k.rpm, tpm: k.tpm,
                               dailyTokens: k.dailyTokens, expires: k.expires, moderationPolicy: k.moderationPolicy,
                               created: now, lastUsed: nil, revoked: nil)
        record.collections = collections
        do {
            try storage.transaction {
                if !(try storage.query("SELECT id FROM api_keys WHERE name = ?", .text(name))).isEmpty {
                    throw KeyError.duplicateName(name)
                }
                var id = ""
                repeat {
                    id = try KeyStore.hex(Secrets.randomBytes(6))
                } while !(try storage.query("SELECT id FROM api_keys WHERE id = ?", .text(id))).isEmpty
                record.id = id
                try storage.execute("""
                    INSERT INTO api_keys (id, name, secret_sha256, scopes, models, rpm, tpm, daily_tokens, expires_at,
                                          moderation_policy, created_at, collections) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, [.text(id), .text(name), .blob(KeyStore.hash(secret)), .text(record.scopes.map(\.rawValue).joined(separator: ",")),
                          record.models.map { .text($0.joined(separator: ",")) } ?? .null,
                          KeyStore.sql(k.rpm), KeyStore.sql(k.tpm), KeyStore.sql(k.dailyTokens),
                          k.expires.map { .real($0.timeIntervalSince1970) } ?? .null,
                          k.moderationPolicy.map { .text($0) } ?? .null, .real(now.timeIntervalSince1970),
                          collections.isEmpty ? .null : .text(collections.joined(separator: ","))])
                try bumpVersion()
            }
        } catch let e as KeyError { throw e } catch { throw .storage("\(error)") }
        invalidate()
        var details = ["name": record.name, "scopes": record.scopes.map(\.rawValue).joined(separator: ",")]
        if !collections.isEmpty { details["collections"] = collections.joined(separator: ",") }
        recordAdmin("key.create", actor, record.id, details)
        return (record, KeyStore.prefix + record.id + "-" + secret)
    }

    /// Every key, oldest first.
    public func list() throws(KeyError) -> [KeyRecord] {
        do {
            return try storage.query("SELECT * FROM api_keys ORDER BY created_at, id", []).compactMap(KeyStore.record)
        } catch { throw .storage("\(error)") }
    }

    /// The key with this id or name.
    public func find(_ idOrName: String) throws(KeyError) -> KeyRecord {
        let rows: [SQLRow]
        do {
            rows = try storage.query("SELECT * FROM api_keys WHERE id = ? OR name = ? ORDER BY (id = ?) DESC",
                                     [.text(idOrName), .text(idOrName), .text(idOrName)])
        } catch { throw .storage("\(error)") }
        guard let r = rows.first.flatMap(KeyStore.record) else { throw .notFound(idOrName) }
        return r
    }

    /// Revokes a key at once (every process sharing the database sees it on its next request).
    @discardableResult
    public func revoke(_ idOrName: String, by actor: String? = nil, now: Date = Date()) throws(KeyError) -> KeyRecord {
        var r = try find(idOrName)
        guard r.revoked == nil else { return r }
        do {
            try storage.transaction {
                try storage.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", .real(now.timeIntervalSince1970), .text(r.id))
                try bumpVersion()
            }
        } catch { throw .storage("\(error)") }
        invalidate()
        r.revoked = now
        recordAdmin("key.revoke", actor, r.id, ["name": r.name])
        return r
    }

    /// A new secret for the same id, name, scopes and limits; the old secret stops working at
    /// once. Returns the new key text (shown once).
    public func rotate(_ idOrName: String, by actor: String? = nil) throws(KeyError) -> (record: KeyRecord, key: String) {
        let r = try find(idOrName)
        guard r.revoked == nil else { throw .invalid("key \(r.id) (\(r.name)) is revoked; create a new key instead") }
        let secret = try KeyStore.newSecret()
        do {
            try storage.transaction {
                try storage.execute("UPDATE api_keys SET secret_sha256 = ? WHERE id = ?", .blob(KeyStore.hash(secret)), .text(r.id))
                try bumpVersion()
            }
        } catch { throw .storage("\(error)") }
        invalidate()
        recordAdmin("key.rotate", actor, r.id, ["name": r.name])
        return (r, KeyStore.prefix + r.id + "-" + secret)
    }

    /// Grants RAG collections to a key (adds them; "*" grants all) or, with `revoke`, takes
    /// them away. The key must have the `rag` scope. Running servers see the change on their
    /// next request. Returns the updated record.
    @discardableResult
    public func grant(_ idOrName: String, collections: [String], revoke: Bool = false, by actor: String? = nil) throws(KeyError) -> KeyRecord {
        var r = try find(idOrName)
        let given = try KeyStore.checkCollections(collections, scopes: r.scopes)
        guard !given.isEmpty else { throw .invalid("give the collections to \(revoke ? "revoke" : "grant") (--collections a,b or *)") }
        var now = r.collections
        if revoke {
            now.removeAll { given.contains($0) || given == ["*"] }
        } else {
            now = given.contains("*") ? ["*"] : (now + given.filter { !now.contains($0) }).sorted()
        }
        do {
            try storage.transaction {
                try storage.execute("UPDATE api_keys SET collections = ? WHERE id = ?",
                                    now.isEmpty ? .null : .text(now.joined(separator: ",")), .text(r.id))
                try bumpVersion()
            }
        } catch { throw .storage("\(error)") }
        invalidate()
        r.collections = now
        recordAdmin(revoke ? "key.collections.revoke" : "key.collections.grant", actor, r.id,
                    ["name": r.name, "collections": given.joined(separator: ","), "now": now.joined(separator: ",")])
        return r
    }

    /// Collection names as given to a key: trimmed, de-duplicated, "*" alone; needs the rag scope.
    static func checkCollections(_ list: [String], scopes: [KeyScope]) throws(KeyError) -> [String] {
        var out: [String] = []
        for c in list.map({ $0.trimmingCharacters(in: .whitespaces) }) where !c.isEmpty && !out.contains(c) {
            guard c == "*" || (c.count <= 64 && c.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) })) else {
                throw .invalid("'\(c)' is not a collection name (1-64 letters, digits, '.', '_', '-'; or * for all)")
            }
            out.append(c)
        }
        if out.contains("*") { out = ["*"] }
        if !out.isEmpty && !scopes.contains(.rag) {
            throw .invalid("collections are granted only to keys with the 'rag' scope (add rag to --scopes)")
        }
        return out
    }

    // MARK: - Kill switch: disabled models

    public func disableModel(_ model: String, reason: String? = nil, by actor: String? = nil, now: Date = Date()) throws(KeyError) {
        guard !model.isEmpty else { throw .invalid("give the model id to disable") }
        do {
            try storage.transaction {
                try storage.execute("INSERT OR REPLACE INTO disabled_models (model, disabled_at, reason) VALUES (?, ?, ?)",
                                    .text(model), .real(now.timeIntervalSince1970), reason.map { .text($0) } ?? .null)
                try bumpVersion()
            }
        } catch { throw .storage("\(error)") }
        invalidate()
        recordAdmin("model.disable", actor, model, reason.map { ["reason": $0] } ?? [:])
    }

    /// Re-enables a model; returns false when it was not disabled.
    @discardableResult
    public func enableModel(_ model: String, by actor: String? = nil) throws(KeyError) -> Bool {
        var changed = 0
        do {
            try storage.transaction {
                changed = try storage.execute("DELETE FROM disabled_models WHERE model = ?", .text(model))
                if changed > 0 { try bumpVersion() }
            }
        } catch { throw .storage("\(error)") }
        invalidate()
        if changed > 0 { recordAdmin("model.enable", actor, model, [:]) }
        return changed > 0
    }

    public func disabledModels() throws(KeyError) -> [String] {
        do { return try storage.query("SELECT model FROM disabled_models ORDER BY model", []).compactMap { $0["model"]?.string } } catch {
            throw .storage("\(error)")
        }
    }

    // MARK: - Checking keys (the per-request path)

    /// The current access state, reloaded only when the version counter moved (one small read
    /// per call otherwise).
    public func snapshot() throws(KeyError) -> AccessSnapshot {
        let version: Int64
        do {
            version = try storage.query("SELECT version FROM access_version WHERE id = 1", []).first?["version"]?.int ?? 0
        } catch { throw .storage("\(error)") }
        lock.lock()
        if let c = cached, c.version == version { lock.unlock(); return c }
        lock.unlock()
        var keys: [String: KeyRecord] = [:]
        var hashes: [String: Data] = [:]
        var disabled: Set<String> = []
        do {
            for row in try storage.query("SELECT * FROM api_keys", []) {
                guard let r = KeyStore.record(row), let h = row["secret_sha256"]?.data else { continue }
                keys[r.id] = r
                hashes[r.id] = h
            }
            for row in try storage.query("SELECT model FROM disabled_models", []) {
                if let m = row["model"]?.string { disabled.insert(m) }
            }
        } catch { throw .storage("\(error)") }
        let snap = AccessSnapshot(version: version, keys: keys, hashes: hashes, disabledModels: disabled)
        lock.lock(); cached = snap; lock.unlock()
        return snap
    }

    /// The snapshot last loaded (no database read): for per-token checks between refreshes.
    public var cachedSnapshot: AccessSnapshot? { lock.lock(); defer { lock.unlock() }; return cached }

    /// Checks a bearer token against `snapshot`: parse `sk-stw-<id>-<secret>`, look the id up,
    /// compare SHA-256(secret) with the stored hash in constant time.
    public static func check(_ token: String, in snapshot: AccessSnapshot, now: Date = Date()) -> KeyCheck {
        guard let (id, secret) = split(token), let record = snapshot.keys[id], let stored = snapshot.hashes[id] else { return .unknown }
        guard Secrets.constantTimeEqual(hash(secret), stored) else { return .unknown }
        switch record.state(at: now) {
        case .active: return .valid(record)
        case .revoked: return .revoked(record)
        case .expired: return .expired(record)
        }
    }

    /// Checks a token against the current state of the store.
    public func check(_ token: String, now: Date = Date()) throws(KeyError) -> KeyCheck {
        KeyStore.check(token, in: try snapshot(), now: now)
    }

    /// Records that a key was used, at most once a minute per key (a write per request would
    /// cost more than the whole check). Does not bump the version: no reload follows.
    public func touch(_ id: String, now: Date = Date()) {
        lock.lock()
        if let last = lastUsedWritten[id], now.timeIntervalSince(last) < 60 { lock.unlock(); return }
        lastUsedWritten[id] = now
        lock.unlock()
        _ = try? storage.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", .real(now.timeIntervalSince1970), .text(id))
    }

    /// The moderation policy a key asked for (nil: the deployment's default). The seam the
    /// moderation layer reads through `context.keyID`.
    public func moderationPolicy(forKeyID id: String) -> String? {
        (cachedSnapshot ?? (try? snapshot()))?.keys[id]?.moderationPolicy
    }

    private func recordAdmin(_ action: String, _ keyID: String?, _ target: String?, _ details: [String: String]) {
        if let r = adminRecorder { r(action, keyID, target, details) } else {
            AdminAudit.record(action: action, keyID: keyID, target: target, details: details)
        }
    }

    // MARK: - Pieces

    /// Splits `sk-stw-<id>-<secret>`; nil for anything else.
    /// (On UTF-8 bytes: this runs on every request.)
    static func split(_ token: String) -> (id: String, secret: String)? {
        let b = token.utf8
        let p = prefix.utf8
        // "sk-stw-" + 12 hex + "-" + 43…128 secret characters.
        guard b.count >= p.count + 13 + 43, b.count <= p.count + 13 + 128, b.starts(with: p) else { return nil }
        let idStart = b.index(b.startIndex, offsetBy: p.count)
        let idEnd = b.index(idStart, offsetBy: 12)
        guard b[idEnd] == UInt8(ascii: "-"), b[idStart..<idEnd].allSatisfy(isHexDigit) else { return nil }
        let id = String(decoding: b[idStart..<idEnd], as: UTF8.self)
        let secret = String(decoding: b[b.index(after: idEnd)...], as: UTF8.self)
        return (id, secret)
    }

    private static func isHexDigit(_ c: UInt8) -> Bool { (0x30...0x39).contains(c) || (0x61...0x66).contains(c) }

    static func looksLikeID(_ s: String) -> Bool { s.utf8.count == 12 && s.utf8.allSatisfy(isHexDigit) }

    /// SHA-256 of the secret, as the bytes of its lowercase hex (what is stored and compared).
    /// (Same bytes as `Secrets.sha256Hex`, without its per-byte String formatting: this runs on
    /// every request.)
    static func hash(_ secret: String) -> Data {
        var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        var s = secret
        s.withUTF8 { buf in _ = SHA256(buf.baseAddress, buf.count, &digest) }
        let hexDigits = Array("0123456789abcdef".utf8)
        var out = Data(capacity: digest.count * 2)
        for b in digest {
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 0x0f)])
        }
        return out
    }

    static func newSecret() throws(KeyError) -> String {
        let bytes: Data
        do { bytes = try Secrets.randomBytes(32) } catch { throw .storage("\(error)") }
        return bytes.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func hex(_ d: Data) -> String { d.map { String(format: "%02x", $0) }.joined() }

    static func sql(_ v: Int?) -> SQLValue { v.map { .integer(Int64($0)) } ?? .null }

    private func bumpVersion() throws {
        try storage.execute("UPDATE access_version SET version = version + 1 WHERE id = 1", [])
    }

    private func invalidate() { lock.lock(); cached = nil; lock.unlock() }

    static func record(_ row: SQLRow) -> KeyRecord? {
        guard let id = row["id"]?.string, let name = row["name"]?.string, let created = row["created_at"]?.double else { return nil }
        let scopes = (row["scopes"]?.string ?? "").split(separator: ",").compactMap { KeyScope(rawValue: String($0)) }
        let models = row["models"]?.string.map { $0.split(separator: ",").map(String.init) }
        func int(_ k: String) -> Int? { row[k]?.int.map(Int.init) }
        func date(_ k: String) -> Date? { row[k]?.double.map(Date.init(timeIntervalSince1970:)) }
        var r = KeyRecord(id: id, name: name, scopes: scopes, models: models, rpm: int("rpm"), tpm: int("tpm"),
                          dailyTokens: int("daily_tokens"), expires: date("expires_at"), moderationPolicy: row["moderation_policy"]?.string,
                          created: Date(timeIntervalSince1970: created), lastUsed: date("last_used_at"), revoked: date("revoked_at"))
        r.collections = row["collections"]?.string.map { $0.split(separator: ",").map(String.init) } ?? []
        return r
    }

    /// Parses an ISO 8601 date ("2026-01-31": midnight UTC starting that day, when the key stops
    /// working) or date-time ("2026-01-31T18:00:00Z", an offset, or no zone meaning UTC).
    public static func parseExpiry(_ text: String) throws(KeyError) -> Date {
        let t = text.trimmingCharacters(in: .whitespaces)
        let full = ISO8601DateFormatter()
        full.formatOptions = [.withInternetDateTime]
        if let d = full.date(from: t) { return d }
        full.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = full.date(from: t) { return d }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        for format in ["yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd"] {
            f.dateFormat = format
            if let d = f.date(from: t) { return d }
        }
        throw .invalid("--expires '\(text)' is not an ISO 8601 date or date-time (e.g. 2026-01-31 or 2026-01-31T18:00:00Z)")
    }
}
