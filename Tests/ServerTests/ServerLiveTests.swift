import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif
import XCTest
import Server
import Generation

/// The same API over a real socket: libmicrohttpd on 127.0.0.1, port picked by the system.
final class ServerLiveTests: XCTestCase {
    var api: API!
    var model: ServedModel!
    var server: HTTPServer!

    override func setUpWithError() throws {
        (api, model) = try Shared.get()
        let a = api!
        server = HTTPServer(host: "127.0.0.1", port: 0, maxBodyBytes: 4096) { a.handle($0) }
        try server.start()
        XCTAssertGreaterThan(server.port, 0)
    }

    override func tearDown() {
        server?.stop()
    }

    struct Reply { var status: Int; var headers: [String: String]; var body: Data }

    func send(_ method: String, _ path: String, _ body: String? = nil, timeout: TimeInterval = 30) throws -> Reply {
        var req = URLRequest(url: try XCTUnwrap(URL(string: "http://127.0.0.1:\(server.port)\(path)")))
        req.httpMethod = method
        req.timeoutInterval = timeout
        if let body { req.httpBody = Data(body.utf8); req.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        let done = DispatchSemaphore(value: 0)
        let out = Box()
        URLSession.shared.dataTask(with: req) { data, resp, err in
            out.data = data; out.response = resp as? HTTPURLResponse; out.error = err
            done.signal()
        }.resume()
        done.wait()
        if let e = out.error { throw e }
        let r = try XCTUnwrap(out.response)
        var headers: [String: String] = [:]
        for (k, v) in r.allHeaderFields { headers[String(describing: k).lowercased()] = String(describing: v) }
        return Reply(status: r.statusCode, headers: headers, body: out.data ?? Data())
    }

    final class Box: @unchecked Sendable { var data: Data?; var response: HTTPURLResponse?; var error: Error? }

    func testHealthModelsAndErrors() throws {
        let h = try send("GET", "/health")
        XCTAssertEqual(h.status, 200)
        XCTAssertEqual(try object(h.body)["status"] as? String, "ok")
        let m = try send("GET", "/v1/models")
        XCTAssertEqual((try object(m.body)["data"] as? [[String: Any]])?.first?["id"] as? String, model.id)
        XCTAssertEqual(try send("GET", "/nope").status, 404)
        let wrong = try send("GET", "/v1/completions")
        XCTAssertEqual(wrong.status, 405)
        XCTAssertEqual(wrong.headers["allow"], "POST")
        let bad = try send("POST", "/v1/completions", "{not json")
        XCTAssertEqual(bad.status, 400)
        XCTAssertNotNil(try object(bad.body)["error"] as? [String: Any])
        let unknown = try send("POST", "/api/chat", #"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#)
        XCTAssertEqual(unknown.status, 404)
        XCTAssertNotNil(try object(unknown.body)["error"] as? String)
        // Over the 4096-byte limit of this server.
        let big = try send("POST", "/v1/completions", #"{"model":"\#(model.id)","prompt":""# + String(repeating: "x", count: 5000) + #""}"#)
        XCTAssertEqual(big.status, 413)
        XCTAssertNotNil(try object(big.body)["error"] as? [String: Any])
        XCTAssertEqual(try send("GET", "/api/version").status, 200)
    }

    func testCompletionAndStreamsOverHTTP() throws {
        let c = try send("POST", "/v1/completions", #"{"model":"\#(model.id)","prompt":"The capital of France is","max_tokens":4,"temperature":0,"logprobs":1,"echo":true}"#)
        XCTAssertEqual(c.status, 200)
        let local = api.handle(HTTPRequest(method: "POST", path: "/v1/completions", json: #"{"model":"\#(model.id)","prompt":"The capital of France is","max_tokens":4,"temperature":0,"logprobs":1,"echo":true}"#))
        let remote = try XCTUnwrap((try object(c.body)["choices"] as? [[String: Any]])?.first)
        let inproc = try XCTUnwrap((try object(local.collectBody())["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual(remote["text"] as? String, inproc["text"] as? String)
        XCTAssertEqual((remote["logprobs"] as? [String: Any])?["tokens"] as? [String], (inproc["logprobs"] as? [String: Any])?["tokens"] as? [String])

        let s = try send("POST", "/v1/chat/completions", #"{"model":"\#(model.id)","messages":[{"role":"user","content":"Hi"}],"max_tokens":6,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"#)
        XCTAssertEqual(s.status, 200)
        XCTAssertEqual(s.headers["content-type"], "text/event-stream")
        let (events, done) = try sseEvents(s.body)
        XCTAssertTrue(done)
        XCTAssertEqual((events.last?["usage"] as? [String: Int])?["completion_tokens"].map { $0 <= 6 }, true)

        let n = try send("POST", "/api/generate", #"{"model":"\#(model.id)","prompt":"Hello","options":{"num_predict":3,"temperature":0}}"#)
        XCTAssertEqual(n.status, 200)
        let lines = String(decoding: n.body, as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(try object(Data(try XCTUnwrap(lines.last).utf8))["done"] as? Bool, true)
    }

    /// A client that hangs up mid-stream frees the engine at once: the next request is served
    /// promptly instead of waiting for the abandoned 400-token generation.
    func testDisconnectMidStreamCancelsGeneration() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(server.port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        XCTAssertEqual(rc, 0)
        let body = #"{"model":"\#(model.id)","prompt":"Write a long story about a dragon.","max_tokens":400,"temperature":1,"seed":3,"stream":true}"#
        let head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
        let msg = Array((head + body).utf8)
        XCTAssertEqual(msg.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, msg.count)
        // Read until a couple of events have arrived: the generation is running.
        var got = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while String(decoding: got, as: UTF8.self).components(separatedBy: "data: ").count < 4 {
            let n = read(fd, &buf, buf.count)
            XCTAssertGreaterThan(n, 0)
            if n <= 0 { break }
            got += buf[0..<n]
        }
        XCTAssertTrue(String(decoding: got, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        XCTAssertEqual(model.engine.status.active, 1)
        close(fd)
        let t0 = Date()
        while model.engine.status.active != 0 && Date().timeIntervalSince(t0) < 5 { usleep(5000) }
        let freed = Date().timeIntervalSince(t0)
        XCTAssertEqual(model.engine.status.active, 0)
        XCTAssertLessThan(freed, 1.0, "the sequence is freed within a few tokens of the disconnect")
        let t1 = Date()
        let next = try send("POST", "/v1/completions", #"{"model":"\#(model.id)","prompt":"Hi","max_tokens":2,"temperature":0}"#)
        XCTAssertEqual(next.status, 200)
        XCTAssertLessThan(Date().timeIntervalSince(t1), 2.0)
    }

    /// stop() with a stream in flight: the stream ends, the generation is cancelled, stop returns.
    func testStopCancelsOpenStreams() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(server.port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        let body = #"{"model":"\#(model.id)","prompt":"Tell a story.","max_tokens":400,"temperature":1,"seed":5,"stream":true}"#
        let msg = Array(("POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body).utf8)
        _ = msg.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var buf = [UInt8](repeating: 0, count: 4096)
        XCTAssertGreaterThan(read(fd, &buf, buf.count), 0)
        let t0 = Date()
        server.stop()
        XCTAssertLessThan(Date().timeIntervalSince(t0), 2.0)
        while model.engine.status.active != 0 && Date().timeIntervalSince(t0) < 3 { usleep(5000) }
        XCTAssertEqual(model.engine.status.active, 0)
        close(fd)
    }
}
