import Foundation
import ModelFiles
import Generation

struct BenchCommand: Command {
    let spec = CommandSpec(
        name: "bench",
        summary: "Prompt-processing and generation speed like llama-bench, plus peak memory.",
        usage: "steward bench --model MODEL [-p 512] [-n 128] [--threads N] [--repetitions R] [--json]",
        options: [
            .value("--model", "-m", valueName: "MODEL", help: "Model file or fetched model name."),
            .value("-p", "--n-prompt", valueName: "N", help: "Prompt tokens for the pp test; 0 skips it (default 512)."),
            .value("-n", "--n-gen", valueName: "N", help: "Generated tokens for the tg test; 0 skips it (default 128)."),
            .value("--threads", "-t", valueName: "N", help: "Threads (default: all cores)."),
            .value("--repetitions", "-r", valueName: "R", help: "Repetitions of each test (default 5)."),
            .flag("--json", help: "Print a JSON array with llama-bench's field names."),
            .value("--json-schema", valueName: "FILE", help: "Instead: decode speed constrained by this schema vs unconstrained (-n tokens, chat prompt)."),
            .value("--grammar", valueName: "FILE", help: "Instead: decode speed constrained by this GBNF grammar vs unconstrained."),
            AdapterOptions.spec,
        ]
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        let modelArg = try a.require("--model")
        let nPrompt = try a.int("-p") ?? 512
        let nGen = try a.int("-n") ?? 128
        let reps = try a.int("--repetitions") ?? 5
        guard nPrompt >= 0, nGen >= 0, nPrompt + nGen > 0 else { throw UsageError("-p and -n must be ≥ 0 and not both 0") }
        guard reps >= 1 else { throw UsageError("--repetitions must be ≥ 1") }
        let lm = try LoadedModel.load(modelArg, threads: try GenerationOptions.threads(a))
        if let grammar = try GrammarOptions.load(a) {
            let template = try lm.chatTemplate(override: nil, modelName: modelArg)
            let prompt = try lm.encodeChat(template, messages: [["role": "user", "content": "Describe a small library as JSON: its name, city, and books with titles, authors, years and tags."]])
            let r = try GrammarBenchmark.run(model: lm.model, tokenizer: lm.tokenizer, grammar: grammar, prompt: prompt,
                                             maxTokens: nGen, repetitions: reps)
            console.out(String(format: "unconstrained %.2f t/s (%d tokens), constrained %.2f t/s (%d tokens), ratio %.3f\n",
                               r.unconstrainedTPS, r.unconstrainedTokens, r.constrainedTPS, r.constrainedTokens, r.ratio))
            return ExitCode.ok
        }
        // Load to first token: open + bind weights + one forward of one token.
        let t0 = Date()
        let probe = lm.model.makeCache(capacity: 1)
        _ = try lm.model.forward(tokens: [lm.tokenizer.bosID ?? 0], cache: probe)
        let firstToken = lm.loadSeconds + Date().timeIntervalSince(t0)
        if nPrompt + nGen > lm.model.config.contextLength {
            throw UsageError("-p + -n = \(nPrompt + nGen) exceeds the model's context \(lm.model.config.contextLength)")
        }
        let adapters = try AdapterOptions.load(a, for: lm.model, console: console)
        let samples = try Benchmark.run(model: lm.model, addBOS: lm.tokenizer.addsBOS, bosID: lm.tokenizer.bosID ?? 0,
                                        nPrompt: nPrompt, nGen: nGen, repetitions: reps, adapters: adapters)
        let rss = Benchmark.peakRSSBytes()
        let threads = lm.model.pool.threadCount
        let fileName = (lm.path as NSString).lastPathComponent
        if a.flag("--json") {
            let arr: [[String: Any]] = samples.map { s in
                [
                    "model_filename": lm.path, "model_size": lm.file.mapped.count,
                    "model_n_params": lm.file.tensors.reduce(0) { $0 + $1.elementCount },
                    "n_prompt": s.nPrompt, "n_gen": s.nGen, "n_threads": threads,
                    "n_batch": max(nPrompt, 1), "type_k": "f16", "type_v": "f16",
                    "avg_ns": Int(s.seconds.reduce(0, +) / Double(s.seconds.count) * 1e9),
                    "samples_ns": s.seconds.map { Int($0 * 1e9) },
                    "avg_ts": s.averageTPS, "stddev_ts": s.stddevTPS, "samples_ts": s.tokensPerSecond,
                    "peak_rss_bytes": rss, "load_to_first_token_s": firstToken,
                    "backends": "CPU", "build_commit": "steward-\(StewardCLI.version)",
                ]
            }
            console.out(Format.json(arr) + "\n")
        } else {
            console.out("| model | threads | test | t/s |\n|---|---|---|---|\n")
            for s in samples {
                let test = s.nPrompt > 0 ? "pp\(s.nPrompt)" : "tg\(s.nGen)"
                console.out(String(format: "| %@ | %d | %@ | %.2f ± %.2f |\n", fileName, threads, test, s.averageTPS, s.stddevTPS))
            }
            console.out(String(format: "\nload to first token %.3f s, peak RSS %@\n", firstToken, Format.bytes(rss)))
        }
        return ExitCode.ok
    }
}
