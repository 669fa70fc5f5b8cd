import Foundation
import Generation
import Governance
import Retrieval
import TestSupport
import XCTest

/// One MiniLM for the whole test class (loading it is the slow part).
nonisolated(unsafe) private var sharedEmbedder: Embedder?

final class IngestSearchTests: XCTestCase {
    var dir = ""

    func embedder() throws -> Embedder {
        if let e = sharedEmbedder { return e }
        let e = try Embedder(directory: try TestPaths.model("all-minilm-l6-v2"))
        sharedEmbedder = e
        return e
    }

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "rag-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: TestPaths.fixture("rag/docs"), toPath: dir + "/docs")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func setUp(_ name: String = "kb") throws -> (RAGStore, Ingestor, Retriever) {
        let store = try RAGStore(path: dir + "/steward.db")
        let e = try embedder()
        return (store, Ingestor(store: store, embedder: e, embeddingModel: "all-minilm-l6-v2"), Retriever(store: store, embedder: e))
    }

    func top(_ r: Retriever, _ q: String, _ mode: SearchMode) throws -> String {
        let hits = try r.search(q, collection: "kb", mode: mode, k: 3)
        return (hits.first?.path as NSString?)?.lastPathComponent ?? "(none)"
    }

    func testIngestAndSearchInAllModes() throws {
        let (store, ingestor, retriever) = try setUp()
        var events: [IngestEvent] = []
        let report = try ingestor.ingest(collection: "kb", paths: [dir + "/docs"]) { events.append($0) }
        XCTAssertEqual(report.added.count, 4, "\(report)")
        XCTAssertEqual(report.failed, [])
        XCTAssertEqual(events.count, 8)
        let c = try store.requireCollection("kb")
        XCTAssertEqual(c.documents, 4)
        XCTAssertEqual(c.dimension, 384)

        let cases: [(String, String, String)] = [
            ("how do worker bees tell each other where flowers are", "waggle dance forager", "bees.md"),
            ("what happens when a mountain erupts and lava flows", "magma lava eruption", "volcanoes.txt"),
            ("how to bake bread with a wild yeast culture", "sourdough starter", "sourdough.html"),
            ("code that computes prime numbers", "sieve Eratosthenes", "primes.py"),
        ]
        for (question, keywords, expected) in cases {
            XCTAssertEqual(try top(retriever, question, .vector), expected, question)
            XCTAssertEqual(try top(retriever, keywords, .keyword), expected, keywords)
            XCTAssertEqual(try top(retriever, question, .hybrid), expected, question)
        }
        // HTML script and style text are not ingested.
        XCTAssertEqual(try retriever.search("tracking", collection: "kb", mode: .keyword, k: 3), [])
        let hit = try XCTUnwrap(retriever.search("waggle dance", collection: "kb", mode: .hybrid, k: 1).first)
        XCTAssertTrue(hit.path.hasSuffix("/docs/bees.md"))
        XCTAssertEqual(hit.line, 1)
        XCTAssertNotNil(hit.keywordRank)
        XCTAssertNotNil(hit.vectorRank)
        XCTAssertTrue(hit.text.contains("waggle dance"))
    }

    func testReingestSkipsUnchangedReplacesChangedDeletesRemoved() throws {
        let (store, ingestor, retriever) = try setUp()
        _ = try ingestor.ingest(collection: "kb", paths: [dir + "/docs"])
        let before = try store.documents(in: store.requireCollection("kb"))

        var again = try ingestor.ingest(collection: "kb", paths: [dir + "/docs"])
        XCTAssertEqual(again.unchanged.count, 4)
        XCTAssertEqual(again.added + again.replaced + again.removed, [])
        XCTAssertEqual(try store.documents(in: store.requireCollection("kb")), before)

        try "Glaciers are slow rivers of ice that carve U-shaped valleys.".write(toFile: dir + "/docs/volcanoes.txt", atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: dir + "/docs/notes/primes.py")
        again = try ingestor.ingest(collection: "kb", paths: [dir + "/docs"])
        XCTAssertEqual(again.replaced.map { ($0 as NSString).lastPathComponent }, ["volcanoes.txt"])
        XCTAssertEqual(again.removed.map { ($0 as NSString).lastPathComponent }, ["primes.py"])
        XCTAssertEqual(again.unchanged.count, 2)
        XCTAssertEqual(try store.requireCollection("kb").documents, 3)
        XCTAssertEqual(try retriever.search("magma", collection: "kb", mode: .keyword, k: 3), [])
        XCTAssertEqual(try retriever.search("Eratosthenes", collection: "kb", mode: .keyword, k: 3), [])
        XCTAssertEqual(try top(retriever, "glaciers of ice carving valleys", .vector), "volcanoes.txt")
    }

    func testErasureLeavesNoChunkFTSOrVector() throws {
        let (store, ingestor, retriever) = try setUp()
        _ = try ingestor.ingest(collection: "kb", paths: [dir + "/docs"])
        retriever.hnswThreshold = 1  // use (and persist) the HNSW index too
        XCTAssertEqual(try top(retriever, "waggle dance of bees", .vector), "bees.md")
        let c = try store.requireCollection("kb")
        let indexFile = try XCTUnwrap(store.indexPath(collectionID: c.id))
        XCTAssertTrue(FileManager.default.fileExists(atPath: indexFile))
        let perms = try FileManager.default.attributesOfItem(atPath: indexFile)[.posixPermissions] as? Int
        XCTAssertEqual(perms, 0o600)

        let doc = try XCTUnwrap(store.documents(in: c).first { $0.path.hasSuffix("bees.md") })
        let chunkIDs = try retriever.search("bees honey queen waggle", collection: "kb", mode: .keyword, k: 50)
            .filter { $0.documentID == doc.id }.map(\.chunkID)
        XCTAssertFalse(chunkIDs.isEmpty)
        try store.deleteDocument(id: doc.id, in: c)

        // Not a byte of the erased text is left in the database or its write-ahead log.
        for file in [dir + "/steward.db", dir + "/steward.db-wal"] {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
            XCTAssertNil(bytes.range(of: Data("waggle".utf8)), "\(file) still holds the erased text")
        }
        let left = try store.remnants(documentID: doc.id, chunkIDs: chunkIDs)
        XCTAssertEqual(left.documents, 0); XCTAssertEqual(left.chunks, 0); XCTAssertEqual(left.fts, 0)
        let vectors = try store.vectors(of: store.requireCollection("kb"))
        XCTAssertTrue(Set(vectors.ids).isDisjoint(with: chunkIDs))
        XCTAssertFalse(FileManager.default.fileExists(atPath: indexFile), "the saved index held the erased vectors")
        for mode in SearchMode.allCases {
            XCTAssertFalse(try retriever.search("waggle dance of honey bees", collection: "kb", mode: mode, k: 10)
                .contains { $0.documentID == doc.id }, "\(mode)")
        }
        // The rebuilt index has no node for the erased chunks.
        let rebuilt = try retriever.hnsw(store.requireCollection("kb"))
        XCTAssertTrue(Set(rebuilt.ids).isDisjoint(with: chunkIDs))
        XCTAssertEqual(rebuilt.count, vectors.count)
    }

    func testUnreadableFileIsReportedAndTheRestIngested() throws {
        let (store, ingestor, _) = try setUp()
        try Data([0x00, 0x01, 0xFF, 0x00, 0x42]).write(to: URL(fileURLWithPath: dir + "/docs/broken.txt"))
        try Data("%PDF-1.4 this is not really a pdf".utf8).write(to: URL(fileURLWithPath: dir + "/docs/fake.pdf"))
        let report = try ingestor.ingest(collection: "kb", paths: [dir + "/docs", dir + "/missing.md"])
        XCTAssertEqual(Set(report.failed.map { ($0.path as NSString).lastPathComponent }), ["broken.txt", "fake.pdf", "missing.md"])
        XCTAssertTrue(report.failed.first { $0.path.hasSuffix("broken.txt") }!.message.contains("binary"))
        XCTAssertEqual(report.added.count, 4)
        XCTAssertEqual(try store.requireCollection("kb").documents, 4)
    }

    func testEveryChunkFitsTheEmbedder() throws {
        let e = try embedder()
        let text = try String(contentsOfFile: TestPaths.repoRoot + "/Sources/Retrieval/HNSW.swift", encoding: .utf8)
        let chunks = TokenChunker(maxTokens: 200, overlap: 40).chunks(text, count: e.countTokens)
        XCTAssertGreaterThan(chunks.count, 10)
        for c in chunks {
            let n = try e.tokens(c.text).count - 2
            XCTAssertLessThanOrEqual(n, 200)
            XCTAssertEqual(n, c.tokens, "WordPiece counts add up over whitespace-separated pieces")
        }
    }
}
