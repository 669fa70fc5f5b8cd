import Foundation
import XCTest
import Server

/// Wire types and routing without any model or socket.
final class ServerTypesTests: XCTestCase {
    func json(_ data: Data) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testChatRequestAcceptsStringAndPartsContentAndStopForms() throws {
        let body = """
        {"model":"m","messages":[{"role":"system","content":"be brief"},
         {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
         "stop":"x","logit_bias":{"42":-100},"stream_options":{"include_usage":true},"user":"u1"}
        """
        let r = try JSONDecoder().decode(OpenAI.ChatCompletionRequest.self, from: Data(body.utf8))
        XCTAssertEqual(r.messages?[0].content, .text("be brief"))
        XCTAssertEqual(r.messages?[1].content, .parts([OpenAI.ContentPart(type: "text", text: "a"), OpenAI.ContentPart(type: "text", text: "b")]))
        XCTAssertEqual(r.stop, .one("x"))
        XCTAssertEqual(r.logit_bias?["42"], -100)
        XCTAssertEqual(r.stream_options?.include_usage, true)
        let again = try JSONDecoder().decode(OpenAI.ChatCompletionRequest.self, from: JSONEncoder().encode(r))
        XCTAssertEqual(again.messages, r.messages)
        XCTAssertEqual(again.stop, r.stop)

        let list = try JSONDecoder().decode(OpenAI.CompletionRequest.self, from: Data(#"{"prompt":["p"],"stop":["a","b"],"logprobs":3,"echo":true}"#.utf8))
        XCTAssertEqual(list.prompt, .list(["p"]))
        XCTAssertEqual(list.stop?.values, ["a", "b"])
        XCTAssertEqual(list.logprobs, 3)
    }

    func testOllamaRequestRoundTrip() throws {
        let body = #"{"model":"m","prompt":"hi","raw":true,"stream":false,"options":{"num_predict":5,"stop":["\n"],"num_ctx":256,"seed":7},"format":""}"#
        let r = try JSONDecoder().decode(Ollama.GenerateRequest.self, from: Data(body.utf8))
        XCTAssertEqual(r.options?.num_predict, 5)
        XCTAssertEqual(r.options?.stop, .list(["\n"]))
        XCTAssertEqual(r.format, .string(""))
        let again = try JSONDecoder().decode(Ollama.GenerateRequest.self, from: JSONEncoder().encode(r))
        XCTAssertEqual(again.options, r.options)
        XCTAssertEqual(again.prompt, "hi")
    }

    func testErrorShapesAndNullFields() throws {
        let e = APIError.invalid("bad", param: "temperature", code: "invalid_value")
        let o = try json(e.response(.openAI).collectBody())
        let err = try XCTUnwrap(o["error"] as? [String: Any])
        XCTAssertEqual(err["message"] as? String, "bad")
        XCTAssertEqual(err["type"] as? String, "invalid_request_error")
        XCTAssertEqual(err["param"] as? String, "temperature")
        XCTAssertEqual(err["code"] as? String, "invalid_value")
        // param and code are present as null when unknown (OpenAI's shape).
        let n = try json(APIError.invalid("x", param: nil).response(.openAI).collectBody())
        let nerr = try XCTUnwrap(n["error"] as? [String: Any])
        XCTAssertTrue(nerr["param"] is NSNull)
        XCTAssertTrue(nerr["code"] is NSNull)
        let ol = try json(e.response(.ollama).collectBody())
        XCTAssertEqual(ol["error"] as? String, "bad")
        XCTAssertEqual(e.response(.ollama).status, 400)

        let lp = OpenAI.CompletionLogprobs(tokens: ["a", "b"], token_logprobs: [nil, -1.5], top_logprobs: [nil, ["b": -1.5]], text_offset: [0, 1])
        let lo = try json(JSONEncoder().encode(lp))
        XCTAssertTrue((lo["token_logprobs"] as? [Any])?.first is NSNull)
        XCTAssertTrue((lo["top_logprobs"] as? [Any])?.first is NSNull)
    }

    func testRouterStatusesWithoutModels() throws {
        let api = API(models: ModelRegistry(), version: "test")
        // Not ready yet: /health says loading.
        XCTAssertEqual(api.handle(HTTPRequest(method: "GET", path: "/health")).status, 503)
        api.models.markReady()
        let h = api.handle(HTTPRequest(method: "GET", path: "/health?x=1"))
        XCTAssertEqual(h.status, 200)
        XCTAssertEqual(try json(h.collectBody())["status"] as? String, "ok")

        let nf = api.handle(HTTPRequest(method: "GET", path: "/v2/nothing"))
        XCTAssertEqual(nf.status, 404)
        XCTAssertNotNil(try json(nf.collectBody())["error"] as? [String: Any])
        let nfo = api.handle(HTTPRequest(method: "GET", path: "/api/nothing"))
        XCTAssertEqual(nfo.status, 404)
        XCTAssertNotNil(try json(nfo.collectBody())["error"] as? String, "Ollama routes answer in Ollama's shape")

        let wrong = api.handle(HTTPRequest(method: "GET", path: "/v1/chat/completions"))
        XCTAssertEqual(wrong.status, 405)
        XCTAssertEqual(wrong.header("Allow"), "POST")

        var big = HTTPRequest(method: "POST", path: "/api/chat", json: "{}")
        big.bodyLimit = 10
        let tooBig = api.handle(big)
        XCTAssertEqual(tooBig.status, 413)
        XCTAssertTrue((try json(tooBig.collectBody())["error"] as? String)?.contains("10 bytes") == true)

        // Malformed JSON and unknown model.
        let bad = api.handle(HTTPRequest(method: "POST", path: "/v1/chat/completions", json: "{\"model\": "))
        XCTAssertEqual(bad.status, 400)
        XCTAssertEqual((try json(bad.collectBody())["error"] as? [String: Any])?["code"] as? String, "invalid_json")
        let unknown = api.handle(HTTPRequest(method: "POST", path: "/v1/chat/completions", json: #"{"model":"nope","messages":[]}"#))
        XCTAssertEqual(unknown.status, 404)
        XCTAssertEqual((try json(unknown.collectBody())["error"] as? [String: Any])?["param"] as? String, "model")
        let unknownOllama = api.handle(HTTPRequest(method: "POST", path: "/api/generate", json: #"{"model":"nope","prompt":"x"}"#))
        XCTAssertEqual(unknownOllama.status, 404)
        // No embedding model loaded: a clear 400 naming model.
        let emb = api.handle(HTTPRequest(method: "POST", path: "/v1/embeddings", json: #"{"model":"all-minilm-l6-v2","input":"x"}"#))
        XCTAssertEqual(emb.status, 400)
        let embErr = try XCTUnwrap(try json(emb.collectBody())["error"] as? [String: Any])
        XCTAssertTrue((embErr["message"] as? String)?.contains("no embedding model") == true)
        XCTAssertEqual(api.handle(HTTPRequest(method: "GET", path: "/api/version")).status, 200)
        XCTAssertEqual(api.handle(HTTPRequest(method: "GET", path: "/v1/models")).status, 200)
        // Garbage of every kind: never a crash, never a 500.
        for body in ["", "[]", "null", "1", "\"s\"", "{\"model\":5}", "{\"messages\":{}}", "\u{0}\u{1}"] {
            for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/api/generate", "/api/chat", "/api/embed", "/api/show"] {
                let s = api.handle(HTTPRequest(method: "POST", path: path, json: body)).status
                XCTAssertTrue((400..<500).contains(s), "\(path) \(body) → \(s)")
            }
        }
    }

    func testChunkPipeCancellation() {
        let p = ChunkPipe()
        XCTAssertTrue(p.write("a"))
        p.cancel()
        XCTAssertFalse(p.write("b"), "writes after the consumer left report it")
        XCTAssertNil(p.next())
    }

    func testDropPendingWithdrawsOnlyWhatWasNotTaken() {
        let p = ChunkPipe()
        p.write("a"); p.write("b"); p.write("c")
        XCTAssertEqual(p.next().map { String(decoding: $0, as: UTF8.self) }, "a")
        p.dropPending()
        XCTAssertTrue(p.write("error"), "the producer goes on writing after a withdrawal")
        p.close()
        XCTAssertEqual(p.next().map { String(decoding: $0, as: UTF8.self) }, "error")
        XCTAssertNil(p.next())
    }
}
