import Foundation
import Generation
import ModelFiles
import Models
import Tokenization

/// A local GGUF model (with optional LoRA adapters) as an evaluation backend. Log-likelihoods
/// follow lm-evaluation-harness: the continuation's tokens are those of `context + continuation`
/// after the tokens of `context`, scored in one forward pass with the model's BOS rule.
public final class LocalBackend: EvalBackend {
    public let model: DecoderModel
    public let tokenizer: Tokenizer
    public let path: String
    public let adapters: [LoRAUse]
    let session: Session
    let info: [String: String]

    public init(model: DecoderModel, tokenizer: Tokenizer, path: String, file: GGUFFile, adapters: [LoRAUse], contextLength: Int? = nil) throws {
        self.model = model; self.tokenizer = tokenizer; self.path = path; self.adapters = adapters
        session = try Session(model: model, tokenizer: tokenizer, contextLength: contextLength)
        var types: [String: Int] = [:]
        for t in file.tensors { types[t.type.name, default: 0] += t.byteCount }
        info = ["path": path, "architecture": model.config.architecture, "sha256": (try? FileDigest.sha256(path: path)) ?? "",
                "quantization": types.max { $0.value < $1.value }?.key ?? "",
                "adapters": adapters.map { "\($0.adapter.path)@\($0.scale)" }.joined(separator: ";"),
                "parameters": String(file.tensors.reduce(0) { $0 + $1.elementCount })]
    }

    public var describe: [String: Any] { info }

    public func loglikelihood(context: String, continuation: String) throws -> (logprob: Double, greedy: Bool) {
        let ctx = tokenizer.encode(context, addBOS: nil, parseSpecial: false)
        let whole = tokenizer.encode(context + continuation, addBOS: nil, parseSpecial: false)
        let start = commonPrefix(ctx, whole)
        guard start < whole.count else { throw EvalError.backend("the continuation '\(continuation)' adds no token") }
        guard start > 0 else { throw EvalError.backend("empty context: nothing to condition on") }
        guard whole.count <= session.contextLength else {
            throw EvalError.backend("\(whole.count) tokens exceed the context of \(session.contextLength) (lower the few-shot count)")
        }
        let cache = model.makeCache(capacity: whole.count)
        cache.adapters = adapters
        let logits = try model.forward(tokens: whole, cache: cache, allLogits: true)
        let v = model.config.vocabSize
        var total = 0.0
        var greedy = true
        logits.withUnsafeBufferPointer { lp in
            for i in start..<whole.count {
                let row = UnsafeBufferPointer(rebasing: lp[(i - 1) * v ..< i * v])
                let n = Perplexity.normalizer(row)
                let x = row[Int(whole[i])]
                total += Double(x - n.max) - n.logSum
                if x < n.max { greedy = false }
            }
        }
        return (total, greedy)
    }

    public func generate(prompt: String, maxTokens: Int, stop: [String], temperature: Double, seed: UInt64) throws -> String {
        var r = GenerationRequest()
        r.maxTokens = maxTokens
        r.stops = stop
        r.adapters = adapters
        var s = SamplingParameters()
        s.temperature = Float(temperature)
        s.seed = seed
        r.sampling = s
        let ids = tokenizer.encode(prompt, addBOS: nil, parseSpecial: false)
        return try session.generate(prompt: ids, r).text
    }

    public func perplexity(text: String, context: Int) throws -> Double {
        let s = try Session(model: model, tokenizer: tokenizer, contextLength: context)
        s.cache.adapters = adapters
        return try Perplexity.compute(session: s, text: text, context: context) { _, _, _ in }.perplexity
    }
}
