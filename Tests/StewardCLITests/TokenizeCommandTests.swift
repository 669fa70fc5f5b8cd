import Foundation
import XCTest
import StewardCLI
import TestSupport

/// `steward tokenize` against llama.cpp's `llama-tokenize --ids` (shared golden file).
final class TokenizeCommandTests: XCTestCase {
    func ids(_ args: [String], stdin: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> [Int] {
        let r = steward(["tokenize", "--json"] + args, stdin: stdin)
        XCTAssertEqual(r.code, 0, r.err, file: file, line: line)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [Int], r.out, file: file, line: line)
    }

    /// Golden texts chosen to cover plain words, leading spaces/emoji/CJK, code, digits and a
    /// special-token string.
    let chosen = ["Hello, world!", "  leading spaces and émojis 🚀 and 中文", "def f(x):\n    return x**2\n",
                  "Numbers: 1234567890 3.14159 1,000,000 and 2026-11-24", "<|im_start|>user\nhi<|im_end|>"]

    func checkGolden(model: String, key: String) throws {
        _ = try TestPaths.model(model)
        let cases = try Golden.tokenizeCases(key).filter { chosen.contains($0.text) }
        XCTAssertEqual(cases.count, chosen.count)
        for c in cases {
            // The golden ids were made with special tokens parsed.
            XCTAssertEqual(try ids(["--model", model, "--special", "--", c.text]), c.withBOS, "\(model) \(c.text.debugDescription)")
            XCTAssertEqual(try ids(["--model", model, "--special", "--no-bos", "--", c.text]), c.noBOS, "\(model) --no-bos \(c.text.debugDescription)")
        }
    }

    func testSmolLM2MatchesLlamaCpp() throws {
        try checkGolden(model: "smollm2-135m-instruct", key: Golden.smolKey)
    }

    func testGemmaMatchesLlamaCpp() throws {
        try checkGolden(model: "gemma-3-270m", key: Golden.gemmaKey)
    }

    func testSpecialFlagDecidesWhetherControlTokensAreParsed() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        let text = "<|im_start|>user\nhi<|im_end|>"
        let golden = try XCTUnwrap(Golden.tokenizeCases(Golden.smolKey).first { $0.text == text })
        let withSpecial = try ids(["--model", "smollm2-135m-instruct", "--special", text])
        let plain = try ids(["--model", "smollm2-135m-instruct", text])
        XCTAssertEqual(withSpecial, golden.withBOS)
        XCTAssertEqual(withSpecial.first, 1)  // <|im_start|> is one token
        XCTAssertFalse(plain.contains(1), "without --special, <|im_start|> is plain text: \(plain)")
        XCTAssertGreaterThan(plain.count, withSpecial.count)
    }

    func testGemmaEmptyTextIsJustBOS() throws {
        _ = try TestPaths.model("gemma-3-270m")
        let golden = try XCTUnwrap(Golden.tokenizeCases(Golden.gemmaKey).first { $0.text == "" })
        XCTAssertEqual(try ids(["--model", "gemma-3-270m", ""]), golden.withBOS)
        XCTAssertEqual(try ids(["--model", "gemma-3-270m", "--no-bos", ""]), golden.noBOS)
    }

    func testStandardInput() throws {
        _ = try TestPaths.model("gemma-3-270m")
        let golden = try XCTUnwrap(Golden.tokenizeCases(Golden.gemmaKey).first { $0.text == "The quick brown fox jumps over the lazy dog." })
        XCTAssertEqual(try ids(["--model", "gemma-3-270m"], stdin: golden.text), golden.withBOS)
        XCTAssertEqual(try ids(["-m", "gemma-3-270m", "--no-bos"], stdin: golden.text), golden.noBOS)
    }

    func testTextOutputListsIdAndPiecePerLine() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        let golden = try XCTUnwrap(Golden.tokenizeCases(Golden.smolKey).first { $0.text == "Hello, world!" })
        let r = steward(["tokenize", "--model", "smollm2-135m-instruct", "Hello, world!"])
        XCTAssertEqual(r.code, 0, r.err)
        let lines = r.out.split(separator: "\n")
        XCTAssertEqual(lines.map { Int($0.split(separator: "\t")[0]) }, golden.withBOS.map { Optional($0) })
        XCTAssertEqual(lines.first.map(String.init), "19556\t\"Hello\"")
    }

    func testMiniLMWordPieceMatchesTokenizersReference() throws {
        _ = try TestPaths.model("all-minilm-l6-v2")
        let ref = try XCTUnwrap(TestPaths.loadJSON(TestPaths.fixture("tokenization/wordpiece-reference.json")) as? [String: Any])
        let cases = try XCTUnwrap(ref["cases"] as? [[String: Any]])
        let c = try XCTUnwrap(cases.first { $0["text"] as? String == "Hello, world!" })
        let with = try XCTUnwrap((c["with_special"] as? [String: Any])?["ids"] as? [Int])
        let without = try XCTUnwrap((c["without_special"] as? [String: Any])?["ids"] as? [Int])
        XCTAssertEqual(try ids(["--model", "all-minilm-l6-v2", "Hello, world!"]), with)
        XCTAssertEqual(try ids(["--model", "all-minilm-l6-v2", "--no-bos", "Hello, world!"]), without)
    }

    func testUsageAndRuntimeErrors() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        // No --model.
        XCTAssertEqual(steward(["tokenize", "hi"]).code, 2)
        // Two texts.
        let two = steward(["tokenize", "--model", "smollm2-135m-instruct", "a", "b"])
        XCTAssertEqual(two.code, 2)
        XCTAssertTrue(two.err.contains("one argument"), two.err)
        // No text and a terminal on stdin (capturing console without stdin).
        let none = steward(["tokenize", "--model", "smollm2-135m-instruct"])
        XCTAssertEqual(none.code, 2)
        XCTAssertTrue(none.err.contains("standard input"), none.err)
        XCTAssertEqual(steward(["tokenize", "--model", "smollm2-135m-instruct", "--bogus", "x"]).code, 2)
        // An unknown model is a runtime error naming it.
        let missing = steward(["tokenize", "--model", "/nonexistent/m.gguf", "hi"])
        XCTAssertEqual(missing.code, 1)
        XCTAssertTrue(missing.err.contains("/nonexistent/m.gguf"), missing.err)
    }
}
