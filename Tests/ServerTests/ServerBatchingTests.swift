import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import Server
import Generation
import TestSupport

/// `serve --parallel N`: concurrent HTTP requests share the batching engine's decode steps and
/// get the answers they get one at a time.
final class ServerBatchingTests: XCTestCase {
    func testConcurrentChatRequestsMatchSerialAnswers() throws {
        let path = try TestPaths.model("smollm2-135m-instruct")
        guard case let .decoder(batched) = try ModelLoader.load(path, threads: nil, contextLength: 512, template: nil, parallel: 4) else {
            return XCTFail("SmolLM2 did not load as a decoder")
        }
        XCTAssertTrue(batched.engine is BatchingEngine)
        let (serialAPI, serialModel) = try Shared.get()
        let registry = ModelRegistry()
        registry.add(batched)
        registry.markReady()
        let api = API(models: registry, version: "test")
        let server = HTTPServer(host: "127.0.0.1", port: 0, maxBodyBytes: 1 << 20) { api.handle($0) }
        try server.start()
        defer { server.stop() }

        let questions = ["What is the capital of France?", "Name a colour.", "Count to five.", "Say hello in Spanish.", "What is 2+2?"]
        @Sendable func body(_ q: String, _ id: String, stream: Bool) -> String {
            #"{"model":"\#(id)","messages":[{"role":"user","content":"\#(q)"}],"max_tokens":16,"temperature":0,"stream":\#(stream)}"#
        }
        // One at a time through the serial engine, in process.
        let expected = try questions.map { q -> String in
            let r = serialAPI.handle(HTTPRequest(method: "POST", path: "/v1/chat/completions", json: body(q, serialModel.id, stream: false)))
            let choice = try XCTUnwrap((try object(r.collectBody())["choices"] as? [[String: Any]])?.first)
            return try XCTUnwrap((choice["message"] as? [String: Any])?["content"] as? String)
        }
        // All at once over HTTP, half of them streamed.
        let got = Texts(count: questions.count)
        let port = server.port
        DispatchQueue.concurrentPerform(iterations: questions.count) { i in
            let stream = i % 2 == 1
            var req = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/v1/chat/completions")!)
            req.httpMethod = "POST"
            req.timeoutInterval = 60
            req.httpBody = Data(body(questions[i], batched.id, stream: stream).utf8)
            let done = DispatchSemaphore(value: 0)
            URLSession.shared.dataTask(with: req) { data, _, _ in
                defer { done.signal() }
                guard let data else { return }
                if stream {
                    guard let (events, finished) = try? sseEvents(data), finished else { return }
                    let text = events.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
                        .compactMap { $0["content"] as? String }.joined()
                    got.set(i, text)
                } else if let obj = try? object(data), let c = (obj["choices"] as? [[String: Any]])?.first,
                          let m = c["message"] as? [String: Any] {
                    got.set(i, m["content"] as? String)
                }
            }.resume()
            done.wait()
        }
        for i in questions.indices { XCTAssertEqual(got.get(i), expected[i], "request \(i) (\(questions[i]))") }
        XCTAssertEqual(batched.engine.status.active, 0)
    }
}

final class Texts: @unchecked Sendable {
    private let lock = NSLock()
    private var v: [String?]
    init(count: Int) { v = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ s: String?) { lock.lock(); v[i] = s; lock.unlock() }
    func get(_ i: Int) -> String? { lock.lock(); defer { lock.unlock() }; return v[i] }
}
