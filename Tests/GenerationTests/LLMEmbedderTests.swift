import Foundation
import XCTest
import ModelFiles
import Models
import Tokenization
import Generation
import TestSupport

/// Embeddings from a decoder model (SmolLM2-135M-Instruct Q4_1) against the peer, llama.cpp's
/// embedding mode on the same file (Tests/Fixtures/embeddings/smollm2-llamacpp.json, written by
/// scripts/make-llm-embedding-reference).
final class LLMEmbedderTests: XCTestCase {
    nonisolated(unsafe) static var loaded: (DecoderModel, Tokenizer)?

    private func model() throws -> (DecoderModel, Tokenizer) {
        if let m = Self.loaded { return m }
        let file = try GGUFFile(path: try TestPaths.model("smollm2-135m-instruct"))
        let m = (try DecoderModel(file: file, threads: 2), try Tokenizer(gguf: file))
        Self.loaded = m
        return m
    }

    private func reference() throws -> [(text: String, tokens: [Int32], mean: [Float], last: [Float])] {
        let ref = try XCTUnwrap(try TestPaths.loadJSON(TestPaths.fixture("embeddings/smollm2-llamacpp.json")) as? [String: Any])
        let rows = try XCTUnwrap(ref["sentences"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(rows.count, 10)
        return try rows.map { r in
            (try XCTUnwrap(r["text"] as? String),
             try XCTUnwrap(r["tokens"] as? [Int]).map { Int32($0) },
             try XCTUnwrap(r["mean"] as? [Double]).map(Float.init),
             try XCTUnwrap(r["last"] as? [Double]).map(Float.init))
        }
    }

    private func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    /// Per text and pooling: same tokens as the peer, cosine to its embedding ≥ 0.999.
    func testMatchesLlamaCppEmbeddingMode() throws {
        let (m, tok) = try model()
        let ref = try reference()
        for pooling in LLMEmbedder.Pooling.allCases {
            let e = LLMEmbedder(model: m, tokenizer: tok, pooling: pooling)
            XCTAssertEqual(e.dimension, 576)
            let got = try e.embed(ref.map(\.text))
            var worst: Float = 1
            defer { print("LLMEmbedder \(pooling) pooling vs llama.cpp: lowest cosine \(worst)") }
            for (r, v) in zip(ref, got) {
                XCTAssertEqual(try e.tokens(r.text), r.tokens, r.text)
                let want = pooling == .mean ? r.mean : r.last
                XCTAssertEqual(v.count, want.count)
                let cos = dot(v, want) / (dot(v, v).squareRoot() * dot(want, want).squareRoot())
                worst = min(worst, cos)
                XCTAssertGreaterThanOrEqual(cos, 0.999, "\(pooling) \(r.text)")
            }
        }
    }

    func testNormalisedAndPoolingsDiffer() throws {
        let (m, tok) = try model()
        let mean = LLMEmbedder(model: m, tokenizer: tok, pooling: .mean)
        let last = LLMEmbedder(model: m, tokenizer: tok, pooling: .last)
        let texts = ["Embeddings from a chat model.", "A second, rather different sentence about cats."]
        let a = try mean.embed(texts), b = try last.embed(texts)
        for v in a + b { XCTAssertEqual(dot(v, v), 1, accuracy: 1e-5) }
        for (x, y) in zip(a, b) { XCTAssertLessThan(dot(x, y), 0.99) }
        // Same text, same vector, whatever ran before (each text has its own cache).
        XCTAssertEqual(try mean.embed(texts[1]), a[1])
        // A single-token text: mean and last pool the same single row.
        XCTAssertEqual(try mean.embed("42").count, 576)
        XCTAssertEqual(try tok.encode("x").count, 1)
        XCTAssertEqual(try mean.embed("x"), try last.embed("x"))
    }

    func testEmptyTextAndTooLongAreErrors() throws {
        let (m, tok) = try model()
        let e = LLMEmbedder(model: m, tokenizer: tok)
        XCTAssertThrowsError(try e.embed(["fine", ""])) {
            XCTAssertEqual($0 as? EmbedderError, .emptyText(index: 1))
        }
        XCTAssertEqual(try e.embed([]), [])
        let short = LLMEmbedder(model: m, tokenizer: tok, maxTokens: 4)
        XCTAssertThrowsError(try short.embed("one two three four five six")) {
            guard case .tooLong(_, 4)? = $0 as? EmbedderError else { return XCTFail("\($0)") }
        }
    }
}
