import Foundation
import Models
import Tokenization

/// Why generation ended, in OpenAI's words.
public enum FinishReason: String, Sendable, Equatable {
    case stop      // EOS / end-of-turn token or a stop string
    case length    // max tokens reached
    case cancelled // the caller's onChunk returned false (e.g. the client disconnected)
}

public struct GenerationRequest: Sendable {
    public var maxTokens: Int = 128
    public var sampling = SamplingParameters()
    public var stops: [String] = []
    /// Top alternatives to report with each token (nil: no log-probabilities).
    public var logprobs: Int?
    /// Also score the prompt: the log-probability of each prompt token after the ones before
    /// it, with this many alternatives (OpenAI completions' `echo` with `logprobs`).
    public var promptLogprobs: Int?
    /// Stop at the model's end-of-generation tokens (EOS, end-of-turn).
    public var stopAtEOS = true

    public init() {}
}

/// One step of output as it is streamed.
public struct GeneratedChunk: Sendable {
    /// Text safe to show now (UTF-8 complete; held back while it might start a stop string).
    public var text: String
    public var token: Int32?
    public var logprob: TokenLogprob?
}

public struct GenerationResult: Sendable {
    public var text: String
    public var tokens: [Int32]
    public var promptTokens: Int
    public var finishReason: FinishReason
    public var logprobs: [TokenLogprob]
    /// With `promptLogprobs`: one entry per prompt token after the first (the first has no
    /// context to be scored in).
    public var promptLogprobs: [TokenLogprob] = []
    public var promptSeconds: Double
    public var generateSeconds: Double
}

/// A generation session: one sequence with its KV cache over a shared model.
public final class Session: @unchecked Sendable {
    public let model: DecoderModel
    public let tokenizer: Tokenizer
    public let cache: KVCache
    public let contextLength: Int
    /// Tokens currently in the cache, in order.
    public private(set) var history: [Int32] = []

    public init(model: DecoderModel, tokenizer: Tokenizer, contextLength: Int? = nil) throws(GenerationError) {
        let n = contextLength ?? min(model.config.contextLength, 4096)
        guard n > 0 else { throw .invalidParameter("context length must be positive, got \(n)") }
        guard n <= model.config.contextLength else {
            throw .invalidParameter("context length \(n) exceeds what the model was trained for (\(model.config.contextLength))")
        }
        self.model = model
        self.tokenizer = tokenizer
        self.contextLength = n
        self.cache = model.makeCache(capacity: n)
    }

    public func reset() {
        cache.reset()
        history = []
    }

    /// Evaluates tokens (in one batch) and returns the logits of the last one.
    public func evaluate(_ tokens: [Int32], allLogits: Bool = false) throws -> [Float] {
        let logits = try model.forward(tokens: tokens, cache: cache, allLogits: allLogits)
        history += tokens
        return logits
    }

    /// Generates a continuation of `prompt` (token ids), calling `onChunk` as text arrives; return
    /// false from it to stop early. Rejects a prompt that does not fit with room for maxTokens:
    /// nothing is ever truncated silently.
    @discardableResult
    public func generate(prompt: [Int32], _ request: GenerationRequest, reusePrefix: Bool = false,
                         onChunk: (GeneratedChunk) -> Bool = { _ in true }) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw GenerationError.emptyPrompt }
        guard request.maxTokens >= 0 else { throw GenerationError.invalidParameter("max tokens must be ≥ 0") }
        if prompt.count + request.maxTokens > contextLength {
            throw GenerationError.contextOverflow(promptTokens: prompt.count, maxTokens: request.maxTokens, contextLength: contextLength)
        }
        var sampler = try Sampler(request.sampling)
        // With reusePrefix, the cached tokens shared with this prompt are kept (a chat's earlier
        // turns) and only the rest is evaluated; at least one token is always evaluated so there
        // are logits to sample from.
        var common = 0
        if reusePrefix && request.promptLogprobs == nil {
            while common < min(history.count, prompt.count) && history[common] == prompt[common] { common += 1 }
            common = min(common, prompt.count - 1)
        }
        cache.truncate(to: common)
        history = Array(history.prefix(common))
        let t0 = Date()
        var logits: [Float]
        var promptLogprobs: [TokenLogprob] = []
        if let topN = request.promptLogprobs {
            let all = try evaluate(prompt, allLogits: true)
            let v = model.config.vocabSize
            all.withUnsafeBufferPointer { ap in
                for i in 1..<prompt.count {
                    let row = UnsafeBufferPointer(rebasing: ap[(i - 1) * v ..< i * v])
                    promptLogprobs.append(TokenLogprob(id: prompt[i], logits: row, topN: topN))
                }
            }
            logits = Array(all[(prompt.count - 1) * v ..< prompt.count * v])
        } else {
            logits = try evaluate(Array(prompt[common...]))
        }
        let t1 = Date()
        var out: [Int32] = []
        var text = ""
        var lps: [TokenLogprob] = []
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        var stopper = StopMatcher(stops: request.stops)
        var finish = FinishReason.length
        var stoppedByString = false
        var keepGoing = true
        func emit(_ t: String, _ id: Int32?, _ lp: TokenLogprob?) {
            text += t
            if !onChunk(GeneratedChunk(text: t, token: id, logprob: lp)) { keepGoing = false }
        }
        while out.count < request.maxTokens && keepGoing {
            let id = logits.withUnsafeBufferPointer { sampler.sample(logits: $0, history: history) }
            if request.stopAtEOS && tokenizer.isEOG(id) {
                finish = .stop
                break
            }
            let lp = request.logprobs.map { n in logits.withUnsafeBufferPointer { TokenLogprob(id: id, logits: $0, topN: n) } }
            out.append(id)
            if let lp { lps.append(lp) }
            switch stopper.feed(decoder.feed(id)) {
            case let .text(t):
                emit(t, id, lp)
            case let .stop(t, _):
                emit(t, id, lp)
                finish = .stop
                stoppedByString = true
            }
            if stoppedByString { break }
            if out.count < request.maxTokens && keepGoing {
                logits = try evaluate([id])
            }
        }
        if !stoppedByString {
            // Text held back by the UTF-8 decoder and the stop matcher is released at the end.
            switch stopper.feed(decoder.flush()) {
            case let .text(t):
                let tail = t + stopper.flush()
                if !tail.isEmpty { emit(tail, nil, nil) }
            case let .stop(t, _):
                if !t.isEmpty { emit(t, nil, nil) }
                finish = .stop
            }
        }
        if !keepGoing { finish = .cancelled }
        let t2 = Date()
        return GenerationResult(text: text, tokens: out, promptTokens: prompt.count, finishReason: finish,
                                logprobs: lps, promptLogprobs: promptLogprobs, promptSeconds: t1.timeIntervalSince(t0), generateSeconds: t2.timeIntervalSince(t1))
    }
}
