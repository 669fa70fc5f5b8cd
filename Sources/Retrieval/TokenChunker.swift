import Foundation

/// One piece of a document as it is stored and embedded: its exact text and where it sits.
public struct TextChunk: Sendable, Equatable {
    public let text: String
    /// Index of the chunk within its document (0, 1, …).
    public let position: Int
    /// UTF-8 byte offsets of the chunk in the document's extracted text.
    public let start: Int
    public let end: Int
    /// 1-based line of the chunk's first character in the extracted text.
    public let line: Int
    /// Tokens of the chunk (without the model's [CLS]/[SEP]) as the counting function gave them.
    public let tokens: Int
}

/// Splits text into chunks of at most `maxTokens` tokens that overlap by up to `overlap` tokens.
///
/// Chunks are made of whole sentences (a sentence ends at . ! ? … followed by white space, or at
/// a paragraph break); a chunk that is at least half full ends at a paragraph break when one is
/// near, so paragraphs are not cut needlessly. A sentence longer than a chunk is cut between
/// words, and a word longer than a chunk between characters. The overlap repeats the last whole
/// sentences of the previous chunk (at most `overlap` tokens of them), so a passage cut at a
/// chunk boundary is still found whole in one of the two chunks.
public struct TokenChunker: Sendable {
    public let maxTokens: Int
    public let overlap: Int

    public init(maxTokens: Int = 200, overlap: Int = 40) {
        self.maxTokens = max(1, maxTokens)
        self.overlap = max(0, min(overlap, maxTokens / 2))
    }

    /// A sentence (or a cut piece of one): UTF-8 byte range, tokens, whether a paragraph starts here.
    struct Unit { var start: Int; var end: Int; var tokens: Int; var paragraphStart: Bool }

    public func chunks(_ text: String, count: (String) -> Int) -> [TextChunk] {
        let bytes = Array(text.utf8)
        let units = Self.units(bytes, budget: maxTokens, count: count)
        guard !units.isEmpty else { return [] }
        // Line numbers: newline positions, for the line of each chunk start.
        var newlines: [Int] = []
        for (i, b) in bytes.enumerated() where b == 0x0A { newlines.append(i) }
        func line(at offset: Int) -> Int {
            var lo = 0, hi = newlines.count
            while lo < hi { let mid = (lo + hi) / 2; if newlines[mid] < offset { lo = mid + 1 } else { hi = mid } }
            return lo + 1
        }

        var out: [TextChunk] = []
        var i = 0
        while i < units.count {
            // Fill greedily with whole units.
            var j = i, used = 0
            while j < units.count, j == i || used + units[j].tokens <= maxTokens {
                used += units[j].tokens
                j += 1
            }
            // Prefer ending at a paragraph break when the chunk would otherwise split a paragraph.
            if j < units.count, !units[j].paragraphStart {
                var acc = 0
                var best: Int?
                for k in i..<j {
                    if k > i, units[k].paragraphStart, acc * 2 >= maxTokens { best = k }
                    acc += units[k].tokens
                }
                if let best { j = best; used = units[i..<j].reduce(0) { $0 + $1.tokens } }
            }
            let start = units[i].start, end = units[j - 1].end
            out.append(TextChunk(text: String(decoding: bytes[start..<end], as: UTF8.self), position: out.count,
                                 start: start, end: end, line: line(at: start), tokens: used))
            if j >= units.count { break }
            // Next chunk starts with the previous chunk's last units worth at most `overlap` tokens.
            var next = j, tail = 0
            while next - 1 > i, tail + units[next - 1].tokens <= overlap {
                tail += units[next - 1].tokens
                next -= 1
            }
            i = next
        }
        return out
    }

    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x09 || b == 0x0D || b == 0x0C }

    /// Sentences of the text (trimmed), each under `budget` tokens (longer ones cut).
    static func units(_ bytes: [UInt8], budget: Int, count: (String) -> Int) -> [Unit] {
        var out: [Unit] = []
        var paragraphStart = true
        var s = 0  // start of the current sentence
        var i = 0
        func emit(_ a: Int, _ b: Int) {
            var a = a, b = b
            while a < b, isSpace(bytes[a]) { a += 1 }
            while b > a, isSpace(bytes[b - 1]) { b -= 1 }
            guard a < b else { return }
            let n = count(String(decoding: bytes[a..<b], as: UTF8.self))
            if n <= budget {
                out.append(Unit(start: a, end: b, tokens: n, paragraphStart: paragraphStart))
            } else {
                for var u in cut(bytes, a, b, budget: budget, count: count) {
                    u.paragraphStart = paragraphStart && u.start == a
                    out.append(u)
                }
            }
            paragraphStart = false
        }
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x0A {
                // A blank line (only white space up to the next newline) ends the paragraph.
                var k = i + 1
                while k < bytes.count, bytes[k] == 0x20 || bytes[k] == 0x09 || bytes[k] == 0x0D { k += 1 }
                if k >= bytes.count || bytes[k] == 0x0A {
                    emit(s, i)
                    paragraphStart = true
                    s = k
                    i = k
                    continue
                }
            }
            let ends = b == 0x2E || b == 0x21 || b == 0x3F
                || (b == 0xE2 && i + 2 < bytes.count && bytes[i + 1] == 0x80 && bytes[i + 2] == 0xA6)  // …
            if ends {
                let after = b == 0xE2 ? i + 3 : i + 1
                if after >= bytes.count || isSpace(bytes[after]) {
                    emit(s, after)
                    s = after
                    i = after
                    continue
                }
            }
            i += 1
        }
        emit(s, bytes.count)
        return out
    }

    /// A too-long sentence cut between words (a too-long word between characters).
    static func cut(_ bytes: [UInt8], _ a: Int, _ b: Int, budget: Int, count: (String) -> Int) -> [Unit] {
        var words: [(Int, Int)] = []
        var i = a
        while i < b {
            while i < b, isSpace(bytes[i]) { i += 1 }
            let ws = i
            while i < b, !isSpace(bytes[i]) { i += 1 }
            if ws < i { words.append((ws, i)) }
        }
        var out: [Unit] = []
        var cs = -1, ce = -1, used = 0
        func flush() { if cs >= 0 { out.append(Unit(start: cs, end: ce, tokens: used, paragraphStart: false)) }; cs = -1; used = 0 }
        for (ws, we) in words {
            let n = count(String(decoding: bytes[ws..<we], as: UTF8.self))
            if n > budget {
                flush()
                // Characters: at most 4 bytes each, and WordPiece gives at most one token per byte
                // here, so budget/4 characters fit.
                let word = String(decoding: bytes[ws..<we], as: UTF8.self)
                let step = max(1, budget / 4)
                var off = ws
                var rest = Substring(word)
                while !rest.isEmpty {
                    let piece = rest.prefix(step)
                    let len = piece.utf8.count
                    out.append(Unit(start: off, end: off + len, tokens: count(String(piece)), paragraphStart: false))
                    off += len
                    rest = rest.dropFirst(piece.count)
                }
                continue
            }
            if cs >= 0, used + n > budget { flush() }
            if cs < 0 { cs = ws }
            ce = we
            used += n
        }
        flush()
        return out
    }
}
