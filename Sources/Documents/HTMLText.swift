import Foundation

/// The readable text of an HTML page: what a browser would show, roughly. Tags are dropped;
/// script, style and similar elements are dropped with their content; block elements (p, div,
/// headings, list items, table rows, …) become paragraph breaks and `<br>` a line break;
/// character references are decoded; whitespace is collapsed as HTML collapses it, except
/// inside `<pre>`. Malformed markup never fails: what cannot be parsed as a tag is text.
public enum HTMLText {
    /// Elements whose content is not text to read.
    static let skipped: Set<String> = ["script", "style", "noscript", "template", "svg", "math", "iframe", "object"]
    /// Elements that start and end a block (a paragraph break around them).
    static let blocks: Set<String> = [
        "p", "div", "section", "article", "header", "footer", "main", "nav", "aside", "blockquote",
        "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "li", "dt", "dd", "table", "thead",
        "tbody", "tfoot", "tr", "pre", "figure", "figcaption", "form", "fieldset", "address",
        "hr", "title", "body", "html", "details", "summary", "caption",
    ]
    /// Cells are separated by a tab-like gap, not a paragraph.
    static let cells: Set<String> = ["td", "th"]

    public static func extract(_ html: String) -> String {
        let s = Array(html.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        var preDepth = 0
        var pendingSpace = false

        func breakLine(_ n: Int) {
            // n newlines at most at the end; the final pass collapses longer runs.
            pendingSpace = false
            out.append(contentsOf: String(repeating: "\n", count: n).unicodeScalars)
        }
        func emitText(_ t: String) {
            for u in t.unicodeScalars {
                if preDepth > 0 {
                    out.append(u)
                } else if u == " " || u == "\n" || u == "\t" || u == "\r" || u == "\u{0C}" {
                    pendingSpace = true
                } else {
                    if pendingSpace, let last = out.last, last != "\n" { out.append(" ") }
                    pendingSpace = false
                    out.append(u)
                }
            }
        }

        var text = ""
        func flushText() {
            if !text.isEmpty { emitText(decodeEntities(text)); text = "" }
        }

        while i < s.count {
            let c = s[i]
            guard c == "<" else { text.unicodeScalars.append(c); i += 1; continue }
            // A comment, doctype or processing instruction: dropped.
            if matches(s, i, "<!--") {
                flushText()
                i = find(s, from: i + 4, "-->").map { $0 + 3 } ?? s.count
                continue
            }
            if i + 1 < s.count, s[i + 1] == "!" || s[i + 1] == "?" {
                flushText()
                i = find(s, from: i + 2, ">").map { $0 + 1 } ?? s.count
                continue
            }
            // A tag: "<name" or "</name" with a letter first; otherwise the "<" is text.
            var j = i + 1
            let closing = j < s.count && s[j] == "/"
            if closing { j += 1 }
            guard j < s.count, s[j].properties.isAlphabetic else { text.unicodeScalars.append(c); i += 1; continue }
            var name = ""
            while j < s.count, s[j].properties.isAlphabetic || ("0"..."9").contains(s[j]) || s[j] == "-" || s[j] == ":" {
                name.unicodeScalars.append(s[j]); j += 1
            }
            name = name.lowercased()
            // The end of the tag, skipping quoted attribute values (which may hold ">").
            var quote: Unicode.Scalar?
            while j < s.count {
                if let q = quote { if s[j] == q { quote = nil } } else if s[j] == "\"" || s[j] == "'" { quote = s[j] } else if s[j] == ">" { break }
                j += 1
            }
            let selfClosing = j > 0 && j - 1 < s.count && s[j - 1] == "/"
            i = min(j + 1, s.count)
            flushText()
            if !closing && skipped.contains(name) && !selfClosing {
                // Skip to the matching end tag (these elements do not nest in practice).
                if let end = findCaseInsensitive(s, from: i, "</" + name) {
                    i = find(s, from: end, ">").map { $0 + 1 } ?? s.count
                } else {
                    i = s.count
                }
                continue
            }
            if name == "br" {
                breakLine(1)
            } else if blocks.contains(name) {
                breakLine(2)
                if name == "pre" { preDepth = max(0, preDepth + (closing ? -1 : 1)) }
                if name == "li" && !closing { out.append(contentsOf: "- ".unicodeScalars) }
            } else if cells.contains(name) && closing, let last = out.last, last != "\n" {
                pendingSpace = false
                out.append(contentsOf: "  ".unicodeScalars)
            }
        }
        flushText()
        // Leading whitespace is only ever <pre> indentation (text outside it never starts a line
        // with a space), so lines lose only their trailing whitespace.
        return collapseBlankLines(String(out).split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
    }

    /// Joins lines without their trailing whitespace, keeping at most one blank line between
    /// paragraphs and none at the ends.
    static func collapseBlankLines(_ lines: [String]) -> String {
        var result: [String] = []
        var blank = false
        for line in lines {
            var t = Substring(line)
            while let last = t.last, last == " " || last == "\t" || last == "\r" { t = t.dropLast() }
            if t.isEmpty { blank = !result.isEmpty; continue }
            if blank { result.append("") }
            blank = false
            result.append(String(t))
        }
        return result.joined(separator: "\n")
    }

    static func matches(_ s: [Unicode.Scalar], _ i: Int, _ lit: String) -> Bool {
        var k = i
        for u in lit.unicodeScalars {
            guard k < s.count, s[k] == u else { return false }
            k += 1
        }
        return true
    }

    static func find(_ s: [Unicode.Scalar], from: Int, _ lit: String) -> Int? {
        var k = from
        while k < s.count {
            if matches(s, k, lit) { return k }
            k += 1
        }
        return nil
    }

    static func findCaseInsensitive(_ s: [Unicode.Scalar], from: Int, _ lit: String) -> Int? {
        let l = Array(lit.lowercased().unicodeScalars)
        var k = from
        outer: while k + l.count <= s.count {
            for (n, u) in l.enumerated() where lower(s[k + n]) != u { k += 1; continue outer }
            return k
        }
        return nil
    }

    static func lower(_ u: Unicode.Scalar) -> Unicode.Scalar {
        ("A"..."Z").contains(u) ? Unicode.Scalar(UInt8(truncatingIfNeeded: u.value + 32)) : u
    }

    /// Common named references (the ones seen in real pages); numeric references in full.
    /// An unknown name is left as written.
    static let entities: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": " ",
        "ndash": "–", "mdash": "—", "hellip": "…", "lsquo": "‘", "rsquo": "’", "ldquo": "“",
        "rdquo": "”", "laquo": "«", "raquo": "»", "bull": "•", "middot": "·", "copy": "©",
        "reg": "®", "trade": "™", "deg": "°", "euro": "€", "pound": "£", "yen": "¥", "cent": "¢",
        "sect": "§", "para": "¶", "times": "×", "divide": "÷", "plusmn": "±", "frac12": "½",
        "frac14": "¼", "frac34": "¾", "eacute": "é", "egrave": "è", "ecirc": "ê", "euml": "ë",
        "aacute": "á", "agrave": "à", "acirc": "â", "auml": "ä", "aring": "å", "atilde": "ã",
        "oacute": "ó", "ograve": "ò", "ocirc": "ô", "ouml": "ö", "otilde": "õ", "oslash": "ø",
        "uacute": "ú", "ugrave": "ù", "ucirc": "û", "uuml": "ü", "iacute": "í", "igrave": "ì",
        "icirc": "î", "iuml": "ï", "ccedil": "ç", "ntilde": "ñ", "szlig": "ß", "aelig": "æ",
        "Eacute": "É", "Agrave": "À", "Auml": "Ä", "Ouml": "Ö", "Uuml": "Ü", "Ccedil": "Ç",
        "Ntilde": "Ñ", "shy": "", "zwj": "\u{200D}", "zwnj": "\u{200C}", "thinsp": " ",
        "ensp": " ", "emsp": " ", "larr": "←", "rarr": "→", "uarr": "↑", "darr": "↓",
    ]

    /// Decodes `&name;`, `&#123;` and `&#x1F600;`. Invalid code points become U+FFFD, as in HTML.
    public static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            let after = rest[rest.index(after: amp)...]
            guard let semi = after.prefix(32).firstIndex(of: ";") else {
                out += "&"; rest = after; continue
            }
            let name = String(after[..<semi])
            var replacement: String?
            if name.hasPrefix("#") {
                let digits = name.dropFirst()
                let value: UInt32? = digits.first == "x" || digits.first == "X"
                    ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits, radix: 10)
                if let v = value {
                    replacement = (v == 0 ? nil : Unicode.Scalar(v)).map { String(Character($0)) } ?? "\u{FFFD}"
                }
            } else {
                replacement = entities[name]
            }
            if let r = replacement {
                out += r
                rest = after[after.index(after: semi)...]
            } else {
                out += "&"
                rest = after
            }
        }
        out += rest
        return out
    }
}
