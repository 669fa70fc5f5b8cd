import Foundation

/// Splits text into pieces of at most a number of tokens, at paragraph boundaries where it can,
/// else at sentence boundaries, else between words (and, for a "word" longer than a piece, at
/// character boundaries). Pieces keep their text exactly; nothing is dropped.
public enum TextChunker {
    /// Packs to this share of the budget: tokens of joined text are not quite the sum of the
    /// parts' tokens, and a prompt that still does not fit fails loudly rather than being cut.
    static let packing = 0.92

    public static func chunks(_ text: String, maxTokens: Int, count: (String) -> Int) -> [String] {
        let budget = max(1, Int(Double(maxTokens) * packing))
        let paragraphs = Self.paragraphs(text)
        var units: [(text: String, tokens: Int, joiner: String)] = []
        for p in paragraphs {
            let n = count(p)
            if n <= budget { units.append((p, n, "\n\n")); continue }
            // A paragraph too long on its own: its sentences, then its words.
            var first = true
            for s in sentences(p) {
                let sn = count(s)
                let pieces: [(String, Int)] = sn <= budget ? [(s, sn)] : splitWords(s, budget: budget, count: count)
                for (piece, pn) in pieces {
                    units.append((piece, pn, first ? "\n\n" : " "))
                    first = false
                }
            }
        }
        var out: [String] = []
        var current = ""
        var used = 0
        for u in units {
            let extra = current.isEmpty ? u.tokens : u.tokens + 1
            if !current.isEmpty && used + extra > budget {
                out.append(current)
                current = ""
                used = 0
            }
            if current.isEmpty {
                current = u.text
                used = u.tokens
            } else {
                current += u.joiner + u.text
                used += u.tokens + 1
            }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// Paragraphs: text between blank lines, trimmed, empty ones dropped.
    public static func paragraphs(_ text: String) -> [String] {
        var out: [String] = []
        var cur: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.trimmingCharacters(in: .whitespaces).isEmpty {
                if !cur.isEmpty { out.append(cur.joined(separator: "\n")); cur = [] }
            } else {
                cur.append(line)
            }
        }
        if !cur.isEmpty { out.append(cur.joined(separator: "\n")) }
        return out.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }

    /// Sentences: split after ". ", "! ", "? " (and their newline forms); the terminator stays.
    public static func sentences(_ text: String) -> [String] {
        var out: [String] = []
        var cur = ""
        var prevEnd = false
        for ch in text {
            if prevEnd && (ch == " " || ch == "\n") {
                out.append(cur)
                cur = ""
                prevEnd = false
                continue
            }
            cur.append(ch)
            prevEnd = ch == "." || ch == "!" || ch == "?" || ch == "…"
        }
        if !cur.isEmpty { out.append(cur) }
        return out.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Groups of words of at most `budget` tokens each (token counts of words, plus one per gap).
    static func splitWords(_ text: String, budget: Int, count: (String) -> Int) -> [(String, Int)] {
        var out: [(String, Int)] = []
        var cur: [Substring] = []
        var used = 0
        for w in text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }) {
            var word = w
            var n = count(" " + word)
            if n > budget {
                // A "word" longer than a piece (a URL, a blob): cut at characters; a character is
                // at most 4 bytes and so at most 4 tokens.
                if !cur.isEmpty { out.append((cur.joined(separator: " "), used)); cur = []; used = 0 }
                let step = max(1, budget / 4)
                while !word.isEmpty {
                    let piece = word.prefix(step)
                    out.append((String(piece), count(String(piece))))
                    word = word.dropFirst(piece.count)
                }
                continue
            }
            if !cur.isEmpty && used + n > budget {
                out.append((cur.joined(separator: " "), used))
                cur = []
                used = 0
            }
            if cur.isEmpty { n = count(String(word)) }
            cur.append(word)
            used += n
        }
        if !cur.isEmpty { out.append((cur.joined(separator: " "), used)) }
        return out
    }
}

/// Word counting and cutting for `--max-words`.
public enum Words {
    public static func count(_ s: String) -> Int { s.split(whereSeparator: { $0.isWhitespace }).count }

    /// The text cut to at most `max` words: at the last sentence end within them when that keeps
    /// at least half, else after the last whole word (with "…").
    public static func truncate(_ s: String, max: Int) -> String {
        var words = 0
        var inWord = false
        var cut = s.endIndex
        for i in s.indices {
            if s[i].isWhitespace {
                inWord = false
            } else if !inWord {
                inWord = true
                words += 1
                if words > max { cut = i; break }
            }
        }
        let head = s[..<cut].trimmingCharacters(in: .whitespacesAndNewlines)
        if words <= max { return head }
        if let end = head.lastIndex(where: { $0 == "." || $0 == "!" || $0 == "?" }) {
            let sentence = String(head[...end])
            if count(sentence) * 2 >= max { return sentence }
        }
        return head + "…"
    }

    /// The text up to its last sentence end, if it has one (for output cut by the token cap).
    public static func lastWholeSentences(_ s: String) -> String? {
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let end = t.lastIndex(where: { $0 == "." || $0 == "!" || $0 == "?" }) else { return nil }
        return String(t[...end])
    }
}
