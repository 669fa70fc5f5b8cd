import Foundation
import XCTest
import StewardCLI
import TestSupport

/// `steward bench-tokenize`: the figures it prints describe the text it was given (speed itself
/// is measured by scripts/bench-tokenizers, not asserted here).
final class TokenizerBenchCommandTests: XCTestCase {
    func testJSONCountsTheSameTokensAsTokenize() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        _ = try TestPaths.model("all-minilm-l6-v2")
        let tmp = try makeTemporaryDirectory("tokbench")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let text = "The quick brown fox jumps over the lazy dog. Numbers: 1234567890.\n"
        let file = tmp.appendingPathComponent("text.txt")
        try Data(text.utf8).write(to: file)
        for model in ["smollm2-135m-instruct", "all-minilm-l6-v2"] {
            let r = steward(["bench-tokenize", "--model", model, "--file", file.path, "--bytes", "0", "--repeats", "1", "--json"])
            XCTAssertEqual(r.code, 0, r.err)
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
            let ids = steward(["tokenize", "--model", model, "--no-bos", "--json", text])
            let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(ids.out.utf8)) as? [Int])
            XCTAssertEqual(obj["tokens"] as? Int, expected.count, model)
            XCTAssertEqual(obj["bytes"] as? Int, text.utf8.count)
            XCTAssertGreaterThan(try XCTUnwrap(obj["tokens_per_second"] as? Double), 0)
        }
        // --bytes repeats the file up to at least that many bytes.
        let r = steward(["bench-tokenize", "--model", "all-minilm-l6-v2", "--file", file.path, "--bytes", "1000", "--repeats", "1", "--json"])
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
        let copies = (1000 + text.utf8.count - 1) / text.utf8.count
        XCTAssertEqual(obj["bytes"] as? Int, copies * text.utf8.count)
    }

    func testUsageErrors() throws {
        XCTAssertEqual(steward(["bench-tokenize"]).code, 2)
        XCTAssertEqual(steward(["bench-tokenize", "--model", "all-minilm-l6-v2", "--file", "/nonexistent/t.txt"]).code, 2)
        XCTAssertEqual(steward(["bench-tokenize", "--model", "all-minilm-l6-v2", "--repeats", "0"]).code, 2)
        XCTAssertEqual(steward(["bench-tokenize", "--model", "all-minilm-l6-v2", "--bytes", "-5"]).code, 2)
    }
}
