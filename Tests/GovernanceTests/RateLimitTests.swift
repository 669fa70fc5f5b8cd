import Foundation
import XCTest
import Governance

final class RateLimitTests: XCTestCase {
    func key(_ id: String = "aaaaaaaaaaaa", rpm: Int? = nil, tpm: Int? = nil, daily: Int? = nil) -> KeyRecord {
        KeyRecord(id: id, name: "k", scopes: [.chat], models: nil, rpm: rpm, tpm: tpm, dailyTokens: daily, expires: nil,
                  moderationPolicy: nil, created: Date(), lastUsed: nil, revoked: nil)
    }

    func testRequestsPerMinuteSlidingWindow() throws {
        let l = try RateLimiter(storage: nil)
        let k = key(rpm: 3)
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        XCTAssertEqual(l.admit(k, now: t0), .allowed)
        XCTAssertEqual(l.admit(k, now: t0 + 10), .allowed)
        XCTAssertEqual(l.admit(k, now: t0 + 20), .allowed)
        // The fourth within the minute: wait until the first (t0) leaves the window at t0+60.
        guard case let .limited(retry, reason) = l.admit(k, now: t0 + 30) else { return XCTFail("4th request in a minute") }
        XCTAssertEqual(retry, 30)
        XCTAssertTrue(reason.contains("3 per minute"), reason)
        // A refused request does not count: at t0+60.5 one slot is free again.
        XCTAssertEqual(l.admit(k, now: t0 + 60.5), .allowed)
        guard case .limited = l.admit(k, now: t0 + 61) else { return XCTFail() }
        // Another key has its own window; a key without limits is never limited.
        XCTAssertEqual(l.admit(key("bbbbbbbbbbbb", rpm: 1), now: t0 + 30), .allowed)
        for _ in 0..<100 { XCTAssertEqual(l.admit(key("cccccccccccc"), now: t0), .allowed) }
    }

    func testTokensPerMinute() throws {
        let l = try RateLimiter(storage: nil)
        let k = key(tpm: 100)
        let t0 = Date(timeIntervalSince1970: 2_000_000)
        XCTAssertEqual(l.admit(k, now: t0), .allowed)
        l.record(tokens: 60, for: k, now: t0)
        XCTAssertEqual(l.admit(k, now: t0 + 5), .allowed, "under the budget: the request may start")
        l.record(tokens: 50, for: k, now: t0 + 10)
        // 110 ≥ 100: refused until the first 60 tokens age out (t0+60), leaving 50 < 100.
        guard case let .limited(retry, reason) = l.admit(k, now: t0 + 20) else { return XCTFail("over the token budget") }
        XCTAssertEqual(retry, 40)
        XCTAssertTrue(reason.contains("token"), reason)
        XCTAssertEqual(l.admit(k, now: t0 + 60.1), .allowed)
    }

    func testDailyTokensSurviveARestart() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("steward-limits-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("steward.db").path
        let k = key(daily: 1000)
        // 2001-09-09T01:46:40Z; midnight UTC after it is 2001-09-10T00:00:00Z (1000080000).
        let t = Date(timeIntervalSince1970: 1_000_000_000)
        do {
            let l = try RateLimiter(storage: SQLiteStorage(path: path))
            XCTAssertEqual(l.admit(k, now: t), .allowed)
            l.record(tokens: 600, for: k, now: t)
            l.record(tokens: 500, for: k, now: t + 1)
            XCTAssertEqual(l.tokensToday(k.id, now: t), 1100)
        }
        // A new process on the same database: the day's total is still there.
        let again = try RateLimiter(storage: SQLiteStorage(path: path))
        XCTAssertEqual(again.tokensToday(k.id, now: t + 2), 1100)
        guard case let .limited(retry, reason) = again.admit(k, now: t + 2) else { return XCTFail("over the daily budget") }
        XCTAssertEqual(retry, 1_000_080_000 - 1_000_000_002)
        XCTAssertTrue(reason.contains("daily"), reason)
        // The next UTC day starts fresh.
        XCTAssertEqual(again.admit(k, now: Date(timeIntervalSince1970: 1_000_080_000)), .allowed)
        XCTAssertEqual(again.tokensToday(k.id, now: Date(timeIntervalSince1970: 1_000_080_000)), 0)
    }
}
