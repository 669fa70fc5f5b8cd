import Foundation
import Generation
import ModelFiles
import Models
import TestSupport
import Tokenization
import XCTest
@testable import Evaluation

/// A backend whose answers are given by the test: checks the scoring arithmetic itself
/// (acc against acc_norm, standard errors), not a model.
final class ScriptedBackend: EvalBackend {
    var logprobs: [String: Double] = [:]
    var answers: [String] = []
    var describe: [String: Any] { ["path": "scripted"] }
    func loglikelihood(context: String, continuation: String) throws -> (logprob: Double, greedy: Bool) { (logprobs[continuation] ?? -100, false) }
    func generate(prompt: String, maxTokens: Int, stop: [String], temperature: Double, seed: UInt64) throws -> String { answers.removeFirst() }
    func perplexity(text: String, context: Int) throws -> Double { 1 }
}

final class EvaluationTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "eval-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ name: String, _ text: String) throws -> String {
        let p = dir + "/" + name
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    func testTemplatesAndSpecsAreChecked() throws {
        XCTAssertEqual(try TaskSpec.fill("Q: {a} plus {b}? {\"json\": 1}", ["a": 2, "b": "x"]), "Q: 2 plus x? {\"json\": 1}")
        XCTAssertThrowsError(try TaskSpec.fill("{missing}", [:])) { XCTAssertTrue("\($0)".contains("{missing}")) }
        let bad = try write("bad.json", #"{"name": "x", "type": "essay", "data": "d.jsonl"}"#)
        XCTAssertThrowsError(try TaskSpec.load(bad)) { XCTAssertTrue("\($0)".contains("multiple_choice, generate or perplexity")) }
        let noChoices = try write("mc.json", #"{"name": "x", "type": "multiple_choice", "data": "d.jsonl", "prompt": "p"}"#)
        XCTAssertThrowsError(try TaskSpec.load(noChoices))
        for f in ["arithmetic", "capitals", "capitals-mc", "json-extraction", "code-completion", "perplexity-gpl3"] {
            XCTAssertNoThrow(try TaskSpec.load(TestPaths.repoRoot + "/tasks/\(f).json"), f)
        }
    }

    /// acc picks the highest log-likelihood, acc_norm the highest per character of the choice
    /// (lm-evaluation-harness's definitions); the standard error is the sample standard
    /// deviation over √n.
    func testMultipleChoiceScoring() throws {
        _ = try write("mc.jsonl", """
            {"q": "one", "choices": ["a", "bbbbbbbb"], "label": 1}
            {"q": "two", "choices": ["c", "d"], "label": 0}

            """)
        let spec = try TaskSpec.load(try write("mc.json", #"{"name": "mc", "type": "multiple_choice", "data": "mc.jsonl", "prompt": "{q}:", "choices": "choices", "gold": "label"}"#))
        let b = ScriptedBackend()
        // " a" −2 beats " bbbbbbbb" −4 by total, loses per character of the choice (−2 vs −0.5).
        b.logprobs = [" a": -2, " bbbbbbbb": -4, " c": -1, " d": -3]
        let r = try EvalRunner.run(spec, backend: b, settings: EvalSettings())
        XCTAssertEqual(r.metrics["acc"]?.value, 0.5)
        XCTAssertEqual(r.metrics["acc_norm"]?.value, 1.0)
        XCTAssertEqual(r.metrics["acc"]?.stderr ?? 0, 0.5, accuracy: 1e-12, "sd of [0, 1] is 1/√2, over √2")
        XCTAssertEqual(r.outputs[0]["pred"], "0")
        XCTAssertEqual(r.outputs[0]["pred_norm"], "1")
    }

    func testGenerationMetricsAndFewShot() throws {
        _ = try write("g.jsonl", """
            {"x": "2", "y": "4"}
            {"x": "3", "y": "6"}
            {"x": "5", "y": "10"}

            """)
        let b = ScriptedBackend()
        let exact = try TaskSpec.load(try write("e.json", #"{"name": "e", "type": "generate", "data": "g.jsonl", "prompt": "{x}*2=", "target": "{y}", "metric": "exact_match", "fewshot": 1}"#))
        b.answers = [" 4", "6\n", " 11"]
        let r = try EvalRunner.run(exact, backend: b, settings: EvalSettings())
        XCTAssertEqual(r.metrics["exact_match"]!.value, 2.0 / 3, accuracy: 1e-12)
        // The few-shot example is another row, prompt + target.
        let p0 = try XCTUnwrap(r.outputs[0]["prompt"])
        XCTAssertTrue(p0.hasSuffix("\n\n2*2="), p0)
        XCTAssertTrue(p0.hasPrefix("3*2= 6") || p0.hasPrefix("5*2= 10"), p0)
        let schema = try TaskSpec.load(try write("s.json", #"{"name": "s", "type": "generate", "data": "g.jsonl", "prompt": "{x}", "metric": "json_schema", "schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}, "ok": {"type": "boolean"}}}}"#))
        b.answers = [#"{"n": 3}"#, #"Sure: {"n": 3, "ok": true} done"#, #"{"n": "3"}"#]
        XCTAssertEqual(try EvalRunner.run(schema, backend: b, settings: EvalSettings()).metrics["json_schema"]!.value, 2.0 / 3, accuracy: 1e-12)
        XCTAssertFalse(JSONSchemaCheck.valid(#"{"n": 1, "ok": 1}"#, schema: ["type": "object", "properties": ["ok": ["type": "boolean"]]]), "1 is not a boolean")
        let regex = try TaskSpec.load(try write("r.json", #"{"name": "r", "type": "generate", "data": "g.jsonl", "prompt": "{x}", "metric": "regex", "pattern": "^{y}$"}"#))
        b.answers = ["4", "6", "1"]
        XCTAssertEqual(try EvalRunner.run(regex, backend: b, settings: EvalSettings()).metrics["regex"]!.value, 2.0 / 3, accuracy: 1e-12)
        var s = EvalSettings(); s.limit = 1
        b.answers = ["4"]
        XCTAssertEqual(try EvalRunner.run(exact, backend: b, settings: s).samples, 1)
    }

    func testCompareAndGate() throws {
        func run(_ acc: Double, _ ppl: Double) -> EvalRun {
            EvalRun(steward_version: "t", created: "now", model: [:], settings: [:], tasks: [
                TaskResult(name: "mc", type: "multiple_choice", samples: 10, metrics: ["acc": MetricValue(value: acc, stderr: 0.1, higherIsBetter: true)], outputs: [], seconds: 0),
                TaskResult(name: "ppl", type: "perplexity", samples: 1, metrics: ["perplexity": MetricValue(value: ppl, stderr: nil, higherIsBetter: false)], outputs: [], seconds: 0),
            ])
        }
        XCTAssertEqual(EvalCompare.gate(baseline: run(0.60, 20), candidate: run(0.59, 20.3), maxDrop: 0.02), [])
        let f = EvalCompare.gate(baseline: run(0.60, 20), candidate: run(0.55, 21), maxDrop: 0.02)
        XCTAssertEqual(f.count, 2, "\(f)")
        XCTAssertTrue(f[0].contains("mc/acc") && f[1].contains("ppl/perplexity"), "\(f)")
        var missing = run(0.6, 20); missing.tasks.removeLast()
        XCTAssertEqual(EvalCompare.gate(baseline: run(0.6, 20), candidate: missing, maxDrop: 0.02).count, 1)
        XCTAssertTrue(EvalCompare.table(run(0.6, 20), run(0.7, 19), names: ("a", "b")).contains("| mc | acc | 0.6000 | 0.7000 | +0.1000 |"))
    }

    /// On the real SmolLM2: the perplexity task is llama.cpp's number (within 1%), and the
    /// capitals multiple-choice task scores far above chance.
    func testRealModelPerplexityAndMultipleChoice() throws {
        let path = try TestPaths.model("smollm2-135m-instruct")
        let file = try GGUFFile(path: path)
        let backend = try LocalBackend(model: try DecoderModel(file: file), tokenizer: try Tokenizer(gguf: file), path: path, file: file, adapters: [])
        let ppl = try EvalRunner.run(try TaskSpec.load(TestPaths.repoRoot + "/tasks/perplexity-gpl3.json"), backend: backend, settings: EvalSettings())
        XCTAssertEqual(ppl.metrics["perplexity"]!.value, 20.8256, accuracy: 20.8256 * 0.01, "llama.cpp's perplexity on the same file and context")
        XCTAssertFalse(ppl.metrics["perplexity"]!.higherIsBetter)
        let mc = try EvalRunner.run(try TaskSpec.load(TestPaths.repoRoot + "/tasks/capitals-mc.json"), backend: backend, settings: EvalSettings())
        XCTAssertEqual(mc.samples, 40)
        XCTAssertGreaterThan(mc.metrics["acc"]!.value, 0.5, "4-way choice: chance is 0.25")
        XCTAssertEqual(backend.describe["sha256"] as? String, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
    }

    func testReportHasChartsAndNoExternalAssets() throws {
        let r = EvalRun(steward_version: "t", created: "2026-12-07", model: ["path": "m.gguf"], settings: [:], tasks: [
            TaskResult(name: "capitals_mc", type: "multiple_choice", samples: 40, metrics: ["acc": MetricValue(value: 0.7, stderr: 0.07, higherIsBetter: true),
                                                                                            "acc_norm": MetricValue(value: 0.65, stderr: 0.07, higherIsBetter: true)], outputs: [], seconds: 1)])
        var x = EvalReport.Extras()
        x.tuneCurves = [("style", [(1, 1.02, 0.31), (2, 0.20, 0.21), (3, 0.14, 0.205)])]
        x.bench = [("bench.json", [("pp512", 390), ("tg128", 141)])]
        let (md, html) = try EvalReport.write(runs: [("base", r), ("tuned", r)], extras: x, to: dir + "/report")
        XCTAssertTrue(md.contains("| capitals_mc | acc | 0.7000 ± 0.0700 | 0.7000 ± 0.0700 |"), md)
        XCTAssertEqual(html.components(separatedBy: "<svg").count - 1, 3, "one chart per task, the loss curve, the throughput")
        let stripped = html.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
        XCTAssertFalse(stripped.contains("http://") || stripped.contains("https://") || stripped.contains("src="), "no external assets")
        XCTAssertTrue(html.contains("<polyline"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/report/report.html"))
    }
}

final class LMEvalImportTests: XCTestCase {
    /// The repo's lm-eval YAML for the capitals task converts to the same spec as tasks/capitals-mc.json.
    func testImportsTheCrossCheckTask() throws {
        var t = try LMEvalImport.convert(yamlPath: TestPaths.repoRoot + "/tasks/lm-eval/steward_capitals_mc.yaml")
        let native = try TaskSpec.load(TestPaths.repoRoot + "/tasks/capitals-mc.json")
        XCTAssertEqual(t.type, "multiple_choice")
        XCTAssertEqual(t.prompt, native.prompt)
        XCTAssertEqual(t.choices, native.choices)
        XCTAssertEqual(t.gold, native.gold)
        XCTAssertEqual(t.choice_prefix, " ")
        XCTAssertEqual(t.data, "tasks/capitals-mc.jsonl")
        t.directory = TestPaths.repoRoot
        XCTAssertEqual(try t.rows().count, 40)
    }

    func testGenerateUntilAndRefusals() throws {
        let dir = NSTemporaryDirectory() + "lmeval-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let y = dir + "/g.yaml"
        try """
        # a generation task
        task: sums
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: sums.jsonl
        output_type: generate_until
        doc_to_text: "Q: {{ a }} + {{b}} =\\n"
        doc_to_target: "{{answer}}"
        generation_kwargs:
          until: ["\\n", "Q:"]
          max_gen_toks: 8
        num_fewshot: 2
        metric_list:
          - metric: exact_match
            aggregation: mean
        """.write(toFile: y, atomically: true, encoding: .utf8)
        let t = try LMEvalImport.convert(yamlPath: y)
        XCTAssertEqual(t.type, "generate")
        XCTAssertEqual(t.prompt, "Q: {a} + {b} =\n")
        XCTAssertEqual(t.target, "{answer}")
        XCTAssertEqual(t.stop, ["\n", "Q:"])
        XCTAssertEqual(t.max_tokens, 8)
        XCTAssertEqual(t.fewshot, 2)
        try "task: x\ndataset_path: hellaswag\n".write(toFile: y, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try LMEvalImport.convert(yamlPath: y)) { XCTAssertTrue("\($0)".contains("dataset_path: json")) }
        try "task: x\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: d.jsonl\noutput_type: multiple_choice\ndoc_to_text: \"{{ q | upper }}\"\n".write(toFile: y, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try LMEvalImport.convert(yamlPath: y)) { XCTAssertTrue("\($0)".contains("beyond {{field}}"), "\($0)") }
    }
}

final class CodeTestsTests: XCTestCase {
    func testCompletionsRunAgainstTheirTests() {
        let add: [[String: Any]] = [["args": ["a": 2, "b": 3], "expect": 5], ["args": ["a": -1, "b": 1], "expect": 0]]
        XCTAssertTrue(CodeTests.passes(" a + b", tests: add))
        XCTAssertTrue(CodeTests.passes("return b + a\n# more", tests: add))
        XCTAssertFalse(CodeTests.passes(" a - b", tests: add))
        XCTAssertFalse(CodeTests.passes(" a + ", tests: add), "a syntax error fails")
        XCTAssertFalse(CodeTests.passes(" a }} {{ 1", tests: add), "no template injection")
        let mx: [[String: Any]] = [["args": ["a": 3, "b": 9], "expect": 9]]
        XCTAssertTrue(CodeTests.passes(" max(a, b)", tests: mx))
        XCTAssertTrue(CodeTests.passes(" a if a > b else b", tests: mx))
        XCTAssertTrue(CodeTests.passes(" len(s) * 2", tests: [["args": ["s": "abc"], "expect": 6]]))
        XCTAssertTrue(CodeTests.passes(" s[::-1].upper()", tests: [["args": ["s": "ab"], "expect": "BA"]]))
        XCTAssertTrue(CodeTests.passes(" n % 2 == 0", tests: [["args": ["n": 4], "expect": true]]))
        XCTAssertEqual(CodeTests.pythonBuiltins("max(len(a), min(b, c))"), "([((a)|length), ([b, c]|min)]|max)")
        XCTAssertFalse(CodeTests.passes(" a", tests: []), "a row without tests cannot pass")
    }
}
