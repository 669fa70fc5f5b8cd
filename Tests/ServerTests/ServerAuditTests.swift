import Foundation
import XCTest
import Server
import Governance

/// The audit log through API.handle: one record per request (refusals included), streams
/// recorded before their last frame, tokens and X-Request-Id.
final class ServerAuditTests: XCTestCase {
    var api: API!
    var modelID: String!
    var storage: SQLiteStorage!
    var dir: URL!

    func makeAPI(_ prompts: PromptLogging = .none) throws {
        let shared = try Shared.get()
        modelID = shared.model.id
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("steward-srv-audit-\(UUID().uuidString)")
        storage = try SQLiteStorage(path: dir.appendingPathComponent("steward.db").path)
        api = API(models: shared.api.models, version: "test")
        api.audit = try AuditLog(storage: storage, policy: AuditPolicy(prompts: prompts), usage: try UsageLedger(storage: storage))
    }

    override func tearDown() { if let dir { try? FileManager.default.removeItem(at: dir) } }

    func records() throws -> [AuditRecord] { try XCTUnwrap(api.audit).records(since: nil, until: nil) }

    func record(_ id: String?) throws -> AuditRecord {
        let id = try XCTUnwrap(id, "X-Request-Id")
        return try XCTUnwrap(try records().first { $0.requestID == id }, "no audit record for \(id)")
    }

    func testEveryRequestIsRecordedIncludingRefusals() throws {
        try makeAPI()
        var sent: [(HTTPResponse, Int, String)] = []
        func send(_ r: HTTPRequest, _ status: Int) {
            let resp = api.handle(r)
            _ = resp.collectBody()
            sent.append((resp, status, r.path))
        }
        send(HTTPRequest(method: "GET", path: "/v1/models"), 200)
        send(HTTPRequest(method: "GET", path: "/no/such/route"), 404)
        send(HTTPRequest(method: "GET", path: "/v1/completions"), 405)
        send(HTTPRequest(method: "POST", path: "/v1/chat/completions", json: "{not json"), 400)
        send(HTTPRequest(method: "POST", path: "/api/chat", json: #"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#), 404)
        var big = HTTPRequest(method: "POST", path: "/v1/completions")
        big.bodyLimit = 16
        send(big, 413)
        let recs = try records()
        XCTAssertEqual(recs.count, sent.count)
        for (resp, status, path) in sent {
            XCTAssertEqual(resp.status, status, path)
            let id = try XCTUnwrap(resp.header("X-Request-Id"), path)
            XCTAssertTrue(id.hasPrefix("req_"), id)
            let rec = try record(id)
            XCTAssertEqual(rec.status, status, path)
            XCTAssertEqual(rec.route, path)
            XCTAssertEqual(rec.kind, "request")
            XCTAssertGreaterThanOrEqual(rec.latencyMicroseconds, 0)
        }
        XCTAssertEqual(Set(sent.compactMap { $0.0.header("X-Request-Id") }).count, sent.count, "ids are unique")
        XCTAssertTrue(try api.audit!.verify(trustedKey: nil).ok)
        // Refusals without a model are not usage.
        XCTAssertTrue(try api.audit!.usage!.report(by: .model).isEmpty)
    }

    func testChatTokensAndUsage() throws {
        try makeAPI()
        let resp = api.handle(HTTPRequest(method: "POST", path: "/v1/chat/completions",
                                          json: #"{"model":"\#(modelID!)","messages":[{"role":"user","content":"Say hi"}],"max_tokens":5,"temperature":0}"#))
        XCTAssertEqual(resp.status, 200)
        let usage = try XCTUnwrap(try object(resp.collectBody())["usage"] as? [String: Any])
        let rec = try record(resp.header("X-Request-Id"))
        XCTAssertEqual(rec.model, modelID)
        XCTAssertEqual(rec.tokensIn, usage["prompt_tokens"] as? Int)
        XCTAssertEqual(rec.tokensOut, usage["completion_tokens"] as? Int)
        XCTAssertGreaterThan(rec.tokensOut, 0)
        XCTAssertNil(rec.prompt, "prompts: none")
        let rows = try api.audit!.usage!.report(by: .model)
        XCTAssertEqual(rows.map(\.group), [modelID])
        XCTAssertEqual(rows.first?.requests, 1)
        XCTAssertEqual(rows.first?.tokensIn, Int64(rec.tokensIn))
        XCTAssertEqual(rows.first?.tokensOut, Int64(rec.tokensOut))
        // A refused generation for the same model counts as an error.
        let bad = api.handle(HTTPRequest(method: "POST", path: "/v1/chat/completions", json: #"{"model":"\#(modelID!)","messages":[]}"#))
        XCTAssertEqual(bad.status, 400)
        XCTAssertEqual(try api.audit!.usage!.report(by: .model).first?.errors, 1)
        XCTAssertEqual(try api.audit!.usage!.report(by: .model).first?.requests, 2)
    }

    /// The stream's record is in the database before its last frame reaches the reader.
    func testStreamRecordedBeforeItsLastFrame() throws {
        try makeAPI(.full)
        for (path, body, last) in [
            ("/v1/chat/completions", #"{"model":"\#(modelID!)","messages":[{"role":"user","content":"Count to three"}],"max_tokens":6,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"#, "data: [DONE]"),
            ("/api/generate", #"{"model":"\#(modelID!)","prompt":"Count to three","options":{"num_predict":6,"temperature":0}}"#, "\"done\":true"),
            ("/v1/completions", #"{"model":"\#(modelID!)","prompt":"One, two,","max_tokens":4,"temperature":0,"stream":true}"#, "data: [DONE]"),
        ] {
            let resp = api.handle(HTTPRequest(method: "POST", path: path, json: body))
            XCTAssertEqual(resp.status, 200, path)
            let id = try XCTUnwrap(resp.header("X-Request-Id"))
            guard case let .stream(pipe) = resp.body else { return XCTFail("\(path) did not stream") }
            var text = ""
            var sawLast = false
            while let chunk = pipe.next() {
                let s = String(decoding: chunk, as: UTF8.self)
                if s.contains(last) {
                    sawLast = true
                    XCTAssertNotNil(try records().first { $0.requestID == id }, "\(path): the record must exist before the last frame")
                }
                text += s
            }
            XCTAssertTrue(sawLast, path)
            let rec = try record(id)
            XCTAssertEqual(rec.status, 200)
            XCTAssertEqual(rec.model, modelID)
            XCTAssertGreaterThan(rec.tokensIn, 0, path)
            XCTAssertGreaterThan(rec.tokensOut, 0, path)
            XCTAssertNil(rec.error)
            XCTAssertNotNil(rec.prompt, path)
            XCTAssertTrue(rec.prompt?.contains(path == "/v1/completions" ? "One, two," : "Count to three") == true, rec.prompt ?? "")
            XCTAssertFalse((rec.completion ?? "").isEmpty, path)
            if path == "/v1/chat/completions" {
                let (events, _) = try sseEvents(Data(text.utf8))
                let usage = try XCTUnwrap(events.last?["usage"] as? [String: Any])
                XCTAssertEqual(rec.tokensIn, usage["prompt_tokens"] as? Int)
                XCTAssertEqual(rec.tokensOut, usage["completion_tokens"] as? Int)
            }
        }
        XCTAssertTrue(try api.audit!.verify(trustedKey: nil).ok)
    }

    func testCancelledStreamIsRecorded() throws {
        try makeAPI()
        let resp = api.handle(HTTPRequest(method: "POST", path: "/v1/chat/completions",
                                          json: #"{"model":"\#(modelID!)","messages":[{"role":"user","content":"Tell a long story"}],"max_tokens":200,"stream":true}"#))
        guard case let .stream(pipe) = resp.body else { return XCTFail("no stream") }
        _ = pipe.next()
        pipe.cancel()
        let id = try XCTUnwrap(resp.header("X-Request-Id"))
        let deadline = Date().addingTimeInterval(20)
        while try records().first(where: { $0.requestID == id }) == nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let rec = try record(id)
        XCTAssertEqual(rec.error, "cancelled")
        XCTAssertLessThan(rec.tokensOut, 200)
    }

    func testPromptHashAndEmbeddings() throws {
        try makeAPI(.hash)
        let resp = api.handle(HTTPRequest(method: "POST", path: "/v1/chat/completions",
                                          json: #"{"model":"\#(modelID!)","messages":[{"role":"user","content":"secret plan"}],"max_tokens":2,"temperature":0}"#))
        let body = try object(resp.collectBody())
        let text = try XCTUnwrap(((body["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String)
        let rec = try record(resp.header("X-Request-Id"))
        XCTAssertEqual(rec.promptMode, "hash")
        XCTAssertEqual(rec.prompt, Secrets.sha256Hex("user: secret plan"))
        XCTAssertEqual(rec.completion, Secrets.sha256Hex(text))
        let all = try records().map { AuditLog.export([$0], format: .jsonl) }.joined()
        XCTAssertFalse(all.contains("secret plan"), "hash mode never stores the text")

        guard let embedder = api.models.embeddingModels.first else { throw XCTSkip("no embedding model") }
        let e = api.handle(HTTPRequest(method: "POST", path: "/v1/embeddings", json: #"{"model":"\#(embedder.id)","input":["hello world"]}"#))
        XCTAssertEqual(e.status, 200)
        let usage = try XCTUnwrap(try object(e.collectBody())["usage"] as? [String: Any])
        let erec = try record(e.header("X-Request-Id"))
        XCTAssertEqual(erec.model, embedder.id)
        XCTAssertEqual(erec.tokensIn, usage["prompt_tokens"] as? Int)
        XCTAssertEqual(erec.tokensOut, 0)
    }

    func testNoAuditStillSendsRequestID() throws {
        let api = API(models: try Shared.get().api.models, version: "test")
        let r = api.handle(HTTPRequest(method: "GET", path: "/health"))
        XCTAssertNotNil(r.header("X-Request-Id"))
    }
}
