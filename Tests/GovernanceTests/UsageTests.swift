import Foundation
import XCTest
import Governance

final class UsageTests: XCTestCase {
    func info(key: String?, model: String?, status: Int = 200, tin: Int, tout: Int) -> AuditRequestInfo {
        AuditRequestInfo(requestID: RequestIDs.next(), keyID: key, route: "/v1/completions", method: "POST", model: model,
                         status: status, tokensIn: tin, tokensOut: tout)
    }

    enum RequestIDs {
        nonisolated(unsafe) static var n = 0
        static func next() -> String { n += 1; return "req_\(n)" }
    }

    func testUsageFollowsEveryRequestRecord() throws {
        let s = try SQLiteStorage(path: ":memory:")
        let ledger = try UsageLedger(storage: s)
        let log = try AuditLog(storage: s, usage: ledger)
        try log.recordRequest(info(key: "k1", model: "a", tin: 100, tout: 50))
        try log.recordRequest(info(key: "k1", model: "a", tin: 10, tout: 5))
        try log.recordRequest(info(key: "k1", model: "b", status: 400, tin: 0, tout: 0))
        try log.recordRequest(info(key: "k2", model: "a", tin: 1000, tout: 2000))
        try log.recordRequest(info(key: nil, model: "b", tin: 7, tout: 3))
        try log.recordRequest(info(key: "k1", model: nil, status: 404, tin: 0, tout: 0))  // no model: not usage
        try log.recordAdmin(action: "keys.create", keyID: nil, target: "k3")

        let byKey = try ledger.report(by: .key)
        XCTAssertEqual(byKey.map(\.group), ["", "k1", "k2"])
        let k1 = try XCTUnwrap(byKey.first { $0.group == "k1" })
        XCTAssertEqual(k1.requests, 3)
        XCTAssertEqual(k1.errors, 1)
        XCTAssertEqual(k1.tokensIn, 110)
        XCTAssertEqual(k1.tokensOut, 55)
        XCTAssertNil(k1.cost, "no prices configured")

        let byModel = try ledger.report(by: .model)
        XCTAssertEqual(byModel.map(\.group), ["a", "b"])
        XCTAssertEqual(byModel[0].tokensIn, 1110)
        XCTAssertEqual(byModel[0].requests, 3)
        XCTAssertEqual(byModel[1].requests, 2)

        let today = String(AuditTime.now().prefix(10))
        let byDay = try ledger.report(by: .day)
        XCTAssertEqual(byDay.map(\.group), [today])
        XCTAssertEqual(byDay[0].requests, 5)
        XCTAssertTrue(try ledger.report(by: .day, since: "2999-01-01").isEmpty)
        XCTAssertEqual(try ledger.report(by: .day, since: today).count, 1)
    }

    func testCostFromPrices() throws {
        let s = try SQLiteStorage(path: ":memory:")
        let ledger = try UsageLedger(storage: s)
        let log = try AuditLog(storage: s, usage: ledger)
        try log.recordRequest(info(key: "k1", model: "a", tin: 2000, tout: 1000))
        try log.recordRequest(info(key: "k1", model: "b", tin: 1000, tout: 1000))
        let prices = try UsagePolicy(section: ["currency": "EUR", "cost_per_1k_tokens": [
            "default": ["input": 0.5, "output": 1.0], "a": ["input": 0.1, "output": 0.2]]])
        XCTAssertEqual(prices.currency, "EUR")
        let byKey = try ledger.report(by: .key, prices: prices)
        // a: 2 × 0.1 + 1 × 0.2 = 0.4; b (default): 1 × 0.5 + 1 × 1.0 = 1.5
        XCTAssertEqual(try XCTUnwrap(byKey.first?.cost), 1.9, accuracy: 1e-9)
        let byModel = try ledger.report(by: .model, prices: prices)
        XCTAssertEqual(try XCTUnwrap(byModel[0].cost), 0.4, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(byModel[1].cost), 1.5, accuracy: 1e-9)
    }

    func testPolicyErrorsNameTheKey() {
        XCTAssertThrowsError(try UsagePolicy(section: ["cost": 1])) { XCTAssertTrue("\($0)".contains("'cost'"), "\($0)") }
        XCTAssertThrowsError(try UsagePolicy(section: ["cost_per_1k_tokens": ["a": ["inputs": 1]]])) { XCTAssertTrue("\($0)".contains("'inputs'"), "\($0)") }
        XCTAssertThrowsError(try UsagePolicy(section: ["cost_per_1k_tokens": ["a": ["input": -1]]]))
        XCTAssertThrowsError(try UsagePolicy(section: ["cost_per_1k_tokens": ["a": ["input": "x"]]]))
    }

    /// Usage is written in the audit append's transaction: when the usage update fails, the
    /// audit record is rolled back with it (and the next append continues the chain).
    func testUsageIsInTheSameTransaction() throws {
        let s = try SQLiteStorage(path: ":memory:")
        let ledger = try UsageLedger(storage: s)
        let log = try AuditLog(storage: s, usage: ledger)
        try log.recordRequest(info(key: "k", model: "a", tin: 1, tout: 1))
        try s.execute("CREATE TRIGGER fail_usage BEFORE UPDATE ON usage_daily BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END")
        XCTAssertThrowsError(try log.recordRequest(info(key: "k", model: "a", tin: 1, tout: 1)))
        XCTAssertEqual(try log.tail(10).count, 1)
        try s.execute("DROP TRIGGER fail_usage")
        try log.recordRequest(info(key: "k", model: "a", tin: 1, tout: 1))
        XCTAssertEqual(try log.tail(10).map(\.seq), [1, 2])
        XCTAssertEqual(try ledger.report(by: .key).first?.requests, 2)
        XCTAssertTrue(try log.verify(trustedKey: nil).ok)
    }
}
