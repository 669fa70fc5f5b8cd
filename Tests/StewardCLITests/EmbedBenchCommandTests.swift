import Foundation
import XCTest
import StewardCLI
import TestSupport

/// `steward bench-embed`: counts what it was given (speed itself is measured by
/// scripts/bench-embeddings, not asserted here).
final class EmbedBenchCommandTests: XCTestCase {
    func testJSONDescribesTheRun() throws {
        _ = try TestPaths.model("all-minilm-l6-v2")
        _ = try TestPaths.model("smollm2-135m-instruct")
        let tmp = try makeTemporaryDirectory("embedbench")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let file = tmp.appendingPathComponent("s.txt")
        try Data("A first sentence.\n\nA second one, a little longer.\nThird.\n".utf8).write(to: file)
        for (model, dim) in [("all-minilm-l6-v2", 384), ("smollm2-135m-instruct", 576)] {
            let r = steward(["bench-embed", "--model", model, "--sentences", file.path, "--batch", "2", "--threads", "2", "--repeats", "1", "--json"])
            XCTAssertEqual(r.code, 0, r.err)
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
            XCTAssertEqual(obj["sentences"] as? Int, 3, "empty lines are skipped")
            XCTAssertEqual(obj["batch"] as? Int, 2)
            XCTAssertEqual(obj["threads"] as? Int, 2)
            XCTAssertEqual(obj["dimension"] as? Int, dim)
            XCTAssertGreaterThan(try XCTUnwrap(obj["sentences_per_second"] as? Double), 0)
        }
    }

    func testUsageErrors() throws {
        XCTAssertEqual(steward(["bench-embed"]).code, 2)
        XCTAssertEqual(steward(["bench-embed", "--model", "all-minilm-l6-v2"]).code, 2)
        XCTAssertEqual(steward(["bench-embed", "--model", "all-minilm-l6-v2", "--sentences", "/nonexistent/s.txt"]).code, 2)
        XCTAssertEqual(steward(["bench-embed", "--model", "all-minilm-l6-v2", "--sentences", "/etc/hostname", "--batch", "0"]).code, 2)
    }
}
