import Foundation

/// Output moderation for streamed text. Feed it chunks as the model produces them; it returns
/// what is safe to send now, holding back the shortest tail that could still become (part of)
/// a match once more text arrives: the last unfinished token (a partial e-mail, key or URL),
/// digit groups that may continue a card, phone or IBAN, an open "-----BEGIN … PRIVATE KEY"
/// block, and the last words of the longest keyword phrase. Redactions happen inside the
/// stream; a block stops it (the caller sends its final "content_filter" event and cancels the
/// generation). Not thread-safe: one per streamed choice.
///
/// Limits: rules see a window of text (held tail + recent context), so a regular expression
/// spanning more than that window, length limits in tokens and the classifier do not apply to
/// streams (max_chars does, on the total).
public final class StreamModerator {
    public enum Step: Equatable, Sendable {
        /// Send this text (possibly empty: everything is held back for now).
        case emit(String)
        /// Stop: send `text` (the safe part before the blocked content), then the final event.
        case blocked(text: String, finding: ModerationFinding)
    }

    public let moderator: Moderator
    /// Findings acted on so far (emitted text only), with offsets in the whole output.
    public private(set) var findings: [ModerationFinding] = []
    public private(set) var isBlocked = false

    private var pending: [UInt8] = []
    /// The end of what was already emitted (original text), for context-dependent detectors
    /// ("Bearer …", "aws_secret_access_key = …", "SSN …").
    private var context: [UInt8] = []
    private var emittedBytes = 0
    private var emittedScalars = 0
    static let contextBytes = 96
    /// The held-back tail is bounded (except inside an open private-key block).
    static let maxHold = 512

    public init(moderator: Moderator) { self.moderator = moderator }

    /// Moderates the next chunk.
    public func feed(_ chunk: String) -> Step {
        guard !isBlocked else { return .emit("") }
        pending += Array(chunk.utf8)
        return step(final: false)
    }

    /// The generation ended: moderate and release whatever is held back.
    public func finish() -> Step {
        guard !isBlocked else { return .emit("") }
        return step(final: true)
    }

    private func step(final: Bool) -> Step {
        if moderator.isEmpty {
            let out = String(decoding: pending, as: UTF8.self)
            pending = []
            return .emit(out)
        }
        var cut = final ? pending.count : holdStart()
        let window = context + pending
        let t = ScanText(String(decoding: window, as: UTF8.self))
        // Replacement of invalid UTF-8 cannot happen: chunks are Strings and cuts fall on ASCII.
        var hits = moderator.scan(t, tokenCounter: nil, text: nil, useClassifier: false).filter { $0.end > context.count }
        hits = hits.map { var h = $0; h.start = max(h.start, context.count) - context.count; h.end -= context.count; return h }
        if moderator.maxChars.first != nil {
            let total = emittedScalars + pending.reduce(0) { $0 + (($1 & 0xC0) == 0x80 ? 0 : 1) }
            for (n, rule) in moderator.maxChars where total > n {
                hits.append(Moderator.Hit(detector: "length.chars", category: "length", rule: rule.name, start: 0, end: pending.count,
                                          score: 1, action: rule.action, replacement: ""))
            }
        }
        if let b = hits.first(where: { $0.action == .block }) {
            // Send the clean text before the blocked content, redacted, then stop.
            let safeEnd = b.start
            let before = hits.filter { $0.end <= safeEnd }
            let text = String(decoding: Moderator.redact(pending, before, upTo: safeEnd), as: UTF8.self)
            record(before, base: pending)
            let f = finding(b, base: pending)
            findings.append(f)
            isBlocked = true
            pending = []
            return .blocked(text: text, finding: f)
        }
        // A match that reaches past the cut is held back whole (it may grow).
        if !final {
            for h in hits where h.start < cut && h.end > cut { cut = min(cut, h.start) }
            // Matches touching the end of the pending text may still grow.
            for h in hits where h.end == pending.count && h.start < cut { cut = h.start }
        }
        let done = hits.filter { $0.end <= cut }
        let out = Moderator.redact(pending, done, upTo: cut)
        record(done, base: pending)
        let sent = Array(pending[0..<cut])
        context = Array((context + sent).suffix(StreamModerator.contextBytes))
        emittedBytes += sent.count
        emittedScalars += sent.reduce(0) { $0 + (($1 & 0xC0) == 0x80 ? 0 : 1) }
        pending.removeFirst(cut)
        return .emit(String(decoding: out, as: UTF8.self))
    }

    private func finding(_ h: Moderator.Hit, base: [UInt8]) -> ModerationFinding {
        let offs = ScalarOffsets(base)
        return ModerationFinding(detector: h.detector, category: h.category, rule: h.rule, start: emittedScalars + offs[h.start],
                                 end: emittedScalars + offs[h.end], utf8Start: emittedBytes + h.start, utf8End: emittedBytes + h.end,
                                 score: h.score, action: h.action)
    }

    private func record(_ hits: [Moderator.Hit], base: [UInt8]) {
        findings += hits.map { finding($0, base: base) }
    }

    /// Where the held-back tail starts in `pending`.
    private func holdStart() -> Int {
        let b = pending
        var s = b.count
        // An open private-key block (or the start of one) is held until its END line.
        if let begin = lastOccurrence(of: Array("-----BEGIN".utf8), in: b),
           lastOccurrence(of: Array("-----END".utf8), in: b, partial: false).map({ $0 < begin }) ?? true {
            return snap(begin)
        }
        // The unfinished last token.
        while s > 0 && !isSpace(b[s - 1]) { s -= 1 }
        // Digit groups (cards, phones, IBANs: "4111 1111 1111 1", "+1 415 555", "GB82 WEST 12"):
        // keep stepping back over short groups joined by single spaces or dashes while the held
        // text has digits.
        var held = b[s...].contains(where: isDigit) || s == b.count
        while s > 1 && b.count - s < 48 {
            let sep = b[s - 1]
            guard sep == 32 || sep == 45 || sep == 46 || sep == 40 || sep == 41 else { break }
            var w = s - 1
            while w > 0 && (isAlnum(b[w - 1]) || b[w - 1] == 43 || b[w - 1] == 40 || b[w - 1] == 41) { w -= 1 }
            let word = b[w..<(s - 1)]
            guard !word.isEmpty, word.count <= 6, word.contains(where: isDigit) || (held && word.count <= 4 && word.allSatisfy(isAlnum)) else { break }
            held = held || word.contains(where: isDigit)
            s = w
        }
        // Multi-word keyword phrases: hold back that many words.
        if moderator.longestPhraseWords > 1 {
            var words = 0
            var k = s
            while k > 0 && words < moderator.longestPhraseWords - 1 {
                while k > 0 && isSpace(b[k - 1]) { k -= 1 }
                while k > 0 && !isSpace(b[k - 1]) { k -= 1 }
                words += 1
            }
            s = min(s, k)
        }
        if b.count - s > StreamModerator.maxHold { s = b.count - StreamModerator.maxHold }
        return snap(s)
    }

    /// Moves a cut back to the start of a UTF-8 character.
    private func snap(_ i: Int) -> Int {
        var i = i
        while i > 0 && i < pending.count && (pending[i] & 0xC0) == 0x80 { i -= 1 }
        return i
    }

    /// With `partial`, a tail that is a prefix of the needle ("-----BEG") counts as an
    /// occurrence at its start.
    private func lastOccurrence(of needle: [UInt8], in hay: [UInt8], partial: Bool = true) -> Int? {
        guard hay.count >= needle.count else { return partial ? partialTail(needle, hay) : nil }
        var i = hay.count - needle.count
        while i >= 0 {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i -= 1
        }
        return partial ? partialTail(needle, hay) : nil
    }

    private func partialTail(_ needle: [UInt8], _ hay: [UInt8]) -> Int? {
        var n = min(needle.count - 1, hay.count)
        while n >= 5 {
            if hay[(hay.count - n)...].elementsEqual(needle[0..<n]) { return hay.count - n }
            n -= 1
        }
        return nil
    }
}
