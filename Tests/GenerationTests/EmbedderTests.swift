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

    /// A scratch model directory that borrows MiniLM's weights and tokenizer (symlinks) with
    /// our own modules.json, pooling config and sentence_bert_config.json.
    private func scratchDirectory(modules: String, pooling: String, sbert: String?) throws -> String {
        let fm = FileManager.default
        let model = try TestPaths.model("all-minilm-l6-v2")
        let dir = fm.temporaryDirectory.appendingPathComponent("embedder-\(UUID())").path
        try fm.createDirectory(atPath: dir + "/1_Pooling", withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            try fm.createSymbolicLink(atPath: dir + "/" + f, withDestinationPath: model + "/" + f)
        }
        try Data(modules.utf8).write(to: URL(fileURLWithPath: dir + "/modules.json"))
        try Data(pooling.utf8).write(to: URL(fileURLWithPath: dir + "/1_Pooling/config.json"))
        if let sbert { try Data(sbert.utf8).write(to: URL(fileURLWithPath: dir + "/sentence_bert_config.json")) }
        addTeardownBlock { try? fm.removeItem(atPath: dir) }
        return dir
    }

    private let transformerAndPooling = """
        [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
         {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
        """

    func testOtherPoolingAndLimitsFromConfig() throws {
        // CLS pooling, no Normalize module, max_seq_length 16: the embedding is the raw [CLS]
        // row of the encoder's last hidden state.
        let dir = try scratchDirectory(modules: transformerAndPooling + "]",
                                       pooling: #"{"word_embedding_dimension": 384, "pooling_mode_cls_token": true}"#,
                                       sbert: #"{"max_seq_length": 16, "do_lower_case": false}"#)
        let e = try Embedder(directory: dir, threads: 1)
        XCTAssertEqual(e.pooling, .cls)
        XCTAssertFalse(e.normalize)
        XCTAssertEqual(e.maxTokens, 16)
        let text = "A man is eating food."
        let ids = try e.tokens(text)
        let hidden = try e.model.forward(ids: ids)
        XCTAssertEqual(try e.embed(text), Array(hidden.prefix(384)))
        XCTAssertThrowsError(try e.embed(Array(repeating: "hello", count: 15).joined(separator: " "))) {
            XCTAssertEqual($0 as? EmbedderError, .tooLong(tokens: 17, max: 16))
        }

        // Max pooling: the per-dimension maximum over all tokens, [CLS] and [SEP] included.
        let maxDir = try scratchDirectory(modules: transformerAndPooling + "]",
                                          pooling: #"{"pooling_mode_max_tokens": true}"#, sbert: nil)
        let m = try Embedder(directory: maxDir, threads: 1)
        XCTAssertEqual(m.maxTokens, 512)  // no sentence_bert_config.json: the model's positions
        let pooled = try m.embed(text)
        for j in [0, 100, 383] {
            XCTAssertEqual(pooled[j], stride(from: j, to: hidden.count, by: 384).map { hidden[$0] }.max())
        }
    }

    func testUnsupportedModulesAreClearErrors() throws {
        let dense = try scratchDirectory(
            modules: transformerAndPooling + #", {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]"#,
            pooling: #"{"pooling_mode_mean_tokens": true}"#, sbert: nil)
        XCTAssertThrowsError(try Embedder(directory: dense, threads: 1)) { error in
            guard case .unsupported? = error as? EmbedderError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("Dense"), "\(error)")
        }
        let twoModes = try scratchDirectory(modules: transformerAndPooling + "]",
                                            pooling: #"{"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true}"#, sbert: nil)
        XCTAssertThrowsError(try Embedder(directory: twoModes, threads: 1)) { error in
            XCTAssertTrue("\(error)".contains("2 pooling modes"), "\(error)")
        }
        let weighted = try scratchDirectory(modules: transformerAndPooling + "]",
                                            pooling: #"{"pooling_mode_weightedmean_tokens": true}"#, sbert: nil)
        XCTAssertThrowsError(try Embedder(directory: weighted, threads: 1)) { error in
            XCTAssertTrue("\(error)".contains("weightedmean"), "\(error)")
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
