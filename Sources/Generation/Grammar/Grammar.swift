import Foundation

/// A grammar problem a user can fix: where it is (1-based line and column in the grammar text,
/// when known) and what is wrong.
public struct GrammarError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public let line: Int?
    public let column: Int?

    public init(_ message: String, line: Int? = nil, column: Int? = nil) {
        self.message = message; self.line = line; self.column = column
    }

    public var description: String {
        if let line, let column { return "grammar error at line \(line), column \(column): \(message)" }
        return "grammar error: \(message)"
    }
}

/// A set of Unicode code points: sorted, non-overlapping closed ranges, optionally negated.
/// `.` is the negated empty set (any code point).
struct CharClass: Hashable, Sendable {
    var ranges: [UInt32]      // lo0, hi0, lo1, hi1, … sorted and merged
    var negated: Bool

    init(ranges pairs: [(UInt32, UInt32)], negated: Bool) {
        let sorted = pairs.map { ($0.0 <= $0.1) ? $0 : ($0.1, $0.0) }.sorted { $0.0 < $1.0 }
        var merged: [(UInt32, UInt32)] = []
        for r in sorted {
            if let last = merged.last, r.0 <= last.1 &+ 1 { merged[merged.count - 1].1 = max(last.1, r.1) } else { merged.append(r) }
        }
        ranges = merged.flatMap { [$0.0, $0.1] }
        self.negated = negated
    }

    func contains(_ c: UInt32) -> Bool {
        var inside = false
        var i = 0
        while i < ranges.count {
            if c < ranges[i] { break }
            if c <= ranges[i + 1] { inside = true; break }
            i += 2
        }
        return inside != negated
    }

    /// Whether some code point in lo...hi is in the class (used to prune partial UTF-8).
    func intersects(_ lo: UInt32, _ hi: UInt32) -> Bool {
        if !negated {
            var i = 0
            while i < ranges.count {
                if ranges[i] <= hi && ranges[i + 1] >= lo { return true }
                i += 2
            }
            return false
        }
        // Negated: true unless lo...hi is covered by the (merged) ranges.
        var i = 0
        while i < ranges.count {
            if ranges[i] <= lo && ranges[i + 1] >= hi { return false }
            i += 2
        }
        return true
    }
}

/// A parsed and compiled grammar: GBNF as llama.cpp writes it (see `init(gbnf:)`), lowered to
/// flat rules of terminals (character classes) and rule references, which the matcher runs as
/// a pushdown automaton over Unicode code points.
public final class Grammar: Sendable {
    /// The grammar text this was built from (for JSON schemas, the generated GBNF).
    public let source: String
    let ruleNames: [String]
    /// Flat program: every alternative of every rule, each ended by an `end` element.
    let elements: [Element]
    /// Start positions (into `elements`) of each rule's alternatives.
    let ruleAlternatives: [[Int32]]
    let classes: [CharClass]
    let rootRule: Int32

    struct Element: Sendable {
        enum Kind: UInt8, Sendable { case char, ref, end }
        var kind: Kind
        /// Class index for `char`, rule id for `ref`.
        var value: Int32
    }

    /// Most elements a grammar may lower to (guards against `x{1000000}`).
    public static let maxElements = 2_000_000

    /// Parses GBNF in llama.cpp's syntax:
    /// - rules `name ::= body`; a body continues over newlines inside parentheses or after `|`
    ///   (or on a next line that starts with `|`); `#` starts a comment to the end of the line;
    /// - alternation `|`, grouping `( … )`, repetition `*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}`;
    /// - string literals `"…"` and classes `[a-z]`, `[^…]` with escapes `\n \r \t \\ \" \[ \]
    ///   \xHH \uHHHH \UHHHHHHHH`; `.` is any character;
    /// - rule names of letters, digits, `-` and `_`; generation starts at `root`.
    /// Left recursion (a rule that can reach itself without consuming a character) is refused.
    public init(gbnf: String, root: String = "root") throws(GrammarError) {
        source = gbnf
        var parser = GBNFParser(text: gbnf)
        let parsed = try parser.parseRules()
        let lowered = try Lowering.lower(parsed, root: root, locate: { parser.location(of: $0) })
        ruleNames = lowered.names
        elements = lowered.elements
        ruleAlternatives = lowered.alternatives
        classes = lowered.classes
        rootRule = lowered.root
    }

    /// The number of rules after lowering (repetitions and groups become rules).
    public var ruleCount: Int { ruleNames.count }
}

// MARK: - Parsing

indirect enum GNode {
    case char(CharClass)
    case ref(String, Int)   // name, text offset (for "undefined rule" errors)
    case seq([GNode])
    case alt([GNode])
    case rep(GNode, min: Int, max: Int?)
}

struct GBNFParser {
    let s: [Unicode.Scalar]
    var i = 0

    init(text: String) { s = Array(text.unicodeScalars) }

    func location(of offset: Int) -> (Int, Int) {
        var line = 1, col = 1
        for k in 0..<min(offset, s.count) {
            if s[k] == "\n" { line += 1; col = 1 } else { col += 1 }
        }
        return (line, col)
    }

    func fail(_ message: String, at offset: Int? = nil) -> GrammarError {
        let (l, c) = location(of: offset ?? i)
        return GrammarError(message, line: l, column: c)
    }

    var atEnd: Bool { i >= s.count }
    var peek: Unicode.Scalar? { i < s.count ? s[i] : nil }

    static func isNameChar(_ c: Unicode.Scalar) -> Bool {
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "-" || c == "_"
    }

    /// Skips blanks and comments; newlines too when `newlines`.
    mutating func space(newlines: Bool) {
        while let c = peek {
            if c == " " || c == "\t" { i += 1 }
            else if c == "#" { while let d = peek, d != "\n" { _ = d; i += 1 } }
            else if newlines && (c == "\n" || c == "\r") { i += 1 }
            else { break }
        }
    }

    mutating func name() -> String? {
        let start = i
        while let c = peek, Self.isNameChar(c) { i += 1 }
        return i > start ? String(String.UnicodeScalarView(s[start..<i])) : nil
    }

    /// Whether the text at the cursor is `name ::=` (the start of the next rule).
    func atRuleStart() -> Bool {
        var j = i
        while j < s.count, Self.isNameChar(s[j]) { j += 1 }
        if j == i { return false }
        while j < s.count, s[j] == " " || s[j] == "\t" { j += 1 }
        return j + 2 < s.count && s[j] == ":" && s[j + 1] == ":" && s[j + 2] == "="
    }

    mutating func parseRules() throws(GrammarError) -> [(name: String, body: GNode, offset: Int)] {
        var rules: [(name: String, body: GNode, offset: Int)] = []
        space(newlines: true)
        while !atEnd {
            let start = i
            guard let n = name() else { throw fail("expected a rule name (letters, digits, '-', '_')") }
            space(newlines: false)
            guard i + 2 < s.count, s[i] == ":", s[i + 1] == ":", s[i + 2] == "=" else {
                throw fail("expected '::=' after rule name '\(n)'")
            }
            i += 3
            space(newlines: true)
            let body = try alternatives(nested: false)
            if rules.contains(where: { $0.name == n }) { throw fail("rule '\(n)' is defined twice", at: start) }
            rules.append((n, body, start))
            space(newlines: false)
            if let c = peek, c != "\n" && c != "\r" { throw fail("unexpected '\(c)'") }
            space(newlines: true)
        }
        if rules.isEmpty { throw GrammarError("the grammar has no rules") }
        return rules
    }

    mutating func alternatives(nested: Bool) throws(GrammarError) -> GNode {
        var alts = [try sequence(nested: nested)]
        while true {
            if peek == "|" {
                i += 1
                space(newlines: true)
                alts.append(try sequence(nested: nested))
                continue
            }
            // A line that starts with '|' continues the rule (a convenience llama.cpp lacks).
            if !nested {
                let save = i
                space(newlines: true)
                if peek == "|" { continue }
                i = save
            }
            break
        }
        return alts.count == 1 ? alts[0] : .alt(alts)
    }

    mutating func sequence(nested: Bool) throws(GrammarError) -> GNode {
        var items: [GNode] = []
        while let c = peek {
            let itemStart = i
            var item: GNode
            if c == "\"" {
                i += 1
                var chars: [GNode] = []
                while true {
                    guard let d = peek else { throw fail("unterminated string literal", at: itemStart) }
                    if d == "\"" { i += 1; break }
                    if d == "\n" { throw fail("unterminated string literal (newline inside)", at: itemStart) }
                    let v = try char()
                    chars.append(.char(CharClass(ranges: [(v, v)], negated: false)))
                }
                item = .seq(chars)
            } else if c == "[" {
                i += 1
                var negated = false
                if peek == "^" { negated = true; i += 1 }
                var pairs: [(UInt32, UInt32)] = []
                while true {
                    guard let d = peek else { throw fail("unterminated character class '['", at: itemStart) }
                    if d == "]" { i += 1; break }
                    let lo = try char()
                    if peek == "-", i + 1 < s.count, s[i + 1] != "]" {
                        i += 1
                        let hi = try char()
                        guard hi >= lo else { throw fail("character range is backwards (\(lo) > \(hi))") }
                        pairs.append((lo, hi))
                    } else {
                        pairs.append((lo, lo))
                    }
                }
                item = .char(CharClass(ranges: pairs, negated: negated))
            } else if c == "." {
                i += 1
                item = .char(CharClass(ranges: [], negated: true))
            } else if c == "(" {
                i += 1
                space(newlines: true)
                item = try alternatives(nested: true)
                space(newlines: true)
                guard peek == ")" else { throw fail("expected ')' to close the group opened at \(location(of: itemStart))", at: i) }
                i += 1
            } else if Self.isNameChar(c) {
                if atRuleStart() {
                    if nested { throw fail("a new rule cannot start inside parentheses; close the group first") }
                    break
                }
                let n = name() ?? ""
                item = .ref(n, itemStart)
            } else {
                break
            }
            // postfix repetition
            space(newlines: nested)
            while let q = peek, q == "*" || q == "+" || q == "?" || q == "{" {
                switch q {
                case "*": item = .rep(item, min: 0, max: nil); i += 1
                case "+": item = .rep(item, min: 1, max: nil); i += 1
                case "?": item = .rep(item, min: 0, max: 1); i += 1
                default:
                    i += 1
                    space(newlines: false)
                    guard let lo = number() else { throw fail("expected a number after '{'") }
                    space(newlines: false)
                    var hi: Int? = lo
                    if peek == "," {
                        i += 1
                        space(newlines: false)
                        hi = number()
                        space(newlines: false)
                    }
                    guard peek == "}" else { throw fail("expected '}' to close the repetition") }
                    i += 1
                    if let hi, hi < lo { throw fail("repetition {\(lo),\(hi)}: the maximum is below the minimum") }
                    item = .rep(item, min: lo, max: hi)
                }
                space(newlines: nested)
            }
            items.append(item)
        }
        return items.count == 1 ? items[0] : .seq(items)
    }

    mutating func number() -> Int? {
        let start = i
        var v = 0
        while let c = peek, c >= "0" && c <= "9" {
            v = v * 10 + Int(c.value - 48)
            if v > 1_000_000 { return nil }
            i += 1
        }
        return i > start ? v : nil
    }

    mutating func hex(_ n: Int) throws(GrammarError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<n {
            guard let c = peek, let d = Int(String(c), radix: 16) else { throw fail("expected \(n) hex digits") }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    /// One character of a literal or class, with escapes.
    mutating func char() throws(GrammarError) -> UInt32 {
        guard let c = peek else { throw fail("unexpected end of grammar") }
        i += 1
        guard c == "\\" else { return c.value }
        guard let e = peek else { throw fail("unexpected end of grammar after '\\'") }
        i += 1
        switch e {
        case "n": return 10
        case "r": return 13
        case "t": return 9
        case "0": return 0
        case "x": return try hex(2)
        case "u": return try hex(4)
        case "U":
            let v = try hex(8)
            guard v <= 0x10FFFF else { throw fail("\\U escape beyond U+10FFFF") }
            return v
        default:
            if (e >= "a" && e <= "z") || (e >= "A" && e <= "Z") || (e >= "0" && e <= "9") {
                throw fail("unknown escape '\\\(e)'", at: i - 2)
            }
            return e.value
        }
    }
}

// MARK: - Lowering to flat rules

enum Lowering {
    enum Sym { case char(Int32), ref(Int32) }

    struct Output {
        var names: [String]
        var elements: [Grammar.Element]
        var alternatives: [[Int32]]
        var classes: [CharClass]
        var root: Int32
    }

    static func lower(_ rules: [(name: String, body: GNode, offset: Int)], root: String,
                      locate: (Int) -> (Int, Int)) throws(GrammarError) -> Output {
        var names: [String] = []
        var ids: [String: Int32] = [:]
        for r in rules { ids[r.name] = Int32(names.count); names.append(r.name) }
        guard let rootID = ids[root] else { throw GrammarError("the grammar has no '\(root)' rule (generation starts there)") }
        var bodies: [[[Sym]]] = Array(repeating: [], count: names.count)
        var classes: [CharClass] = []
        var classIDs: [CharClass: Int32] = [:]
        var size = 0

        func classID(_ c: CharClass) -> Int32 {
            if let id = classIDs[c] { return id }
            let id = Int32(classes.count)
            classes.append(c); classIDs[c] = id
            return id
        }
        func newRule(_ base: String, _ alts: [[Sym]]) -> Int32 {
            let id = Int32(names.count)
            names.append(base)
            bodies.append(alts)
            return id
        }
        func alts(_ n: GNode, _ owner: String) throws(GrammarError) -> [[Sym]] {
            if case let .alt(list) = n {
                var out: [[Sym]] = []
                for a in list { out.append(try seq(a, owner)) }
                return out
            }
            return [try seq(n, owner)]
        }
        func seq(_ n: GNode, _ owner: String) throws(GrammarError) -> [Sym] {
            switch n {
            case let .char(c):
                size += 1
                return [.char(classID(c))]
            case let .ref(name, offset):
                guard let id = ids[name] else {
                    let (l, c) = locate(offset)
                    throw GrammarError("rule '\(name)' is used but never defined", line: l, column: c)
                }
                size += 1
                return [.ref(id)]
            case let .seq(items):
                var out: [Sym] = []
                for it in items { out += try seq(it, owner) }
                return out
            case .alt:
                return [.ref(newRule(owner, try alts(n, owner)))]
            case let .rep(inner, lo, hi):
                let x = try seq(inner, owner)
                let copies = lo + (hi.map { $0 - lo } ?? 1)
                size += x.count * max(copies, 1) + 2
                guard size <= Grammar.maxElements else {
                    throw GrammarError("the grammar is too large after expanding repetitions (over \(Grammar.maxElements) elements); lower the {m,n} bounds")
                }
                var out: [Sym] = []
                for _ in 0..<lo { out += x }
                if let hi {
                    // x{0,k} as nested optionals: opt_k ::= x opt_{k-1} | ε (llama.cpp does the same).
                    var tail: Int32? = nil
                    for _ in 0..<(hi - lo) {
                        let body = x + (tail.map { [Sym.ref($0)] } ?? [])
                        tail = newRule(owner, [body, []])
                    }
                    if let tail { out.append(.ref(tail)) }
                } else {
                    // x* as a right-recursive rule: star ::= x star | ε (stack stays bounded).
                    let id = Int32(names.count)
                    names.append(owner)
                    bodies.append([])
                    bodies[Int(id)] = [x + [.ref(id)], []]
                    out.append(.ref(id))
                }
                return out
            }
        }
        for (k, r) in rules.enumerated() {
            bodies[k] = try alts(r.body, r.name)
        }
        try checkLeftRecursion(bodies, names: names)
        var elements: [Grammar.Element] = []
        var starts: [[Int32]] = []
        for alts in bodies {
            var s: [Int32] = []
            for a in alts {
                s.append(Int32(elements.count))
                for sym in a {
                    switch sym {
                    case let .char(c): elements.append(.init(kind: .char, value: c))
                    case let .ref(r): elements.append(.init(kind: .ref, value: r))
                    }
                }
                elements.append(.init(kind: .end, value: 0))
            }
            starts.append(s)
        }
        return Output(names: names, elements: elements, alternatives: starts, classes: classes, root: rootID)
    }

    /// Refuses rules that can reach themselves before consuming a character through a
    /// reference that is not last in its alternative: the matcher's stacks would grow without
    /// end. (A reference in last position is a tail call and is fine, e.g. `x ::= "a"? x | "b"`.)
    static func checkLeftRecursion(_ bodies: [[[Sym]]], names: [String]) throws(GrammarError) {
        let n = bodies.count
        var nullable = Array(repeating: false, count: n)
        var changed = true
        while changed {
            changed = false
            for r in 0..<n where !nullable[r] {
                for a in bodies[r] {
                    if a.allSatisfy({ if case let .ref(x) = $0 { return nullable[Int(x)] }; return false }) {
                        nullable[r] = true; changed = true; break
                    }
                }
            }
        }
        // Left edges r → x, marked growing when x is not the last symbol.
        var edges = Array(repeating: [(Int, Bool)](), count: n)
        for r in 0..<n {
            for a in bodies[r] {
                for (k, sym) in a.enumerated() {
                    guard case let .ref(x) = sym else { break }
                    edges[r].append((Int(x), k < a.count - 1))
                    if !nullable[Int(x)] { break }
                }
            }
        }
        for r in 0..<n {
            for (x, grows) in edges[r] where grows {
                // Can x reach r through left edges?
                var seen = Set<Int>([x])
                var todo = [x]
                while let y = todo.popLast() {
                    if y == r {
                        throw GrammarError("left recursion in rule '\(names[r])': it can refer to itself before matching any character; rewrite it right-recursively (e.g. `list ::= item (\",\" item)*`)")
                    }
                    for (z, _) in edges[y] where !seen.contains(z) { seen.insert(z); todo.append(z) }
                }
            }
        }
    }
}
