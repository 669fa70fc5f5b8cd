import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whether a request may go ahead under its key's limits.
public enum RateDecision: Sendable, Equatable {
    case allowed
    /// Refused: retry after this many whole seconds (≥ 1); `reason` names the limit in plain words.
    case limited(retryAfter: Int, reason: String)
}

/// Per-key limits: requests per minute and tokens per minute over a sliding 60-second window
/// (in memory: a restart forgets the last minute, which is harmless), and tokens per UTC day,
/// persisted in `key_daily_tokens` so a restart does not hand out a fresh day.
///
/// Tokens are known only after a generation, so a request is refused when the key is already
/// at or over its token budget; the request that crosses the budget finishes (a key may overrun
/// by one request's tokens, as with OpenAI's limits).
public final class RateLimiter: @unchecked Sendable {
    private let storage: SQLStorage?
    private let lock = NSLock()
    private var requests: [String: Window<Double>] = [:]
    private var tokens: [String: Window<(time: Double, count: Int)>] = [:]
    private var daily: [String: (day: String, tokens: Int)] = [:]
    static let window = 60.0

    /// - Parameter storage: where daily totals persist (nil: memory only, for tests). The table
    ///   comes with the keys component's schema.
    public init(storage: SQLStorage?) throws(StorageError) {
        self.storage = storage
        if let storage { try storage.migrate(component: "keys", steps: KeyStore.migrations) }
    }

    /// Checks `key`'s limits and, when allowed, counts the request against its rpm.
    public func admit(_ key: KeyRecord, now: Date = Date()) -> RateDecision {
        if key.rpm == nil && key.tpm == nil && key.dailyTokens == nil { return .allowed }
        let t = now.timeIntervalSince1970
        lock.lock(); defer { lock.unlock() }
        if let limit = key.dailyTokens {
            let used = todayLocked(key.id, t)
            if used >= limit {
                return .limited(retryAfter: max(1, Int((RateLimiter.nextMidnight(t) - t).rounded(.up))),
                                reason: "daily token limit of \(limit) reached (\(used) used today, UTC)")
            }
        }
        if let limit = key.tpm {
            var w = tokens[key.id] ?? Window()
            w.drop { $0.time <= t - RateLimiter.window }
            tokens[key.id] = w
            var sum = w.live.reduce(0) { $0 + $1.count }
            if sum >= limit {
                // Wait until enough of the window's tokens age out to be under the limit.
                var retry = RateLimiter.window
                for e in w.live {
                    sum -= e.count
                    if sum < limit { retry = e.time + RateLimiter.window - t; break }
                }
                return .limited(retryAfter: max(1, Int(retry.rounded(.up))), reason: "token limit of \(limit) per minute reached")
            }
        }
        if let limit = key.rpm {
            var w = requests.removeValue(forKey: key.id) ?? Window()
            defer { requests[key.id] = w }
            w.drop { $0 <= t - RateLimiter.window }
            if w.count >= limit {
                let retry = (w.first ?? t) + RateLimiter.window - t
                return .limited(retryAfter: max(1, Int(retry.rounded(.up))), reason: "request limit of \(limit) per minute reached")
            }
            w.append(t)
        }
        return .allowed
    }

    /// Counts tokens a request used (prompt + completion) against the key's tpm and day.
    public func record(tokens count: Int, for key: KeyRecord, now: Date = Date()) {
        guard count > 0, key.tpm != nil || key.dailyTokens != nil else { return }
        let t = now.timeIntervalSince1970
        let day = RateLimiter.day(t)
        lock.lock()
        if key.tpm != nil { tokens[key.id, default: Window()].append((t, count)) }
        if key.dailyTokens != nil { daily[key.id] = (day, todayLocked(key.id, t) + count) }
        lock.unlock()
        if key.dailyTokens != nil, let storage {
            _ = try? storage.execute("""
                INSERT INTO key_daily_tokens (key_id, day, tokens) VALUES (?, ?, ?)
                ON CONFLICT (key_id, day) DO UPDATE SET tokens = tokens + excluded.tokens
                """, .text(key.id), .text(day), .integer(Int64(count)))
        }
    }

    /// Tokens `keyID` used today (UTC).
    public func tokensToday(_ keyID: String, now: Date = Date()) -> Int {
        lock.lock(); defer { lock.unlock() }
        return todayLocked(keyID, now.timeIntervalSince1970)
    }

    private func todayLocked(_ id: String, _ t: Double) -> Int {
        let day = RateLimiter.day(t)
        if let d = daily[id], d.day == day { return d.tokens }
        var n = 0
        if let storage, let v = try? storage.query("SELECT tokens FROM key_daily_tokens WHERE key_id = ? AND day = ?", .text(id), .text(day)).first?["tokens"]?.int {
            n = Int(v)
        }
        daily[id] = (day, n)
        return n
    }

    /// "2026-01-31" for the UTC day holding `t`.
    static func day(_ t: Double) -> String {
        var secs = time_t(t.rounded(.down))
        var parts = tm()
        gmtime_r(&secs, &parts)
        return String(format: "%04d-%02d-%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday))
    }

    /// Entries in time order: old ones leave from the front (an index moves; the storage is
    /// compacted now and then), so a check costs the entries that expired, not the whole minute.
    struct Window<E> {
        private var items: [E] = []
        private var head = 0
        var count: Int { items.count - head }
        var first: E? { head < items.count ? items[head] : nil }
        var live: ArraySlice<E> { items[head...] }
        mutating func append(_ e: E) { items.append(e) }
        mutating func drop(while expired: (E) -> Bool) {
            while head < items.count, expired(items[head]) { head += 1 }
            if head > 64 && head * 2 > items.count { items.removeFirst(head); head = 0 }
        }
    }

    static func nextMidnight(_ t: Double) -> Double { ((t / 86400).rounded(.down) + 1) * 86400 }
}
