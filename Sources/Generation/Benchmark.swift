#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Models

/// Prompt-processing and generation throughput measured the way llama-bench measures it, so the
/// two can be compared in one table: pp = one batch of n random tokens (BOS first when the model
/// adds one), logits for the last only; tg = n single-token decodes from an empty cache. Each
/// test runs once to warm up, then `repetitions` times from an empty cache.
public enum Benchmark {
    public struct Sample: Sendable {
        public let nPrompt: Int
        public let nGen: Int
        public let seconds: [Double]
        public var tokens: Int { nPrompt + nGen }
        public var tokensPerSecond: [Double] { seconds.map { Double(tokens) / $0 } }
        public var averageTPS: Double { tokensPerSecond.reduce(0, +) / Double(max(1, seconds.count)) }
        public var stddevTPS: Double {
            let ts = tokensPerSecond
            guard ts.count > 1 else { return 0 }
            let m = averageTPS
            return (ts.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(ts.count - 1)).squareRoot()
        }
    }

    /// Peak resident set size of this process so far, in bytes.
    public static func peakRSSBytes() -> Int {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Int(u.ru_maxrss) * 1024
    }

    public static func run(model: DecoderModel, addBOS: Bool, bosID: Int32, nPrompt: Int, nGen: Int,
                           repetitions: Int, seed: UInt64 = 1, adapters: [LoRAUse] = []) throws -> [Sample] {
        let cache = model.makeCache(capacity: max(1, nPrompt + nGen))
        cache.adapters = adapters
        var rng = SeededGenerator(seed: seed)
        let vocab = model.config.vocabSize
        func randomToken() -> Int32 { Int32(rng.next() % UInt64(vocab)) }

        func pp() throws -> Double {
            cache.reset()
            var toks = (0..<nPrompt).map { _ in randomToken() }
            if addBOS { toks[0] = bosID }
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try model.forward(tokens: toks, cache: cache)
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        func tg() throws -> Double {
            cache.reset()
            var tok = addBOS ? bosID : randomToken()
            let t0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<nGen {
                _ = try model.forward(tokens: [tok], cache: cache)
                tok = randomToken()
            }
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        var out: [Sample] = []
        if nPrompt > 0 {
            _ = try pp()
            out.append(Sample(nPrompt: nPrompt, nGen: 0, seconds: try (0..<repetitions).map { _ in try pp() }))
        }
        if nGen > 0 {
            _ = try tg()
            out.append(Sample(nPrompt: 0, nGen: nGen, seconds: try (0..<repetitions).map { _ in try tg() }))
        }
        return out
    }
}
