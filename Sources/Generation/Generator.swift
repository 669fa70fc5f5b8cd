import Foundation
import Models
import Tokenization

/// Why generation ended, in OpenAI's words.
public enum FinishReason: String, Sendable, Equatable {
    case stop      // EOS / end-of-turn token or a stop string
    case length    // max tokens reached
    case cancelled // the caller's onChunk returned false (e.g. the client disconnected)
    /// The grammar allowed no token (and could not end here): the output so far is returned.
    case grammarDeadEnd = "grammar_dead_end"
}

/// How many leading tokens two sequences share (prefix reuse, prompt/continuation splits).
public func commonPrefix(_ a: [Int32], _ b: [Int32]) -> Int {
    var i = 0
    let n = min(a.count, b.count)
    while i < n && a[i] == b[i] { i += 1 }
    return i
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
    /// Constrains the output to this grammar (GBNF or a compiled JSON schema): tokens it does
    /// not allow are masked before sampling, and end-of-generation is allowed only where the
    /// grammar is complete.
    public var grammar: Grammar?
    /// Makes `grammar` lazy: it applies only from the first of these strings to appear in the
    /// output on (see `GrammarTrigger`). Empty: the grammar applies from the first token.
    public var grammarTriggers: [String] = []
    /// LoRA adapters to run with (applied at run time over the shared base weights); empty:
    /// the base model.
    public var adapters: [LoRAUse] = []

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
        let sampler = try Sampler(request.sampling)
        // With reusePrefix, the cached tokens shared with this prompt are kept (a chat's earlier
        // turns) and only the rest is evaluated; at least one token is always evaluated so there
        // are logits to sample from.
        var common = 0
        // K/V computed under other adapters are not this request's: start over.
        if !LoRAUse.same(cache.adapters, request.adapters) {
            cache.reset()
            history = []
            cache.adapters = request.adapters
        }
        if reusePrefix && request.promptLogprobs == nil {
            common = commonPrefix(history, prompt)
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
        var result = try withoutActuallyEscaping(onChunk) { onChunk in
            var sequence = SequenceGenerator(request: request, sampler: sampler, tokenizer: tokenizer, context: history, onChunk: onChunk)
            while let next = logits.withUnsafeBufferPointer({ sequence.step(logits: $0) }) {
                logits = try evaluate([next])
            }
            return sequence.finish(promptTokens: prompt.count)
        }
        let t2 = Date()
        result.promptLogprobs = promptLogprobs
        result.promptSeconds = t1.timeIntervalSince(t0)
        result.generateSeconds = t2.timeIntervalSince(t1)
        return result
    }
}

/// One sequence's generation after its prompt: sampling, end-of-generation and stop strings,
/// UTF-8-safe streaming, log-probabilities. The caller evaluates the model; `step` takes the
/// logits for the next position and returns the token to evaluate next, or nil when the
/// sequence is done. Session runs one of these; a batching engine runs many side by side.
public struct SequenceGenerator {
    public let request: GenerationRequest
    private var sampler: Sampler
    private let tokenizer: Tokenizer
    /// Tokens the sampler's penalties look back over (prompt, then generated).
    private var context: [Int32]
    private let onChunk: (GeneratedChunk) -> Bool
    private var decoder: StreamingDecoder
    private var stopper: StopMatcher
    public private(set) var tokens: [Int32] = []
    public private(set) var text = ""
    private var logprobs: [TokenLogprob] = []
    private var finishReason = FinishReason.length
    private var stoppedByString = false
    private var keepGoing = true
    private var done = false
    private var grammar: GrammarMatcher?
    /// Set while a lazy grammar waits for its trigger.
    private var trigger: GrammarTrigger?
    private var masked: [Float] = []

    public init(request: GenerationRequest, sampler: Sampler, tokenizer: Tokenizer, context: [Int32],
                onChunk: @escaping (GeneratedChunk) -> Bool) {
        self.request = request
        if request.grammar != nil && !request.grammarTriggers.isEmpty {
            trigger = GrammarTrigger(request.grammarTriggers)
        } else {
            grammar = request.grammar.map { GrammarMatcher(grammar: $0, tokenizer: tokenizer) }
        }
        self.sampler = sampler
        self.tokenizer = tokenizer
        self.context = context
        self.onChunk = onChunk
        decoder = StreamingDecoder(tokenizer: tokenizer)
        stopper = StopMatcher(stops: request.stops)
    }

    private mutating func emit(_ t: String, _ id: Int32?, _ lp: TokenLogprob?) {
        text += t
        if !onChunk(GeneratedChunk(text: t, token: id, logprob: lp)) { keepGoing = false }
    }

    /// Samples the next token from `logits`; returns it when the model must evaluate it to go
    /// on, nil when the sequence has finished (then call `finish`).
    public mutating func step(logits: UnsafeBufferPointer<Float>) -> Int32? {
        guard !done, tokens.count < request.maxTokens, keepGoing else { done = true; return nil }
        let id: Int32
        var lp: TokenLogprob?
        if let grammar {
            // Disallowed tokens get -inf before the sampler sees them (llama.cpp applies its
            // grammar sampler the same way); log-probabilities come from the masked logits.
            masked.removeAll(keepingCapacity: true)
            masked.append(contentsOf: logits)
            let allowed = masked.withUnsafeMutableBufferPointer { grammar.mask($0, allowEndOfGeneration: request.stopAtEOS) }
            if allowed == 0 {
                finishReason = grammar.isComplete ? .stop : .grammarDeadEnd
                done = true
                return nil
            }
            id = masked.withUnsafeBufferPointer { sampler.sample(logits: $0, history: context) }
            lp = request.logprobs.map { n in masked.withUnsafeBufferPointer { TokenLogprob(id: id, logits: $0, topN: n) } }
            if !(request.stopAtEOS && tokenizer.isEOG(id)) && !grammar.accept(token: id) {
                finishReason = .grammarDeadEnd
                done = true
                return nil
            }
        } else {
            id = sampler.sample(logits: logits, history: context)
            lp = nil
        }
        if request.stopAtEOS && tokenizer.isEOG(id) {
            finishReason = .stop
            done = true
            return nil
        }
        if grammar == nil { lp = request.logprobs.map { TokenLogprob(id: id, logits: logits, topN: $0) } }
        if grammar == nil, var t = trigger, let g = request.grammar {
            // A lazy grammar starts with the token that completes its trigger.
            if let fromTrigger = t.feed(tokenizer.tokenBytes(id)) {
                let m = GrammarMatcher(grammar: g, tokenizer: tokenizer)
                if !m.accept(fromTrigger) {
                    finishReason = .grammarDeadEnd
                    done = true
                    return nil
                }
                grammar = m
                trigger = nil
            } else {
                trigger = t
            }
        }
        tokens.append(id)
        context.append(id)
        if let lp { logprobs.append(lp) }
        switch stopper.feed(decoder.feed(id)) {
        case let .text(t):
            emit(t, id, lp)
        case let .stop(t, _):
            emit(t, id, lp)
            finishReason = .stop
            stoppedByString = true
        }
        if stoppedByString || tokens.count >= request.maxTokens || !keepGoing {
            done = true
            return nil
        }
        return id
    }

    /// Whether the consumer has gone away (onChunk returned false).
    public var cancelled: Bool { !keepGoing }

    /// Releases held-back text and returns the result (timings left at zero for the caller).
    public mutating func finish(promptTokens: Int) -> GenerationResult {
        done = true
        if !stoppedByString && keepGoing {
            // Text held back by the UTF-8 decoder and the stop matcher is released at the end.
            switch stopper.feed(decoder.flush()) {
            case let .text(t):
                let tail = t + stopper.flush()
                if !tail.isEmpty { emit(tail, nil, nil) }
            case let .stop(t, _):
                if !t.isEmpty { emit(t, nil, nil) }
                finishReason = .stop
            }
        }
        if !keepGoing { finishReason = .cancelled }
        return GenerationResult(text: text, tokens: tokens, promptTokens: promptTokens, finishReason: finishReason,
                                logprobs: logprobs, promptLogprobs: [], promptSeconds: 0, generateSeconds: 0)
    }
}
