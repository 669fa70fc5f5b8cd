import Foundation
import XCTest
import Generation
import Server
import TestSupport

/// /v1/embeddings and /api/embed with a chat model's id (LLMEmbedder), against the peer's
/// embedding mode (Tests/Fixtures/embeddings/smollm2-llamacpp.json).
final class LLMEmbeddingServerTests: XCTestCase {
    var api: API!
    var model: ServedModel!
    var id: String { model.id }

    override func setUpWithError() throws {
        (api, model) = try Shared.get()
    }

    func post(_ path: String, _ body: String) -> HTTPResponse {
        api.handle(HTTPRequest(method: "POST", path: path, json: body))
    }

    private func body(_ o: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self)
    }

    private func cosine(_ a: [Double], _ b: [Double]) -> Double {
        let d = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
        return d / (a.reduce(0) { $0 + $1 * $1 }.squareRoot() * b.reduce(0) { $0 + $1 * $1 }.squareRoot())
    }

    private func reference() throws -> [[String: Any]] {
        let ref = try XCTUnwrap(try TestPaths.loadJSON(TestPaths.fixture("embeddings/smollm2-llamacpp.json")) as? [String: Any])
        return try XCTUnwrap(ref["sentences"] as? [[String: Any]])
    }

    func testChatModelEmbedsWithMeanOrLastPooling() throws {
        let ref = Array(try reference().prefix(3))
        let texts = try ref.map { try XCTUnwrap($0["text"] as? String) }
        for pooling in [nil, "mean", "last"] {
            var req: [String: Any] = ["model": id, "input": texts]
            if let p = pooling { req["pooling"] = p }
            let r = post("/v1/embeddings", try body(req))
            XCTAssertEqual(r.status, 200, String(decoding: r.collectBody(), as: UTF8.self))
            let o = try object(r.collectBody())
            XCTAssertEqual(o["model"] as? String, id)
            let data = try XCTUnwrap(o["data"] as? [[String: Any]])
            XCTAssertEqual(data.count, texts.count)
            let tokens = ref.reduce(0) { $0 + (($1["tokens"] as? [Int])?.count ?? 0) }
            XCTAssertEqual((o["usage"] as? [String: Any])?["prompt_tokens"] as? Int, tokens)
            for (d, r) in zip(data, ref) {
                let v = try XCTUnwrap(d["embedding"] as? [Double])
                XCTAssertEqual(v.count, 576)
                XCTAssertEqual(v.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-4)
                let want = try XCTUnwrap(r[pooling ?? "mean"] as? [Double])
                XCTAssertGreaterThanOrEqual(cosine(v, want), 0.999, "\(pooling ?? "default") \(r["text"] ?? "")")
            }
        }
        // Ollama's /api/embed, with the same extension field.
        let ol = post("/api/embed", try body(["model": id, "input": texts[0], "pooling": "last"]))
        XCTAssertEqual(ol.status, 200)
        let v = try XCTUnwrap((try object(ol.collectBody())["embeddings"] as? [[Double]])?.first)
        XCTAssertGreaterThanOrEqual(cosine(v, try XCTUnwrap(ref[0]["last"] as? [Double])), 0.999)
        // dimensions: the hidden size, or nothing.
        XCTAssertEqual(post("/v1/embeddings", #"{"model":"\#(id)","input":"x","dimensions":576}"#).status, 200)
        XCTAssertEqual(post("/v1/embeddings", #"{"model":"\#(id)","input":"x","dimensions":100}"#).status, 400)
    }

    func testPoolingFieldIsValidated() throws {
        for (path, b) in [("/v1/embeddings", #"{"model":"\#(id)","input":"x","pooling":"max"}"#),
                          ("/api/embed", #"{"model":"\#(id)","input":"x","pooling":"cls"}"#),
                          ("/v1/embeddings", #"{"model":"\#(id)","input":"x","pooling":""}"#)] {
            let r = post(path, b)
            XCTAssertEqual(r.status, 400, b)
            let text = String(decoding: r.collectBody(), as: UTF8.self)
            XCTAssertTrue(text.contains("'pooling' must be 'mean' or 'last'"), text)
        }
        let bad = post("/v1/embeddings", #"{"model":"\#(id)","input":"x","pooling":5}"#)
        XCTAssertEqual(bad.status, 400)
        // An empty text has no tokens (SmolLM2 adds no BOS): a 400 naming input.
        let empty = post("/v1/embeddings", #"{"model":"\#(id)","input":["fine",""]}"#)
        XCTAssertEqual(empty.status, 400)
        XCTAssertEqual((try object(empty.collectBody())["error"] as? [String: Any])?["param"] as? String, "input")
        // An encoder pools as configured: restating it is fine, choosing another is refused.
        if api.models.embeddingModel("all-minilm-l6-v2") != nil {
            XCTAssertEqual(post("/v1/embeddings", #"{"model":"all-minilm-l6-v2","input":"x","pooling":"mean"}"#).status, 200)
            let r = post("/v1/embeddings", #"{"model":"all-minilm-l6-v2","input":"x","pooling":"last"}"#)
            XCTAssertEqual(r.status, 400)
            XCTAssertEqual((try object(r.collectBody())["error"] as? [String: Any])?["param"] as? String, "pooling")
        }
    }

    /// Embedding calls while a generation runs do not change that generation's output (the
    /// embedder uses caches of its own; the model's lock interleaves the forwards).
    func testEmbeddingDuringGenerationDoesNotDisturbIt() throws {
        let gen = #"{"model":"\#(id)","prompt":"Once upon a time","max_tokens":24,"temperature":0}"#
        func text(_ r: HTTPResponse) throws -> String {
            try XCTUnwrap(((try object(r.collectBody())["choices"] as? [[String: Any]])?.first?["text"]) as? String)
        }
        let alone = try text(post("/v1/completions", gen))
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var during: HTTPResponse?
        let api = self.api!
        let t = Thread {
            during = api.handle(HTTPRequest(method: "POST", path: "/v1/completions", json: gen))
            done.signal()
        }
        t.start()
        var embedded = 0
        var first: [Double]?
        repeat {
            let r = post("/v1/embeddings", #"{"model":"\#(id)","input":"A sentence embedded while the model generates."}"#)
            XCTAssertEqual(r.status, 200)
            let v = try XCTUnwrap((try object(r.collectBody())["data"] as? [[String: Any]])?.first?["embedding"] as? [Double])
            if let f = first { XCTAssertEqual(v, f, "same text, same vector") } else { first = v }
            embedded += 1
        } while done.wait(timeout: .now()) == .timedOut
        XCTAssertGreaterThan(embedded, 0)
        XCTAssertEqual(try text(try XCTUnwrap(during)), alone)
    }
}
