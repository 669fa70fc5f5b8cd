import Foundation
import Models
import Tokenization

/// Perplexity the way llama.cpp's `llama-perplexity` computes it, so numbers are comparable:
/// the text is tokenized once (with the model's BOS rule), cut into windows of `context` tokens,
/// each window is evaluated from an empty cache with its first token replaced by BOS when the
/// model adds one, and only the second half of each window is scored.
public enum Perplexity {
    /// A logits row's largest value, where it is, and log Σ exp(v − max): the log-probability of
    /// token t is Double(row[t] − max) − logSum.
    public static func normalizer(_ row: UnsafeBufferPointer<Float>) -> (max: Float, argmax: Int, logSum: Double) {
        var mx = -Float.infinity, at = 0
        for (i, v) in row.enumerated() where v > mx { mx = v; at = i }
        var sum: Double = 0
        for v in row { sum += Foundation.exp(Double(v - mx)) }
        return (mx, at, Foundation.log(sum))
    }

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
                    let n = normalizer(row)
                    let lp = Double(row[target] - n.max) - n.logSum
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

extension Perplexity {
    /// Perplexity of both models and the KL divergence of the candidate's next-token
    /// distributions from the base's, over the same scored tokens, as llama.cpp's
    /// `llama-perplexity --kl-divergence` reports them: mean KL(p_base ‖ p_candidate) with its
    /// standard error, the largest, and how often both pick the same top token.
    public struct Divergence: Sendable {
        public let base: Result
        public let candidate: Result
        public let meanKL: Double
        public let klStderr: Double
        public let maxKL: Double
        public let sameTop: Double
    }

    public static func divergence(base: Session, candidate: Session, text: String, context: Int,
                                  progress: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> Divergence {
        let tokens = base.tokenizer.encode(text, addBOS: nil, parseSpecial: true)
        guard tokens == candidate.tokenizer.encode(text, addBOS: nil, parseSpecial: true),
              base.model.config.vocabSize == candidate.model.config.vocabSize else {
            throw GenerationError.invalidInput("the two models tokenize the text differently: KL divergence needs the same vocabulary")
        }
        guard context >= 8, context <= base.contextLength, context <= candidate.contextLength else {
            throw GenerationError.invalidInput("perplexity context must be at least 8 and fit both sessions")
        }
        guard tokens.count >= 2 * context else {
            throw GenerationError.invalidInput("the text has \(tokens.count) tokens; at least \(2 * context) (2 × context) are needed")
        }
        let chunks = tokens.count / context, first = context / 2, vocab = base.model.config.vocabSize
        let tok = base.tokenizer
        var nllB = 0.0, nllC = 0.0, kls: [Double] = [], same = 0
        for ch in 0..<chunks {
            var window = Array(tokens[(ch * context)..<((ch + 1) * context)])
            if tok.addsBOS, let bos = tok.bosID { window[0] = bos }
            base.reset(); candidate.reset()
            let lb = try base.evaluate(window, allLogits: true), lc = try candidate.evaluate(window, allLogits: true)
            lb.withUnsafeBufferPointer { bp in lc.withUnsafeBufferPointer { cp in
                for i in first..<(context - 1) {
                    let rb = bp.baseAddress! + i * vocab, rc = cp.baseAddress! + i * vocab
                    let nb = normalizer(UnsafeBufferPointer(start: rb, count: vocab))
                    let nc = normalizer(UnsafeBufferPointer(start: rc, count: vocab))
                    var kl = 0.0
                    for v in 0..<vocab {
                        let lpb = Double(rb[v] - nb.max) - nb.logSum
                        kl += Foundation.exp(lpb) * (lpb - (Double(rc[v] - nc.max) - nc.logSum))
                    }
                    let target = Int(window[i + 1])
                    nllB -= Double(rb[target] - nb.max) - nb.logSum; nllC -= Double(rc[target] - nc.max) - nc.logSum
                    kls.append(max(0, kl))
                    if nb.argmax == nc.argmax { same += 1 }
                }
            } }
            progress(ch + 1, chunks, kls.reduce(0, +) / Double(kls.count))
        }
        let n = Double(kls.count)
        let mean = kls.reduce(0, +) / n
        let sd = (kls.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / max(n - 1, 1)).squareRoot()
        func result(_ nll: Double) -> Result { Result(perplexity: Foundation.exp(nll / n), chunks: chunks, scoredTokens: kls.count, negativeLogLikelihood: nll) }
        return Divergence(base: result(nllB), candidate: result(nllC), meanKL: mean, klStderr: sd / n.squareRoot(),
                          maxKL: kls.max() ?? 0, sameTop: Double(same) / n)
    }
}
