import Evaluation
import Foundation
import Generation
import Models

/// `steward eval run|compare|gate|report|safety`.
struct EvalCommand: Command {
    let spec = CommandSpec(
        name: "eval",
        summary: "Evaluate models, adapters and quantizations on task files; compare runs, gate promotions, write reports.",
        usage: "steward eval run (--model MODEL [--adapter PATH[:S]] | --endpoint URL --endpoint-model ID) --task FILE.json [--task ...] --out RUN.json [--limit N] [--seed S] [--fewshot K] | eval compare RUN_A RUN_B | eval gate --baseline RUN --max-drop 0.02 RUN | eval report RUN... --out DIR [--tune DIR] [--bench FILE] | eval safety --suite FILE.jsonl --model MODEL [--out FILE] | eval import LM_EVAL_TASK.yaml [--out TASK.json]",
        options: [
            .value("--model", "-m", valueName: "MODEL", help: "run, safety: a local GGUF model (fetched name, store name or path)."),
            AdapterOptions.spec,
            .value("--endpoint", valueName: "URL", help: "run: an OpenAI-compatible server instead (http://host:port; /v1/completions is used)."),
            .value("--endpoint-model", valueName: "ID", help: "run: the model id to send to --endpoint."),
            .value("--api-key", valueName: "KEY", help: "run: bearer key for --endpoint (default: none)."),
            .repeated("--task", valueName: "FILE", help: "run: a task spec (JSON; see docs/evaluation.md); repeatable."),
            .value("--out", "-o", valueName: "PATH", help: "run: the results file; report: the output folder; safety: the results file."),
            .value("--limit", valueName: "N", help: "run: the first N rows of each task."),
            .value("--seed", valueName: "S", help: "run: seed for few-shot draws and sampling (default 1234)."),
            .value("--fewshot", valueName: "K", help: "run: few-shot examples per prompt (default: the task's)."),
            .value("--temperature", valueName: "T", help: "run: sampling temperature of generate tasks (default 0: greedy)."),
            .value("--baseline", valueName: "RUN", help: "gate: the run to compare against."),
            .value("--max-drop", valueName: "D", help: "gate: largest allowed drop (absolute for scores, relative for perplexity; default 0.02)."),
            .repeated("--tune", valueName: "DIR", help: "report: a steward tune output folder (its loss curve)."),
            .repeated("--bench", valueName: "FILE", help: "report: steward bench --json output (its tokens/s)."),
            .value("--suite", valueName: "FILE", help: "safety: JSONL of {prompt, category, expect: block|allow}."),
            .value("--moderation", valueName: "FILE", help: "safety: the policy file with the moderation section (default $STEWARD_HOME/policy.json, else the built-in default policy)."),
            .value("--moderation-policy", valueName: "NAME", help: "safety: the moderation policy every request uses (standard, strict, or one in the file; default: the file's default)."),
            .value("--threads", "-t", valueName: "N", help: "Threads (default: all cores)."),
            .value("--ctx", "-c", valueName: "N", help: "Context length (default: the model's, at most 4096)."),
        ],
        discussion: """
        run      writes RUN.json: per task its metrics with standard errors and every sample's prompt, output and score,
                 and the model's path, SHA-256, quantization and adapters, the settings and the Steward version.
        compare  prints a table of every metric of both runs and the difference.
        gate     exits 1 when a metric of the run dropped more than --max-drop from the baseline (or is missing): the
                 check before promoting a new quantization, adapter or model version.
        report   report.md and a self-contained report.html with inline SVG charts.
        import   converts an lm-evaluation-harness local task (YAML over a JSON/JSONL file) into a task spec; run also
                 accepts such .yaml files directly with --task.
        safety   runs a red-team suite through the serving path with the moderation layer: block rate, false-positive
                 rate on the benign rows, and which rules fired.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard let sub = a.positionals.first else { throw UsageError("give a subcommand: run, compare, gate, report or safety") }
        let rest = Array(a.positionals.dropFirst())
        switch sub {
        case "run": return try runTasks(a, rest, console)
        case "compare":
            guard rest.count == 2 else { throw UsageError("give two runs: steward eval compare RUN_A RUN_B") }
            let (x, y) = (try EvalRun.load(rest[0]), try EvalRun.load(rest[1]))
            console.out(EvalCompare.table(x, y, names: ((rest[0] as NSString).lastPathComponent, (rest[1] as NSString).lastPathComponent)))
            return ExitCode.ok
        case "gate":
            guard rest.count == 1 else { throw UsageError("give the candidate run: steward eval gate --baseline RUN --max-drop 0.02 CANDIDATE") }
            let base = try EvalRun.load(try a.require("--baseline")), cand = try EvalRun.load(rest[0])
            let maxDrop = try a.double("--max-drop") ?? 0.02
            guard maxDrop >= 0 else { throw UsageError("--max-drop must be ≥ 0") }
            console.out(EvalCompare.table(base, cand, names: ("baseline", "candidate")))
            let failures = EvalCompare.gate(baseline: base, candidate: cand, maxDrop: maxDrop)
            if failures.isEmpty { console.out("gate passed: no metric dropped more than \(maxDrop)\n"); return ExitCode.ok }
            for f in failures { console.err("gate failed: \(f)\n") }
            return ExitCode.failure
        case "report": return try report(a, rest, console)
        case "import":
            guard rest.count == 1 else { throw UsageError("give one lm-eval task file: steward eval import TASK.yaml --out TASK.json") }
            var t = try LMEvalImport.convert(yamlPath: rest[0])
            if let d = t.data, !d.hasPrefix("/") { t.data = FileManager.default.currentDirectoryPath + "/" + d }
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .prettyPrinted]
            let json = try e.encode(t)
            if let out = a.value("--out") { try json.write(to: URL(fileURLWithPath: out)); console.out("wrote \(out)\n") } else { console.out(String(decoding: json, as: UTF8.self) + "\n") }
            return ExitCode.ok
        case "safety": return try safety(a, rest, console)
        default: throw UsageError("unknown subcommand '\(sub)' (run, compare, gate, report, safety, import)")
        }
    }

    func runTasks(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        guard rest.isEmpty else { throw UsageError("unexpected argument '\(rest[0])' (tasks go in --task)") }
        // lm-evaluation-harness YAML tasks are converted on the fly; their data paths are relative
        // to the working directory, as lm-eval reads them.
        let tasks = try a.values("--task").map { path -> TaskSpec in
            guard path.hasSuffix(".yaml") || path.hasSuffix(".yml") else { return try TaskSpec.load(path) }
            var t = try LMEvalImport.convert(yamlPath: path)
            t.directory = FileManager.default.currentDirectoryPath
            return t
        }
        guard !tasks.isEmpty else { throw UsageError("give at least one --task FILE.json (tasks/ has examples)") }
        let out = try a.require("--out")
        var settings = EvalSettings()
        if let v = a.value("--seed") { guard let s = UInt64(v) else { throw UsageError("--seed expects an integer") }; settings.seed = s }
        settings.limit = try a.int("--limit")
        settings.fewshot = try a.int("--fewshot")
        settings.temperature = try a.double("--temperature") ?? 0
        let backend: EvalBackend
        if let url = a.value("--endpoint") {
            guard a.value("--model") == nil else { throw UsageError("give --model or --endpoint, not both") }
            backend = EndpointBackend(url: url, model: try a.require("--endpoint-model"), key: a.value("--api-key") ?? "none")
        } else {
            let lm = try LoadedModel.load(try a.require("--model"), threads: try GenerationOptions.threads(a))
            backend = try LocalBackend(model: lm.model, tokenizer: lm.tokenizer, path: lm.path, file: lm.file,
                                       adapters: try AdapterOptions.load(a, for: lm.model), contextLength: try a.int("--ctx"))
        }
        var results: [TaskResult] = []
        for t in tasks {
            let r = try EvalRunner.run(t, backend: backend, settings: settings) { done, total in
                if done == total || done % 10 == 0 { console.err("\(t.name): \(done)/\(total)\n") }
            }
            let line = r.metrics.sorted { $0.key < $1.key }.map { k, v in "\(k) \(String(format: "%.4f", v.value))" + (v.stderr.map { String(format: " ± %.4f", $0) } ?? "") }
            console.out("\(t.name) (\(r.samples) samples, \(String(format: "%.1f", r.seconds)) s): \(line.joined(separator: ", "))\n")
            results.append(r)
        }
        var model: [String: String] = [:]
        for (k, v) in backend.describe { model[k] = "\(v)" }
        let run = EvalRun(steward_version: StewardCLI.version, created: ISO8601DateFormatter().string(from: Date()), model: model,
                          settings: ["seed": String(settings.seed), "limit": settings.limit.map(String.init) ?? "all",
                                     "fewshot": settings.fewshot.map(String.init) ?? "task default", "temperature": String(settings.temperature),
                                     "tasks": tasks.map(\.name).joined(separator: ",")],
                          tasks: results)
        try run.write(out)
        console.err("results in \(out)\n")
        return ExitCode.ok
    }

    func report(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        guard !rest.isEmpty else { throw UsageError("give runs: steward eval report RUN.json... --out DIR") }
        let out = try a.require("--out")
        let runs = try rest.map { ((($0 as NSString).lastPathComponent as NSString).deletingPathExtension, try EvalRun.load($0)) }
        var extras = EvalReport.Extras()
        for dir in a.values("--tune") {
            guard let d = FileManager.default.contents(atPath: dir + "/trainer_state.json"),
                  let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any], let h = o["history"] as? [[String: Double]] else {
                throw UsageError("--tune \(dir): no trainer_state.json with a history (a steward tune output folder)")
            }
            extras.tuneCurves.append(((dir as NSString).lastPathComponent, h.map { ($0["epoch"] ?? 0, $0["train_loss"] ?? 0, $0["validation_loss"]) }))
        }
        for f in a.values("--bench") {
            guard let d = FileManager.default.contents(atPath: f), let arr = try? JSONSerialization.jsonObject(with: d) as? [[String: Any]] else {
                throw UsageError("--bench \(f): not the JSON array steward bench --json prints")
            }
            extras.bench.append(((f as NSString).lastPathComponent, arr.compactMap { e in
                guard let ts = e["avg_ts"] as? Double else { return nil }
                let p = e["n_prompt"] as? Int ?? 0, g = e["n_gen"] as? Int ?? 0
                return (p > 0 ? "pp\(p)" : "tg\(g)", ts)
            }))
        }
        _ = try EvalReport.write(runs: runs, extras: extras, to: out)
        console.out("wrote \(out)/report.md and \(out)/report.html\n")
        return ExitCode.ok
    }
}

/// An OpenAI-compatible server as a backend, through /v1/completions: generations for any
/// server; log-likelihoods need `echo` with `logprobs` (Steward serves them, as the OpenAI
/// legacy API did; lm-evaluation-harness's local-completions model uses the same request).
final class EndpointBackend: EvalBackend {
    let url: String, model: String, key: String
    init(url: String, model: String, key: String) { self.url = url; self.model = model; self.key = key }
    var describe: [String: Any] { ["endpoint": url, "model": model] }

    func post(_ body: [String: Any]) throws -> [String: Any] {
        let (status, text) = try AdminClient.post(server: url, path: "/v1/completions", key: key, body: try JSONSerialization.data(withJSONObject: body))
        guard status == 200, let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw EvalError.backend("\(url)/v1/completions answered \(status): \(AdminClient.message(text))")
        }
        return o
    }

    func loglikelihood(context: String, continuation: String) throws -> (logprob: Double, greedy: Bool) {
        let o = try post(["model": model, "prompt": context + continuation, "max_tokens": 0, "echo": true, "logprobs": 1, "temperature": 0])
        guard let c = (o["choices"] as? [[String: Any]])?.first, let lp = c["logprobs"] as? [String: Any],
              let offsets = lp["text_offset"] as? [Int], let logprobs = lp["token_logprobs"] as? [Any] else {
            throw EvalError.backend("\(url) returned no prompt log-probabilities (it needs echo with logprobs, as Steward serves them)")
        }
        let start = context.unicodeScalars.count
        let tops = lp["top_logprobs"] as? [Any] ?? []
        var total = 0.0, greedy = true, any = false
        for (i, off) in offsets.enumerated() where off >= start && i < logprobs.count {
            guard let v = (logprobs[i] as? NSNumber)?.doubleValue else { continue }
            total += v; any = true
            if i < tops.count, let top = tops[i] as? [String: Double], let best = top.values.max(), best > v + 1e-6 { greedy = false }
        }
        guard any else { throw EvalError.backend("no continuation token found in \(url)'s answer") }
        return (total, greedy)
    }

    func generate(prompt: String, maxTokens: Int, stop: [String], temperature: Double, seed: UInt64) throws -> String {
        var body: [String: Any] = ["model": model, "prompt": prompt, "max_tokens": maxTokens, "temperature": temperature, "seed": seed]
        if !stop.isEmpty { body["stop"] = stop }
        let o = try post(body)
        return ((o["choices"] as? [[String: Any]])?.first?["text"] as? String) ?? ""
    }

    func perplexity(text: String, context: Int) throws -> Double {
        throw EvalError.backend("perplexity tasks run on local models only (--model)")
    }
}
