import Foundation
import XCTest
import Server
import Generation
import Tokenization
import TestSupport

/// One SmolLM2 (context 512) and MiniLM shared by the server tests: loading is the slow part.
enum Shared {
    static let loaded: Result<(api: API, model: ServedModel), Error> = Result {
        let registry = ModelRegistry()
        guard case let .decoder(m) = try ModelLoader.load(try TestPaths.model("smollm2-135m-instruct"), threads: nil, contextLength: 512, template: nil) else {
            throw TestSupportError.missing("SmolLM2 did not load as a decoder")
        }
        registry.add(m)
        if case let .embedder(e) = try ModelLoader.load(try TestPaths.model("all-minilm-l6-v2"), threads: nil, contextLength: nil, template: nil) {
            registry.add(e)
        }
        registry.markReady()
        return (API(models: registry, version: "test"), m)
    }
    static func get() throws -> (api: API, model: ServedModel) { try loaded.get() }
}

func object(_ data: Data) throws -> [String: Any] {
    try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], String(decoding: data, as: UTF8.self))
}

/// SSE events of a body: the JSON objects, and whether it ended with [DONE] exactly once at the end.
func sseEvents(_ data: Data) throws -> (events: [[String: Any]], done: Bool) {
    let text = String(decoding: data, as: UTF8.self)
    XCTAssertTrue(text.hasSuffix("\n\n"), "every event ends with a blank line")
    let frames = text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
    var events: [[String: Any]] = []
    var done = false
    for (i, f) in frames.enumerated() {
        XCTAssertTrue(f.hasPrefix("data: "), "frame \(i): \(f)")
        let payload = String(f.dropFirst(6))
        if payload == "[DONE]" { done = i == frames.count - 1; continue }
        events.append(try object(Data(payload.utf8)))
    }
    return (events, done)
}

final class ServerHandlerTests: XCTestCase {
    var api: API!
    var model: ServedModel!
    var id: String { model.id }

    override func setUpWithError() throws {
        (api, model) = try Shared.get()
    }

    func post(_ path: String, _ body: String) -> HTTPResponse {
        api.handle(HTTPRequest(method: "POST", path: path, json: body))
    }

    func errorOf(_ r: HTTPResponse) throws -> [String: Any] {
        try XCTUnwrap(try object(r.collectBody())["error"] as? [String: Any])
    }

    func testInvalidParametersAreNamed() throws {
        let cases: [(String, String)] = [
            (#""temperature":-1"#, "temperature"),
            (#""temperature":"hot""#, "temperature"),
            (#""top_p":0"#, "top_p"),
            (#""max_tokens":"x""#, "max_tokens"),
            (#""max_tokens":-3"#, "max_tokens"),
            (#""n":0"#, "n"),
            (#""logit_bias":{"abc":1}"#, "logit_bias"),
            (#""logit_bias":{"999999":1}"#, "logit_bias"),
            (#""top_logprobs":3"#, "top_logprobs"),
            (#""frequency_penalty":5"#, "frequency_penalty"),
            (#""stop":[""]"#, "stop"),
            (#""tools":[{"type":"function"}]"#, "tools"),
        ]
        for (extra, param) in cases {
            let r = post("/v1/chat/completions", #"{"model":"\#(id)","messages":[{"role":"user","content":"hi"}],\#(extra)}"#)
            XCTAssertEqual(r.status, 400, extra)
            let e = try errorOf(r)
            XCTAssertEqual(e["param"] as? String, param, extra)
            XCTAssertEqual(e["type"] as? String, "invalid_request_error")
            XCTAssertTrue((e["message"] as? String)?.contains(param) == true, "\(extra): \(e["message"] ?? "")")
        }
        let image = post("/v1/chat/completions", #"{"model":"\#(id)","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#)
        XCTAssertEqual(image.status, 400)
        XCTAssertEqual(try errorOf(image)["param"] as? String, "messages[0].content[0].type")
        let two = post("/v1/completions", #"{"model":"\#(id)","prompt":["a","b"]}"#)
        XCTAssertEqual(two.status, 400)
        XCTAssertEqual(try errorOf(two)["param"] as? String, "prompt")
        let numCtx = post("/api/generate", #"{"model":"\#(id)","prompt":"hi","options":{"num_ctx":100000}}"#)
        XCTAssertEqual(numCtx.status, 400)
        XCTAssertTrue(try XCTUnwrap(try object(numCtx.collectBody())["error"] as? String).contains("num_ctx"))
    }

    func testContextOverflowIsRefusedNotTruncated() throws {
        let r = post("/v1/completions", #"{"model":"\#(id)","prompt":"Hello","max_tokens":600}"#)
        XCTAssertEqual(r.status, 400)
        let e = try errorOf(r)
        XCTAssertEqual(e["code"] as? String, "context_length_exceeded")
        XCTAssertEqual(e["param"] as? String, "max_tokens")
        let long = String(repeating: "word ", count: 700)
        let o = post("/api/generate", #"{"model":"\#(id)","prompt":"\#(long)","raw":true,"stream":false}"#)
        XCTAssertEqual(o.status, 400)
        XCTAssertTrue(try XCTUnwrap(try object(o.collectBody())["error"] as? String).contains("context length"))
    }

    /// The API's greedy answer is the engine's greedy answer for the same template-rendered prompt.
    func testChatMatchesDirectGeneration() throws {
        let r = post("/v1/chat/completions", #"{"model":"\#(id)","messages":[{"role":"user","content":"What is 2+2?"}],"max_tokens":12,"temperature":0,"user":"someone"}"#)
        XCTAssertEqual(r.status, 200)
        let o = try object(r.collectBody())
        XCTAssertEqual(o["object"] as? String, "chat.completion")
        let choices = try XCTUnwrap(o["choices"] as? [[String: Any]])
        XCTAssertEqual(choices.count, 1)
        let content = try XCTUnwrap((choices[0]["message"] as? [String: Any])?["content"] as? String)
        XCTAssertTrue(choices[0]["logprobs"] is NSNull)

        let prompt = try ChatPrompt.encode(try XCTUnwrap(model.chatTemplate), tokenizer: model.tokenizer, messages: [("user", "What is 2+2?")])
        var g = GenerationRequest()
        g.maxTokens = 12
        g.sampling = .greedy
        let direct = try model.engine.generate(prompt: prompt, g) { _ in true }
        XCTAssertEqual(content, direct.text)
        XCTAssertEqual(choices[0]["finish_reason"] as? String, direct.finishReason == .length ? "length" : "stop")
        let usage = try XCTUnwrap(o["usage"] as? [String: Int])
        XCTAssertEqual(usage["prompt_tokens"], prompt.count)
        XCTAssertEqual(usage["completion_tokens"], direct.tokens.count)
        XCTAssertEqual(usage["total_tokens"], prompt.count + direct.tokens.count)
    }

    func testChatStreamingSSE() throws {
        let r = post("/v1/chat/completions", #"{"model":"\#(id)","messages":[{"role":"user","content":"Count: one, two,"}],"max_tokens":8,"temperature":0,"stream":true,"stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":2}"#)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("Content-Type"), "text/event-stream")
        let (events, done) = try sseEvents(r.collectBody())
        XCTAssertTrue(done, "ends with data: [DONE]")
        XCTAssertGreaterThanOrEqual(events.count, 3)
        for e in events { XCTAssertEqual(e["object"] as? String, "chat.completion.chunk") }
        let first = try XCTUnwrap((events[0]["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual((first["delta"] as? [String: Any])?["role"] as? String, "assistant")
        // The last event carries usage and no choices; the one before it the finish reason.
        let usageEvent = try XCTUnwrap(events.last)
        XCTAssertEqual((usageEvent["choices"] as? [Any])?.count, 0)
        let usage = try XCTUnwrap(usageEvent["usage"] as? [String: Int])
        XCTAssertEqual(usage["completion_tokens"], 8)
        let finish = try XCTUnwrap((events[events.count - 2]["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual(finish["finish_reason"] as? String, "length")
        // Content chunks carry one logprob entry per token with 2 alternatives.
        var text = ""
        var entries = 0
        for e in events.dropFirst().dropLast(2) {
            let c = try XCTUnwrap((e["choices"] as? [[String: Any]])?.first)
            XCTAssertTrue(c["finish_reason"] is NSNull)
            text += ((c["delta"] as? [String: Any])?["content"] as? String) ?? ""
            if let content = (c["logprobs"] as? [String: Any])?["content"] as? [[String: Any]] {
                for entry in content {
                    entries += 1
                    XCTAssertLessThanOrEqual(try XCTUnwrap(entry["logprob"] as? Double), 0)
                    XCTAssertEqual((entry["top_logprobs"] as? [Any])?.count, 2)
                    XCTAssertNotNil(entry["bytes"] as? [Int])
                }
            }
        }
        XCTAssertEqual(entries, 8)
        // Same text as the non-streamed request.
        let whole = post("/v1/chat/completions", #"{"model":"\#(id)","messages":[{"role":"user","content":"Count: one, two,"}],"max_tokens":8,"temperature":0}"#)
        let msg = try XCTUnwrap(((try object(whole.collectBody())["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String)
        XCTAssertEqual(text, msg)
    }

    func testCompletionEchoLogprobsShape() throws {
        let prompt = "The capital of France is"
        let r = post("/v1/completions", #"{"model":"\#(id)","prompt":"\#(prompt)","max_tokens":3,"temperature":0,"logprobs":2,"echo":true}"#)
        XCTAssertEqual(r.status, 200)
        let o = try object(r.collectBody())
        let choice = try XCTUnwrap((o["choices"] as? [[String: Any]])?.first)
        let text = try XCTUnwrap(choice["text"] as? String)
        XCTAssertTrue(text.hasPrefix(prompt))
        let lp = try XCTUnwrap(choice["logprobs"] as? [String: Any])
        let tokens = try XCTUnwrap(lp["tokens"] as? [String])
        let tlp = try XCTUnwrap(lp["token_logprobs"] as? [Any])
        let top = try XCTUnwrap(lp["top_logprobs"] as? [Any])
        let offsets = try XCTUnwrap(lp["text_offset"] as? [Int])
        let promptTokens = model.tokenizer.encode(prompt, addBOS: nil, parseSpecial: true).count
        XCTAssertEqual(tokens.count, promptTokens + 3)
        XCTAssertEqual(tlp.count, tokens.count)
        XCTAssertEqual(top.count, tokens.count)
        XCTAssertTrue(tlp[0] is NSNull, "the first prompt token has nothing to be scored against")
        XCTAssertTrue(top[0] is NSNull)
        for v in tlp.dropFirst() { XCTAssertLessThanOrEqual(try XCTUnwrap(v as? Double), 0) }
        for v in top.dropFirst() { XCTAssertLessThanOrEqual(try XCTUnwrap(v as? [String: Double]).count, 2) }
        // Offsets locate each token in the returned text.
        let scalars = Array(text.unicodeScalars)
        for (t, off) in zip(tokens, offsets) {
            let n = t.unicodeScalars.count
            XCTAssertLessThanOrEqual(off + n, scalars.count)
            XCTAssertEqual(String(String.UnicodeScalarView(scalars[off..<off + n])), t)
        }
        // A greedy pick is the top alternative: its logprob equals the best of top_logprobs.
        for k in promptTokens..<tokens.count {
            let best = try XCTUnwrap((top[k] as? [String: Double])?.values.max())
            XCTAssertEqual(try XCTUnwrap(tlp[k] as? Double), best, accuracy: 1e-5)
        }
        // Scoring only (max_tokens 0), as evaluation harnesses do.
        let score = post("/v1/completions", #"{"model":"\#(id)","prompt":"\#(prompt)","max_tokens":0,"logprobs":0,"echo":true}"#)
        XCTAssertEqual(score.status, 200)
        let sc = try XCTUnwrap((try object(score.collectBody())["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual(sc["text"] as? String, prompt)
        let scoreLP = try XCTUnwrap((sc["logprobs"] as? [String: Any])?["token_logprobs"] as? [Any])
        XCTAssertEqual(scoreLP.count, promptTokens)
        XCTAssertEqual(try XCTUnwrap(scoreLP[1] as? Double), try XCTUnwrap(tlp[1] as? Double), accuracy: 1e-5)
    }

    func testNChoicesAndSeeds() throws {
        let greedy = post("/v1/completions", #"{"model":"\#(id)","prompt":"Once upon a time","max_tokens":6,"temperature":0,"n":3}"#)
        XCTAssertEqual(greedy.status, 200)
        let g = try XCTUnwrap(try object(greedy.collectBody())["choices"] as? [[String: Any]])
        XCTAssertEqual(g.map { $0["index"] as? Int }, [0, 1, 2])
        XCTAssertEqual(Set(g.compactMap { $0["text"] as? String }).count, 1, "greedy choices agree")
        let body = #"{"model":"\#(id)","prompt":"Once upon a time","max_tokens":12,"temperature":1.5,"top_k":0,"top_p":1,"min_p":0,"n":3,"seed":11}"#
        let a = try XCTUnwrap(try object(post("/v1/completions", body).collectBody())["choices"] as? [[String: Any]]).compactMap { $0["text"] as? String }
        let b = try XCTUnwrap(try object(post("/v1/completions", body).collectBody())["choices"] as? [[String: Any]]).compactMap { $0["text"] as? String }
        XCTAssertEqual(a, b, "same seed, same choices")
        XCTAssertEqual(a.count, 3)
        XCTAssertGreaterThan(Set(a).count, 1, "choices of one request differ")
    }

    func testStopAndLogitBias() throws {
        let base = try XCTUnwrap(try object(post("/v1/completions", #"{"model":"\#(id)","prompt":"1, 2, 3, 4,","max_tokens":8,"temperature":0}"#).collectBody())["choices"] as? [[String: Any]]).first?["text"] as? String
        let text = try XCTUnwrap(base)
        XCTAssertTrue(text.contains("6"), text)
        let stopped = try XCTUnwrap(try object(post("/v1/completions", #"{"model":"\#(id)","prompt":"1, 2, 3, 4,","max_tokens":8,"temperature":0,"stop":"6"}"#).collectBody())["choices"] as? [[String: Any]]).first
        XCTAssertEqual(stopped?["finish_reason"] as? String, "stop")
        let cut = try XCTUnwrap(text.range(of: "6")).lowerBound
        XCTAssertEqual(stopped?["text"] as? String, String(text[..<cut]))
        // Banning the first greedy token changes the first token.
        let first = model.tokenizer.encode(text, addBOS: false, parseSpecial: false)[0]
        let banned = try XCTUnwrap(try object(post("/v1/completions", #"{"model":"\#(id)","prompt":"1, 2, 3, 4,","max_tokens":1,"temperature":0,"logit_bias":{"\#(first)":-100}}"#).collectBody())["choices"] as? [[String: Any]]).first?["text"] as? String
        XCTAssertNotEqual(banned, model.tokenizer.piece(first))
    }

    func testOllamaNDJSON() throws {
        let r = post("/api/chat", #"{"model":"\#(id)","messages":[{"role":"user","content":"Say hello"}],"options":{"num_predict":5,"temperature":0}}"#)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("Content-Type"), "application/x-ndjson")
        let lines = String(decoding: r.collectBody(), as: UTF8.self).split(separator: "\n").map(String.init)
        let objs = try lines.map { try object(Data($0.utf8)) }
        XCTAssertGreaterThanOrEqual(objs.count, 2)
        for o in objs.dropLast() { XCTAssertEqual(o["done"] as? Bool, false) }
        let last = try XCTUnwrap(objs.last)
        XCTAssertEqual(last["done"] as? Bool, true)
        XCTAssertEqual(last["done_reason"] as? String, "length")
        XCTAssertEqual(last["eval_count"] as? Int, 5)
        XCTAssertGreaterThan(try XCTUnwrap(last["prompt_eval_count"] as? Int), 0)
        XCTAssertGreaterThan(try XCTUnwrap(last["eval_duration"] as? Int), 0)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(last["total_duration"] as? Int), try XCTUnwrap(last["eval_duration"] as? Int))
        let streamed = objs.dropLast().compactMap { ($0["message"] as? [String: Any])?["content"] as? String }.joined()
        let whole = try object(post("/api/chat", #"{"model":"\#(id)","messages":[{"role":"user","content":"Say hello"}],"stream":false,"options":{"num_predict":5,"temperature":0}}"#).collectBody())
        XCTAssertEqual((whole["message"] as? [String: Any])?["content"] as? String, streamed)

        let gen = try object(post("/api/generate", #"{"model":"\#(id)","prompt":"The sky is","raw":true,"stream":false,"options":{"num_predict":4,"temperature":0,"seed":1}}"#).collectBody())
        XCTAssertEqual(gen["done"] as? Bool, true)
        XCTAssertEqual(gen["eval_count"] as? Int, 4)
        XCTAssertFalse(try XCTUnwrap(gen["response"] as? String).isEmpty)
    }

    func testModelListsAndInfo() throws {
        let tags = try object(api.handle(HTTPRequest(method: "GET", path: "/api/tags")).collectBody())
        let entry = try XCTUnwrap((tags["models"] as? [[String: Any]])?.first)
        XCTAssertEqual(entry["name"] as? String, id)
        XCTAssertEqual(entry["size"] as? Int, try FileManager.default.attributesOfItem(atPath: model.path)[.size] as? Int)
        XCTAssertEqual((entry["digest"] as? String)?.count, 64)
        let details = try XCTUnwrap(entry["details"] as? [String: Any])
        XCTAssertEqual(details["format"] as? String, "gguf")
        XCTAssertEqual(details["family"] as? String, "llama")
        let show = try object(post("/api/show", #"{"model":"\#(id)"}"#).collectBody())
        XCTAssertTrue(try XCTUnwrap(show["template"] as? String).contains("im_start"))
        let ps = try object(api.handle(HTTPRequest(method: "GET", path: "/api/ps")).collectBody())
        XCTAssertEqual((ps["models"] as? [[String: Any]])?.count, 1)
        let list = try object(api.handle(HTTPRequest(method: "GET", path: "/v1/models")).collectBody())
        XCTAssertEqual((list["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String }, [id, "all-minilm-l6-v2"])
    }

    func testEmbeddings() throws {
        let r = post("/v1/embeddings", #"{"model":"all-minilm-l6-v2","input":["a cat","a dog"]}"#)
        XCTAssertEqual(r.status, 200)
        let o = try object(r.collectBody())
        let data = try XCTUnwrap(o["data"] as? [[String: Any]])
        XCTAssertEqual(data.count, 2)
        let v = try XCTUnwrap(data[0]["embedding"] as? [Double])
        XCTAssertEqual(v.count, 384)
        XCTAssertEqual(v.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-3, "normalized")
        let b64 = try object(post("/v1/embeddings", #"{"model":"all-minilm-l6-v2","input":"a cat","encoding_format":"base64"}"#).collectBody())
        let s = try XCTUnwrap((b64["data"] as? [[String: Any]])?.first?["embedding"] as? String)
        let bytes = try XCTUnwrap(Data(base64Encoded: s))
        XCTAssertEqual(bytes.count, 384 * 4)
        let f0 = bytes.prefix(4).withUnsafeBytes { Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
        XCTAssertEqual(Double(f0), v[0], accuracy: 1e-6)
        let ol = try object(post("/api/embed", #"{"model":"all-minilm-l6-v2","input":"a cat"}"#).collectBody())
        XCTAssertEqual((ol["embeddings"] as? [[Double]])?.first?.count, 384)
        // A chat model embeds too (LLMEmbeddingServerTests); an embedding model cannot chat.
        XCTAssertEqual(post("/v1/embeddings", #"{"model":"\#(id)","input":"x"}"#).status, 200)
        XCTAssertEqual(post("/v1/chat/completions", #"{"model":"all-minilm-l6-v2","messages":[{"role":"user","content":"x"}]}"#).status, 400)
        XCTAssertEqual(post("/v1/embeddings", #"{"model":"all-minilm-l6-v2","input":[1,2]}"#).status, 400)
    }

    /// A full queue answers 429 (GenerationError.busy), in both API shapes.
    func testBusyIs429() throws {
        let engine = try SerialEngine(model: model.engine.model, tokenizer: model.tokenizer, contextLength: 512, maxQueue: 0)
        let m = ServedModel(id: "tiny-queue", path: model.path, engine: engine, chatTemplate: model.chatTemplate, templateSource: model.templateSource)
        let reg = ModelRegistry()
        reg.add(m)
        reg.markReady()
        let busyAPI = API(models: reg, version: "test")
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let t = Thread {
            var g = GenerationRequest()
            g.maxTokens = 50
            g.sampling = .greedy
            _ = try? engine.generate(prompt: [1, 2, 3], g) { _ in started.signal(); release.wait(); return false }
        }
        t.start()
        started.wait()
        let r = busyAPI.handle(HTTPRequest(method: "POST", path: "/v1/completions", json: #"{"model":"tiny-queue","prompt":"hi","max_tokens":2}"#))
        XCTAssertEqual(r.status, 429)
        XCTAssertEqual(try errorOf(r)["code"] as? String, "rate_limit_exceeded")
        let s = busyAPI.handle(HTTPRequest(method: "POST", path: "/api/generate", json: #"{"model":"tiny-queue","prompt":"hi","stream":true}"#))
        XCTAssertEqual(s.status, 429, "a streamed request that cannot start gets a status, not a broken stream")
        release.signal()
        while engine.status.active != 0 { usleep(1000) }
    }
}
