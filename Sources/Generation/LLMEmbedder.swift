import Foundation
import Models
import Tokenization

/// Text embeddings from a decoder (chat) model, for users who serve no encoder: the model's
/// final hidden states (after its output norm, as llama.cpp's embedding mode reads them) pooled
/// over the text's tokens, then L2-normalised, like `llama-embedding --pooling mean|last`
/// (whose default normalisation is the Euclidean norm).
///
/// Mean pooling averages every token's state; last-token pooling takes the final token's, which
/// in a causal model is the only one that has seen the whole text.
///
/// Each text runs in a KV cache of its own, made for the call and sized to the text, so an
/// embedding never touches a generating sequence's cache. The model runs one forward at a time
/// (its compute scratch is shared, behind its lock), so embedding calls interleave with a
/// generation engine's steps: they are safe from any thread, and while one runs the engine waits
/// for it between steps (and vice versa).
public final class LLMEmbedder: @unchecked Sendable {
    public enum Pooling: String, Sendable, CaseIterable {
        case mean, last
    }

    public let model: DecoderModel
    public let tokenizer: Tokenizer
    public let pooling: Pooling
    /// Most tokens a text may take (the served context length, or the model's positions).
    public let maxTokens: Int
    /// Length of each embedding: the model's hidden size.
    public var dimension: Int { model.config.hiddenSize }

    public init(model: DecoderModel, tokenizer: Tokenizer, pooling: Pooling = .mean, maxTokens: Int? = nil) {
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.maxTokens = max(1, min(maxTokens ?? model.config.contextLength, model.config.contextLength))
    }

    /// Token ids of `text` as the model sees them: the tokenizer's own rule for BOS/EOS; special
    /// tokens written in the text are not parsed (texts to embed are data, not prompts; llama.cpp's
    /// server parses them, which only differs for texts that spell out a special token).
    public func tokens(_ text: String) throws -> [Int32] {
        let ids = tokenizer.encode(text)
        guard ids.count <= maxTokens else { throw EmbedderError.tooLong(tokens: ids.count, max: maxTokens) }
        return ids
    }

    /// One normalised embedding of `dimension` floats per text, in order. Every text is
    /// tokenized and checked before any is run, so one bad text fails the call up front.
    public func embed(_ texts: [String]) throws -> [[Float]] {
        let all = try texts.map { try tokens($0) }
        if let i = all.firstIndex(where: { $0.isEmpty }) { throw EmbedderError.emptyText(index: i) }
        return try all.map { try embed(tokens: $0) }
    }

    /// One text's embedding.
    public func embed(_ text: String) throws -> [Float] { try embed([text])[0] }

    /// The embedding of a tokenized text (non-empty).
    public func embed(tokens ids: [Int32]) throws -> [Float] {
        guard !ids.isEmpty else { throw EmbedderError.emptyText(index: 0) }
        let cache = model.makeCache(capacity: ids.count)
        let states = try model.hiddenStates(tokens: ids, cache: cache)
        let d = dimension, n = ids.count
        var out = [Float](repeating: 0, count: d)
        switch pooling {
        case .mean:
            // per llama.cpp's LLAMA_POOLING_TYPE_MEAN: the average of the rows, summed in order
            for t in 0..<n { for j in 0..<d { out[j] += states[t * d + j] } }
            let inv = 1 / Float(n)
            for j in 0..<d { out[j] *= inv }
        case .last:
            for j in 0..<d { out[j] = states[(n - 1) * d + j] }
        }
        // Euclidean normalisation as common_embd_normalize(…, 2): x / ‖x‖ (0 stays 0).
        let norm = out.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        if norm > 0 { for j in 0..<d { out[j] /= norm } }
        return out
    }
}
