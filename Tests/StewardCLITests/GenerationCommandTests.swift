import Foundation
import XCTest
import StewardCLI
import TestSupport

/// `steward run`, `bench` and `perplexity` on the real models (kept short: few tokens).
final class GenerationCommandTests: XCTestCase {
    func testRawGreedyRunIsAPrefixOfLlamaCppsCompletion() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        let greedy = try XCTUnwrap(Golden.model(Golden.smolKey)["greedy"] as? [[String: Any]])
        let first = try XCTUnwrap(greedy.first)
        let prompt = try XCTUnwrap(first["prompt"] as? String)
        let completion = try XCTUnwrap(first["completion"] as? String)
        let r = steward(["run", "--model", "smollm2-135m-instruct", "--raw", "--temperature", "0",
                         "--max-tokens", "8", "--prompt", prompt])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.hasSuffix("\n"))
        let text = String(r.out.dropLast())
        XCTAssertFalse(text.isEmpty)
        XCTAssertTrue(completion.hasPrefix(text), "got \(text.debugDescription), llama.cpp: \(completion.debugDescription)")
        // 8 tokens of " Paris.\n\nThe United States …" are more than the first word.
        XCTAssertGreaterThan(text.count, " Paris.".count)
    }

    func testRawPromptFromStandardInput() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        let greedy = try XCTUnwrap(Golden.model(Golden.smolKey)["greedy"] as? [[String: Any]])
        let first = try XCTUnwrap(greedy.first)
        let r = steward(["run", "-m", "smollm2-135m-instruct", "--raw", "--temperature", "0", "-n", "4"],
                        stdin: try XCTUnwrap(first["prompt"] as? String))
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(try XCTUnwrap(first["completion"] as? String).hasPrefix(String(r.out.dropLast())), r.out)
    }

    func testModelWithoutTemplateNeedsRawOrTemplate() throws {
        _ = try TestPaths.model("gemma-3-270m")
        let r = steward(["run", "--model", "gemma-3-270m", "--prompt", "Hi", "--max-tokens", "2"])
        XCTAssertEqual(r.code, 2)
        XCTAssertTrue(r.err.contains("no chat template"), r.err)
        XCTAssertTrue(r.err.contains("--raw"), r.err)
        XCTAssertTrue(r.err.contains("--template"), r.err)
        XCTAssertEqual(r.out, "")
    }

    func testBuiltinGemmaTemplateRuns() throws {
        _ = try TestPaths.model("gemma-3-270m")
        let r = steward(["run", "--model", "gemma-3-270m", "--template", "gemma", "--prompt", "Say hello.",
                         "--temperature", "0", "--max-tokens", "4", "--verbose"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.hasSuffix("\n"))
        // --verbose reports the prompt: <bos><start_of_turn>user\nSay hello.<end_of_turn>\n<start_of_turn>model\n
        XCTAssertTrue(r.err.contains("prompt "), r.err)
        XCTAssertEqual(steward(["run", "--model", "gemma-3-270m", "--template", "no-such-template", "--prompt", "x"]).code, 2)
    }

    func testContextOverflowIsAnErrorNotATruncation() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        let long = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 10)
        let r = steward(["run", "--model", "smollm2-135m-instruct", "--raw", "--ctx", "16", "--max-tokens", "4",
                         "--temperature", "0", "--prompt", long])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("nothing was truncated"), r.err)
        XCTAssertTrue(r.err.contains("context length (16)"), r.err)
        XCTAssertEqual(r.out, "")
    }

    func testRunUsageErrors() throws {
        XCTAssertEqual(steward(["run", "--prompt", "x"]).code, 2, "no --model")
        XCTAssertEqual(steward(["run", "--model", "smollm2-135m-instruct"]).code, 2, "no prompt and stdin is a terminal")
        XCTAssertEqual(steward(["run", "--model", "smollm2-135m-instruct", "hello"]).code, 2, "positional prompt")
        XCTAssertEqual(steward(["run", "--model", "smollm2-135m-instruct", "--prompt", "x", "--temperature", "hot"]).code, 2)
        XCTAssertEqual(steward(["run", "--model", "smollm2-135m-instruct", "--prompt", "x", "--max-tokens", "-1"]).code, 2)
        XCTAssertEqual(steward(["run", "--model", "smollm2-135m-instruct", "--prompt", "x", "--raw", "--system", "s"]).code, 2)
    }

    func testBenchJSONHasLlamaBenchFields() throws {
        let path = try TestPaths.model("smollm2-135m-instruct")
        let r = steward(["bench", "--model", "smollm2-135m-instruct", "-p", "16", "-n", "4", "-r", "1", "--threads", "2", "--json"])
        XCTAssertEqual(r.code, 0, r.err)
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]], r.out)
        XCTAssertEqual(rows.count, 2)
        let pp = try XCTUnwrap(rows.first { ($0["n_prompt"] as? Int) == 16 })
        let tg = try XCTUnwrap(rows.first { ($0["n_gen"] as? Int) == 4 })
        XCTAssertEqual(pp["n_gen"] as? Int, 0)
        XCTAssertEqual(tg["n_prompt"] as? Int, 0)
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        for row in [pp, tg] {
            XCTAssertEqual(row["n_threads"] as? Int, 2)
            let avg = try XCTUnwrap(row["avg_ts"] as? Double)
            XCTAssertGreaterThan(avg, 0)
            XCTAssertNotNil(row["stddev_ts"] as? Double)
            let samples = try XCTUnwrap(row["samples_ts"] as? [Double])
            XCTAssertEqual(samples.count, 1)
            XCTAssertEqual(samples[0], avg, accuracy: avg * 1e-9)
            XCTAssertEqual(row["model_filename"] as? String, path)
            // Peak RSS of this process: at least the mapped weights once touched.
            XCTAssertGreaterThan(try XCTUnwrap(row["peak_rss_bytes"] as? Int), size / 2)
            XCTAssertEqual(row["model_size"] as? Int, size)
        }
        XCTAssertEqual(steward(["bench", "--model", "smollm2-135m-instruct", "-p", "0", "-n", "0"]).code, 2)
        XCTAssertEqual(steward(["bench", "--model", "smollm2-135m-instruct", "-r", "0"]).code, 2)
    }

    func testPerplexityErrors() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        let noFile = steward(["perplexity", "--model", "smollm2-135m-instruct"])
        XCTAssertEqual(noFile.code, 2)
        XCTAssertTrue(noFile.err.contains("--file"), noFile.err)
        XCTAssertEqual(steward(["perplexity", "--model", "smollm2-135m-instruct", "--file", "/nonexistent/text.txt"]).code, 2)

        let tmp = try makeTemporaryDirectory("ppl")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let short = tmp.appendingPathComponent("short.txt")
        try Data("Far too short to score.".utf8).write(to: short)
        let r = steward(["perplexity", "--model", "smollm2-135m-instruct", "--file", short.path, "--ctx", "256"])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("perplexity needs at least 512"), r.err)
        XCTAssertTrue(r.err.contains("the text has"), r.err)
        XCTAssertEqual(r.out, "")
    }
}
