import Foundation
import Models
import Tokenization

/// Perplexity the way llama.cpp's `llama-perplexity` computes it, so numbers are comparable:
/// the text is tokenized once (with the model's BOS rule), cut into windows of `context` tokens,
/// each window is evaluated from an empty cache with its first token replaced by BOS when the
/// model adds one, and only the second half of each window is scored.
public enum Perplexity {
    public struct Result: Sendable {
        public let perplexity: Double
        public let chunks: Int
        public let scoredTokens: Int
        public let negativeLogLikelihood: Double
    }

    public static func compute(session: Session, text: String, context: Int,
                               progress: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> Result {
        let tok = session.tokenizer
        let tokens = tok.encode(text, addBOS: nil, parseSpecial: true)
        guard context >= 8 else { throw GenerationError.invalidInput("perplexity context must be at least 8 tokens") }
        guard context <= session.contextLength else {
            throw GenerationError.invalidInput("perplexity context \(context) exceeds the session's \(session.contextLength)")
        }
        guard tokens.count >= 2 * context else {
            throw GenerationError.invalidInput("the text has \(tokens.count) tokens; perplexity needs at least \(2 * context) (2 × context)")
        }
        let chunks = tokens.count / context
        let first = context / 2
        let addBOS = tok.addsBOS
        var nll: Double = 0
        var count = 0
        let vocab = session.model.config.vocabSize
        for ch in 0..<chunks {
            var window = Array(tokens[(ch * context)..<((ch + 1) * context)])
            if addBOS, let bos = tok.bosID { window[0] = bos }
            session.reset()
            let logits = try session.evaluate(window, allLogits: true)
            try logits.withUnsafeBufferPointer { lp in
                for i in first..<(context - 1) {
                    let row = UnsafeBufferPointer(rebasing: lp[(i * vocab)..<((i + 1) * vocab)])
                    let target = Int(window[i + 1])
                    var mx = -Float.infinity
                    for v in row where v > mx { mx = v }
                    var sum: Double = 0
                    for v in row { sum += Foundation.exp(Double(v - mx)) }
                    let lp = Double(row[target] - mx) - Foundation.log(sum)
                    guard lp.isFinite else { throw GenerationError.invalidInput("non-finite log-probability at chunk \(ch), position \(i)") }
                    nll -= lp
                    count += 1
                }
            }
            progress(ch + 1, chunks, Foundation.exp(nll / Double(count)))
        }
        return Result(perplexity: Foundation.exp(nll / Double(count)), chunks: chunks, scoredTokens: count, negativeLogLikelihood: nll)
    }
}
