import Foundation
import XCTest
import Generation
import Governance
import Retrieval
import Server
import TestSupport

/// /v1/rag/collections, /v1/rag/query and chat's `collections` on the real SmolLM2 and
/// all-MiniLM-L6-v2, with key grants and the audit log, over the nature fixture (bees,
/// volcanoes, sourdough, primes) and an "hr" collection nobody but the grantee may read.
final class ServerRAGTests: XCTestCase {
    var dir: URL!
    var api: API!
    var model: ServedModel!
    var store: RAGStore!

    /// SmolLM2 with room for a grounded prompt (the shared test model has a 512-token context).
    static let loaded: Result<(ServedModel, ServedEmbedder), Error> = Result {
        guard case let .decoder(m) = try ModelLoader.load(try TestPaths.model("smollm2-135m-instruct"), threads: nil, contextLength: 2048, template: nil),
              case let .embedder(e) = try ModelLoader.load(try TestPaths.model("all-minilm-l6-v2"), threads: nil, contextLength: nil, template: nil) else {
            throw TestSupportError.missing("SmolLM2 or MiniLM did not load")
        }
        return (m, e)
    }

    var dbPath: String { dir.appendingPathComponent("steward.db").path }

    override func setUpWithError() throws {
        let (m, e) = try ServerRAGTests.loaded.get()
        model = m
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("steward-rag-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let docs = dir.appendingPathComponent("docs").path
        try FileManager.default.copyItem(atPath: TestPaths.fixture("rag/docs"), toPath: docs)
        let hr = dir.appendingPathComponent("hr").path
        try FileManager.default.createDirectory(atPath: hr, withIntermediateDirectories: true)
        try "Salaries are reviewed every March. The payroll team answers questions about bonuses and pay slips.\n"
            .write(toFile: hr + "/pay.txt", atomically: true, encoding: .utf8)
        store = try RAGStore(path: dbPath)
        let ingestor = Ingestor(store: store, embedder: e.embedder, embeddingModel: e.id)
        _ = try ingestor.ingest(collection: "nature", paths: [docs]) { _ in }
        _ = try ingestor.ingest(collection: "hr", paths: [hr]) { _ in }
        let registry = ModelRegistry()
        registry.add(m)
        registry.add(e)
        registry.markReady()
        api = API(models: registry, version: "test")
        api.rag = RAGService(store: try RAGStore(path: dbPath))
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func call(_ method: String, _ path: String, _ body: [String: Any]? = nil, key: String? = nil) throws -> (status: Int, json: [String: Any], response: HTTPResponse) {
        var h: [String: String] = ["Content-Type": "application/json"]
        if let key { h["Authorization"] = "Bearer " + key }
        let data = try body.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
        let r = api.handle(HTTPRequest(method: method, path: path, headers: h, body: data))
        let raw = r.collectBody()
        let json = (try? JSONSerialization.jsonObject(with: raw)) as? [String: Any] ?? [:]
        return (r.status, json, r)
    }

    func code(_ j: [String: Any]) -> String? { (j["error"] as? [String: Any])?["code"] as? String }

    func testQueryRetrievesAndAnswersWithCitations() throws {
        // Retrieval only: no model named, the passages come back with their text.
        var r = try call("POST", "/v1/rag/query", ["collection": "nature", "query": "How do worker bees tell each other where the flowers are?"])
        XCTAssertEqual(r.status, 200, "\(r.json)")
        XCTAssertEqual(r.json["found"] as? Bool, true)
        XCTAssertTrue(r.json["answer"] is NSNull || r.json["answer"] == nil)
        var cites = try XCTUnwrap(r.json["citations"] as? [[String: Any]])
        XCTAssertEqual(cites.first?["file"] as? String, "bees.md")
        XCTAssertTrue((cites.first?["text"] as? String ?? "").contains("waggle dance"))

        // With a model: a grounded answer; the sources are the same, their text can be left out.
        r = try call("POST", "/v1/rag/query", ["collection": "nature", "query": "How do worker bees tell each other where the flowers are?",
                                                "model": model.id, "max_tokens": 40, "include_text": false])
        XCTAssertEqual(r.status, 200, "\(r.json)")
        XCTAssertEqual(r.json["model"] as? String, model.id)
        let answer = try XCTUnwrap(r.json["answer"] as? String)
        XCTAssertFalse(answer.isEmpty)
        cites = try XCTUnwrap(r.json["citations"] as? [[String: Any]])
        XCTAssertEqual(cites.first?["file"] as? String, "bees.md")
        XCTAssertNil(cites.first?["text"])
        let method = try XCTUnwrap(r.json["citation_method"] as? String)
        XCTAssertTrue(["model", "overlap", "none"].contains(method))
        if method != "none" { XCTAssertTrue(cites.contains { $0["cited"] as? Bool == true }, "\(cites)") }
        let usage = try XCTUnwrap(r.json["usage"] as? [String: Any])
        XCTAssertGreaterThan(usage["prompt_tokens"] as? Int ?? 0, 60, "the sources are in the prompt")
        XCTAssertGreaterThan(usage["completion_tokens"] as? Int ?? 0, 0)
    }

    func testNothingRelevantSaysItDoesNotKnowWithoutRunningTheModel() throws {
        let r = try call("POST", "/v1/rag/query", ["collection": "nature", "query": "Which team won the 1998 FIFA World Cup final?", "model": model.id])
        XCTAssertEqual(r.status, 200, "\(r.json)")
        XCTAssertEqual(r.json["found"] as? Bool, false)
        XCTAssertTrue((r.json["answer"] as? String ?? "").hasPrefix("I don't know"), "\(r.json)")
        XCTAssertEqual((r.json["usage"] as? [String: Any])?["completion_tokens"] as? Int, 0)
        XCTAssertEqual((r.json["citations"] as? [Any])?.count, 0)

        let chat = try call("POST", "/v1/chat/completions", ["model": model.id, "collections": ["nature"], "max_tokens": 20,
                                                             "messages": [["role": "user", "content": "Which team won the 1998 FIFA World Cup final?"]]])
        XCTAssertEqual(chat.status, 200, "\(chat.json)")
        let msg = ((chat.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        XCTAssertTrue(msg?.hasPrefix("I don't know") == true, "\(chat.json)")
    }

    func testChatCompletionsWithCollectionsCarryCitations() throws {
        let question = "What is a sourdough starter made of?"
        let plain = try call("POST", "/v1/chat/completions", ["model": model.id, "max_tokens": 24, "temperature": 0,
                                                              "messages": [["role": "user", "content": question]]])
        XCTAssertNil(plain.json["citations"], "no collections, no citations field")
        let grounded = try call("POST", "/v1/chat/completions", ["model": model.id, "max_tokens": 24, "temperature": 0, "collections": "nature",
                                                                 "messages": [["role": "system", "content": "Be brief."], ["role": "user", "content": question]]])
        XCTAssertEqual(grounded.status, 200, "\(grounded.json)")
        let cites = try XCTUnwrap(grounded.json["citations"] as? [[String: Any]])
        XCTAssertEqual(cites.first?["file"] as? String, "sourdough.html", "\(cites)")
        let pt = { (j: [String: Any]) in (j["usage"] as? [String: Any])?["prompt_tokens"] as? Int ?? 0 }
        XCTAssertGreaterThan(pt(grounded.json), pt(plain.json) + 40, "the sources went into the prompt")

        // Streamed: the chunk that ends the choice carries the citations.
        let h = ["Content-Type": "application/json"]
        let body = try JSONSerialization.data(withJSONObject: ["model": model.id, "max_tokens": 16, "temperature": 0, "stream": true, "collections": ["nature"],
                                                               "messages": [["role": "user", "content": question]]])
        let s = api.handle(HTTPRequest(method: "POST", path: "/v1/chat/completions", headers: h, body: body))
        let (events, done) = try sseEvents(s.collectBody())
        XCTAssertTrue(done)
        let last = try XCTUnwrap(events.last { (($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String) != nil })
        XCTAssertEqual(((last["citations"] as? [[String: Any]])?.first)?["file"] as? String, "sourdough.html")
        XCTAssertTrue(events.dropLast().filter { $0["citations"] != nil }.count <= 1)

        // An unknown collection is a 404, not a silent ungrounded answer.
        let missing = try call("POST", "/v1/chat/completions", ["model": model.id, "collections": ["nope"], "messages": [["role": "user", "content": "hi"]]])
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(code(missing.json), "collection_not_found")
    }

    func testKeysSeeOnlyTheirCollectionsAndRetrievalsAreAudited() throws {
        let storage = try SQLiteStorage(path: dbPath)
        let keys = try KeyStore(storage: storage)
        api.access = AccessGate(keys: keys, limiter: try RateLimiter(storage: storage))
        let log = try AuditLog(storage: storage)
        api.audit = log
        var n = NewKey(name: "nature-reader")
        n.scopes = [.chat, .rag]
        n.collections = ["nature"]
        let natureKey = try keys.create(n).key
        var bare = NewKey(name: "rag-nothing-granted")
        bare.scopes = [.rag]
        let bareKey = try keys.create(bare).key
        let chatKey = try keys.create(NewKey(name: "chat-only")).key

        var r = try call("GET", "/v1/rag/collections", key: natureKey)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual((r.json["data"] as? [[String: Any]])?.map { $0["name"] as? String }, ["nature"], "hr is not listed")
        r = try call("GET", "/v1/rag/collections", key: bareKey)
        XCTAssertEqual((r.json["data"] as? [Any])?.count, 0)
        r = try call("GET", "/v1/rag/collections", key: chatKey)
        XCTAssertEqual(r.status, 403)

        // A collection not granted looks exactly like one that does not exist.
        let hrQuery: [String: Any] = ["collection": "hr", "query": "When are salaries reviewed?"]
        r = try call("POST", "/v1/rag/query", hrQuery, key: natureKey)
        XCTAssertEqual(r.status, 404)
        XCTAssertEqual(code(r.json), "collection_not_found")
        let unknown = try call("POST", "/v1/rag/query", ["collection": "nonexistent", "query": "x"], key: natureKey)
        XCTAssertEqual(unknown.status, 404)
        XCTAssertEqual(code(unknown.json), code(r.json))
        r = try call("POST", "/v1/chat/completions", ["model": model.id, "collections": ["hr"], "messages": [["role": "user", "content": "When are salaries reviewed?"]]], key: natureKey)
        XCTAssertEqual(r.status, 404)
        r = try call("POST", "/v1/chat/completions", ["model": model.id, "collections": ["nature"], "max_tokens": 4,
                                                      "messages": [["role": "user", "content": "What is the waggle dance?"]]], key: chatKey)
        XCTAssertEqual(r.status, 403, "chat without the rag scope cannot ground")
        XCTAssertEqual(code(r.json), "insufficient_scope")

        // Granted in another connection (the CLI): the next request sees it.
        try KeyStore(storage: SQLiteStorage(path: dbPath)).grant("rag-nothing-granted", collections: ["hr"])
        r = try call("POST", "/v1/rag/query", hrQuery, key: bareKey)
        XCTAssertEqual(r.status, 200, "\(r.json)")
        XCTAssertEqual((r.json["citations"] as? [[String: Any]])?.first?["file"] as? String, "pay.txt")
        let requestID = try XCTUnwrap(r.response.headers.first { $0.0 == "X-Request-Id" }?.1)

        // The retrieval is in the audit log, tied to the request, with the document ids.
        let hrDoc = try XCTUnwrap(try store.documents(in: try store.requireCollection("hr")).first)
        let records = try log.records()
        let retrieval = try XCTUnwrap(records.last { $0.kind == "retrieval" && $0.requestID == requestID }, "\(records.map(\.kind))")
        XCTAssertEqual(retrieval.details["collections"], "hr")
        XCTAssertEqual(retrieval.details["documents"], "\(hrDoc.id)")
        XCTAssertNil(retrieval.prompt, "the question is not logged by default")
        XCTAssertNotNil(retrieval.keyID)
        XCTAssertTrue(records.contains { $0.kind == "request" && $0.requestID == requestID && $0.route == "/v1/rag/query" })

        // Erasure: once deleted, the document is never retrieved again.
        try store.deleteDocument(id: hrDoc.id, in: try store.requireCollection("hr"))
        r = try call("POST", "/v1/rag/query", hrQuery, key: bareKey)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual((r.json["citations"] as? [Any])?.count, 0)
        XCTAssertEqual(r.json["found"] as? Bool, false)
    }

    func testBadQueriesAreClearErrors() throws {
        for (body, param) in [(["collection": "nature"], "query"), (["query": "x"], "collection"),
                              (["collection": "nature", "query": "x", "k": 0], "k"), (["collection": "nature", "query": "x", "mode": "fuzzy"], "mode")] as [([String: Any], String)] {
            let r = try call("POST", "/v1/rag/query", body)
            XCTAssertEqual(r.status, 400, "\(body) → \(r.json)")
            XCTAssertEqual((r.json["error"] as? [String: Any])?["param"] as? String, param, "\(r.json)")
        }
        let r = try call("POST", "/v1/rag/query", ["collection": "nature", "query": "bees", "model": "no-such-model"])
        XCTAssertEqual(r.status, 404)
    }

    /// The chat page answers from a chosen collection and lists the sources under the answer.
    func testChatPageAnswersFromACollection() throws {
        guard HeadlessChromium.executable() != nil else {
            let why = "chromium is not installed; install it with `make deps` (Debian package chromium) to test the chat page"
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(why); return }
            throw XCTSkip(why)
        }
        let server = HTTPServer(host: "127.0.0.1", port: 0) { [api] in api!.handle($0) }
        try server.start()
        defer { server.stop() }
        let browser = try HeadlessChromium(directory: dir, width: 1000, height: 800)
        defer { browser.stop() }
        do {
            try browser.open("http://127.0.0.1:\(server.port)/?collection=nature")
            try browser.wait(for: "models and collections", "document.readyState === 'complete' && document.getElementById('status')?.textContent === 'Ready'", timeout: 15)
            XCTAssertEqual(try browser.evaluate("[...document.getElementById('collection').options].map(o => o.value).join(',')") as? String, ",hr,nature")
            XCTAssertEqual(try browser.evaluate("document.getElementById('collection').value") as? String, "nature")
            XCTAssertEqual(try browser.evaluate("document.getElementById('collection-label').hidden") as? Bool, false)
            _ = try browser.evaluate("""
                (() => { document.getElementById('temperature').value = '0'; document.getElementById('max-tokens').value = '24';
                         document.getElementById('input').value = 'How do honey bees tell each other where flowers are?';
                         document.getElementById('send').click(); return true; })()
                """)
            try browser.wait(for: "the grounded answer", """
                (() => { const a = [...document.querySelectorAll('.msg.assistant')].pop();
                         return !!a && document.getElementById('stop').disabled && !!a.querySelector('.sources'); })()
                """, timeout: 40)
            let sources = try XCTUnwrap(try browser.evaluate("[...document.querySelectorAll('.msg.assistant .sources .source')].map(e => e.textContent)") as? [String])
            XCTAssertTrue(sources.first?.hasPrefix("[1] bees.md:") == true, "\(sources)")
            XCTAssertTrue(sources.allSatisfy { $0.hasSuffix("(nature)") || $0.hasSuffix("(nature) — cited") }, "\(sources)")
            XCTAssertFalse((try browser.evaluate("document.querySelector('.msg.assistant .answer').textContent") as? String ?? "").isEmpty)
            XCTAssertNil(try browser.evaluate("document.querySelector('.msg.assistant .error')?.textContent ?? null") as? String)
            XCTAssertEqual(try browser.evaluate("[...document.querySelectorAll('.msg .body')].every(b => b.children.length === 0)") as? Bool, true)
            let png = try browser.screenshot()
            try FileManager.default.createDirectory(at: ServerWebPageTests.artifacts, withIntermediateDirectories: true)
            try png.write(to: ServerWebPageTests.artifacts.appendingPathComponent("chat-page-rag.png"))
        } catch {
            XCTFail("\(error)\nchromium log (\(browser.logPath)):\n\(browser.logTail)")
        }
    }
}
