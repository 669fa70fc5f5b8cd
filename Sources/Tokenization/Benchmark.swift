import Foundation

/// Encoding speed measurement, for `steward bench-tokenize` and quick checks (not a test).
public enum TokenizerBenchmark {
    public struct Result: Sendable, CustomStringConvertible {
        public let bytes: Int
        public let tokens: Int
        public let seconds: Double
        public var tokensPerSecond: Double { Double(tokens) / seconds }
        public var megabytesPerSecond: Double { Double(bytes) / 1_048_576 / seconds }
        public var description: String {
            String(format: "%d bytes → %d tokens in %.3f s: %.0f tokens/s, %.2f MB/s",
                   bytes, tokens, seconds, tokensPerSecond, megabytesPerSecond)
        }
    }

    /// Encodes `text` `repeats` times and reports the best run.
    public static func encode(_ tokenizer: Tokenizer, text: String, repeats: Int = 3, parseSpecial: Bool = false) -> Result {
        var best = Double.infinity
        var count = 0
        for _ in 0..<max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            count = tokenizer.encode(text, addBOS: false, parseSpecial: parseSpecial).count
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = min(best, dt)
        }
        return Result(bytes: text.utf8.count, tokens: count, seconds: best)
    }

    /// About `targetBytes` of text made by repeating a file (e.g. /usr/share/common-licenses/GPL-3).
    public static func sampleText(repeating path: String, targetBytes: Int = 1 << 20) throws -> String {
        let s = try String(contentsOfFile: path, encoding: .utf8)
        guard !s.isEmpty else { return "" }
        var out = ""
        out.reserveCapacity(targetBytes + s.utf8.count)
        while out.utf8.count < targetBytes { out += s }
        return out
    }
}
