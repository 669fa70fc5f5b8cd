import Foundation
import Generation

/// Options shared by the commands that generate.
enum GenerationOptions {
    static let specs: [OptionSpec] = [
        .value("--max-tokens", "-n", valueName: "N", help: "Tokens to generate at most (default 256)."),
        .value("--temperature", valueName: "T", help: "Sampling temperature; 0 is greedy (default 0.8)."),
        .value("--top-k", valueName: "K", help: "Keep the K most likely tokens; 0 = off (default 40)."),
        .value("--top-p", valueName: "P", help: "Nucleus sampling mass; 1 = off (default 0.95)."),
        .value("--min-p", valueName: "P", help: "Minimum probability relative to the top token; 0 = off (default 0.05)."),
        .value("--typical-p", valueName: "P", help: "Locally typical sampling; 1 = off (default 1)."),
        .value("--repeat-penalty", valueName: "R", help: "Repetition penalty over the last 64 tokens; 1 = off (default 1)."),
        .value("--seed", valueName: "S", help: "Random seed: the same seed gives the same output."),
        .repeated("--stop", valueName: "S", help: "Stop when this text appears (not printed)."),
        .value("--threads", "-t", valueName: "N", help: "Threads (default: all cores)."),
        .value("--ctx", "-c", valueName: "N", help: "Context length (default: the model's, at most 4096)."),
    ]

    static func request(_ a: ParsedArguments, defaultMaxTokens: Int = 256) throws -> GenerationRequest {
        var r = GenerationRequest()
        r.maxTokens = try a.int("--max-tokens") ?? defaultMaxTokens
        if r.maxTokens < 0 { throw UsageError("--max-tokens must be ≥ 0") }
        var s = SamplingParameters()
        if let v = try a.double("--temperature") { s.temperature = Float(v) }
        if let v = try a.int("--top-k") { s.topK = v }
        if let v = try a.double("--top-p") { s.topP = Float(v) }
        if let v = try a.double("--min-p") { s.minP = Float(v) }
        if let v = try a.double("--typical-p") { s.typicalP = Float(v) }
        if let v = try a.double("--repeat-penalty") { s.repeatPenalty = Float(v) }
        if let v = a.value("--seed") {
            guard let seed = UInt64(v) else { throw UsageError("--seed expects a non-negative integer, got '\(v)'") }
            s.seed = seed
        }
        do { try s.validate() } catch { throw UsageError(error.description) }
        r.sampling = s
        r.stops = a.values("--stop")
        return r
    }

    static func threads(_ a: ParsedArguments) throws -> Int? {
        guard let t = try a.int("--threads") else { return nil }
        guard t >= 1, t <= 256 else { throw UsageError("--threads must be between 1 and 256") }
        return t
    }
}

struct RunCommand: Command {
    let spec = CommandSpec(
        name: "run",
        summary: "Generate text from a prompt, streaming it to standard output.",
        usage: "steward run --model MODEL (--prompt TEXT | stdin) [--raw] [--system TEXT] [options]",
        options: [
            .value("--model", "-m", valueName: "MODEL", help: "Model file or fetched model name."),
            .value("--prompt", "-p", valueName: "TEXT", help: "The prompt (default: standard input)."),
            .flag("--raw", help: "Plain completion: no chat template."),
            .value("--system", valueName: "TEXT", help: "System message (chat mode)."),
            .value("--template", valueName: "NAME|FILE", help: "Chat template: a built-in (chatml, gemma) or a .jinja file."),
            .flag("--verbose", "-v", help: "Print timing to standard error."),
        ] + GrammarOptions.specs + GenerationOptions.specs + [AdapterOptions.spec],
        discussion: "With a chat template and without --raw, the prompt is the user message."
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        let modelArg = try a.require("--model")
        guard a.positionals.isEmpty else { throw UsageError("unexpected argument '\(a.positionals[0])' (use --prompt)") }
        var request = try GenerationOptions.request(a)
        request.grammar = try GrammarOptions.load(a)
        var prompt = a.value("--prompt") ?? ""
        if a.value("--prompt") == nil {
            if console.inputIsTerminal { throw UsageError("give --prompt TEXT or pipe the prompt on standard input") }
            prompt = console.readAllInput()
        }
        let lm = try LoadedModel.load(modelArg, threads: try GenerationOptions.threads(a))
        request.adapters = try AdapterOptions.load(a, for: lm.model, console: a.flag("--verbose") ? console : nil)
        let ids: [Int32]
        if a.flag("--raw") {
            if a.value("--system") != nil { throw UsageError("--system needs chat mode (drop --raw)") }
            ids = lm.tokenizer.encode(prompt, addBOS: nil, parseSpecial: true)
        } else {
            let template = try lm.chatTemplate(override: a.value("--template"), modelName: modelArg)
            var messages: [[String: String]] = []
            if let sys = a.value("--system") { messages.append(["role": "system", "content": sys]) }
            messages.append(["role": "user", "content": prompt])
            ids = try lm.encodeChat(template, messages: messages)
        }
        let session = try Session(model: lm.model, tokenizer: lm.tokenizer, contextLength: try a.int("--ctx"))
        let result = try session.generate(prompt: ids, request) { chunk in
            console.out(chunk.text)
            return true
        }
        console.out("\n")
        if request.grammar != nil && result.finishReason != .stop {
            console.err(result.finishReason == .length
                ? "note: stopped at --max-tokens before the grammar was complete; the output is cut short\n"
                : "note: the grammar allowed no further token; the output is incomplete\n")
        }
        if a.flag("--verbose") {
            let pp = Double(result.promptTokens) / max(result.promptSeconds, 1e-9)
            let tg = Double(result.tokens.count) / max(result.generateSeconds, 1e-9)
            console.err(String(format: "load %.2f s, prompt %d tokens %.1f t/s, generated %d tokens %.1f t/s, finish: %@\n",
                               lm.loadSeconds, result.promptTokens, pp, result.tokens.count, tg, result.finishReason.rawValue))
        }
        return ExitCode.ok
    }
}
