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

    func testAskAnswersWithSourcesOrSaysItDoesNotKnowAndIsAudited() throws {
        let dir = try makeTemporaryDirectory("rag-ask")
        defer { try? FileManager.default.removeItem(at: dir) }
        let docs = dir.path + "/docs"
        try FileManager.default.copyItem(atPath: TestPaths.fixture("rag/docs"), toPath: docs)
        let db = dir.path + "/steward.db"
        XCTAssertEqual(steward(["rag", "ingest", "--db", db, "--collection", "kb", docs]).code, 0)

        // Nothing relevant: no model is loaded (a model that does not exist is never touched).
        var r = steward(["rag", "ask", "--db", db, "--collection", "kb", "--model", "/nonexistent.gguf", "Who", "won", "the", "1998", "FIFA", "World", "Cup?"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.hasPrefix("I don't know: nothing in 'kb' answers this question"), r.out)

        r = steward(["rag", "ask", "--db", db, "--collection", "kb", "--json", "-n", "32", "How do honey bees tell each other where flowers are?"])
        XCTAssertEqual(r.code, 0, r.err)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
        XCTAssertEqual(o["found"] as? Bool, true)
        XCTAssertFalse((o["answer"] as? String ?? "").isEmpty)
        let cites = try XCTUnwrap(o["citations"] as? [[String: Any]])
        XCTAssertEqual(cites.first?["file"] as? String, "bees.md")
        XCTAssertTrue((cites.first?["text"] as? String ?? "").contains("waggle"))

        r = steward(["rag", "ask", "--db", db, "--collection", "kb", "-n", "32", "How do honey bees tell each other where flowers are?"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("Sources") || r.out.contains("cites none of the"), r.out)

        // Each of the three retrievals is in the audit log, with its documents.
        r = steward(["audit", "tail", "--db", db, "--format", "jsonl", "-n", "10"])
        XCTAssertEqual(r.code, 0, r.err)
        let retrievals = r.out.split(separator: "\n").filter { $0.contains("\"kind\":\"retrieval\"") }
        XCTAssertEqual(retrievals.count, 3, r.out)
        XCTAssertTrue(retrievals.allSatisfy { $0.contains("\"documents\":") }, r.out)
        XCTAssertEqual(steward(["audit", "verify", "--db", db]).code, 0)

        r = steward(["rag", "ask", "--db", db, "--collection", "nope", "anything"])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("no collection named 'nope'"), r.err)
    }

    func testEvalReportsRecallAndMRR() throws {
        let dir = try makeTemporaryDirectory("rag-eval")
        defer { try? FileManager.default.removeItem(at: dir) }
        let docs = dir.path + "/docs"
        try FileManager.default.copyItem(atPath: TestPaths.fixture("rag/docs"), toPath: docs)
        let db = dir.path + "/steward.db"
        XCTAssertEqual(steward(["rag", "ingest", "--db", db, "--collection", "kb", docs]).code, 0)
        let q = dir.path + "/q.jsonl"
        try """
        {"question": "How does a forager tell her sisters where flowers are?", "document": "bees.md", "answer": "The waggle dance is how a forager tells her sisters"}
        {"question": "What do beekeepers collect at the end of summer?", "document": "bees.md", "answer": "Beekeepers harvest honey from the wax combs in late summer."}

        """.write(toFile: q, atomically: true, encoding: .utf8)
        var r = steward(["rag", "eval", "--db", db, "--collection", "kb", "--questions", q, "--json"])
        XCTAssertEqual(r.code, 0, r.err)
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]], r.out)
        XCTAssertEqual(rows.map { $0["mode"] as? String }, ["vector", "keyword", "hybrid"])
        for row in rows {
            XCTAssertEqual(row["recall"] as? Double, 1.0, "\(row)")
            XCTAssertEqual(row["mrr"] as? Double, 1.0, "\(row)")
        }
        try #"{"question": "x", "document": "bees.md", "answer": "not in the file at all"}"#.write(toFile: q, atomically: true, encoding: .utf8)
        r = steward(["rag", "eval", "--db", db, "--collection", "kb", "--questions", q])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("is not in"), r.err)
    }
}
