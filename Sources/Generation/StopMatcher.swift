/// Finds stop strings in streamed text, even when one straddles several tokens. Text that could
/// still be the start of a stop string is held back until it is resolved, so a client never sees
/// part of a stop string.
public struct StopMatcher: Sendable {
    public let stops: [String]
    private var pending = ""

    public init(stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }
    }

    public enum Result: Equatable, Sendable {
        /// Text safe to emit now (possibly empty).
        case text(String)
        /// A stop string was found: emit this text (what preceded it), then stop.
        case stop(String, matched: String)
    }

    /// Feeds newly decoded text.
    public mutating func feed(_ s: String) -> Result {
        if stops.isEmpty { return .text(s) }
        pending += s
        // Earliest full match wins.
        var best: (String.Index, String)?
        for stop in stops {
            if let r = pending.range(of: stop), best == nil || r.lowerBound < best!.0 {
                best = (r.lowerBound, stop)
            }
        }
        if let (at, stop) = best {
            let out = String(pending[..<at])
            pending = ""
            return .stop(out, matched: stop)
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        var hold = 0
        for stop in stops {
            let maxLen = min(stop.count - 1, pending.count)
            if maxLen <= hold { continue }
            for len in stride(from: maxLen, to: hold, by: -1) where pending.hasSuffix(String(stop.prefix(len))) {
                hold = len
                break
            }
        }
        let cut = pending.index(pending.endIndex, offsetBy: -hold)
        let out = String(pending[..<cut])
        pending = String(pending[cut...])
        return .text(out)
    }

    /// At the end of generation: whatever was held back is ordinary text.
    public mutating func flush() -> String {
        defer { pending = "" }
        return pending
    }
}
