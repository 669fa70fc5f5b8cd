import Foundation
import ModelFiles
import Models
import Tokenization
import Generation

/// Sentence-embedding speed: sentences per second embedding a file of sentences in calls of
/// --batch sentences (scripts/bench-embeddings runs it beside sentence-transformers).
struct EmbedBenchCommand: Command {
    let spec = CommandSpec(
        name: "bench-embed",
        summary: "Embedding speed (sentences/s) on a file of sentences, in batches of N.",
        usage: "steward bench-embed --model MODEL --sentences FILE [--batch N] [--threads T] [--repeats R] [--pooling mean|last] [--json]",
        options: [
            .value("--model", "-m", valueName: "MODEL", help: "A sentence-transformers model (name or directory, e.g. all-minilm-l6-v2), or a GGUF chat model."),
            .value("--sentences", "-s", valueName: "FILE", help: "UTF-8 text, one sentence per line (empty lines are skipped)."),
            .value("--batch", "-b", valueName: "N", help: "Sentences per embedding call (default 1)."),
            .value("--threads", "-t", valueName: "T", help: "Threads (default: all cores)."),
            .value("--repeats", "-r", valueName: "R", help: "Embed every sentence R times and report the fastest pass (default 3)."),
            .value("--pooling", valueName: "POOLING", help: "For a GGUF chat model: mean (default) or last."),
            .flag("--json", help: "Print one JSON object."),
        ],
        discussion: "One unmeasured pass warms up first. Time covers tokenizing, the forward passes and pooling."
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        let modelArg = try a.require("--model")
        guard a.positionals.isEmpty else { throw UsageError("unexpected argument '\(a.positionals[0])'") }
        let file = try a.require("--sentences")
        let batch = try a.int("--batch") ?? 1
        let repeats = try a.int("--repeats") ?? 3
        let threads = try a.int("--threads")
        guard batch >= 1 else { throw UsageError("--batch must be ≥ 1") }
        guard repeats >= 1 else { throw UsageError("--repeats must be ≥ 1") }
        if let t = threads, t < 1 { throw UsageError("--threads must be ≥ 1") }
        guard let data = FileManager.default.contents(atPath: file) else { throw UsageError("cannot read --sentences \(file)") }
        let sentences = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        guard !sentences.isEmpty else { throw UsageError("--sentences \(file) has no sentences") }

        let path = try ModelLocator.resolve(modelArg)
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        let embed: ([String]) throws -> [[Float]]
        let dimension: Int
        if isDir.boolValue {
            let e = try Embedder(directory: path, threads: threads)
            embed = e.embed
            dimension = e.dimension
        } else {
            let gguf = try GGUFFile(path: path)
            let pooling = try a.value("--pooling").map { p -> LLMEmbedder.Pooling in
                guard let v = LLMEmbedder.Pooling(rawValue: p) else { throw UsageError("--pooling must be mean or last") }
                return v
            } ?? .mean
            let e = LLMEmbedder(model: try DecoderModel(file: gguf, threads: threads), tokenizer: try Tokenizer(gguf: gguf), pooling: pooling)
            embed = e.embed
            dimension = e.dimension
        }

        func pass() throws -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            var i = 0
            while i < sentences.count {
                let end = min(i + batch, sentences.count)
                _ = try embed(Array(sentences[i..<end]))
                i = end
            }
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        _ = try pass()  // warm-up: page in the weights, size the scratch buffers
        var best = Double.infinity
        for _ in 0..<repeats { best = min(best, try pass()) }
        let rate = Double(sentences.count) / max(best, 1e-9)
        let threadCount = threads ?? ProcessInfo.processInfo.activeProcessorCount
        if a.flag("--json") {
            let obj: [String: Any] = [
                "model": modelArg, "sentences": sentences.count, "batch": batch, "threads": threadCount,
                "dimension": dimension, "seconds": best, "repeats": repeats, "sentences_per_second": rate,
            ]
            console.out(Format.json(obj) + "\n")
        } else {
            console.out(String(format: "%@: %d sentences in batches of %d, %d threads, best of %d: %.3f s, %.1f sentences/s\n",
                               modelArg, sentences.count, batch, threadCount, repeats, best, rate))
        }
        return ExitCode.ok
    }
}
