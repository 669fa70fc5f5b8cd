import Foundation
import XCTest
import Generation
import TestSupport

/// all-MiniLM-L6-v2 sentence embeddings against sentence-transformers
/// (Tests/Fixtures/bert/minilm-embeddings.json, written by scripts/make-bert-reference).
final class EmbedderTests: XCTestCase {
    nonisolated(unsafe) static var shared: Embedder?

    private func embedder() throws -> Embedder {
        if let e = Self.shared { return e }
        let e = try Embedder(directory: try TestPaths.model("all-minilm-l6-v2"), threads: nil)
        Self.shared = e
        return e
    }

    private func reference() throws -> (texts: [String], ids: [[Int]], embeddings: [[Float]]) {
        let ref = try XCTUnwrap(try TestPaths.loadJSON(TestPaths.fixture("bert/minilm-embeddings.json")) as? [String: Any])
        let texts = try XCTUnwrap(ref["texts"] as? [String])
        let ids = try XCTUnwrap(ref["ids"] as? [[Int]])
        let emb = try XCTUnwrap(ref["embeddings"] as? [[Double]]).map { $0.map(Float.init) }
        XCTAssertEqual(texts.count, emb.count)
        return (texts, ids, emb)
    }

    func testShape() throws {
        let e = try embedder()
        XCTAssertEqual(e.dimension, 384)
        XCTAssertEqual(e.maxTokens, 256)  // sentence_bert_config.json's max_seq_length
        XCTAssertEqual(e.pooling, .mean)
        XCTAssertTrue(e.normalize)
        XCTAssertEqual(try e.embed([]), [])
    }

    /// Per text: cosine similarity to the sentence-transformers embedding ≥ 0.9999 and the
    /// largest absolute difference of any component ≤ 1e-4 (embeddings are unit length, so
    /// components are ≤ 1; the fixture rounds to 6 decimals).
    func testMatchesSentenceTransformers() throws {
        let e = try embedder()
        let ref = try reference()
        for (text, ids) in zip(ref.texts, ref.ids) {
            XCTAssertEqual(try e.tokens(text).map(Int.init), ids, "token ids of \(text.debugDescription)")
        }
        let got = try e.embed(ref.texts)
        XCTAssertEqual(got.count, ref.texts.count)
        var worstCos: Float = 1, worstDiff: Float = 0
        for (i, (a, b)) in zip(got, ref.embeddings).enumerated() {
            XCTAssertEqual(a.count, 384)
            let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
            let cos = dot / (norm(a) * norm(b))
            let diff = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            worstCos = min(worstCos, cos)
            worstDiff = max(worstDiff, diff)
            XCTAssertGreaterThanOrEqual(cos, 0.9999, "text \(i): \(ref.texts[i].prefix(40).debugDescription)")
            XCTAssertLessThanOrEqual(diff, 1e-4, "text \(i): \(ref.texts[i].prefix(40).debugDescription)")
            XCTAssertEqual(norm(a), 1, accuracy: 1e-5)
        }
        print("MiniLM vs sentence-transformers over \(got.count) texts: min cosine \(worstCos), max |diff| \(worstDiff)")
    }

    /// Packing texts of mixed lengths into one forward must not change any text's embedding.
    func testBatchEqualsOneByOne() throws {
        let e = try embedder()
        let texts = try reference().texts
        let batch = try e.embed(texts)
        var worst: Float = 0
        for (i, t) in texts.enumerated() {
            let one = try e.embed(t)
            worst = max(worst, zip(one, batch[i]).map { abs($0 - $1) }.max() ?? 0)
        }
        print("batch vs one-by-one: max |diff| \(worst)")
        XCTAssertLessThanOrEqual(worst, 1e-6)

        // Small forward batches (several passes) give the same result too.
        let saved = e.batchTokens
        e.batchTokens = 40
        defer { e.batchTokens = saved }
        let split = try e.embed(texts)
        XCTAssertLessThanOrEqual(zip(split, batch).map { zip($0, $1).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0, 1e-6)
    }

    /// A text over max_seq_length is refused, not truncated; one exactly at it is embedded.
    func testTooLongTextThrows() throws {
        let e = try embedder()
        // "hello" is one token: n words → n + 2 tokens with [CLS] and [SEP].
        let fits = Array(repeating: "hello", count: 254).joined(separator: " ")
        XCTAssertEqual(try e.tokens(fits).count, 256)
        XCTAssertEqual(try e.embed(fits).count, 384)
        let over = fits + " hello"
        XCTAssertThrowsError(try e.embed(["short", over])) { error in
            XCTAssertEqual(error as? EmbedderError, .tooLong(tokens: 257, max: 256))
            XCTAssertTrue("\(error)".contains("257"))
        }
    }

    func testBadDirectoryIsClearError() throws {
        XCTAssertThrowsError(try Embedder(directory: "/nonexistent/model", threads: 1)) { error in
            guard case .badModelDirectory? = error as? EmbedderError else { return XCTFail("\(error)") }
        }
        // A plain BERT directory (no modules.json) is not taken for a sentence model.
        XCTAssertThrowsError(try Embedder(directory: TestPaths.fixture("bert/tiny-gelu"), threads: 1)) { error in
            XCTAssertTrue("\(error)".contains("modules.json"), "\(error)")
        }
    }

    /// Throughput for 100 short sentences in one call (printed; compare release builds).
    func testThroughputShortSentences() throws {
        let e = try embedder()
        let subjects = ["The cat", "A developer", "My neighbour", "The committee", "An old robot"]
        let verbs = ["reads", "fixes", "paints", "ignores", "celebrates"]
        let objects = ["the report.", "a broken bicycle.", "the garden fence.", "every email.", "the sunrise."]
        var texts: [String] = []
        for i in 0..<100 { texts.append("\(subjects[i % 5]) \(verbs[(i / 5) % 5]) \(objects[(i / 25) % 5]) #\(i)") }
        _ = try e.embed(Array(texts.prefix(10)))  // warm up
        let start = Date()
        let out = try e.embed(texts)
        let seconds = Date().timeIntervalSince(start)
        XCTAssertEqual(out.count, 100)
        let tokens = try texts.reduce(0) { $0 + (try e.tokens($1).count) }
        print(String(format: "embedded 100 short sentences (%d tokens) in %.3f s: %.1f sentences/s, %.0f tokens/s, %d threads",
                     tokens, seconds, 100 / seconds, Double(tokens) / seconds, e.model.compute.pool.threadCount))
    }

    private func norm(_ v: [Float]) -> Float { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
}
