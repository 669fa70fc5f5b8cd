import Foundation

/// Sampling parameters, with llama.cpp's meanings. A value that switches a stage off is noted.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 (or less) means greedy: always the most likely token.
    public var temperature: Float = 0.8
    /// Keep the k most likely tokens; 0 switches it off.
    public var topK: Int = 40
    /// Nucleus sampling; 1 switches it off.
    public var topP: Float = 0.95
    /// Keep tokens at least minP × the top token's probability; 0 switches it off.
    public var minP: Float = 0.05
    /// Locally typical sampling; 1 switches it off.
    public var typicalP: Float = 1.0
    /// Divides positive logits and multiplies negative ones of tokens seen in the window; 1 is off.
    public var repeatPenalty: Float = 1.0
    /// Subtracted once per occurrence in the window (OpenAI `frequency_penalty`).
    public var frequencyPenalty: Float = 0
    /// Subtracted once if the token occurs in the window (OpenAI `presence_penalty`).
    public var presencePenalty: Float = 0
    /// How many of the last tokens the penalties look at; 0 = off, -1 = the whole context.
    public var penaltyWindow: Int = 64
    /// Added to a token's logit before anything else (-infinity bans it).
    public var logitBias: [Int32: Float] = [:]
    /// Same seed → same output. nil: a random seed.
    public var seed: UInt64?

    public init() {}

    public static var greedy: SamplingParameters {
        var p = SamplingParameters()
        p.temperature = 0
        return p
    }

    /// Validates ranges; a message names the parameter and the allowed range.
    public func validate() throws(GenerationError) {
        func bad(_ s: String) -> GenerationError { .invalidParameter(s) }
        guard temperature.isFinite, temperature >= 0 else { throw bad("temperature must be ≥ 0, got \(temperature)") }
        guard topK >= 0 else { throw bad("top_k must be ≥ 0, got \(topK)") }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw bad("top_p must be in (0, 1], got \(topP)") }
        guard minP.isFinite, minP >= 0, minP <= 1 else { throw bad("min_p must be in [0, 1], got \(minP)") }
        guard typicalP.isFinite, typicalP > 0, typicalP <= 1 else { throw bad("typical_p must be in (0, 1], got \(typicalP)") }
        guard repeatPenalty.isFinite, repeatPenalty > 0 else { throw bad("repeat_penalty must be > 0, got \(repeatPenalty)") }
        guard frequencyPenalty.isFinite, abs(frequencyPenalty) <= 2 else { throw bad("frequency_penalty must be in [-2, 2], got \(frequencyPenalty)") }
        guard presencePenalty.isFinite, abs(presencePenalty) <= 2 else { throw bad("presence_penalty must be in [-2, 2], got \(presencePenalty)") }
        guard penaltyWindow >= -1 else { throw bad("penalty window must be ≥ -1, got \(penaltyWindow)") }
        for (id, b) in logitBias where b.isNaN {
            throw bad("logit_bias for token \(id) is not a number")
        }
    }
}

/// A token with its (possibly modified) logit; the sampler works on a list of these.
public struct Candidate: Sendable, Equatable {
    public var id: Int32
    public var logit: Float
    public var p: Float = 0
    public init(id: Int32, logit: Float) { self.id = id; self.logit = logit }
}

/// SplitMix64-seeded xoshiro256**: small, fast, and the same sequence on every platform.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var z = seed
        func next() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        s = (next(), next(), next(), next())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 53 bits.
    public mutating func unit() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }
}

/// The sampling chain, in llama.cpp's default order:
/// logit bias → penalties → top-k → typical-p → top-p → min-p → temperature → draw.
/// One sampler belongs to one sequence (it owns the random state).
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var rng: SeededGenerator

    public init(_ parameters: SamplingParameters) throws(GenerationError) {
        try parameters.validate()
        self.parameters = parameters
        self.rng = SeededGenerator(seed: parameters.seed ?? UInt64.random(in: 0...UInt64.max))
    }

    /// Picks the next token from raw logits, given the tokens so far (prompt + generated), which
    /// the penalties read.
    public mutating func sample(logits: UnsafeBufferPointer<Float>, history: [Int32]) -> Int32 {
        var c = Self.applyBiasAndPenalties(logits: logits, history: history, parameters)
        if parameters.temperature <= 0 {
            return Self.argmax(c)
        }
        Self.topK(&c, parameters.topK)
        Self.typical(&c, parameters.typicalP)
        Self.topP(&c, parameters.topP)
        Self.minP(&c, parameters.minP)
        Self.temperature(&c, parameters.temperature)
        return Self.draw(&c, u: rng.unit())
    }

    // MARK: - Stages (static so tests can check each against hand-computed tables)

    public static func applyBiasAndPenalties(logits: UnsafeBufferPointer<Float>, history: [Int32], _ p: SamplingParameters) -> [Candidate] {
        var c = [Candidate]()
        c.reserveCapacity(logits.count)
        for i in 0..<logits.count { c.append(Candidate(id: Int32(i), logit: logits[i])) }
        for (id, b) in p.logitBias where id >= 0 && Int(id) < c.count {
            c[Int(id)].logit += b
        }
        let penalising = p.repeatPenalty != 1 || p.frequencyPenalty != 0 || p.presencePenalty != 0
        if penalising && p.penaltyWindow != 0 && !history.isEmpty {
            let window = p.penaltyWindow < 0 ? history.count : min(p.penaltyWindow, history.count)
            var counts: [Int32: Int] = [:]
            for t in history.suffix(window) { counts[t, default: 0] += 1 }
            for (t, n) in counts where t >= 0 && Int(t) < c.count {
                var l = c[Int(t)].logit
                // per llama.cpp's penalties sampler: divide positive, multiply negative logits
                l = l <= 0 ? l * p.repeatPenalty : l / p.repeatPenalty
                l -= Float(n) * p.frequencyPenalty + p.presencePenalty
                c[Int(t)].logit = l
            }
        }
        return c
    }

    /// Highest logit; the lowest id wins a tie.
    public static func argmax(_ c: [Candidate]) -> Int32 {
        var best = 0
        for i in 1..<c.count where c[i].logit > c[best].logit { best = i }
        return c[best].id
    }

    static func sortDescending(_ c: inout [Candidate]) {
        c.sort { $0.logit != $1.logit ? $0.logit > $1.logit : $0.id < $1.id }
    }

    /// Sorts descending and keeps the k best (k = 0: keeps all, sorted).
    public static func topK(_ c: inout [Candidate], _ k: Int) {
        if k > 0 && k < c.count {
            // Partial selection: a threshold from a bounded pass keeps this O(n log k)-ish for
            // large vocabularies.
            var heap = [Candidate]()
            heap.reserveCapacity(k + 1)
            for x in c {
                if heap.count < k {
                    heap.append(x)
                    if heap.count == k { sortDescending(&heap) }
                } else if x.logit > heap[k - 1].logit || (x.logit == heap[k - 1].logit && x.id < heap[k - 1].id) {
                    // insert in order
                    var lo = 0, hi = k - 1
                    while lo < hi {
                        let mid = (lo + hi) / 2
                        let m = heap[mid]
                        if m.logit > x.logit || (m.logit == x.logit && m.id < x.id) { lo = mid + 1 } else { hi = mid }
                    }
                    heap.insert(x, at: lo)
                    heap.removeLast()
                }
            }
            if heap.count < k { sortDescending(&heap) }
            c = heap
        } else {
            sortDescending(&c)
        }
    }

    /// Softmax over the candidates' logits into `p` (numerically stable).
    public static func softmax(_ c: inout [Candidate]) {
        guard let mx = c.map(\.logit).max() else { return }
        var sum: Double = 0
        for i in c.indices {
            let e = c[i].logit == -.infinity ? 0 : Foundation.exp(Double(c[i].logit - mx))
            c[i].p = Float(e)
            sum += e
        }
        for i in c.indices { c[i].p = Float(Double(c[i].p) / sum) }
    }

    /// Keeps the smallest prefix (by probability) whose mass reaches `p` (llama.cpp top-p).
    public static func topP(_ c: inout [Candidate], _ p: Float) {
        guard p < 1, c.count > 1 else { return }
        sortDescending(&c)
        softmax(&c)
        var cum: Float = 0
        for i in c.indices {
            cum += c[i].p
            if cum >= p {
                c.removeSubrange((i + 1)...)
                return
            }
        }
    }

    /// Keeps tokens whose probability is at least `minP` times the top one's.
    public static func minP(_ c: inout [Candidate], _ minP: Float) {
        guard minP > 0, c.count > 1 else { return }
        let mx = c.map(\.logit).max()!
        let threshold = mx + Foundation.log(minP)
        c.removeAll { $0.logit < threshold }
    }

    /// Locally typical sampling (Meister et al.), as llama.cpp implements it.
    public static func typical(_ c: inout [Candidate], _ p: Float) {
        guard p < 1, c.count > 1 else { return }
        softmax(&c)
        var entropy: Double = 0
        for x in c where x.p > 0 { entropy -= Double(x.p) * Foundation.log(Double(x.p)) }
        let shifted = c.map { abs(-Foundation.log(Double($0.p)) - entropy) }
        let order = c.indices.sorted { shifted[$0] != shifted[$1] ? shifted[$0] < shifted[$1] : c[$0].id < c[$1].id }
        var cum: Float = 0
        var keep = order.count
        for (n, i) in order.enumerated() {
            cum += c[i].p
            if cum > p && n + 1 >= 1 { keep = n + 1; break }
        }
        c = order.prefix(keep).map { c[$0] }
    }

    public static func temperature(_ c: inout [Candidate], _ t: Float) {
        guard t > 0 else { return }
        for i in c.indices { c[i].logit /= t }
    }

    /// Draws one candidate with probability softmax(logit), using `u` in [0, 1).
    public static func draw(_ c: inout [Candidate], u: Double) -> Int32 {
        softmax(&c)
        var cum: Double = 0
        for x in c {
            cum += Double(x.p)
            if u < cum { return x.id }
        }
        return c.last(where: { $0.p > 0 })?.id ?? c[0].id
    }
}

/// Log-probability of the chosen token and the top alternatives, from the raw distribution
/// (before sampling filters), as OpenAI's `logprobs` reports them.
public struct TokenLogprob: Sendable, Equatable {
    public let id: Int32
    public let logprob: Float
    public let top: [(id: Int32, logprob: Float)]

    public static func == (a: TokenLogprob, b: TokenLogprob) -> Bool {
        a.id == b.id && a.logprob == b.logprob && a.top.map(\.id) == b.top.map(\.id) && a.top.map(\.logprob) == b.top.map(\.logprob)
    }

    public init(id: Int32, logits: UnsafeBufferPointer<Float>, topN: Int) {
        var mx = -Float.infinity
        for v in logits where v > mx { mx = v }
        var sum: Double = 0
        for v in logits { sum += Foundation.exp(Double(v - mx)) }
        let lse = Double(mx) + Foundation.log(sum)
        self.id = id
        self.logprob = Float(Double(logits[Int(id)]) - lse)
        if topN > 0 {
            var c = (0..<logits.count).map { Candidate(id: Int32($0), logit: logits[$0]) }
            Sampler.topK(&c, topN)
            top = c.map { ($0.id, Float(Double($0.logit) - lse)) }
        } else {
            top = []
        }
    }
}
