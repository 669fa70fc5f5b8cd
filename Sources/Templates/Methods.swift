import Foundation

/// Substring search by Unicode scalar, as Python compares strings (Swift's String search uses
/// canonical equivalence and grapheme boundaries, which Python does not).
enum ScalarSearch {
    static func find(_ hay: [Unicode.Scalar], _ needle: [Unicode.Scalar], from: Int = 0) -> Int? {
        if needle.isEmpty { return from <= hay.count ? from : nil }
        let last = hay.count - needle.count
        var i = max(0, from)
        while i <= last {
            if hay[i] == needle[0] {
                var j = 1
                while j < needle.count, hay[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    static func rfind(_ hay: [Unicode.Scalar], _ needle: [Unicode.Scalar]) -> Int? {
        if needle.isEmpty { return hay.count }
        var i = hay.count - needle.count
        while i >= 0 {
            if hay[i..<i + needle.count].elementsEqual(needle) { return i }
            i -= 1
        }
        return nil
    }

    static func string(_ s: ArraySlice<Unicode.Scalar>) -> String {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: s)
        return String(v)
    }

    /// Splits on every occurrence (at most `maxSplits` when non-negative), keeping empty pieces.
    static func split(_ s: String, _ sep: String, maxSplits: Int = -1) -> [String] {
        let hay = Array(s.unicodeScalars), needle = Array(sep.unicodeScalars)
        var parts: [String] = []
        var start = 0
        while maxSplits < 0 || parts.count < maxSplits, let at = find(hay, needle, from: start) {
            parts.append(string(hay[start..<at]))
            start = at + needle.count
        }
        parts.append(string(hay[start...]))
        return parts
    }

    static func contains(_ s: String, _ sub: String) -> Bool {
        find(Array(s.unicodeScalars), Array(sub.unicodeScalars)) != nil
    }
}

/// Python methods on str, dict and list that templates call (`s.strip()`, `d.items()`, …).
extension Interpreter {
    static func isPySpace(_ u: Unicode.Scalar) -> Bool {
        // Python's str.isspace also counts the ASCII separators 0x1C–0x1F.
        u.properties.isWhitespace || (0x1C...0x1F).contains(u.value)
    }

    static func strip(_ s: String, _ chars: Value?, left: Bool, right: Bool) throws -> String {
        var set: ((Unicode.Scalar) -> Bool) = isPySpace
        if let chars, !chars.isNone {
            guard case .string(let cs) = chars else { throw Failure("strip arg must be None or str") }
            let allowed = Set(cs.unicodeScalars)
            set = { allowed.contains($0) }
        }
        let sc = Array(s.unicodeScalars)
        var a = 0, b = sc.count
        if left { while a < b, set(sc[a]) { a += 1 } }
        if right { while b > a, set(sc[b - 1]) { b -= 1 } }
        var v = String.UnicodeScalarView()
        v.append(contentsOf: sc[a..<b])
        return String(v)
    }

    static func split(_ s: String, _ sep: Value?, _ maxsplit: Int) throws -> [String] {
        if let sep, case .string(let sp) = sep {
            if sp.isEmpty { throw Failure("empty separator") }
            return ScalarSearch.split(s, sp, maxSplits: maxsplit)
        }
        // Whitespace split: runs of whitespace, no empty strings.
        var parts: [String] = []
        var cur = String.UnicodeScalarView()
        var inWord = false
        let sc = Array(s.unicodeScalars)
        var i = 0
        while i < sc.count {
            let u = sc[i]
            if isPySpace(u) {
                if inWord {
                    parts.append(String(cur)); cur = String.UnicodeScalarView(); inWord = false
                    if maxsplit >= 0, parts.count == maxsplit {
                        while i < sc.count, isPySpace(sc[i]) { i += 1 }
                        if i < sc.count {
                            var tail = String.UnicodeScalarView(); tail.append(contentsOf: sc[i...])
                            parts.append(String(tail))
                        }
                        return parts
                    }
                }
            } else {
                cur.append(u); inWord = true
            }
            i += 1
        }
        if inWord { parts.append(String(cur)) }
        return parts
    }

    static func pyTitle(_ s: String) -> String {
        // str.title(): uppercase a cased letter following an uncased character, lowercase the rest.
        var out = ""
        var prevCased = false
        for ch in s {
            let cased = ch.isLetter
            if cased { out += prevCased ? ch.lowercased() : ch.uppercased() } else { out.append(ch) }
            prevCased = cased
        }
        return out
    }

    static func pyCapitalize(_ s: String) -> String {
        guard let f = s.first else { return s }
        return f.uppercased() + s.dropFirst().lowercased()
    }

    static func findRange(_ s: String, _ sub: String, reverse: Bool) -> Int {
        let a = Array(s.unicodeScalars), b = Array(sub.unicodeScalars)
        return (reverse ? ScalarSearch.rfind(a, b) : ScalarSearch.find(a, b)) ?? -1
    }

    static func countOccurrences(_ s: String, _ sub: String) -> Int {
        if sub.isEmpty { return s.unicodeScalars.count + 1 }
        return ScalarSearch.split(s, sub).count - 1
    }

    func stringMethod(_ s: String, _ name: String) -> Value? {
        func fn(_ body: @escaping (Arguments) throws -> Value) -> Value {
            .function(NativeFunction("str.\(name)") { _, a in try body(a) })
        }
        func str(_ a: Arguments, _ i: Int, _ n: String) throws -> String {
            guard case .string(let x)? = a.get(i, n) else { throw Failure("str.\(name)() needs a string argument '\(n)'") }
            return x
        }
        switch name {
        case "strip": return fn { .string(try Interpreter.strip(s, $0.get(0, "chars"), left: true, right: true)) }
        case "lstrip": return fn { .string(try Interpreter.strip(s, $0.get(0, "chars"), left: true, right: false)) }
        case "rstrip": return fn { .string(try Interpreter.strip(s, $0.get(0, "chars"), left: false, right: true)) }
        case "lower": return fn { _ in .string(s.lowercased()) }
        case "upper": return fn { _ in .string(s.uppercased()) }
        case "title": return fn { _ in .string(Interpreter.pyTitle(s)) }
        case "capitalize": return fn { _ in .string(Interpreter.pyCapitalize(s)) }
        case "swapcase":
            return fn { _ in .string(String(s.map { $0.isUppercase ? Character($0.lowercased()) : Character($0.uppercased()) })) }
        case "split", "rsplit":
            return fn { a in
                var maxsplit = -1
                if case .int(let m)? = a.get(1, "maxsplit") { maxsplit = m }
                let sep = a.get(0, "sep")
                if name == "rsplit", maxsplit >= 0 {
                    // rsplit with a limit: split from the right.
                    let rev = String(String.UnicodeScalarView(s.unicodeScalars.reversed()))
                    var revSep: Value? = sep
                    if case .string(let sp)? = sep { revSep = .string(String(String.UnicodeScalarView(sp.unicodeScalars.reversed()))) }
                    let parts = try Interpreter.split(rev, revSep, maxsplit)
                    return .list(parts.reversed().map { .string(String(String.UnicodeScalarView($0.unicodeScalars.reversed()))) })
                }
                return .list(try Interpreter.split(s, sep, maxsplit).map { .string($0) })
            }
        case "splitlines":
            return fn { a in
                let keep = a.get(0, "keepends")?.truthy ?? false
                var lines: [Value] = []
                var cur = ""
                var it = s.unicodeScalars.makeIterator()
                var pending = it.next()
                while let u = pending {
                    pending = it.next()
                    if u == "\n" || u == "\r" || u == "\u{0B}" || u == "\u{0C}" || u == "\u{1C}" || u == "\u{1D}" || u == "\u{1E}" || u == "\u{85}" || u == "\u{2028}" || u == "\u{2029}" {
                        var end = String(u)
                        if u == "\r", pending == "\n" { end += "\n"; pending = it.next() }
                        lines.append(.string(keep ? cur + end : cur))
                        cur = ""
                    } else {
                        cur.unicodeScalars.append(u)
                    }
                }
                if !cur.isEmpty { lines.append(.string(cur)) }
                return .list(lines)
            }
        case "startswith", "endswith":
            return fn { a in
                guard let p = a.get(0, "prefix") else { throw Failure("str.\(name)() takes at least 1 argument") }
                var prefixes: [String] = []
                switch p {
                case .string(let x): prefixes = [x]
                case .tuple(let xs), .list(let xs):
                    for x in xs {
                        guard case .string(let y) = x else { throw Failure("str.\(name)() tuple must contain only strings") }
                        prefixes.append(y)
                    }
                default: throw Failure("str.\(name)() first arg must be str or a tuple of str, not \(p.typeName)")
                }
                let sc = Array(s.unicodeScalars)
                return .bool(prefixes.contains { x in
                    let xs = Array(x.unicodeScalars)
                    if xs.count > sc.count { return false }
                    return name == "startswith" ? Array(sc[0..<xs.count]) == xs : Array(sc[(sc.count - xs.count)...]) == xs
                })
            }
        case "replace":
            return fn { a in
                let old = try str(a, 0, "old"), new = try str(a, 1, "new")
                var count = -1
                if case .int(let c)? = a.get(2, "count") { count = c }
                return .string(Interpreter.replace(s, old, new, count))
            }
        case "find", "rfind", "index", "rindex":
            return fn { a in
                let sub = try str(a, 0, "sub")
                let r = Interpreter.findRange(s, sub, reverse: name.hasPrefix("r"))
                if r < 0, name.hasSuffix("index") { throw Failure("substring not found") }
                return .int(r)
            }
        case "count": return fn { a in .int(Interpreter.countOccurrences(s, try str(a, 0, "sub"))) }
        case "join":
            return fn { [self] a in
                guard let seq = a.get(0, "iterable") else { throw Failure("str.join() takes exactly one argument") }
                var parts: [String] = []
                for item in try self.iterate(seq) {
                    guard case .string(let x) = item else { throw Failure("sequence item: expected str instance, \(item.typeName) found") }
                    parts.append(x)
                }
                return .string(parts.joined(separator: s))
            }
        case "format":
            return fn { a in .string(try PyFormat.strFormat(s, a)) }
        case "isdigit", "isnumeric", "isdecimal":
            return fn { _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType != nil }) }
        case "isalpha": return fn { _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic }) }
        case "isalnum":
            return fn { _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil }) }
        case "isspace": return fn { _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(Interpreter.isPySpace)) }
        case "islower": return fn { _ in .bool(s.contains { $0.isLetter } && s == s.lowercased()) }
        case "isupper": return fn { _ in .bool(s.contains { $0.isLetter } && s == s.uppercased()) }
        case "zfill":
            return fn { a in
                guard case .int(let w)? = a.get(0, "width") else { throw Failure("str.zfill() needs an integer width") }
                var sc = Array(s.unicodeScalars)
                let pad = max(0, w - sc.count)
                let at = (sc.first == "-" || sc.first == "+") ? 1 : 0
                sc.insert(contentsOf: Array(repeating: "0", count: pad), at: at)
                return .string(String(String.UnicodeScalarView(sc)))
            }
        case "center", "ljust", "rjust":
            return fn { a in
                guard case .int(let w)? = a.get(0, "width") else { throw Failure("str.\(name)() needs an integer width") }
                var fill = " "
                if case .string(let f)? = a.get(1, "fillchar") { fill = f }
                return .string(Interpreter.pad(s, w, fill, name))
            }
        default:
            return nil
        }
    }

    static func replace(_ s: String, _ old: String, _ new: String, _ count: Int) -> String {
        if count == 0 { return s }
        if old.isEmpty {
            // Python inserts `new` between every character (and at both ends).
            var out = ""
            var n = 0
            for u in s.unicodeScalars {
                if count < 0 || n < count { out += new; n += 1 }
                out.unicodeScalars.append(u)
            }
            if count < 0 || n < count { out += new }
            return out
        }
        return ScalarSearch.split(s, old, maxSplits: count).joined(separator: new)
    }

    static func pad(_ s: String, _ width: Int, _ fill: String, _ how: String) -> String {
        let n = s.unicodeScalars.count
        if width <= n { return s }
        let total = width - n
        switch how {
        case "ljust": return s + String(repeating: fill, count: total)
        case "rjust": return String(repeating: fill, count: total) + s
        default:
            // CPython's centering puts the extra space on the left when width is odd and the string even.
            let left = total / 2 + (total & width & 1)
            return String(repeating: fill, count: left) + s + String(repeating: fill, count: total - left)
        }
    }

    func dictMethod(_ d: PyDict, _ name: String) -> Value {
        func fn(_ body: @escaping (Arguments) throws -> Value) -> Value {
            .function(NativeFunction("dict.\(name)") { _, a in try body(a) })
        }
        switch name {
        case "items": return fn { _ in .list(d.items.map { .tuple([$0.0, $0.1]) }) }
        case "keys": return fn { _ in .list(d.keys) }
        case "values": return fn { _ in .list(d.values) }
        case "copy": return fn { _ in .dict(d) }
        case "get":
            return fn { a in
                guard let k = a.get(0, "key") else { throw Failure("get expected at least 1 argument") }
                return d.get(k) ?? a.get(1, "default") ?? .none
            }
        default:
            return .undef("'dict object' has no attribute '\(name)'")
        }
    }

    func listMethod(_ l: [Value], _ name: String) -> Value {
        func fn(_ body: @escaping (Arguments) throws -> Value) -> Value {
            .function(NativeFunction("list.\(name)") { _, a in try body(a) })
        }
        switch name {
        case "count":
            return fn { a in
                guard let x = a.get(0, "value") else { throw Failure("count() takes exactly one argument") }
                return .int(l.filter { pyEqual($0, x) }.count)
            }
        case "index":
            return fn { a in
                guard let x = a.get(0, "value") else { throw Failure("index() takes at least 1 argument") }
                guard let i = l.firstIndex(where: { pyEqual($0, x) }) else { throw Failure("\(PyFormat.repr(x)) is not in list") }
                return .int(i)
            }
        case "copy": return fn { _ in .list(l) }
        default: return .undef("'list object' has no attribute '\(name)'")
        }
    }
}
