import XCTest
import StewardCLI
import TestSupport

final class InspectCommandTests: XCTestCase {
    func run(_ args: [String]) -> (Int32, String, String) {
        let c = Console.capturing()
        let code = StewardCLI.run(args, console: c)
        return (code, c.capturedOut, c.capturedErr)
    }

    func testInspectSmolLM2JSON() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        let (code, out, err) = run(["inspect", "smollm2-135m-instruct", "--json"])
        XCTAssertEqual(code, 0, err)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        XCTAssertEqual(obj["architecture"] as? String, "llama")
        XCTAssertEqual(obj["parameters"] as? Int, 134_515_008)
        XCTAssertEqual(obj["license"] as? String, "apache-2.0")
        XCTAssertEqual(obj["chat_template"] as? Bool, true)
        XCTAssertEqual(obj["context_length"] as? Int, 8192)
        // The digest pinned in shared/MODELS.md.
        XCTAssertEqual(obj["sha256"] as? String, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
        let mem = try XCTUnwrap(obj["memory"] as? [String: Any])
        // KV cache f16 at 8192 tokens: 30 layers × 8192 × 3 kv heads × (64 + 64) × 2 bytes.
        XCTAssertEqual(mem["kv_cache_bytes"] as? Int, 30 * 8192 * 3 * 128 * 2)
    }

    func testInspectGemmaSaysNoTemplateAndLicence() throws {
        _ = try TestPaths.model("gemma-3-270m")
        let (code, out, _) = run(["inspect", "gemma-3-270m", "--no-digest"])
        XCTAssertEqual(code, 0)
        XCTAssertTrue(out.contains("architecture   gemma3"), out)
        XCTAssertTrue(out.contains("chat template  none"), out)
        XCTAssertTrue(out.contains("licence        gemma"), out)
        XCTAssertFalse(out.contains("sha256"))
    }

    func testExitCodes() {
        XCTAssertEqual(run(["inspect"]).0, 2)
        XCTAssertEqual(run(["inspect", "a", "b"]).0, 2)
        XCTAssertEqual(run(["inspect", "--bogus", "x"]).0, 2)
        XCTAssertEqual(run(["nosuchcommand"]).0, 2)
        let (code, _, err) = run(["inspect", "/nonexistent/file.gguf"])
        XCTAssertEqual(code, 1)
        XCTAssertTrue(err.contains("/nonexistent/file.gguf"))
        XCTAssertEqual(run(["inspect", "--help"]).0, 0)
        XCTAssertTrue(run(["inspect", "--help"]).1.contains("Usage: steward inspect"))
        XCTAssertEqual(run(["--help"]).0, 0)
    }

    func testCorruptFileIsRuntimeErrorNotCrash() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("trunc-\(UUID()).gguf")
        let src = try Data(contentsOf: URL(fileURLWithPath: try TestPaths.model("smollm2-135m-instruct")))
        try src.prefix(100_000).write(to: tmp)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let (code, _, err) = run(["inspect", tmp.path])
        XCTAssertEqual(code, 1)
        XCTAssertTrue(err.contains("truncated"), err)
    }
}
