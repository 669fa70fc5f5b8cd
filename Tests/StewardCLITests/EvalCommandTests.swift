import Foundation
import Server
import StewardCLI
import TestSupport
import XCTest

/// `steward eval` end to end on the real SmolLM2: a local run, the same task through an
/// OpenAI-compatible endpoint (a live steward server), compare, gate, report and safety.
final class EvalCommandTests: XCTestCase {
    var tasks: String { TestPaths.repoRoot + "/tasks" }

    func load(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    func task(_ run: [String: Any], _ name: String) throws -> [String: Any] {
        try XCTUnwrap((run["tasks"] as? [[String: Any]])?.first { $0["name"] as? String == name })
    }

    func testLocalAndEndpointRunsAgreeAndTheGateWorks() throws {
        let dir = try makeTemporaryDirectory("eval-cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let local = dir.path + "/local.json", remote = dir.path + "/remote.json"
        var r = steward(["eval", "run", "--model", "smollm2-135m-instruct", "--task", tasks + "/capitals-mc.json", "--task", tasks + "/arithmetic.json",
                         "--limit", "8", "--out", local])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("capitals_mc (8 samples"), r.out)
        let run = try load(local)
        XCTAssertEqual((run["model"] as? [String: Any])?["sha256"] as? String, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
        XCTAssertEqual((run["settings"] as? [String: Any])?["limit"] as? String, "8")
        XCTAssertNotNil(run["steward_version"])

        // The same tasks through a live server's /v1/completions (echo + logprobs).
        guard case let .decoder(m) = try ModelLoader.load(try TestPaths.model("smollm2-135m-instruct"), threads: nil, contextLength: 1024, template: nil) else {
            return XCTFail("SmolLM2 did not load")
        }
        let registry = ModelRegistry()
        registry.add(m)
        registry.markReady()
        let api = API(models: registry, version: "test")
        let server = HTTPServer(host: "127.0.0.1", port: 0) { api.handle($0) }
        try server.start()
        defer { server.stop() }
        r = steward(["eval", "run", "--endpoint", "http://127.0.0.1:\(server.port)", "--endpoint-model", m.id, "--task", tasks + "/capitals-mc.json",
                     "--task", tasks + "/arithmetic.json", "--limit", "8", "--out", remote])
        XCTAssertEqual(r.code, 0, r.err)
        let a = try task(run, "capitals_mc"), b = try task(try load(remote), "capitals_mc")
        for metric in ["acc", "acc_norm"] {
            let va = ((a["metrics"] as? [String: Any])?[metric] as? [String: Any])?["value"] as? Double
            let vb = ((b["metrics"] as? [String: Any])?[metric] as? [String: Any])?["value"] as? Double
            XCTAssertNotNil(va)
            XCTAssertEqual(va, vb, metric)
        }
        for (x, y) in zip(a["outputs"] as? [[String: String]] ?? [], b["outputs"] as? [[String: String]] ?? []) {
            let lx = (x["loglikelihoods"] ?? "").split(separator: ",").compactMap { Double($0) }
            let ly = (y["loglikelihoods"] ?? "").split(separator: ",").compactMap { Double($0) }
            XCTAssertEqual(lx.count, 4)
            for (p, q) in zip(lx, ly) { XCTAssertEqual(p, q, accuracy: 2e-3, "local and served log-likelihoods") }
        }
        // Greedy generations are the same through either path.
        XCTAssertEqual((try task(run, "arithmetic")["outputs"] as? [[String: String]])?.map { $0["output"] ?? "" },
                       (try task(try load(remote), "arithmetic")["outputs"] as? [[String: String]])?.map { $0["output"] ?? "" })

        r = steward(["eval", "compare", local, remote])
        XCTAssertEqual(r.code, 0)
        XCTAssertTrue(r.out.contains("| capitals_mc | acc |"), r.out)
        XCTAssertEqual(steward(["eval", "gate", "--baseline", local, remote]).code, 0)
        // A candidate whose accuracy fell: the gate fails and says which metric.
        var worse = run
        var ts = worse["tasks"] as! [[String: Any]]
        var metrics = ts[0]["metrics"] as! [String: Any]
        var acc = metrics["acc"] as! [String: Any]
        acc["value"] = (acc["value"] as! Double) - 0.25
        metrics["acc"] = acc; ts[0]["metrics"] = metrics; worse["tasks"] = ts
        let worsePath = dir.path + "/worse.json"
        try JSONSerialization.data(withJSONObject: worse).write(to: URL(fileURLWithPath: worsePath))
        r = steward(["eval", "gate", "--baseline", local, "--max-drop", "0.02", worsePath])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("capitals_mc/acc"), r.err)

        r = steward(["eval", "report", local, remote, "--out", dir.path + "/report"])
        XCTAssertEqual(r.code, 0, r.err)
        let html = try String(contentsOfFile: dir.path + "/report/report.html", encoding: .utf8)
        XCTAssertTrue(html.contains("<svg") && html.contains("capitals_mc"))
        r = steward(["eval", "run", "--model", "smollm2-135m-instruct", "--task", dir.path + "/missing.json", "--out", local])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("cannot read task"), r.err)
    }

    /// The red-team suite through the serving path: what each moderation policy catches.
    func testSafetySuite() throws {
        let dir = try makeTemporaryDirectory("eval-safety")
        defer { try? FileManager.default.removeItem(at: dir) }
        func suite(_ policy: String) throws -> [String: Any] {
            let out = dir.path + "/\(policy).json"
            let r = steward(["eval", "safety", "--suite", tasks + "/safety/redteam.jsonl", "--model", "smollm2-135m-instruct",
                             "--moderation-policy", policy, "--out", out])
            XCTAssertEqual(r.code, 0, r.err)
            XCTAssertTrue(r.out.contains("false-positive rate on benign prompts"), r.out)
            return try load(out)
        }
        let strict = try suite("strict"), standard = try suite("standard")
        let byCat = try XCTUnwrap(strict["by_category"] as? [String: [String: Int]])
        XCTAssertEqual(byCat["secrets"], ["caught": 4, "total": 4])
        XCTAssertEqual(byCat["pii"], ["caught": 5, "total": 5], "strict redacts personal data in input")
        XCTAssertEqual(strict["false_positive_rate"] as? Double, 0)
        XCTAssertGreaterThan(byCat["injection"]?["caught"] ?? 0, 0)
        XCTAssertEqual((strict["rules"] as? [String: Int])?["input:secret.private_key:block"], 1)
        XCTAssertLessThan(standard["catch_rate"] as? Double ?? 1, strict["catch_rate"] as? Double ?? 0, "standard only flags injection and leaves input PII")
        XCTAssertEqual((standard["by_category"] as? [String: [String: Int]])?["secrets"], ["caught": 4, "total": 4])
    }
}
