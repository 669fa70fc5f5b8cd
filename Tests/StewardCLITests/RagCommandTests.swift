import Foundation
import StewardCLI
import TestSupport
import XCTest

final class RagCommandTests: XCTestCase {
    func testIngestSearchCollectionsDeleteDrop() throws {
        let dir = try makeTemporaryDirectory("rag")
        defer { try? FileManager.default.removeItem(at: dir) }
        let docs = dir.path + "/docs"
        try FileManager.default.copyItem(atPath: TestPaths.fixture("rag/docs"), toPath: docs)
        let db = dir.path + "/steward.db"

        var r = steward(["rag", "ingest", "--db", db, "--collection", "kb", docs])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("4 added"), r.out)
        XCTAssertTrue(r.err.contains("[4/4]"), r.err)

        r = steward(["rag", "search", "--db", db, "--collection", "kb", "-k", "2", "how", "do", "bees", "tell", "others", "where", "flowers", "are"])
        XCTAssertEqual(r.code, 0, r.err)
        let first = r.out.split(separator: "\n").first.map(String.init) ?? ""
        XCTAssertTrue(first.hasPrefix("[1] ") && first.contains("bees.md:1"), r.out)
        XCTAssertTrue(r.out.contains("waggle dance"))

        r = steward(["rag", "search", "--db", db, "--collection", "kb", "--mode", "keyword", "--json", "sourdough"])
        XCTAssertEqual(r.code, 0, r.err)
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]])
        XCTAssertEqual((rows.first?["path"] as? String).map { ($0 as NSString).lastPathComponent }, "sourdough.html")
        let docID = try XCTUnwrap(rows.first?["document_id"] as? Int)

        r = steward(["rag", "collections", "--db", db])
        XCTAssertTrue(r.out.hasPrefix("kb\t4 documents"), r.out)

        r = steward(["rag", "delete", "--db", db, "--collection", "kb", "--document", "\(docID)"])
        XCTAssertEqual(r.code, 0, r.err)
        r = steward(["rag", "delete", "--db", db, "--collection", "kb", docs + "/bees.md"])
        XCTAssertEqual(r.code, 0, r.err)
        r = steward(["rag", "search", "--db", db, "--collection", "kb", "--mode", "keyword", "sourdough waggle"])
        XCTAssertEqual(r.out, "")
        XCTAssertTrue(steward(["rag", "collections", "--db", db]).out.hasPrefix("kb\t2 documents"))

        r = steward(["rag", "search", "--db", db, "--collection", "kb", "--mode", "fuzzy", "x"])
        XCTAssertEqual(r.code, 2)
        r = steward(["rag", "drop", "--db", db, "--collection", "kb"])
        XCTAssertEqual(r.code, 0, r.err)
        r = steward(["rag", "search", "--db", db, "--collection", "kb", "x"])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("no collection named 'kb'"), r.err)
    }
}
