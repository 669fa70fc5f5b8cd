import Foundation
import XCTest
import Governance

final class KeyStoreTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("steward-keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    var dbPath: String { dir.appendingPathComponent("steward.db").path }

    func store() throws -> KeyStore { try KeyStore(storage: SQLiteStorage(path: dbPath)) }

    func testCreateGivesAHighEntropyKeyStoredOnlyAsAHash() throws {
        let s = try store()
        let (record, key) = try s.create(NewKey(name: "ci"))
        // sk-stw-<12 hex id>-<43 base64url chars = 32 bytes>
        let parts = key.split(separator: "-", maxSplits: 3).map(String.init)
        XCTAssertEqual(parts.count, 4, key.replacingOccurrences(of: parts.last ?? "", with: "…"))
        XCTAssertEqual(parts[0] + "-" + parts[1] + "-", "sk-stw-")
        XCTAssertEqual(parts[2], record.id)
        XCTAssertEqual(record.id.count, 12)
        let secret = parts[3]
        XCTAssertEqual(secret.count, 43)
        let b64 = secret.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "="
        XCTAssertEqual(Data(base64Encoded: b64)?.count, 32)
        XCTAssertEqual(record.scopes, [.chat, .completions, .embeddings], "default scopes: no admin")
        XCTAssertNil(record.models)
        // Two keys never share a secret; the file never holds one.
        let (_, key2) = try s.create(NewKey(name: "ci2"))
        XCTAssertNotEqual(key, key2)
        for path in [dbPath, dbPath + "-wal"] {
            guard let bytes = FileManager.default.contents(atPath: path) else { continue }
            XCTAssertNil(bytes.range(of: Data(secret.utf8)), "the secret is in \(path)")
            XCTAssertNil(bytes.range(of: Data(key2.utf8)), "a key is in \(path)")
        }
        // What is stored is SHA-256(secret).
        let rows = try s.storage.query("SELECT secret_sha256 FROM api_keys WHERE id = ?", .text(record.id))
        XCTAssertEqual(rows.first?["secret_sha256"]?.data, Data(Secrets.sha256Hex(Data(secret.utf8)).utf8))
    }

    func testCheck() throws {
        let s = try store()
        let (record, key) = try s.create(NewKey(name: "app"))
        XCTAssertEqual(try s.check(key), .valid(record))
        // One character of the secret changed, a missing piece, another id, garbage: all unknown.
        var wrong = Array(key)
        wrong[wrong.count - 1] = wrong.last == "A" ? "B" : "A"
        XCTAssertEqual(try s.check(String(wrong)), .unknown)
        XCTAssertEqual(try s.check(String(key.dropLast())), .unknown)
        XCTAssertEqual(try s.check(key.replacingOccurrences(of: record.id, with: "000000000000")), .unknown)
        XCTAssertEqual(try s.check("sk-stw-"), .unknown)
        XCTAssertEqual(try s.check(""), .unknown)
        XCTAssertEqual(try s.check("Bearer " + key), .unknown)
    }

    func testRevokeFromAnotherConnectionIsSeenOnTheNextCheck() throws {
        let server = try store()
        let (record, key) = try server.create(NewKey(name: "app"))
        XCTAssertEqual(try server.check(key), .valid(record))
        let versionBefore = try server.snapshot().version
        // The CLI: another process, another connection to the same file.
        let cli = try store()
        let revoked = try cli.revoke("app")
        XCTAssertEqual(revoked.id, record.id)
        XCTAssertNotNil(revoked.revoked)
        guard case let .revoked(r) = try server.check(key) else { return XCTFail("a revoked key must be refused") }
        XCTAssertEqual(r.state(), .revoked)
        XCTAssertGreaterThan(try server.snapshot().version, versionBefore)
        XCTAssertTrue(try server.snapshot().requiresKeys, "a revoked key still keeps authentication on")
        // Revoking twice is harmless; rotating a revoked key is refused.
        XCTAssertNoThrow(try cli.revoke(record.id))
        XCTAssertThrowsError(try cli.rotate(record.id))
    }

    func testRotateKeepsIdNameAndLimitsAndKillsTheOldSecret() throws {
        let s = try store()
        var k = NewKey(name: "svc")
        k.scopes = [.chat, .admin]
        k.models = ["a", "b"]
        k.rpm = 10; k.tpm = 1000; k.dailyTokens = 50000
        k.moderationPolicy = "strict"
        let (record, old) = try s.create(k)
        let (rotated, new) = try s.rotate(record.id)
        XCTAssertNotEqual(old, new)
        XCTAssertEqual(rotated.id, record.id)
        XCTAssertTrue(new.hasPrefix("sk-stw-\(record.id)-"))
        XCTAssertEqual(try s.check(old), .unknown)
        guard case let .valid(r) = try s.check(new) else { return XCTFail("the new key must work") }
        XCTAssertEqual(r.name, "svc"); XCTAssertEqual(r.scopes, [.chat, .admin]); XCTAssertEqual(r.models, ["a", "b"])
        XCTAssertEqual(r.rpm, 10); XCTAssertEqual(r.tpm, 1000); XCTAssertEqual(r.dailyTokens, 50000)
        XCTAssertEqual(s.moderationPolicy(forKeyID: r.id), "strict")
        // By name too.
        let (_, third) = try s.rotate("svc")
        XCTAssertEqual(try s.check(new), .unknown)
        if case .valid = try s.check(third) {} else { XCTFail("rotate by name") }
    }

    func testExpiry() throws {
        let s = try store()
        var k = NewKey(name: "short")
        let now = Date()
        k.expires = now.addingTimeInterval(60)
        let (record, key) = try s.create(k, now: now)
        if case .valid = try s.check(key, now: now) {} else { XCTFail("valid before expiry") }
        guard case .expired = try s.check(key, now: now.addingTimeInterval(61)) else { return XCTFail("expired after") }
        XCTAssertEqual(record.state(at: now.addingTimeInterval(61)), .expired)
        var past = NewKey(name: "past")
        past.expires = now.addingTimeInterval(-1)
        XCTAssertThrowsError(try s.create(past, now: now))
    }

    func testParseExpiry() throws {
        let utc = TimeZone(identifier: "UTC")!
        var c = Calendar(identifier: .gregorian); c.timeZone = utc
        XCTAssertEqual(try KeyStore.parseExpiry("2030-01-31"), c.date(from: DateComponents(year: 2030, month: 1, day: 31)))
        XCTAssertEqual(try KeyStore.parseExpiry("2030-01-31T18:30:00Z"), c.date(from: DateComponents(year: 2030, month: 1, day: 31, hour: 18, minute: 30)))
        XCTAssertEqual(try KeyStore.parseExpiry("2030-01-31T18:30:00+02:00"), c.date(from: DateComponents(year: 2030, month: 1, day: 31, hour: 16, minute: 30)))
        XCTAssertEqual(try KeyStore.parseExpiry("2030-01-31T18:30:00"), c.date(from: DateComponents(year: 2030, month: 1, day: 31, hour: 18, minute: 30)))
        XCTAssertThrowsError(try KeyStore.parseExpiry("next tuesday"))
        XCTAssertThrowsError(try KeyStore.parseExpiry("2030-13-45"))
    }

    func testValidation() throws {
        let s = try store()
        _ = try s.create(NewKey(name: "dup"))
        XCTAssertThrowsError(try s.create(NewKey(name: "dup"))) { XCTAssertEqual($0 as? KeyError, .duplicateName("dup")) }
        XCTAssertThrowsError(try s.create(NewKey(name: " ")))
        XCTAssertThrowsError(try s.create(NewKey(name: "0123456789ab")), "a name that looks like an id")
        var bad = NewKey(name: "zero"); bad.rpm = 0
        XCTAssertThrowsError(try s.create(bad))
        XCTAssertThrowsError(try KeyScope.parseList("chat,root")) { XCTAssertTrue("\($0)".contains("root")) }
        XCTAssertEqual(try KeyScope.parseList("admin, chat,chat"), [.chat, .admin])
        XCTAssertThrowsError(try s.revoke("nobody")) { XCTAssertEqual($0 as? KeyError, .notFound("nobody")) }
    }

    func testListAndFind() throws {
        let s = try store()
        let a = try s.create(NewKey(name: "a"), now: Date(timeIntervalSinceNow: -10)).record
        let b = try s.create(NewKey(name: "b")).record
        XCTAssertEqual(try s.list().map(\.id), [a.id, b.id])
        XCTAssertEqual(try s.find("b").id, b.id)
        XCTAssertEqual(try s.find(a.id).name, "a")
        s.touch(a.id)
        XCTAssertNotNil(try s.find(a.id).lastUsed)
    }

    func testDisabledModels() throws {
        let s = try store()
        let v0 = try s.snapshot().version
        try s.disableModel("m1", reason: "incident 42")
        let other = try store()
        XCTAssertEqual(try other.snapshot().disabledModels, ["m1"])
        XCTAssertGreaterThan(try s.snapshot().version, v0)
        XCTAssertFalse(try s.snapshot().requiresKeys, "disabling a model does not turn authentication on")
        XCTAssertTrue(try other.enableModel("m1"))
        XCTAssertFalse(try other.enableModel("m1"))
        XCTAssertEqual(try s.snapshot().disabledModels, [])
    }

    func testAdminActionsReachTheRecorder() throws {
        let s = try store()
        final class Log: @unchecked Sendable { var lines: [String] = []; let lock = NSLock() }
        let log = Log()
        s.adminRecorder = { action, actor, target, _ in log.lock.lock(); log.lines.append("\(action) \(actor ?? "-") \(target ?? "-")"); log.lock.unlock() }
        let r = try s.create(NewKey(name: "x")).record
        _ = try s.rotate("x", by: "admin1")
        try s.revoke("x", by: "admin1")
        try s.disableModel("m", by: "admin1")
        try s.enableModel("m", by: "admin1")
        XCTAssertEqual(log.lines, ["key.create - \(r.id)", "key.rotate admin1 \(r.id)", "key.revoke admin1 \(r.id)", "model.disable admin1 m", "model.enable admin1 m"])
    }

    /// The per-request cost of the check: snapshot (one indexed read) + parse + SHA-256 +
    /// constant-time compare. Printed for the report; asserted loosely (debug builds are slow).
    func testCheckCost() throws {
        let s = try store()
        for i in 0..<50 { _ = try s.create(NewKey(name: "k\(i)")) }
        let (_, key) = try s.create(NewKey(name: "probe"))
        _ = try s.check(key)
        let n = 2000
        let t0 = Date()
        for _ in 0..<n { guard case .valid = try s.check(key) else { return XCTFail() } }
        let perCheck = Date().timeIntervalSince(t0) / Double(n)
        let snap = try s.snapshot()
        let t1 = Date()
        for _ in 0..<n { _ = KeyStore.check(key, in: snap) }
        let verifyOnly = Date().timeIntervalSince(t1) / Double(n)
        print(String(format: "key check: %.1f µs per request (snapshot read + verify), %.1f µs verify only, 51 keys", perCheck * 1e6, verifyOnly * 1e6))
        XCTAssertLessThan(perCheck, 0.001)
    }
}
