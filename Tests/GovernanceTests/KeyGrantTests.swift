import Foundation
import XCTest
import Governance

/// RAG collections granted to API keys: a key retrieves only from what it was granted.
final class KeyGrantTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("steward-grants-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func store() throws -> KeyStore { try KeyStore(storage: SQLiteStorage(path: dir.appendingPathComponent("steward.db").path)) }

    func testCollectionsAreGrantedRevokedAndKept() throws {
        let s = try store()
        var k = NewKey(name: "analyst")
        k.scopes = [.chat, .rag]
        k.collections = ["handbook", " hr ", "handbook"]
        let (r, _) = try s.create(k)
        XCTAssertEqual(r.collections, ["handbook", "hr"])
        XCTAssertTrue(r.allows(collection: "hr"))
        XCTAssertFalse(r.allows(collection: "finance"))

        // A new connection (another process) reads the same grants.
        XCTAssertEqual(try store().find("analyst").collections, ["handbook", "hr"])
        var g = try s.grant("analyst", collections: ["finance"])
        XCTAssertEqual(g.collections, ["finance", "handbook", "hr"])
        g = try s.grant(r.id, collections: ["hr", "handbook"], revoke: true)
        XCTAssertEqual(g.collections, ["finance"])
        XCTAssertEqual(try store().snapshot().keys[r.id]?.collections, ["finance"], "the snapshot servers use sees the change")
        g = try s.grant("analyst", collections: ["*"])
        XCTAssertEqual(g.collections, ["*"])
        XCTAssertTrue(g.allows(collection: "anything"))
        g = try s.grant("analyst", collections: ["*"], revoke: true)
        XCTAssertEqual(g.collections, [])
        XCTAssertFalse(g.allows(collection: "finance"))
    }

    func testGrantsNeedTheRagScopeAndValidNames() throws {
        let s = try store()
        var k = NewKey(name: "chatty")
        k.collections = ["handbook"]
        XCTAssertThrowsError(try s.create(k)) { XCTAssertTrue("\($0)".contains("'rag' scope"), "\($0)") }
        k.scopes = [.rag]
        k.collections = ["bad name!"]
        XCTAssertThrowsError(try s.create(k)) { XCTAssertTrue("\($0)".contains("not a collection name"), "\($0)") }
        let (plain, _) = try s.create(NewKey(name: "plain"))
        XCTAssertEqual(plain.collections, [], "no collection unless granted")
        XCTAssertThrowsError(try s.grant("plain", collections: ["handbook"])) { XCTAssertTrue("\($0)".contains("'rag' scope")) }
        // A rag key with nothing granted sees nothing; the scope alone is not a grant.
        var r = NewKey(name: "rag-only")
        r.scopes = [.rag]
        XCTAssertFalse(try s.create(r).record.allows(collection: "handbook"))
    }

    func testGrantChangesAreAudited() throws {
        let s = try store()
        final class Recorder: @unchecked Sendable { var actions: [(String, [String: String])] = [] }
        let rec = Recorder()
        s.adminRecorder = { action, _, _, details in rec.actions.append((action, details)) }
        var k = NewKey(name: "a")
        k.scopes = [.rag]
        k.collections = ["x"]
        _ = try s.create(k)
        try s.grant("a", collections: ["y"])
        try s.grant("a", collections: ["x"], revoke: true)
        XCTAssertEqual(rec.actions.map(\.0), ["key.create", "key.collections.grant", "key.collections.revoke"])
        XCTAssertEqual(rec.actions[0].1["collections"], "x")
        XCTAssertEqual(rec.actions[2].1["now"], "y")
    }
}
