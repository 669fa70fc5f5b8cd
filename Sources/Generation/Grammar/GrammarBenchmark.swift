import Foundation
import Models
import Tokenization

/// Decode speed with and without a grammar in the same process: the same prompt, the same
/// sampler settings (temperature 1, fixed seeds), tokens per second of the generation phase
/// (sampling and masking included, prompt excluded). The constrained runs start with a fresh
/// matcher each time, so building automaton states and token masks is part of what is timed.
public enum GrammarBenchmark {
    public struct Result: Sendable {
        public var unconstrainedTPS: Double
        public var constrainedTPS: Double
        public var constrainedTokens: Int
        public var unconstrainedTokens: Int
        public var ratio: Double { constrainedTPS / max(unconstrainedTPS, 1e-9) }
    }

    public static func run(model: DecoderModel, tokenizer: Tokenizer, grammar: Grammar, prompt: [Int32],
                           maxTokens: Int, repetitions: Int) throws -> Result {
        let session = try Session(model: model, tokenizer: tokenizer, contextLength: min(model.config.contextLength, prompt.count + maxTokens + 1))
        _ = GrammarVocabulary.shared(for: tokenizer)   // built once per tokenizer, like a server would
        func request(_ seed: UInt64, _ g: Grammar?) -> GenerationRequest {
            var r = GenerationRequest()
            r.maxTokens = maxTokens
            r.sampling.temperature = 1
            r.sampling.seed = seed
            r.grammar = g
            r.stopAtEOS = g != nil
            return r
        }
        _ = try session.generate(prompt: prompt, request(0, nil))   // warm-up
        var uTok = 0, uSec = 0.0, cTok = 0, cSec = 0.0
        for rep in 0..<repetitions {
            // Interleaved so drifting machine load affects both alike.
            let u = try session.generate(prompt: prompt, request(UInt64(rep + 1), nil))
            uTok += u.tokens.count; uSec += u.generateSeconds
            let c = try session.generate(prompt: prompt, request(UInt64(rep + 1), grammar))
            cTok += c.tokens.count; cSec += c.generateSeconds
        }
        return Result(unconstrainedTPS: Double(uTok) / max(uSec, 1e-9), constrainedTPS: Double(cTok) / max(cSec, 1e-9),
                      constrainedTokens: cTok, unconstrainedTokens: uTok)
    }
}
