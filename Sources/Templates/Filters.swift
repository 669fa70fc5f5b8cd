import Foundation

/// jinja2's builtin filters and tests (jinja2/filters.py, jinja2/tests.py), with Hugging Face's
/// `tojson` (json.dumps with ensure_ascii=False, optional indent).
extension Interpreter {
    func applyFilter(_ name: String, _ value: Value, _ argExprs: CallArgs, _ scope: Scope, _ pos: SourcePos) throws -> Value {
        let args = try evalArgs(argExprs, scope)
        do {
            return try filter(name, value, args)
        } catch {
            throw wrap(error, pos)
        }
    }

    func str(_ v: Value) -> String { PyFormat.str(v) }

    /// Python's `sorted`, stable, with an optional key transform.
    func sorted(_ items: [Value], key: (Value) throws -> Value, reverse: Bool) throws -> [Value] {
        let keyed = try items.map { (try key($0), $0) }
        var failure: Error? = nil
        let indexed = Array(keyed.enumerated())
        let sortedPairs = indexed.sorted { a, b in
            if failure != nil { return false }
            do {
                let c = try order(a.element.0, b.element.0)
                if c == 0 { return a.offset < b.offset }
                return reverse ? c > 0 : c < 0
            } catch {
                failure = error
                return false
            }
        }
        if let failure { throw failure }
        return sortedPairs.map { $0.element.1 }
    }

    /// jinja2's `make_attrgetter`: dotted path, each part looked up item-first.
    func attributePath(_ item: Value, _ path: Value) throws -> Value {
        var v = item
        let parts: [Value]
        if case .string(let s) = path {
            parts = s.split(separator: ".", omittingEmptySubsequences: false).map { p in
                Int(p).map { .int($0) } ?? .string(String(p))
            }
        } else {
            parts = [path]
        }
        for p in parts { v = try getItem(v, p) }
        return v
    }

    func caseKey(_ caseSensitive: Bool) -> (Value) -> Value {
        { v in
            if !caseSensitive, case .string(let s) = v { return .string(s.lowercased()) }
            return v
        }
    }

    func intArg(_ a: Arguments, _ i: Int, _ n: String, _ def: Int) throws -> Int {
        guard let v = a.get(i, n), !v.isNone else { return def }
        guard case .int(let x)? = v.asNumber, !v.isDouble else { throw Failure("argument '\(n)' must be an integer") }
        return x
    }

    func strArg(_ a: Arguments, _ i: Int, _ n: String, _ def: String) throws -> String {
        guard let v = a.get(i, n) else { return def }
        return str(v)
    }

    func filter(_ name: String, _ value: Value, _ a: Arguments) throws -> Value {
        let v = value
        switch name {
        case "default", "d":
            let def = a.get(0, "default_value") ?? .string("")
            let boolean = a.get(1, "boolean")?.truthy ?? false
            if v.isUndefined || (boolean && !v.truthy) { return def }
            return v
        case "length", "count":
            return .int(try length(v))
        case "string":
            return .string(str(v))
        case "safe":
            return .string(str(v))
        case "e", "escape", "forceescape":
            var out = ""
            for ch in str(v).unicodeScalars {
                switch ch {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&#34;"
                case "'": out += "&#39;"
                default: out.unicodeScalars.append(ch)
                }
            }
            return .string(out)
        case "trim":
            return .string(try Interpreter.strip(str(v), a.get(0, "chars"), left: true, right: true))
        case "lower": return .string(str(v).lowercased())
        case "upper": return .string(str(v).uppercased())
        case "capitalize": return .string(Interpreter.pyCapitalize(str(v)))
        case "title":
            // jinja2's do_title: capitalise each chunk after [-\s({[<]+ separators.
            var out = ""
            var atStart = true
            for ch in str(v) {
                let sep = ch.isWhitespace || "-({[<".contains(ch)
                if sep { out.append(ch); atStart = true; continue }
                out += atStart ? ch.uppercased() : ch.lowercased()
                atStart = false
            }
            return .string(out)
        case "replace":
            let old = try strArg(a, 0, "old", ""), new = try strArg(a, 1, "new", "")
            let count = try intArg(a, 2, "count", -1)
            return .string(Interpreter.replace(str(v), old, new, count))
        case "tojson":
            var indent: String? = nil
            switch a.get(0, "indent") {
            case .int(let n)?: indent = String(repeating: " ", count: max(0, n))
            case .string(let s)?: indent = s
            default: break
            }
            var itemSep: String? = nil, keySep: String? = nil
            if case .tuple(let seps)? = a.get(-1, "separators"), seps.count == 2 {
                itemSep = str(seps[0]); keySep = str(seps[1])
            } else if case .list(let seps)? = a.get(-1, "separators"), seps.count == 2 {
                itemSep = str(seps[0]); keySep = str(seps[1])
            }
            let sortKeys = a.get(-1, "sort_keys")?.truthy ?? false
            return .string(try PyFormat.json(v, indent: indent, itemSeparator: itemSep, keySeparator: keySep, sortKeys: sortKeys))
        case "join":
            let sep = try strArg(a, 0, "d", "")
            var items = try iterate(v)
            if let attr = a.get(1, "attribute") { items = try items.map { try attributePath($0, attr) } }
            return .string(items.map(str).joined(separator: sep))
        case "list":
            return .list(try iterate(v))
        case "first":
            return try iterate(v).first ?? .undef("no first item, sequence was empty")
        case "last":
            if case .dict = v { throw Failure("'dict' object is not reversible") }
            return try iterate(v).last ?? .undef("no last item, sequence was empty")
        case "reverse":
            if case .string(let s) = v { return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed()))) }
            return .list(try iterate(v).reversed())
        case "items":
            if v.isUndefined { return .list([]) }
            guard case .dict(let d) = v else { throw Failure("Can only get item pairs from a mapping.") }
            return .list(d.items.map { .tuple([$0.0, $0.1]) })
        case "dictsort":
            guard case .dict(let d) = v else { throw Failure("dictsort requires a mapping") }
            let caseSensitive = a.get(0, "case_sensitive")?.truthy ?? false
            let by = try strArg(a, 1, "by", "key")
            let reverse = a.get(2, "reverse")?.truthy ?? false
            let pos = by == "value" ? 1 : 0
            let pairs: [Value] = d.items.map { .tuple([$0.0, $0.1]) }
            let ck = caseKey(caseSensitive)
            return .list(try sorted(pairs, key: { p in
                guard case .tuple(let t) = p else { return p }
                return ck(t[pos])
            }, reverse: reverse))
        case "sort":
            let reverse = a.get(0, "reverse")?.truthy ?? false
            let caseSensitive = a.get(1, "case_sensitive")?.truthy ?? false
            let attr = a.get(2, "attribute")
            let ck = caseKey(caseSensitive)
            return .list(try sorted(try iterate(v), key: { x in ck(try attr.map { try self.attributePath(x, $0) } ?? x) }, reverse: reverse))
        case "unique":
            let caseSensitive = a.get(0, "case_sensitive")?.truthy ?? false
            let attr = a.get(1, "attribute")
            let ck = caseKey(caseSensitive)
            var seen: [Value] = []
            var out: [Value] = []
            for x in try iterate(v) {
                let k = ck(try attr.map { try attributePath(x, $0) } ?? x)
                if !seen.contains(where: { pyEqual($0, k) }) { seen.append(k); out.append(x) }
            }
            return .list(out)
        case "min", "max":
            let caseSensitive = a.get(0, "case_sensitive")?.truthy ?? false
            let attr = a.get(1, "attribute")
            let ck = caseKey(caseSensitive)
            let items = try sorted(try iterate(v), key: { x in ck(try attr.map { try self.attributePath(x, $0) } ?? x) }, reverse: false)
            let pick = name == "min" ? items.first : items.last
            return pick ?? .undef("no \(name) item, sequence was empty")
        case "sum":
            let attr = a.get(0, "attribute")
            var total = a.get(1, "start") ?? .int(0)
            for x in try iterate(v) {
                total = try binary("+", total, try attr.map { try attributePath(x, $0) } ?? x)
            }
            return total
        case "abs":
            switch v.asNumber {
            case .int(let i)?:
                if i == Int.min { throw Failure("integer overflow in abs") }
                return .int(abs(i))
            case .double(let d)?: return .double(abs(d))
            default: throw Failure("bad operand type for abs(): '\(v.typeName)'")
            }
        case "int":
            let def = a.get(0, "default") ?? .int(0)
            let base = try intArg(a, 1, "base", 10)
            switch v {
            case .int: return v
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d):
                guard d.isFinite, let i = Int(exactly: d.rounded(.towardZero)) else { return def }
                return .int(i)
            case .string(let s):
                let t = s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")
                var digits = t
                var sign = 1
                if digits.hasPrefix("-") { sign = -1; digits.removeFirst() } else if digits.hasPrefix("+") { digits.removeFirst() }
                if base == 16, digits.lowercased().hasPrefix("0x") { digits.removeFirst(2) }
                if base == 8, digits.lowercased().hasPrefix("0o") { digits.removeFirst(2) }
                if base == 2, digits.lowercased().hasPrefix("0b") { digits.removeFirst(2) }
                if let i = Int(digits, radix: base) { return .int(sign * i) }
                if let d = Double(t), d.isFinite, let i = Int(exactly: d.rounded(.towardZero)) { return .int(i) }
                return def
            default: return def
            }
        case "float":
            let def = a.get(0, "default") ?? .double(0)
            switch v {
            case .int(let i): return .double(Double(i))
            case .bool(let b): return .double(b ? 1 : 0)
            case .double: return v
            case .string(let s):
                let t = s.trimmingCharacters(in: .whitespaces).lowercased()
                if let d = Double(t) { return .double(d) }
                if ["inf", "+inf", "infinity"].contains(t) { return .double(.infinity) }
                if ["-inf", "-infinity"].contains(t) { return .double(-.infinity) }
                if t == "nan" { return .double(.nan) }
                return def
            default: return def
            }
        case "round":
            let precision = try intArg(a, 0, "precision", 0)
            let method = try strArg(a, 1, "method", "common")
            guard let d = v.asDouble else { throw Failure("round filter requires a number") }
            if method == "common", case .int(let i)? = v.asNumber, precision >= 0 { return .int(i) }
            let scale = pow(10.0, Double(precision))
            let rule: FloatingPointRoundingRule = method == "ceil" ? .up : method == "floor" ? .down : .toNearestOrEven
            guard ["common", "ceil", "floor"].contains(method) else { throw Failure("method must be common, ceil or floor") }
            return .double((d * scale).rounded(rule) / scale)
        case "batch":
            let size = try intArg(a, 0, "linecount", 1)
            guard size > 0 else { throw Failure("batch size must be positive") }
            let fill = a.get(1, "fill_with")
            let items = try iterate(v)
            var out: [Value] = []
            var i = 0
            while i < items.count {
                var chunk = Array(items[i..<min(i + size, items.count)])
                if let fill, !fill.isNone { while chunk.count < size { chunk.append(fill) } }
                out.append(.list(chunk))
                i += size
            }
            return .list(out)
        case "indent":
            var ind = "    "
            switch a.get(0, "width") {
            case .string(let s)?: ind = s
            case .int(let n)?: ind = String(repeating: " ", count: max(0, n))
            default: break
            }
            let first = a.get(1, "first")?.truthy ?? false
            let blank = a.get(2, "blank")?.truthy ?? false
            let s = str(v) + "\n"
            var lines = ScalarSearch.split(s, "\n")
            lines.removeLast()  // the added "\n" makes a trailing empty piece, as splitlines drops it
            var rv: String
            if blank {
                rv = lines.joined(separator: "\n" + ind)
            } else {
                rv = lines.first ?? ""
                let rest = lines.dropFirst()
                if !rest.isEmpty { rv += "\n" + rest.map { $0.isEmpty ? $0 : ind + $0 }.joined(separator: "\n") }
            }
            return .string(first ? ind + rv : rv)
        case "center":
            return .string(Interpreter.pad(str(v), try intArg(a, 0, "width", 80), " ", "center"))
        case "wordcount":
            var n = 0
            var inWord = false
            for u in str(v).unicodeScalars {
                let w = u.properties.isAlphabetic || u.properties.numericType != nil || u == "_"
                if w && !inWord { n += 1 }
                inWord = w
            }
            return .int(n)
        case "truncate":
            let s = str(v)
            let length = try intArg(a, 0, "length", 255)
            let killwords = a.get(1, "killwords")?.truthy ?? false
            let end = try strArg(a, 2, "end", "...")
            let leeway = try intArg(a, 3, "leeway", 5)
            let sc = Array(s.unicodeScalars)
            if sc.count <= length + leeway { return .string(s) }
            let cut = max(0, length - end.unicodeScalars.count)
            var head = String(String.UnicodeScalarView(sc[0..<min(cut, sc.count)]))
            if !killwords, let sp = head.lastIndex(of: " ") { head = String(head[..<sp]) }
            return .string(head + end)
        case "format":
            if !a.keyword.isEmpty {
                var d = PyDict()
                for (k, x) in a.keyword { d.set(k, x) }
                return .string(try PyFormat.percent(str(v), .dict(d)))
            }
            return .string(try PyFormat.percent(str(v), .tuple(a.positional)))
        case "attr":
            return try getAttr(v, try strArg(a, 0, "name", ""))
        case "map":
            let items = try iterate(v)
            if let attr = a.get(-1, "attribute") {
                let def = a.get(-1, "default")
                return .list(try items.map { x in
                    let r = try attributePath(x, attr)
                    if r.isUndefined, let def { return def }
                    return r
                })
            }
            guard case .string(let fname)? = a.positional.first else { throw Failure("map requires a filter name or attribute=") }
            let rest = Arguments(positional: Array(a.positional.dropFirst()), keyword: a.keyword)
            return .list(try items.map { try filter(fname, $0, rest) })
        case "select", "reject", "selectattr", "rejectattr":
            let byAttr = name.hasSuffix("attr")
            var rest = a.positional
            var attr: Value? = nil
            if byAttr {
                guard !rest.isEmpty else { throw Failure("\(name) requires an attribute name") }
                attr = rest.removeFirst()
            }
            let testName: String?
            if rest.isEmpty { testName = nil } else { testName = str(rest.removeFirst()) }
            let testArgs = Arguments(positional: rest, keyword: a.keyword)
            let keep = name.hasPrefix("select")
            var out: [Value] = []
            for x in try iterate(v) {
                let subject = try attr.map { try attributePath(x, $0) } ?? x
                let r = try testName.map { try applyTest($0, subject, testArgs) } ?? subject.truthy
                if r == keep { out.append(x) }
            }
            return .list(out)
        case "groupby":
            guard let attr = a.get(0, "attribute") else { throw Failure("groupby requires an attribute") }
            let def = a.get(1, "default")
            let caseSensitive = a.get(2, "case_sensitive")?.truthy ?? false
            let ck = caseKey(caseSensitive)
            let keyOf = { (x: Value) throws -> Value in
                let r = try self.attributePath(x, attr)
                return r.isUndefined ? (def ?? r) : r
            }
            let items = try sorted(try iterate(v), key: { ck(try keyOf($0)) }, reverse: false)
            var groups: [Value] = []
            var curKey: Value? = nil
            var cur: [Value] = []
            for x in items {
                let k = try keyOf(x)
                if let ck0 = curKey, pyEqual(ck(ck0), ck(k)) { cur.append(x); continue }
                if let ck0 = curKey { groups.append(.tuple([ck0, .list(cur)])) }
                curKey = k; cur = [x]
            }
            if let ck0 = curKey { groups.append(.tuple([ck0, .list(cur)])) }
            return .list(groups)
        case "pprint":
            return .string(PyFormat.repr(v))
        case "striptags":
            var out = ""
            var inTag = false
            for ch in str(v) {
                if ch == "<" { inTag = true } else if ch == ">" { inTag = false } else if !inTag { out.append(ch) }
            }
            return .string(try Interpreter.split(out, nil, -1).joined(separator: " "))
        default:
            throw Failure("no filter named '\(name)'")
        }
    }

    func applyTest(_ name: String, _ v: Value, _ a: Arguments) throws -> Bool {
        func arg() throws -> Value {
            guard let x = a.positional.first ?? a.keyword.first?.1 else { throw Failure("test '\(name)' needs an argument") }
            return x
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": return v.isNone
        case "boolean":
            if case .bool = v { return true }
            return false
        case "true":
            if case .bool(true) = v { return true }
            return false
        case "false":
            if case .bool(false) = v { return true }
            return false
        case "integer":
            if case .int = v { return true }
            return false
        case "float": return v.isDouble
        case "number": return v.asNumber != nil
        case "string": return v.isString
        case "mapping":
            if case .dict = v { return true }
            return false
        case "iterable":
            switch v {
            case .list, .tuple, .dict, .string, .undefined: return true
            default: return false
            }
        case "sequence":
            switch v {
            case .list, .tuple, .dict, .string, .undefined: return true
            default: return false
            }
        case "callable":
            switch v {
            case .macro, .function: return true
            case .loop(let l): return l.recurse != nil
            default: return false
            }
        case "odd", "even":
            guard case .int(let i)? = v.asNumber, !v.isDouble else { throw Failure("\(name) test requires an integer") }
            return (i % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard case .int(let i)? = v.asNumber, case .int(let n)? = try arg().asNumber else { throw Failure("divisibleby requires integers") }
            if n == 0 { throw Failure("integer division or modulo by zero") }
            return i % n == 0
        case "eq", "equalto", "==": return pyEqual(v, try arg())
        case "ne", "!=": return !pyEqual(v, try arg())
        case "lt", "lessthan", "<": return try order(v, try arg()) < 0
        case "le", "<=": return try order(v, try arg()) <= 0
        case "gt", "greaterthan", ">": return try order(v, try arg()) > 0
        case "ge", ">=": return try order(v, try arg()) >= 0
        case "in": return try contains(try arg(), v)
        case "lower":
            guard case .string(let s) = v else { return false }
            return s == s.lowercased()
        case "upper":
            guard case .string(let s) = v else { return false }
            return s == s.uppercased()
        case "sameas":
            let o = try arg()
            switch (v, o) {
            case (.none, .none), (.undefined, .undefined): return true
            case (.bool(let x), .bool(let y)): return x == y
            case (.int(let x), .int(let y)): return x == y
            case (.namespace(let x), .namespace(let y)): return x === y
            default: return false
            }
        case "escaped": return false
        case "filter":
            guard case .string(let f) = v else { return false }
            return Interpreter.filterNames.contains(f)
        case "test":
            guard case .string(let t) = v else { return false }
            return Interpreter.testNames.contains(t)
        default:
            throw Failure("no test named '\(name)'")
        }
    }

    static let filterNames: Set<String> = [
        "default", "d", "length", "count", "string", "safe", "e", "escape", "forceescape", "trim", "lower", "upper",
        "capitalize", "title", "replace", "tojson", "join", "list", "first", "last", "reverse", "items", "dictsort",
        "sort", "unique", "min", "max", "sum", "abs", "int", "float", "round", "batch", "indent", "center", "wordcount",
        "truncate", "format", "attr", "map", "select", "reject", "selectattr", "rejectattr", "groupby", "pprint", "striptags",
    ]
    static let testNames: Set<String> = [
        "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string", "mapping",
        "iterable", "sequence", "callable", "odd", "even", "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt",
        "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "in", "lower", "upper", "sameas", "escaped",
        "filter", "test",
    ]

    // MARK: globals

    func makeGlobals(into scope: Scope) {
        scope.vars["range"] = .function(NativeFunction("range") { interp, a in
            var nums: [Int] = []
            for x in a.positional {
                guard case .int(let n)? = x.asNumber, !x.isDouble else { throw Failure("range() arguments must be integers") }
                nums.append(n)
            }
            let (start, stop, step): (Int, Int, Int)
            switch nums.count {
            case 1: (start, stop, step) = (0, nums[0], 1)
            case 2: (start, stop, step) = (nums[0], nums[1], 1)
            case 3: (start, stop, step) = (nums[0], nums[1], nums[2])
            default: throw Failure("range expected 1 to 3 arguments, got \(nums.count)")
            }
            if step == 0 { throw Failure("range() arg 3 must not be zero") }
            let count = step > 0 ? max(0, (stop - start + step - 1) / step) : max(0, (start - stop - step - 1) / -step)
            if count > interp.limits.maxRange {
                throw Failure("range too big: \(count) items, the limit is \(interp.limits.maxRange)")
            }
            return .list((0..<count).map { .int(start + $0 * step) })
        })
        scope.vars["namespace"] = .function(NativeFunction("namespace") { _, a in
            let ns = Namespace()
            for p in a.positional {
                guard case .dict(let d) = p else { throw Failure("namespace() positional argument must be a dict") }
                for (k, x) in d.items { ns.attributes.set(k, x) }
            }
            for (k, x) in a.keyword { ns.attributes.set(k, x) }
            return .namespace(ns)
        })
        scope.vars["dict"] = .function(NativeFunction("dict") { _, a in
            var d = PyDict()
            if let first = a.positional.first, case .dict(let src) = first { d = src }
            for (k, x) in a.keyword { d.set(k, x) }
            return .dict(d)
        })
        scope.vars["raise_exception"] = .function(NativeFunction("raise_exception") { _, a in
            throw RaisedByTemplate(message: a.positional.first.map(PyFormat.str) ?? "")
        })
        scope.vars["strftime_now"] = .function(NativeFunction("strftime_now") { interp, a in
            guard case .string(let f)? = a.positional.first else { throw Failure("strftime_now() needs a format string") }
            if let o = interp.strftimeOverride { return .string(o(f)) }
            return .string(PyFormat.strftime(f, interp.now, TimeZone.current))
        })
        scope.vars["joiner"] = .function(NativeFunction("joiner") { _, a in
            let sep = a.positional.first.map(PyFormat.str) ?? ", "
            let ns = Namespace()
            return .function(NativeFunction("joiner") { _, _ in
                if ns.attributes.get("used") == nil { ns.attributes.set("used", .bool(true)); return .string("") }
                return .string(sep)
            })
        })
    }
}
