import Foundation

/// Converts a JSON-schema `pattern` (ECMA-262 regex) to GBNF for the inside of a JSON string.
/// Supported: literals, escapes (`\d \w \s \D \W \S`, `\.` and other escaped punctuation,
/// `\n \t \r`, `\uHHHH`), classes `[...]`/`[^...]`, `.`, groups `( )` and `(?: )`,
/// alternation `|`, quantifiers `* + ? {m} {m,} {m,n}` (a lazy `?` after them is ignored: it
/// does not change the language), and anchors `^` at the very start and `$` at the very end.
/// An unanchored side matches any text there, as JSON Schema's search semantics require.
/// Characters JSON must escape are written escaped (`"` as `\"`); classes never produce
/// control characters, `"` or `\` (a narrowing, not a widening). `\s` produces only a space.
/// Lookaround, backreferences, named groups and anchors elsewhere are refused.
enum RegexToGBNF {
    static func convert(_ pattern: String, path: String, anyChar: String) throws(JSONSchemaError) -> String {
        var p = Parser(s: Array(pattern.unicodeScalars), path: path)
        var anchoredStart = false, anchoredEnd = false
        if p.s.first == "^" { anchoredStart = true; p.i = 1 }
        if p.s.count > p.i, p.s.last == "$", !(p.s.count >= 2 && p.s[p.s.count - 2] == "\\") { anchoredEnd = true; p.end = p.s.count - 1 }
        let body = try p.alternatives()
        guard p.i == p.end else { throw p.unsupported("unexpected '\(p.s[p.i])' in pattern") }
        var parts: [String] = []
        if !anchoredStart { parts.append("\(anyChar)*") }
        parts.append("( \(body) )")
        if !anchoredEnd { parts.append("\(anyChar)*") }
        return parts.joined(separator: " ")
    }

    /// Code points a class may produce inside a JSON string without escaping.
    static let unsafe: [(UInt32, UInt32)] = [(0, 0x1F), (0x22, 0x22), (0x5C, 0x5C), (0x7F, 0x7F)]

    struct Parser {
        let s: [Unicode.Scalar]
        let path: String
        var i = 0
        lazy var end = s.count

        init(s: [Unicode.Scalar], path: String) { self.s = s; self.path = path }

        func unsupported(_ what: String) -> JSONSchemaError { .unsupported(feature: "pattern: \(what)", path: path) }

        mutating func alternatives() throws(JSONSchemaError) -> String {
            var alts = [try sequence()]
            while i < end, s[i] == "|" { i += 1; alts.append(try sequence()) }
            return alts.joined(separator: " | ")
        }

        mutating func sequence() throws(JSONSchemaError) -> String {
            var items: [String] = []
            while i < end, s[i] != "|", s[i] != ")" {
                var atom = try self.atom()
                while i < end {
                    let c = s[i]
                    if c == "*" || c == "+" || c == "?" {
                        i += 1
                        atom = "(\(atom))\(c)"
                    } else if c == "{", let q = quantifier() {
                        atom = "(\(atom)){\(q)}"
                    } else { break }
                    if i < end, s[i] == "?" { i += 1 }   // lazy: same language
                }
                items.append(atom)
            }
            return items.isEmpty ? "\"\"" : items.joined(separator: " ")
        }

        mutating func quantifier() -> String? {
            var j = i + 1
            func num() -> Int? {
                let st = j
                var v = 0
                while j < end, let d = Int(String(s[j])), s[j].isASCII { v = v * 10 + d; j += 1; if v > 100_000 { return nil } }
                return j > st ? v : nil
            }
            guard let lo = num() else { return nil }
            var text = "\(lo)"
            if j < end, s[j] == "," {
                j += 1
                if let hi = num() { guard hi >= lo else { return nil }; text += ",\(hi)" } else { text += "," }
            }
            guard j < end, s[j] == "}" else { return nil }
            i = j + 1
            return text
        }

        mutating func atom() throws(JSONSchemaError) -> String {
            let c = s[i]
            i += 1
            switch c {
            case "(":
                if i < end, s[i] == "?" {
                    guard i + 1 < end, s[i + 1] == ":" else { throw unsupported("lookaround or named group '(?'") }
                    i += 2
                }
                let inner = try alternatives()
                guard i < end, s[i] == ")" else { throw unsupported("unbalanced '('") }
                i += 1
                return "(\(inner))"
            case ")": throw unsupported("unbalanced ')'")
            case "[": return try charClass()
            case ".": return classText([(0x0A, 0x0A)], negated: true)
            case "^", "$": throw unsupported("anchor '\(c)' other than at the start/end")
            case "*", "+", "?", "{":
                if c == "{" { return literal(c.value) }
                throw unsupported("quantifier '\(c)' with nothing to repeat")
            case "\\":
                guard i < end else { throw unsupported("trailing '\\'") }
                let e = s[i]
                i += 1
                if let cls = shorthand(e) { return classText(cls.0, negated: cls.1) }
                if e == "b" || e == "B" { throw unsupported("word boundary '\\\(e)'") }
                if let d = Int(String(e)), d > 0 { throw unsupported("backreference '\\\(e)'") }
                return literal(try escapeValue(e))
            default:
                return literal(c.value)
            }
        }

        func shorthand(_ e: Unicode.Scalar) -> ([(UInt32, UInt32)], Bool)? {
            switch e {
            case "d": return ([(48, 57)], false)
            case "D": return ([(48, 57)], true)
            case "w": return ([(48, 57), (65, 90), (97, 122), (95, 95)], false)
            case "W": return ([(48, 57), (65, 90), (97, 122), (95, 95)], true)
            case "s": return ([(32, 32)], false)
            case "S": return ([(9, 13), (32, 32)], true)
            default: return nil
            }
        }

        mutating func escapeValue(_ e: Unicode.Scalar) throws(JSONSchemaError) -> UInt32 {
            switch e {
            case "n": return 10
            case "t": return 9
            case "r": return 13
            case "f": return 12
            case "v": return 11
            case "0": return 0
            case "u":
                guard i + 4 <= end, let v = UInt32(String(String.UnicodeScalarView(s[i..<i + 4])), radix: 16) else { throw unsupported("bad \\u escape") }
                i += 4
                return v
            case "x":
                guard i + 2 <= end, let v = UInt32(String(String.UnicodeScalarView(s[i..<i + 2])), radix: 16) else { throw unsupported("bad \\x escape") }
                i += 2
                return v
            default:
                if e.properties.isAlphabetic || ("0"..."9").contains(e) { throw unsupported("escape '\\\(e)'") }
                return e.value
            }
        }

        /// A literal code point as it appears in JSON text (escaped where JSON requires).
        func literal(_ v: UInt32) -> String {
            switch v {
            case 0x22: return gbnfLiteral("\\\"")
            case 0x5C: return gbnfLiteral("\\\\")
            case 0x0A: return gbnfLiteral("\\n")
            case 0x09: return gbnfLiteral("\\t")
            case 0x0D: return gbnfLiteral("\\r")
            default:
                if v < 0x20 || v == 0x7F { return gbnfLiteral(String(format: "\\u%04x", v)) }
                return gbnfLiteral(String(Unicode.Scalar(v).map(Character.init) ?? "\u{FFFD}"))
            }
        }

        func classText(_ ranges: [(UInt32, UInt32)], negated: Bool) -> String {
            // Positive: ranges minus the unsafe characters. Negated: also exclude them.
            var rs = ranges
            if negated { rs += RegexToGBNF.unsafe } else {
                for u in RegexToGBNF.unsafe {
                    rs = rs.flatMap { r -> [(UInt32, UInt32)] in
                        if r.1 < u.0 || r.0 > u.1 { return [r] }
                        var out: [(UInt32, UInt32)] = []
                        if r.0 < u.0 { out.append((r.0, u.0 - 1)) }
                        if r.1 > u.1 { out.append((u.1 + 1, r.1)) }
                        return out
                    }
                }
                if rs.isEmpty { return "[^\\x00-\\U0010FFFF]" }
            }
            var t = negated ? "[^" : "["
            for r in rs {
                t += Self.classChar(r.0)
                if r.1 != r.0 { t += "-" + Self.classChar(r.1) }
            }
            return t + "]"
        }

        static func classChar(_ v: UInt32) -> String {
            if v < 0x20 || v == 0x7F || v == 0x5C || v == 0x5D || v == 0x5E || v == 0x2D || v == 0x5B { return String(format: "\\x%02X", v) }
            if v > 0xFFFF { return String(format: "\\U%08X", v) }
            return String(Unicode.Scalar(v).map(Character.init) ?? "?")
        }

        mutating func charClass() throws(JSONSchemaError) -> String {
            var negated = false
            if i < end, s[i] == "^" { negated = true; i += 1 }
            var ranges: [(UInt32, UInt32)] = []
            var first = true
            while true {
                guard i < end else { throw unsupported("unterminated '['") }
                if s[i] == "]" && !first { i += 1; break }
                first = false
                var lo: UInt32
                if s[i] == "\\" {
                    guard i + 1 < end else { throw unsupported("trailing '\\'") }
                    let e = s[i + 1]
                    i += 2
                    if let sh = shorthand(e) {
                        if sh.1 { throw unsupported("negated shorthand '\\\(e)' inside a class") }
                        ranges += sh.0
                        continue
                    }
                    lo = e == "b" ? 8 : try escapeValue(e)
                } else {
                    lo = s[i].value
                    i += 1
                }
                if i + 1 < end, s[i] == "-", s[i + 1] != "]" {
                    i += 1
                    var hi: UInt32
                    if s[i] == "\\" {
                        guard i + 1 < end else { throw unsupported("trailing '\\'") }
                        let e = s[i + 1]
                        i += 2
                        hi = try escapeValue(e)
                    } else { hi = s[i].value; i += 1 }
                    guard hi >= lo else { throw unsupported("backwards range in class") }
                    ranges.append((lo, hi))
                } else {
                    ranges.append((lo, lo))
                }
            }
            return classText(ranges, negated: negated)
        }
    }
}
