import Foundation
import XCTest
import Generation
import Governance
import Models
import Server
import TestSupport

/// LoRA adapters on the server: chosen per request (`BASE+NAME` or `adapter`), batched with
/// other sequences in the same decode steps, loaded and unloaded through the admin API.
final class ServerAdapterTests: XCTestCase {
    static let loaded: Result<(ServedModel, String), Error> = Result {
        guard case let .decoder(m) = try ModelLoader.load(try TestPaths.model("smollm2-135m-instruct"), threads: nil, contextLength: 512, template: nil, parallel: 3) else {
            throw TestSupportError.missing("SmolLM2 did not load")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("steward-adapters-\(getpid())").path
        try TestAdapters.writePEFT(to: dir + "/style", shapes: .smollm2, targets: ["q_proj", "v_proj", "down_proj"])
        m.addAdapter(LoRAUse(try LoRAAdapter.load(dir + "/style", for: m.engine.model.config)), name: "style")
        return (m, dir)
    }

    var api: API!
    var model: ServedModel!
    var dir: String = ""

    override func setUpWithError() throws {
        (model, dir) = try ServerAdapterTests.loaded.get()
        let registry = ModelRegistry()
        registry.add(model)
        registry.markReady()
        api = API(models: registry, version: "test")
    }

    func post(_ path: String, _ body: [String: Any]) throws -> (Int, [String: Any]) {
        let r = api.handle(HTTPRequest(method: "POST", path: path, headers: ["Content-Type": "application/json"],
                                       body: try JSONSerialization.data(withJSONObject: body)))
        return (r.status, (try? JSONSerialization.jsonObject(with: r.collectBody())) as? [String: Any] ?? [:])
    }

    func complete(_ model: String, adapter: String? = nil, prompt: String = "The colours of the rainbow are") throws -> String {
        var body: [String: Any] = ["model": model, "prompt": prompt, "max_tokens": 20, "temperature": 0]
        if let adapter { body["adapter"] = adapter }
        let (status, j) = try post("/v1/completions", body)
        XCTAssertEqual(status, 200, "\(j)")
        return ((j["choices"] as? [[String: Any]])?.first?["text"] as? String) ?? "<none>"
    }

    func testRequestsChooseTheAdapter() throws {
        let base = try complete(model.id)
        let plus = try complete(model.id + "+style")
        XCTAssertNotEqual(plus, base)
        XCTAssertEqual(try complete(model.id, adapter: "style"), plus, "the adapter field and BASE+NAME are the same")
        let (status, j) = try post("/v1/chat/completions", ["model": model.id + "+nope", "messages": [["role": "user", "content": "hi"]]])
        XCTAssertEqual(status, 404)
        XCTAssertEqual((j["error"] as? [String: Any])?["code"] as? String, "adapter_not_found")
        let both = try post("/v1/completions", ["model": model.id + "+style", "adapter": "style", "prompt": "x"])
        XCTAssertEqual(both.0, 400)
        let list = api.handle(HTTPRequest(method: "GET", path: "/v1/models"))
        let ids = ((try JSONSerialization.jsonObject(with: list.collectBody()) as? [String: Any])?["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
        XCTAssertEqual(ids?.contains(model.id + "+style"), true)
        // Ollama too.
        let o = try post("/api/generate", ["model": model.id + "+style", "prompt": "The colours of the rainbow are", "stream": false, "raw": true,
                                           "options": ["num_predict": 20, "temperature": 0]])
        XCTAssertEqual(o.0, 200, "\(o.1)")
    }

    /// Concurrent requests with and without the adapter share decode steps and each gets what
    /// it gets alone.
    func testConcurrentRequestsWithDifferentAdaptersMatchSerial() throws {
        let prompts = ["The colours of the rainbow are", "Once upon a time", "The capital of France is"]
        let setups: [(String, String?)] = [(model.id, nil), (model.id, "style"), (model.id + "+style", nil)]
        var serial: [String] = []
        for (p, s) in zip(prompts, setups) { serial.append(try complete(s.0, adapter: s.1, prompt: p)) }
        final class Results: @unchecked Sendable { var texts = [String](repeating: "", count: 3); let lock = NSLock() }
        let results = Results()
        let api = self.api!
        DispatchQueue.concurrentPerform(iterations: 3) { i in
            var body: [String: Any] = ["model": setups[i].0, "prompt": prompts[i], "max_tokens": 20, "temperature": 0]
            if let a = setups[i].1 { body["adapter"] = a }
            let r = api.handle(HTTPRequest(method: "POST", path: "/v1/completions", headers: ["Content-Type": "application/json"],
                                           body: (try? JSONSerialization.data(withJSONObject: body)) ?? Data()))
            let j = (try? JSONSerialization.jsonObject(with: r.collectBody())) as? [String: Any]
            let t = ((j?["choices"] as? [[String: Any]])?.first?["text"] as? String) ?? "<error \(r.status)>"
            results.lock.lock(); results.texts[i] = t; results.lock.unlock()
        }
        XCTAssertEqual(results.texts, serial)
    }

    func testAdminLoadsAndUnloadsAdapters() throws {
        var (status, j) = try post("/admin/adapters", ["path": dir + "/style", "name": "second", "scale": 0.5])
        XCTAssertEqual(status, 201, "\(j)")
        XCTAssertEqual(j["id"] as? String, model.id + "+second")
        XCTAssertEqual(j["rank"] as? Int, 8)
        let half = try complete(model.id + "+second")
        XCTAssertNotEqual(half, try complete(model.id + "+style"), "scale 0.5 differs from scale 1")
        (status, j) = try post("/admin/adapters", ["path": dir + "/missing"])
        XCTAssertEqual(status, 400)
        XCTAssertEqual((j["error"] as? [String: Any])?["code"] as? String, "invalid_adapter")
        let del = api.handle(HTTPRequest(method: "DELETE", path: "/admin/adapters/second"))
        XCTAssertEqual(del.status, 200)
        (status, _) = try post("/v1/completions", ["model": model.id + "+second", "prompt": "x"])
        XCTAssertEqual(status, 404, "unloaded")
        XCTAssertEqual(api.handle(HTTPRequest(method: "DELETE", path: "/admin/adapters/second")).status, 404)
    }

    func testKillSwitchOnTheBaseCoversItsAdapters() throws {
        let dbDir = FileManager.default.temporaryDirectory.appendingPathComponent("steward-adapter-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dbDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dbDir) }
        let gate = try AccessGate(storage: SQLiteStorage(path: dbDir.appendingPathComponent("steward.db").path))
        api.access = gate
        try gate.keys.disableModel(model.id)
        try gate.refresh()
        let (status, j) = try post("/v1/completions", ["model": model.id + "+style", "prompt": "x", "max_tokens": 2])
        XCTAssertEqual(status, 403)
        XCTAssertEqual((j["error"] as? [String: Any])?["code"] as? String, "model_disabled")
    }
}
