import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Governance

/// Authentication, scopes, model allow-lists, rate limits and the kill switch in front of every
/// route. `API.access` nil means none of it (in-process tests of the plain API); `steward serve`
/// always installs one, so the kill switch works even before the first key exists.
///
/// The rules: `/health` and the static chat page `/` are always open. Until the store holds a key, every other route is open
/// too except `/admin/*` (which always needs an admin key: a fresh server never lets an
/// anonymous caller mint keys). Once one key exists (in any state), every route needs
/// `Authorization: Bearer <key>` (or HTTP Basic with the key as password, for scrapers and
/// browsers that only do Basic, e.g. on /metrics): missing/unknown/revoked/expired → 401, missing scope or model →
/// 403, over a limit → 429 with Retry-After. A disabled model → 403 `model_disabled` for
/// everybody, and running generations for it (or for a key revoked meanwhile) stop at their next
/// token with a final error event.
public final class AccessGate: @unchecked Sendable {
    public let keys: KeyStore
    public let limiter: RateLimiter
    /// How often a running generation re-reads the store's version counter, so a change made
    /// by another process (the CLI) reaches running streams. Changes made through this gate
    /// (the admin API) reach them at their next token.
    public var streamRefreshInterval: TimeInterval = 0.1

    private let lock = NSLock()
    private var current: AccessSnapshot?
    private var refreshedAt = 0.0

    public init(keys: KeyStore, limiter: RateLimiter) {
        self.keys = keys
        self.limiter = limiter
    }

    /// A gate over the database at `storage` (keys and daily token counts in the same file).
    public convenience init(storage: SQLStorage) throws {
        self.init(keys: try KeyStore(storage: storage), limiter: try RateLimiter(storage: storage))
    }

    /// What a route needs.
    public enum Requirement: Equatable, Sendable {
        case open
        /// Any valid key (model lists, metrics, the page, version).
        case anyKey
        case scope(KeyScope)
    }

    public static func requirement(method: String, path: String) -> Requirement {
        switch path {
        // The chat page is static (no model names, no data): it loads without a key and asks
        // for one in its key field; every call it makes needs the key.
        case "/health", "/": return .open
        case "/v1/chat/completions", "/api/chat": return .scope(.chat)
        case "/v1/completions", "/api/generate": return .scope(.completions)
        case "/v1/embeddings", "/api/embed": return .scope(.embeddings)
        default:
            if path == "/admin" || path.hasPrefix("/admin/") { return .scope(.admin) }
            if path.hasPrefix("/v1/rag") || path.hasPrefix("/api/rag") { return .scope(.rag) }
            return .anyKey
        }
    }

    /// Routes whose body names a model the key must be allowed to use.
    static func usesModel(_ path: String) -> Bool {
        switch path {
        case "/v1/chat/completions", "/api/chat", "/v1/completions", "/api/generate", "/v1/embeddings", "/api/embed", "/v1/rag/query": return true
        default: return false
        }
    }

    /// The per-request check. Returns the refusal, or nil to go on (then `request.context.keyID`
    /// holds the caller's key id, and `key` its record).
    public func admit(_ request: HTTPRequest) -> (refusal: HTTPResponse?, key: KeyRecord?) {
        let need = AccessGate.requirement(method: request.method, path: request.path)
        if need == .open { return (nil, nil) }
        let flavor = Router.flavor(for: request.path)
        let snap: AccessSnapshot
        do { snap = try refresh() } catch {
            // Fail closed: without the key table nobody can be checked.
            return (APIError(status: 503, message: "the access database cannot be read (\(error)); check $STEWARD_HOME/steward.db",
                             type: "server_error", code: "access_unavailable").response(flavor), nil)
        }
        var key: KeyRecord?
        if snap.requiresKeys || need == .scope(.admin) {
            switch authenticate(request, snap) {
            case let .failure(message, code):
                var r = APIError(status: 401, message: message, type: "invalid_request_error", code: code).response(flavor)
                r.headers.append(("WWW-Authenticate", #"Bearer realm="steward""#))
                if request.path == "/metrics" {
                    // Browsers prompt for Basic credentials (any user name, the key as password).
                    r.headers.append(("WWW-Authenticate", #"Basic realm="steward", charset="UTF-8""#))
                }
                return (r, nil)
            case let .success(k):
                if case let .scope(s) = need, !k.allows(scope: s) {
                    return (APIError(status: 403, message: "key \(k.id) (\(k.name)) lacks the '\(s.rawValue)' scope needed for \(request.path); create a key with --scopes \(s.rawValue)",
                                     type: "permission_error", code: "insufficient_scope").response(flavor), nil)
                }
                key = k
                request.context.keyID = k.id
            }
        }
        if AccessGate.usesModel(request.path), !snap.disabledModels.isEmpty || key?.models != nil,
           let model = AccessGate.requestedModel(request.body) {
            // "BASE+ADAPTER" is the base model with an adapter: disabling the base disables it too.
            let base = model.split(separator: "+", maxSplits: 1).first.map(String.init) ?? model
            if snap.disabledModels.contains(model) || snap.disabledModels.contains(base) {
                return (AccessGate.modelDisabled(base).response(flavor), key)
            }
            if let k = key, !k.allows(model: model) {
                return (APIError(status: 403, message: "key \(k.id) (\(k.name)) may not use model '\(model)' (allowed: \((k.models ?? []).joined(separator: ", ")))",
                                 type: "permission_error", param: "model", code: "model_not_allowed").response(flavor), key)
            }
        }
        if let k = key {
            if case let .limited(retry, reason) = limiter.admit(k) {
                var r = APIError(status: 429, message: "key \(k.id) (\(k.name)): \(reason); retry after \(retry) s",
                                 type: "rate_limit_error", code: "rate_limit_exceeded").response(flavor)
                r.headers.append(("Retry-After", String(retry)))
                return (r, key)
            }
            keys.touch(k.id)
        }
        return (nil, key)
    }

    static func modelDisabled(_ model: String) -> APIError {
        APIError(status: 403, message: "model '\(model)' is disabled on this server (kill switch); an admin re-enables it with steward kill-switch enable-model \(model)",
                 type: "permission_error", param: "model", code: "model_disabled")
    }

    enum AuthResult { case success(KeyRecord), failure(String, code: String) }

    private func authenticate(_ r: HTTPRequest, _ snap: AccessSnapshot) -> AuthResult {
        guard let header = r.headers["authorization"], !header.isEmpty else {
            let why = snap.requiresKeys ? "this server requires an API key" : "the admin API requires a key with the admin scope (steward keys create --name NAME --scopes admin)"
            return .failure("\(why): send 'Authorization: Bearer sk-stw-…'", code: "missing_api_key")
        }
        guard let token = AccessGate.token(fromAuthorization: header) else {
            return .failure("the Authorization header is malformed: send 'Authorization: Bearer sk-stw-…'", code: "invalid_api_key")
        }
        switch KeyStore.check(token, in: snap) {
        case let .valid(k): return .success(k)
        case .unknown: return .failure("the API key is not valid (check it, or ask an admin for a new one)", code: "invalid_api_key")
        case let .revoked(k): return .failure("key \(k.id) (\(k.name)) was revoked; ask an admin for a new key", code: "key_revoked")
        case let .expired(k):
            let when = k.expires.map { ISO8601DateFormatter().string(from: $0) } ?? "?"
            return .failure("key \(k.id) (\(k.name)) expired at \(when); ask an admin for a new key", code: "key_expired")
        }
    }

    /// The key in `Bearer <key>`, or the password in `Basic base64(user:password)`.
    /// (On UTF-8 bytes: Foundation's trimming and case mapping cost more than the whole key check.)
    static func token(fromAuthorization header: String) -> String? {
        let bytes = Array(header.utf8)
        var start = 0, end = bytes.count
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        guard let space = bytes[start..<end].firstIndex(where: { $0 == 0x20 }) else { return nil }
        let scheme = String(decoding: bytes[start..<space].map { $0 | 0x20 }, as: UTF8.self)  // ASCII lowercase
        var v = space
        while v < end, bytes[v] == 0x20 { v += 1 }
        let value = String(decoding: bytes[v..<end], as: UTF8.self)
        if scheme == "bearer" { return value.isEmpty ? nil : value }
        if scheme == "basic", let d = Data(base64Encoded: value), let s = String(data: d, encoding: .utf8), let colon = s.firstIndex(of: ":") {
            let pw = String(s[s.index(after: colon)...])
            return pw.isEmpty ? nil : pw
        }
        return nil
    }

    /// The "model" field of a JSON body, decoded alone (a full request decode happens later).
    static func requestedModel(_ body: Data) -> String? {
        struct M: Decodable { var model: String? }
        return (try? JSONDecoder().decode(M.self, from: body))?.model
    }

    // MARK: - The snapshot and the kill switch for running generations

    /// The store's current state (one small read; a reload when something changed).
    @discardableResult
    public func refresh() throws -> AccessSnapshot {
        let s = try keys.snapshot()
        lock.lock(); defer { lock.unlock() }
        refreshedAt = AccessGate.uptime()
        // Two reads can finish out of order (a stream's periodic re-read racing the admin API's
        // read after a change): the store's version only grows, so never go back to an older one.
        if let c = current, c.version > s.version { return c }
        current = s
        return s
    }

    /// The snapshot for a running generation: re-read when older than `streamRefreshInterval`.
    func snapshotForStream() -> AccessSnapshot? {
        lock.lock()
        let now = AccessGate.uptime()
        let due = current == nil || now - refreshedAt >= streamRefreshInterval
        let s = current
        if due { refreshedAt = now }
        lock.unlock()
        if due { return (try? refresh()) ?? s }
        return s
    }

    /// Monotonic seconds (DispatchTime: a vDSO clock read, no system call).
    static func uptime() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// A watcher for one generation: `allowed()` per token is a locked compare of the store's
    /// version counter; only when it moved are the key and model looked at again.
    public func watch(model: String, key: KeyRecord?) -> GenerationWatch {
        GenerationWatch(gate: self, model: model, key: key)
    }
}

/// Stops a running generation when its model is disabled or its key revoked or expired.
public final class GenerationWatch: @unchecked Sendable {
    let gate: AccessGate
    let model: String
    let key: KeyRecord?
    private let lock = NSLock()
    private var seenVersion: Int64 = -1
    private var stop: APIError?

    init(gate: AccessGate, model: String, key: KeyRecord?) {
        self.gate = gate; self.model = model; self.key = key
    }

    /// The codes of the errors that stop a running generation (model disabled, key revoked or
    /// expired): a stream stopped by one withdraws the frames its client has not read yet.
    public static let stopCodes: Set<String> = ["model_disabled", "key_revoked", "key_expired"]

    /// Why the generation was stopped (nil: it was not).
    public var stopReason: APIError? { lock.lock(); defer { lock.unlock() }; return stop }

    /// True while the generation may go on.
    public func allowed() -> Bool {
        guard let snap = gate.snapshotForStream() else { return true }
        lock.lock(); defer { lock.unlock() }
        if stop != nil { return false }
        if snap.version == seenVersion { return true }
        seenVersion = snap.version
        if snap.disabledModels.contains(model) {
            stop = AccessGate.modelDisabled(model)
        } else if let k = key {
            switch snap.keys[k.id]?.state() {
            case .active?: break
            case .expired?:
                stop = APIError(status: 401, message: "key \(k.id) (\(k.name)) expired during the request", type: "invalid_request_error", code: "key_expired")
            default:
                stop = APIError(status: 401, message: "key \(k.id) (\(k.name)) was revoked during the request", type: "invalid_request_error", code: "key_revoked")
            }
        }
        return stop == nil
    }

    /// Counts a finished generation's tokens against the key's limits.
    public func record(tokens: Int) {
        if let k = key { gate.limiter.record(tokens: tokens, for: k) }
    }
}

/// The request being handled on this thread (and on the thread streaming its response), so
/// the generation path can find its caller's key without every handler passing it along.
final class RequestScope: @unchecked Sendable {
    let context: RequestContext
    let key: KeyRecord?
    init(context: RequestContext, key: KeyRecord?) { self.context = context; self.key = key }

    // A pthread key, not Thread.threadDictionary: on Linux the dictionary bridges through
    // NSMutableDictionary and costs ~10 µs per request.
    private static let slot: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    static var current: RequestScope? {
        pthread_getspecific(slot).map { Unmanaged<RequestScope>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Runs `body` with `scope` as the current request (the slot holds it unretained: `scope`
    /// is kept alive here until `body` returns).
    static func with<T>(_ scope: RequestScope?, _ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(slot)
        pthread_setspecific(slot, scope.map { Unmanaged.passUnretained($0).toOpaque() })
        defer { pthread_setspecific(slot, previous) }
        return try withExtendedLifetime(scope) { try body() }
    }
}
