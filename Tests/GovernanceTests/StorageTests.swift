import Foundation
import Governance
import XCTest

final class StorageTests: XCTestCase {
    private func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "steward-storage-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func testDatabaseFilesAreOwnerOnlyAndInWALMode() throws {
        let path = try tempDir() + "/sub/steward.db"
        let db = try SQLiteStorage(path: path)
        try db.execute("CREATE TABLE t (x INTEGER)")
        try db.execute("INSERT INTO t VALUES (?)", .integer(1))
        let mode = try db.query("PRAGMA journal_mode")
        XCTAssertEqual(mode.first?["journal_mode"]?.string, "wal")
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            let perms = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
            XCTAssertEqual(perms, 0o600, file)
        }
        let dirPerms = try FileManager.default.attributesOfItem(atPath: (path as NSString).deletingLastPathComponent)[.posixPermissions] as? Int
        XCTAssertEqual(dirPerms, 0o700)
    }

    func testValuesRoundTrip() throws {
        let db = try SQLiteStorage(path: ":memory:")
        try db.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)")
        try db.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", .integer(-7), .real(2.5), .text("héllo ✓"), .blob(Data([0, 1, 255])), .null)
        let row = try XCTUnwrap(db.query("SELECT * FROM t").first)
        XCTAssertEqual(row["i"], .integer(-7))
        XCTAssertEqual(row["r"], .real(2.5))
        XCTAssertEqual(row["s"], .text("héllo ✓"))
        XCTAssertEqual(row["b"], .blob(Data([0, 1, 255])))
        XCTAssertEqual(row["n"], .null)
    }

    func testMigrationsApplyOnceInOrderAndRefuseANewerDatabase() throws {
        let path = try tempDir() + "/m.db"
        do {
            let db = try SQLiteStorage(path: path)
            try db.migrate(component: "widgets", steps: ["CREATE TABLE widgets (id INTEGER PRIMARY KEY)"])
            XCTAssertEqual(try db.schemaVersion(component: "widgets"), 1)
        }
        let db = try SQLiteStorage(path: path)
        // Re-running step 1 would fail (table exists): it must be skipped; step 2 applies.
        try db.migrate(component: "widgets", steps: ["CREATE TABLE widgets (id INTEGER PRIMARY KEY)",
                                                     "ALTER TABLE widgets ADD COLUMN name TEXT"])
        XCTAssertEqual(try db.schemaVersion(component: "widgets"), 2)
        try db.execute("INSERT INTO widgets (name) VALUES (?)", .text("a"))
        XCTAssertThrowsError(try db.migrate(component: "widgets", steps: ["CREATE TABLE widgets (id INTEGER PRIMARY KEY)"])) { error in
            XCTAssertTrue("\(error)".contains("newer than this steward"), "\(error)")
        }
    }

    func testFailedMigrationStepRollsBackAndSaysWhich() throws {
        let db = try SQLiteStorage(path: ":memory:")
        XCTAssertThrowsError(try db.migrate(component: "bad", steps: ["CREATE TABLE a (x INTEGER)", "CREATE TABLE b (x INTEGER); SELEC nonsense"])) { error in
            XCTAssertTrue("\(error)".contains("bad schema to version 2"), "\(error)")
        }
        XCTAssertEqual(try db.schemaVersion(component: "bad"), 1)
        XCTAssertTrue(try db.query("SELECT name FROM sqlite_master WHERE name = 'b'").isEmpty, "step 2 was rolled back")
    }

    func testTransactionRollsBackOnThrowAndNests() throws {
        struct Boom: Error {}
        let db = try SQLiteStorage(path: ":memory:")
        try db.execute("CREATE TABLE t (x INTEGER)")
        XCTAssertThrowsError(try db.transaction {
            try db.execute("INSERT INTO t VALUES (1)")
            try db.transaction { try db.execute("INSERT INTO t VALUES (2)") }
            throw Boom()
        })
        XCTAssertEqual(try db.query("SELECT COUNT(*) AS n FROM t").first?["n"], .integer(0))
        try db.transaction { try db.execute("INSERT INTO t VALUES (3)") }
        XCTAssertEqual(try db.query("SELECT COUNT(*) AS n FROM t").first?["n"], .integer(1))
    }

    func testBadSQLAndParameterCountAreErrorsNotCrashes() throws {
        let db = try SQLiteStorage(path: ":memory:")
        XCTAssertThrowsError(try db.execute("SELEC 1"))
        XCTAssertThrowsError(try db.query("SELECT ?", .integer(1), .integer(2)))
    }

    func testPrivateFileIsOwnerOnly() throws {
        let path = try tempDir() + "/secret.txt"
        try StewardPaths.writePrivateFile(Data("x".utf8), to: path)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int, 0o600)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "x")
    }
}
