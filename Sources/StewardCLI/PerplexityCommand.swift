import Foundation
import Generation

struct PerplexityCommand: Command {
    let spec = CommandSpec(
        name: "perplexity",
        summary: "Perplexity of a text file, computed as llama.cpp's llama-perplexity does.",
        usage: "steward perplexity --model MODEL --file FILE [--ctx 256] [--threads N] [--adapter PATH[:SCALE]]...",
        options: [
            .value("--model", "-m", valueName: "MODEL", help: "Model file or fetched model name."),
            .value("--file", "-f", valueName: "FILE", help: "UTF-8 text to score."),
            .value("--ctx", "-c", valueName: "N", help: "Window length; the second half of each is scored (default 256)."),
            .value("--threads", "-t", valueName: "N", help: "Threads (default: all cores)."),
            AdapterOptions.spec,
        ]
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        let modelArg = try a.require("--model")
        let path = try a.require("--file")
        let ctx = try a.int("--ctx") ?? 256
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("cannot read --file \(path)")
        }
        let text = String(decoding: data, as: UTF8.self)
        let lm = try LoadedModel.load(modelArg, threads: try GenerationOptions.threads(a))
        let session = try Session(model: lm.model, tokenizer: lm.tokenizer, contextLength: ctx)
        session.cache.adapters = try AdapterOptions.load(a, for: lm.model, console: console)
        let t0 = Date()
        let r = try Perplexity.compute(session: session, text: text, context: ctx) { done, total, ppl in
            console.err(String(format: "[%d/%d] %.4f\n", done, total, ppl))
        }
        console.err(String(format: "%d chunks, %d tokens scored, %.1f s\n", r.chunks, r.scoredTokens, Date().timeIntervalSince(t0)))
        console.out(String(format: "PPL = %.4f\n", r.perplexity))
        return ExitCode.ok
    }
}
