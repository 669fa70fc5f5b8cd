import Foundation
import Generation

struct PerplexityCommand: Command {
    let spec = CommandSpec(
        name: "perplexity",
        summary: "Perplexity of a text file, computed as llama.cpp's llama-perplexity does.",
        usage: "steward perplexity --model MODEL --file FILE [--ctx 256] [--threads N] [--adapter PATH[:SCALE]]... [--kl-base BASE_MODEL]",
        options: [
            .value("--model", "-m", valueName: "MODEL", help: "Model file or fetched model name."),
            .value("--file", "-f", valueName: "FILE", help: "UTF-8 text to score."),
            .value("--ctx", "-c", valueName: "N", help: "Window length; the second half of each is scored (default 256)."),
            .value("--threads", "-t", valueName: "N", help: "Threads (default: all cores)."),
            AdapterOptions.spec,
            .value("--kl-base", valueName: "MODEL", help: "Also the KL divergence of MODEL's token distributions from this base model's (llama.cpp's --kl-divergence numbers)."),
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
        if let baseArg = a.value("--kl-base") {
            let base = try LoadedModel.load(baseArg, threads: try GenerationOptions.threads(a))
            let baseSession = try Session(model: base.model, tokenizer: base.tokenizer, contextLength: ctx)
            let d = try Perplexity.divergence(base: baseSession, candidate: session, text: text, context: ctx) { done, total, kl in
                console.err(String(format: "[%d/%d] mean KLD %.6f\n", done, total, kl))
            }
            console.out(String(format: "PPL(base) = %.4f\nPPL(model) = %.4f\nPPL ratio = %.4f\nMean KLD = %.6f ± %.6f\nMax KLD = %.6f\nSame top token = %.2f%%\n",
                               d.base.perplexity, d.candidate.perplexity, d.candidate.perplexity / d.base.perplexity, d.meanKL, d.klStderr,
                               d.maxKL, d.sameTop * 100))
            console.err(String(format: "%d chunks, %d tokens scored, %.1f s\n", d.base.chunks, d.base.scoredTokens, Date().timeIntervalSince(t0)))
            return ExitCode.ok
        }
        let r = try Perplexity.compute(session: session, text: text, context: ctx) { done, total, ppl in
            console.err(String(format: "[%d/%d] %.4f\n", done, total, ppl))
        }
        console.err(String(format: "%d chunks, %d tokens scored, %.1f s\n", r.chunks, r.scoredTokens, Date().timeIntervalSince(t0)))
        console.out(String(format: "PPL = %.4f\n", r.perplexity))
        return ExitCode.ok
    }
}
