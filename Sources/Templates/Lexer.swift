/// Errors from parsing or rendering a template. Line and column are 1-based positions in the
/// template source (0 when no position applies).
public enum TemplateError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The template (or JSON input) is malformed.
    case syntax(message: String, line: Int, column: Int)
    /// Rendering failed: undefined value misuse, type errors, unsafe operations, limits.
    case runtime(message: String, line: Int, column: Int)
    /// The template called `raise_exception(message)`.
    case raised(String)

    public var description: String {
        switch self {
        case let .syntax(m, l, c): return "template syntax error at line \(l), column \(c): \(m)"
        case let .runtime(m, l, c): return "template error at line \(l), column \(c): \(m)"
        case let .raised(m): return "template raised an exception: \(m)"
        }
    }

    public var message: String {
        switch self {
        case let .syntax(m, _, _), let .runtime(m, _, _), let .raised(m): return m
        }
    }
}

struct SourcePos: Equatable {
    var line: Int
    var column: Int
}

enum Tok: Equatable {
    case text(String)
    case blockBegin
    case blockEnd
    case varBegin
    case varEnd
    case name(String)
    case string(String)
    case int(Int)
    case float(Double)
    case op(String)
    case raw(String)  // body of a {% raw %} block
    case eof
}

struct Token {
    var tok: Tok
    var pos: SourcePos
}

/// Splits template source into text and tag tokens, applying Jinja's whitespace rules the way
/// jinja2 3.1's lexer does with trim_blocks=True and lstrip_blocks=True (see its tokeniter).
struct Lexer {
    let s: [Unicode.Scalar]
    var i = 0
    var line = 1
    var lineStart = 0
    var tokens: [Token] = []
    /// True when the previous match ended with a newline (jinja2's `line_starting`).
    var lineStarting = true

    init(source: String) {
        // jinja2 normalises \r\n and \r to \n and drops one trailing newline (keep_trailing_newline=False).
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(source.unicodeScalars.count)
        var it = source.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = it.next()
        while let c = pending {
            pending = it.next()
            if c == "\r" {
                scalars.append("\n")
                if pending == "\n" { pending = it.next() }
            } else {
                scalars.append(c)
            }
        }
        if scalars.last == "\n" { scalars.removeLast() }
        s = scalars
    }

    var pos: SourcePos { SourcePos(line: line, column: i - lineStart + 1) }

    func fail(_ m: String) -> TemplateError { .syntax(message: m, line: line, column: i - lineStart + 1) }

    mutating func advance(_ n: Int = 1) {
        for _ in 0..<n where i < s.count {
            if s[i] == "\n" { line += 1; lineStart = i + 1 }
            i += 1
        }
    }

    func at(_ k: Int) -> Unicode.Scalar? { k < s.count ? s[k] : nil }

    func matches(_ lit: String, at k: Int) -> Bool {
        var j = k
        for c in lit.unicodeScalars {
            guard j < s.count, s[j] == c else { return false }
            j += 1
        }
        return true
    }

    static func isSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }

    mutating func tokenize() throws(TemplateError) -> [Token] {
        while i < s.count {
            // Find the next tag opener.
            var k = i
            var kind: Character? = nil
            while k + 1 < s.count {
                if s[k] == "{" {
                    let n = s[k + 1]
                    if n == "{" { kind = "v"; break }
                    if n == "%" { kind = "b"; break }
                    if n == "#" { kind = "c"; break }
                }
                k += 1
            }
            guard let kind else {
                emitText(Array(s[i..<s.count]), pos: pos)
                advance(s.count - i)
                break
            }
            var text = Array(s[i..<k])
            let textPos = pos
            let sign = at(k + 2)
            let rawEnd = kind == "b" ? rawBlockOpening(at: k) : nil
            if sign == "-" {
                while let l = text.last, Lexer.isSpace(l) { text.removeLast() }
            } else if sign != "+", kind != "v" {
                // lstrip_blocks: drop spaces between the line start and a block/comment tag.
                var lpos = text.count
                while lpos > 0, text[lpos - 1] != "\n" { lpos -= 1 }
                if lpos > 0 || lineStarting {
                    let tail = text[lpos...]
                    if !tail.isEmpty, tail.allSatisfy(Lexer.isSpace) { text.removeSubrange(lpos...) }
                }
            }
            emitText(text, pos: textPos)
            advance(k - i)
            let tagPos = pos
            advance(2)
            if sign == "-" || sign == "+" { advance() }
            switch kind {
            case "c":
                try skipComment()
            case "b":
                if let rawEnd {
                    advance(rawEnd - i)
                    try lexRawBody(pos: tagPos)
                } else {
                    tokens.append(Token(tok: .blockBegin, pos: tagPos))
                    try lexTag(block: true)
                }
            default:
                tokens.append(Token(tok: .varBegin, pos: tagPos))
                try lexTag(block: false)
            }
        }
        tokens.append(Token(tok: .eof, pos: pos))
        return tokens
    }

    mutating func emitText(_ text: [Unicode.Scalar], pos: SourcePos) {
        if text.isEmpty { return }
        var str = String.UnicodeScalarView()
        str.append(contentsOf: text)
        tokens.append(Token(tok: .text(String(str)), pos: pos))
        lineStarting = text.last == "\n"
    }

    /// If a `{% raw %}` tag starts at k, returns the index just past it.
    func rawBlockOpening(at k: Int) -> Int? {
        var j = k + 2
        if let c = at(j), c == "-" || c == "+" { j += 1 }
        while let c = at(j), Lexer.isSpace(c) { j += 1 }
        guard matches("raw", at: j) else { return nil }
        j += 3
        while let c = at(j), Lexer.isSpace(c) { j += 1 }
        if matches("-%}", at: j) {
            j += 3
            while let c = at(j), Lexer.isSpace(c) { j += 1 }
            return j
        }
        if matches("%}", at: j) { return j + 2 }
        return nil
    }

    mutating func lexRawBody(pos: SourcePos) throws(TemplateError) {
        var k = i
        while k < s.count {
            if matches("{%", at: k) {
                var j = k + 2
                let sign = at(j)
                if sign == "-" || sign == "+" { j += 1 }
                while let c = at(j), Lexer.isSpace(c) { j += 1 }
                if matches("endraw", at: j) {
                    j += 6
                    while let c = at(j), Lexer.isSpace(c) { j += 1 }
                    var end: Int? = nil
                    var endSawNewline = false
                    if matches("+%}", at: j) {
                        end = j + 3
                    } else if matches("-%}", at: j) {
                        j += 3
                        while let c = at(j), Lexer.isSpace(c) { j += 1 }
                        end = j
                    } else if matches("%}", at: j) {
                        j += 2
                        if at(j) == "\n" { j += 1 }
                        end = j
                    }
                    if let end {
                        var body = Array(s[i..<k])
                        if sign == "-" {
                            while let l = body.last, Lexer.isSpace(l) { body.removeLast() }
                        } else if sign != "+" {
                            var lpos = body.count
                            while lpos > 0, body[lpos - 1] != "\n" { lpos -= 1 }
                            let tail = body[lpos...]
                            if lpos > 0, !tail.isEmpty, tail.allSatisfy(Lexer.isSpace) { body.removeSubrange(lpos...) }
                        }
                        var str = String.UnicodeScalarView()
                        str.append(contentsOf: body)
                        tokens.append(Token(tok: .raw(String(str)), pos: pos))
                        endSawNewline = end > 0 && s[end - 1] == "\n"
                        advance(end - i)
                        lineStarting = endSawNewline
                        return
                    }
                }
            }
            k += 1
        }
        throw fail("missing {% endraw %} for the raw block")
    }

    mutating func skipComment() throws(TemplateError) {
        while i < s.count {
            if s[i] == "+", matches("#}", at: i + 1) {
                advance(3); lineStarting = false; return
            }
            if s[i] == "-", matches("#}", at: i + 1) {
                advance(3)
                lineStarting = false
                while let c = at(i), Lexer.isSpace(c) { lineStarting = c == "\n"; advance() }
                return
            }
            if matches("#}", at: i) {
                advance(2)
                lineStarting = false
                if at(i) == "\n" { advance(); lineStarting = true }  // trim_blocks
                return
            }
            advance()
        }
        throw fail("missing end of comment tag '#}'")
    }

    static let operators3: [String] = []
    static let operators2 = ["//", "**", "==", "!=", "<=", ">="]
    static let operators1: Set<Unicode.Scalar> = ["+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"]

    mutating func lexTag(block: Bool) throws(TemplateError) {
        var balance: [Unicode.Scalar] = []
        while true {
            while let c = at(i), Lexer.isSpace(c) { advance() }
            guard let c = at(i) else {
                throw fail(block ? "missing end of block tag '%}'" : "missing end of print tag '}}'")
            }
            let p = pos
            if balance.isEmpty {
                if block {
                    if matches("+%}", at: i) { advance(3); tokens.append(Token(tok: .blockEnd, pos: p)); lineStarting = false; return }
                    if matches("-%}", at: i) {
                        advance(3)
                        tokens.append(Token(tok: .blockEnd, pos: p))
                        lineStarting = false
                        while let c = at(i), Lexer.isSpace(c) { lineStarting = c == "\n"; advance() }
                        return
                    }
                    if matches("%}", at: i) {
                        advance(2)
                        tokens.append(Token(tok: .blockEnd, pos: p))
                        lineStarting = false
                        if at(i) == "\n" { advance(); lineStarting = true }  // trim_blocks
                        return
                    }
                } else {
                    if matches("-}}", at: i) {
                        advance(3)
                        tokens.append(Token(tok: .varEnd, pos: p))
                        lineStarting = false
                        while let c = at(i), Lexer.isSpace(c) { lineStarting = c == "\n"; advance() }
                        return
                    }
                    if matches("}}", at: i) {
                        advance(2); tokens.append(Token(tok: .varEnd, pos: p)); lineStarting = false; return
                    }
                }
            }
            if c == "_" || c.properties.isAlphabetic && c.isASCII {
                var name = String.UnicodeScalarView()
                while let d = at(i), d == "_" || (d.isASCII && (d.properties.isAlphabetic || d.properties.numericType != nil)) {
                    name.append(d); advance()
                }
                tokens.append(Token(tok: .name(String(name)), pos: p))
                continue
            }
            if c.isASCII, c.properties.numericType != nil {
                tokens.append(Token(tok: try lexNumber(), pos: p))
                continue
            }
            if c == "'" || c == "\"" {
                tokens.append(Token(tok: .string(try lexString()), pos: p))
                continue
            }
            if let op = Lexer.operators2.first(where: { matches($0, at: i) }) {
                advance(2)
                tokens.append(Token(tok: .op(op), pos: p))
                continue
            }
            if Lexer.operators1.contains(c) {
                switch c {
                case "{": balance.append("}")
                case "(": balance.append(")")
                case "[": balance.append("]")
                case "}", ")", "]":
                    guard let expected = balance.popLast() else { throw fail("unexpected '\(c)'") }
                    if expected != c { throw fail("unexpected '\(c)', expected '\(expected)'") }
                default: break
                }
                advance()
                tokens.append(Token(tok: .op(String(c)), pos: p))
                continue
            }
            throw fail("unexpected character '\(c)'")
        }
    }

    mutating func lexNumber() throws(TemplateError) -> Tok {
        var text = ""
        func digit(_ c: Unicode.Scalar?) -> Bool { c.map { $0.isASCII && $0.properties.numericType != nil } ?? false }
        while let c = at(i), digit(c) || (c == "_" && digit(at(i + 1))) {
            if c != "_" { text.unicodeScalars.append(c) }
            advance()
        }
        var isFloat = false
        if at(i) == ".", digit(at(i + 1)) {
            isFloat = true
            text += "."
            advance()
            while let c = at(i), digit(c) || (c == "_" && digit(at(i + 1))) {
                if c != "_" { text.unicodeScalars.append(c) }
                advance()
            }
        }
        if let e = at(i), e == "e" || e == "E" {
            var j = i + 1
            if let sgn = at(j), sgn == "+" || sgn == "-" { j += 1 }
            if digit(at(j)) {
                isFloat = true
                text += "e"
                advance()
                if let sgn = at(i), sgn == "+" || sgn == "-" { text.unicodeScalars.append(sgn); advance() }
                while let c = at(i), digit(c) { text.unicodeScalars.append(c); advance() }
            }
        }
        if isFloat {
            guard let d = Double(text) else { throw fail("bad number \(text)") }
            return .float(d)
        }
        guard let n = Int(text) else { throw fail("integer \(text) is too large") }
        return .int(n)
    }

    /// String literal with Python `unicode-escape` decoding, as jinja2's lexer does.
    mutating func lexString() throws(TemplateError) -> String {
        let quote = s[i]
        advance()
        var out = String.UnicodeScalarView()
        while true {
            guard let c = at(i) else { throw fail("unterminated string literal") }
            if c == quote { advance(); break }
            if c != "\\" { out.append(c); advance(); continue }
            advance()
            guard let e = at(i) else { throw fail("unterminated string literal") }
            advance()
            func hex(_ n: Int) throws(TemplateError) -> Unicode.Scalar {
                var v: UInt32 = 0
                for _ in 0..<n {
                    guard let h = at(i), let d = h.properties.numericType != nil && h.isASCII ? UInt32(h.value - 48) :
                        ("a"..."f").contains(h) ? UInt32(h.value - 87) : ("A"..."F").contains(h) ? UInt32(h.value - 55) : nil
                    else { throw fail("truncated \\x/\\u escape in string literal") }
                    v = v * 16 + d
                    advance()
                }
                guard let u = Unicode.Scalar(v) else { throw fail("invalid code point in string literal") }
                return u
            }
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "v": out.append("\u{0B}")
            case "\n": break  // line continuation
            case "x": out.append(try hex(2))
            case "u": out.append(try hex(4))
            case "U": out.append(try hex(8))
            case "0"..."7":
                var v = e.value - 48
                var n = 1
                while n < 3, let d = at(i), ("0"..."7").contains(d) { v = v * 8 + d.value - 48; advance(); n += 1 }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            default:
                out.append("\\"); out.append(e)
            }
        }
        return String(out)
    }
}
