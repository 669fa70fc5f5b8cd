import Foundation

/// A render-time failure without a position yet; `Interpreter.eval` attaches the position of
/// the expression that failed.
struct Failure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Raised by `raise_exception`; passes through position wrapping untouched.
struct RaisedByTemplate: Error {
    var message: String
}

/// Resource limits guarding against hostile or runaway templates.
public struct TemplateLimits: Sendable {
    /// Largest rendered output, in UTF-8 bytes.
    public var maxOutputBytes: Int = 8 << 20
    /// Total for-loop iterations across the whole render.
    public var maxLoopIterations: Int = 1_000_000
    /// Deepest nesting of macro calls.
    public var maxCallDepth: Int = 64
    /// Longest `range()` (jinja2's sandbox uses 100000 too).
    public var maxRange: Int = 100_000

    public init() {}
}

enum Flow {
    case normal
    case breakLoop
    case continueLoop
}

/// Walks the syntax tree with jinja2's semantics (scoping, Undefined, Python value model).
final class Interpreter {
    let limits: TemplateLimits
    let now: Date
    var strftimeOverride: (@Sendable (String) -> String)? = nil
    var outputBytes = 0
    var iterations = 0
    var callDepth = 0

    init(limits: TemplateLimits, now: Date) {
        self.limits = limits
        self.now = now
    }

    func runtimeError(_ m: String, _ p: SourcePos) -> TemplateError {
        .runtime(message: m, line: p.line, column: p.column)
    }

    /// Converts any thrown error to a TemplateError with a position.
    func wrap(_ error: Error, _ p: SourcePos) -> Error {
        if let f = error as? Failure { return runtimeError(f.message, p) }
        if let j = error as? PyFormat.JSONFailure { return runtimeError(j.message, p) }
        return error
    }

    func write(_ s: String, to out: inout String) throws {
        outputBytes += s.utf8.count
        if outputBytes > limits.maxOutputBytes {
            throw Failure("output is larger than the limit of \(limits.maxOutputBytes) bytes")
        }
        out += s
    }

    // MARK: statements

    func exec(_ body: [Stmt], _ scope: Scope, _ out: inout String) throws -> Flow {
        for stmt in body {
            let flow = try exec(stmt, scope, &out)
            if case .normal = flow { continue }
            return flow
        }
        return .normal
    }

    func exec(_ stmt: Stmt, _ scope: Scope, _ out: inout String) throws -> Flow {
        switch stmt {
        case .text(let s):
            try write(s, to: &out)
        case .output(let e):
            let v = try eval(e, scope)
            do { try write(PyFormat.str(v), to: &out) } catch { throw wrap(error, e.pos) }
        case .ifStmt(let branches, let elseBody):
            for (cond, body) in branches where try eval(cond, scope).truthy {
                return try exec(body, scope, &out)
            }
            if let elseBody { return try exec(elseBody, scope, &out) }
        case let .forStmt(target, iter, filter, body, elseBody, recursive, pos):
            let seq = try eval(iter, scope)
            try runFor(target: target, seq: seq, filter: filter, body: body, elseBody: elseBody, recursive: recursive,
                       depth0: 0, scope: scope, pos: pos, out: &out)
        case let .set(target, e, pos):
            let v = try eval(e, scope)
            try assign(target, v, scope, pos)
        case let .setBlock(target, filters, body, pos):
            var captured = ""
            _ = try exec(body, Scope(parent: scope), &captured)
            var v = Value.string(captured)
            for f in filters { v = try applyFilter(f.name, v, f.args, scope, f.pos) }
            try assign(target, v, scope, pos)
        case .macro(let def):
            scope.vars[def.name] = .macro(Macro(def: def, closure: scope))
        case let .callBlock(call, params, body):
            guard case let .call(calleeExpr, argExprs) = call.kind else { break }
            let callee = try eval(calleeExpr, scope)
            var args = try evalArgs(argExprs, scope)
            let caller = Macro(def: MacroDef(name: "caller", params: params, body: body), closure: scope)
            args.keyword.append(("caller", .macro(caller)))
            let result: Value
            do { result = try callValue(callee, args) } catch { throw wrap(error, call.pos) }
            try write(PyFormat.str(result), to: &out)
        case let .filterBlock(filters, body):
            var captured = ""
            _ = try exec(body, Scope(parent: scope), &captured)
            var v = Value.string(captured)
            for f in filters { v = try applyFilter(f.name, v, f.args, scope, f.pos) }
            try write(PyFormat.str(v), to: &out)
        case let .with(assigns, body):
            let inner = Scope(parent: scope)
            for (t, e) in assigns { try assign(t, try eval(e, scope), inner, e.pos) }
            return try exec(body, inner, &out)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    func runFor(target: Target, seq: Value, filter: Expr?, body: [Stmt], elseBody: [Stmt]?, recursive: Bool,
                depth0: Int, scope: Scope, pos: SourcePos, out: inout String) throws
    {
        var items: [Value]
        do { items = try iterate(seq) } catch { throw wrap(error, pos) }
        if let filter {
            var kept: [Value] = []
            for item in items {
                let s = Scope(parent: scope)
                try assign(target, item, s, pos)
                if try eval(filter, s).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            if let elseBody { _ = try exec(elseBody, Scope(parent: scope), &out) }
            return
        }
        var recurse: NativeFunction? = nil
        if recursive {
            recurse = NativeFunction("loop") { interp, args in
                guard let inner = args.positional.first else { throw Failure("loop() takes one argument") }
                var text = ""
                try interp.runFor(target: target, seq: inner, filter: filter, body: body, elseBody: elseBody, recursive: true,
                                  depth0: depth0 + 1, scope: scope, pos: pos, out: &text)
                return .string(text)
            }
            callDepth += 1
        }
        defer { if recursive { callDepth -= 1 } }
        if callDepth > limits.maxCallDepth { throw runtimeError("recursive loop nests deeper than \(limits.maxCallDepth) levels", pos) }
        let ctx = LoopContext(items: items, depth0: depth0, recurse: recurse)
        for (i, item) in items.enumerated() {
            iterations += 1
            if iterations > limits.maxLoopIterations {
                throw runtimeError("more than \(limits.maxLoopIterations) loop iterations", pos)
            }
            ctx.index0 = i
            let s = Scope(parent: scope)
            try assign(target, item, s, pos)
            s.vars["loop"] = .loop(ctx)
            let flow = try exec(body, s, &out)
            if case .breakLoop = flow { break }
        }
    }

    func assign(_ target: Target, _ value: Value, _ scope: Scope, _ pos: SourcePos) throws {
        switch target {
        case .name(let n):
            scope.vars[n] = value
        case let .attribute(obj, attr):
            guard case .namespace(let ns)? = scope.lookup(obj) else {
                throw runtimeError("cannot assign attribute on non-namespace object '\(obj)'", pos)
            }
            ns.attributes.set(attr, value)
        case .tuple(let targets):
            let items: [Value]
            do { items = try iterate(value) } catch { throw wrap(error, pos) }
            guard items.count == targets.count else {
                throw runtimeError(items.count > targets.count
                    ? "too many values to unpack (expected \(targets.count))"
                    : "not enough values to unpack (expected \(targets.count), got \(items.count))", pos)
            }
            for (t, v) in zip(targets, items) { try assign(t, v, scope, pos) }
        }
    }

    // MARK: expressions

    func eval(_ e: Expr, _ scope: Scope) throws -> Value {
        do {
            return try evalInner(e, scope)
        } catch {
            throw wrap(error, e.pos)
        }
    }

    func evalArgs(_ a: CallArgs, _ scope: Scope) throws -> Arguments {
        var args = Arguments()
        for p in a.positional { args.positional.append(try eval(p, scope)) }
        if let star = a.star { args.positional += try iterate(try eval(star, scope)) }
        for (k, v) in a.keyword { args.keyword.append((k, try eval(v, scope))) }
        if let ds = a.doubleStar {
            guard case .dict(let d) = try eval(ds, scope) else { throw Failure("argument after ** must be a mapping") }
            for (k, v) in d.items {
                guard case .string(let ks) = k else { throw Failure("keywords must be strings") }
                args.keyword.append((ks, v))
            }
        }
        return args
    }

    func evalInner(_ e: Expr, _ scope: Scope) throws -> Value {
        switch e.kind {
        case .literal(let v):
            return v
        case .name(let n):
            return scope.lookup(n) ?? .undef("'\(n)' is undefined")
        case .list(let items):
            return .list(try items.map { try eval($0, scope) })
        case .tuple(let items):
            return .tuple(try items.map { try eval($0, scope) })
        case .dict(let pairs):
            var d = PyDict()
            for (k, v) in pairs {
                let key = try eval(k, scope)
                guard d.set(key, try eval(v, scope)) else { throw Failure("unhashable type: '\(key.typeName)'") }
            }
            return .dict(d)
        case let .getattr(obj, name):
            return try getAttr(try eval(obj, scope), name)
        case let .getitem(obj, key):
            return try getItem(try eval(obj, scope), try eval(key, scope))
        case let .slice(obj, a, b, c):
            let base = try eval(obj, scope)
            return try slice(base, try a.map { try eval($0, scope) }, try b.map { try eval($0, scope) },
                             try c.map { try eval($0, scope) })
        case let .call(callee, argExprs):
            let f = try eval(callee, scope)
            let args = try evalArgs(argExprs, scope)
            return try callValue(f, args)
        case let .filter(value, name, args):
            return try applyFilter(name, try eval(value, scope), args, scope, e.pos)
        case let .test(value, name, args, negated):
            let v = try eval(value, scope)
            let r = try applyTest(name, v, try evalArgs(args, scope))
            return .bool(r != negated)
        case .neg(let x):
            let v = try eval(x, scope)
            switch v.asNumber {
            case .int(let i)?:
                let (r, o) = (0).subtractingReportingOverflow(i)
                if o { throw Failure("integer overflow") }
                return .int(r)
            case .double(let d)?: return .double(-d)
            default:
                if case .undefined(let u) = v { throw Failure(u.message) }
                throw Failure("bad operand type for unary -: '\(v.typeName)'")
            }
        case .pos(let x):
            let v = try eval(x, scope)
            guard let n = v.asNumber else {
                if case .undefined(let u) = v { throw Failure(u.message) }
                throw Failure("bad operand type for unary +: '\(v.typeName)'")
            }
            return n
        case .not(let x):
            return .bool(!(try eval(x, scope).truthy))
        case let .and(a, b):
            let l = try eval(a, scope)
            return l.truthy ? try eval(b, scope) : l
        case let .or(a, b):
            let l = try eval(a, scope)
            return l.truthy ? l : try eval(b, scope)
        case let .binary(op, a, b):
            return try binary(op, try eval(a, scope), try eval(b, scope))
        case let .compare(first, ops):
            var left = try eval(first, scope)
            for (op, rhs) in ops {
                let right = try eval(rhs, scope)
                if !(try compare(op, left, right)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case let .cond(test, then, other):
            if try eval(test, scope).truthy { return try eval(then, scope) }
            if let other { return try eval(other, scope) }
            return .undef("the inline if-expression evaluated to false and no else section was defined")
        }
    }

    // MARK: operators

    func compare(_ op: String, _ a: Value, _ b: Value) throws -> Bool {
        switch op {
        case "==": return pyEqual(a, b)
        case "!=": return !pyEqual(a, b)
        case "in": return try contains(b, a)
        case "notin": return !(try contains(b, a))
        default:
            let c = try order(a, b)
            switch op {
            case "<": return c < 0
            case ">": return c > 0
            case "<=": return c <= 0
            default: return c >= 0
            }
        }
    }

    /// Python ordering for `<` and sorting; fails for mixed types as Python does.
    func order(_ a: Value, _ b: Value) throws -> Int {
        if case .undefined(let u) = a { throw Failure(u.message) }
        if case .undefined(let u) = b { throw Failure(u.message) }
        switch (a, b) {
        case (.string(let x), .string(let y)): return compareScalars(x, y)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            for (p, q) in zip(x, y) where !pyEqual(p, q) { return try order(p, q) }
            return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
        default:
            if let x = a.asNumber, let y = b.asNumber {
                if case .int(let i) = x, case .int(let j) = y { return i == j ? 0 : (i < j ? -1 : 1) }
                let (p, q) = (x.asDouble ?? 0, y.asDouble ?? 0)
                return p == q ? 0 : (p < q ? -1 : 1)
            }
            throw Failure("'<' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    func contains(_ container: Value, _ item: Value) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let sub) = item else {
                if case .undefined(let u) = item { throw Failure(u.message) }
                throw Failure("'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return ScalarSearch.contains(s, sub)
        case .list(let a), .tuple(let a): return a.contains { pyEqual($0, item) }
        case .dict(let d): return d.get(item) != nil
        case .undefined: return false
        case .namespace(let n): return n.attributes.get(item) != nil
        default: throw Failure("argument of type '\(container.typeName)' is not iterable")
        }
    }

    func binary(_ op: String, _ a: Value, _ b: Value) throws -> Value {
        if op == "~" { return .string(PyFormat.str(a) + PyFormat.str(b)) }
        if case .undefined(let u) = a { throw Failure(u.message) }
        if case .undefined(let u) = b { throw Failure(u.message) }
        func unsupported() -> Failure {
            Failure("unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'")
        }
        switch (op, a, b) {
        case ("+", .string(let x), .string(let y)):
            if x.utf8.count + y.utf8.count > limits.maxOutputBytes { throw Failure("string is larger than the output limit") }
            return .string(x + y)
        case ("+", .list(let x), .list(let y)): return .list(x + y)
        case ("+", .tuple(let x), .tuple(let y)): return .tuple(x + y)
        case ("*", .string(let s), _), ("*", _, .string(let s)):
            guard case .int(let n)? = (a.isString ? b : a).asNumber else { throw unsupported() }
            if n > 0, s.utf8.count * n > limits.maxOutputBytes { throw Failure("string repetition is larger than the output limit") }
            return .string(n > 0 ? String(repeating: s, count: n) : "")
        case ("*", .list(let l), _), ("*", _, .list(let l)):
            guard case .int(let n)? = (a.isList ? b : a).asNumber else { throw unsupported() }
            if n > 0, l.count * n > limits.maxRange * 10 { throw Failure("list repetition is too large") }
            return .list(n > 0 ? Array([[Value]](repeating: l, count: n).joined()) : [])
        case ("%", .string(let f), _):
            return .string(try PyFormat.percent(f, b))
        default: break
        }
        guard let x = a.asNumber, let y = b.asNumber else { throw unsupported() }
        if case .int(let i) = x, case .int(let j) = y {
            switch op {
            case "+", "-", "*":
                let (r, o) = op == "+" ? i.addingReportingOverflow(j) : op == "-" ? i.subtractingReportingOverflow(j) : i.multipliedReportingOverflow(by: j)
                if o { throw Failure("integer overflow in \(op)") }
                return .int(r)
            case "/":
                if j == 0 { throw Failure("division by zero") }
                return .double(Double(i) / Double(j))
            case "//":
                if j == 0 { throw Failure("integer division or modulo by zero") }
                if i == Int.min && j == -1 { throw Failure("integer overflow in //") }
                var q = i / j
                if (i % j != 0) && ((i < 0) != (j < 0)) { q -= 1 }
                return .int(q)
            case "%":
                if j == 0 { throw Failure("integer division or modulo by zero") }
                if j == -1 { return .int(0) }
                var r = i % j
                if r != 0 && ((r < 0) != (j < 0)) { r += j }
                return .int(r)
            case "**":
                if j < 0 { return .double(pow(Double(i), Double(j))) }
                var result = 1, base = i, e = j
                while e > 0 {
                    if e & 1 == 1 {
                        let (r, o) = result.multipliedReportingOverflow(by: base)
                        if o { throw Failure("integer overflow in **") }
                        result = r
                    }
                    e >>= 1
                    if e > 0 {
                        let (r, o) = base.multipliedReportingOverflow(by: base)
                        if o { throw Failure("integer overflow in **") }
                        base = r
                    }
                }
                return .int(result)
            default: throw unsupported()
            }
        }
        let p = x.asDouble ?? 0, q = y.asDouble ?? 0
        switch op {
        case "+": return .double(p + q)
        case "-": return .double(p - q)
        case "*": return .double(p * q)
        case "/":
            if q == 0 { throw Failure("float division by zero") }
            return .double(p / q)
        case "//":
            if q == 0 { throw Failure("float floor division by zero") }
            return .double((p / q).rounded(.down))
        case "%":
            if q == 0 { throw Failure("float modulo") }
            var r = fmod(p, q)
            if r != 0 && ((r < 0) != (q < 0)) { r += q }
            return .double(r)
        case "**":
            return .double(pow(p, q))
        default: throw unsupported()
        }
    }

    // MARK: access

    static let dictMethods: Set<String> = ["items", "keys", "values", "get", "copy", "pop", "popitem", "setdefault", "update", "clear", "fromkeys"]
    static let listMethods: Set<String> = ["index", "count", "copy", "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"]
    static let unsafeMethods: Set<String> = ["pop", "popitem", "setdefault", "update", "clear", "append", "extend", "insert", "remove", "sort", "reverse"]

    static func unsafe(_ name: String, _ v: Value) -> Value {
        // jinja2's ImmutableSandboxedEnvironment hands back an undefined that raises SecurityError.
        .undef("access to attribute '\(name)' of '\(v.typeName)' object is unsafe (templates may not modify data)")
    }

    /// jinja2's sandboxed `getattr`: Python attribute first, then item.
    func getAttr(_ obj: Value, _ name: String) throws -> Value {
        switch obj {
        case .undefined(let u):
            throw Failure(u.message)
        case .dict(let d):
            if Interpreter.dictMethods.contains(name) {
                if Interpreter.unsafeMethods.contains(name) { return Interpreter.unsafe(name, obj) }
                return dictMethod(d, name)
            }
            return d.get(name) ?? .undef("'dict object' has no attribute '\(name)'")
        case .string(let s):
            return stringMethod(s, name) ?? .undef("'str object' has no attribute '\(name)'")
        case .list(let l), .tuple(let l):
            if Interpreter.listMethods.contains(name) {
                if Interpreter.unsafeMethods.contains(name) { return Interpreter.unsafe(name, obj) }
                return listMethod(l, name)
            }
            return .undef("'\(obj.typeName) object' has no attribute '\(name)'")
        case .namespace(let n):
            return n.attributes.get(name) ?? .undef("'Namespace object' has no attribute '\(name)'")
        case .loop(let l):
            return loopAttribute(l, name)
        case .macro(let m):
            switch name {
            case "name": return .string(m.def.name)
            case "arguments": return .tuple(m.def.params.map { .string($0.0) })
            default: return .undef("'Macro object' has no attribute '\(name)'")
            }
        default:
            return .undef("'\(obj.typeName) object' has no attribute '\(name)'")
        }
    }

    /// jinja2's `getitem`: item first, then attribute for string keys.
    func getItem(_ obj: Value, _ key: Value) throws -> Value {
        switch obj {
        case .undefined(let u):
            throw Failure(u.message)
        case .dict(let d):
            if let v = d.get(key) { return v }
        case .list(let l), .tuple(let l):
            if case .int(let i)? = key.asNumber, !key.isDouble {
                let j = i < 0 ? i + l.count : i
                if j >= 0 && j < l.count { return l[j] }
                return .undef("'\(obj.typeName) object' has no element \(i)")
            }
        case .string(let s):
            if case .int(let i)? = key.asNumber, !key.isDouble {
                let scalars = Array(s.unicodeScalars)
                let j = i < 0 ? i + scalars.count : i
                if j >= 0 && j < scalars.count { return .string(String(scalars[j])) }
                return .undef("'str object' has no element \(i)")
            }
        default: break
        }
        if case .string(let name) = key { return try getAttr(obj, name) }
        return .undef("'\(obj.typeName) object' has no element \(PyFormat.repr(key))")
    }

    func slice(_ obj: Value, _ a: Value?, _ b: Value?, _ c: Value?) throws -> Value {
        func intOrNil(_ v: Value?) throws -> Int? {
            guard let v, !v.isNone else { return nil }
            guard case .int(let i)? = v.asNumber, !v.isDouble else {
                throw Failure("slice indices must be integers or None")
            }
            return i
        }
        let step = try intOrNil(c) ?? 1
        if step == 0 { throw Failure("slice step cannot be zero") }
        func indices(_ n: Int) throws -> [Int] {
            func clamp(_ v: Int?, _ def: Int) -> Int {
                guard var v else { return def }
                if v < 0 { v += n }
                if step > 0 { return min(max(v, 0), n) }
                return min(max(v, -1), n - 1)
            }
            let start = clamp(try intOrNil(a), step > 0 ? 0 : n - 1)
            let stop = clamp(try intOrNil(b), step > 0 ? n : -1)
            var out: [Int] = []
            var i = start
            while step > 0 ? i < stop : i > stop { out.append(i); i += step }
            return out
        }
        switch obj {
        case .undefined(let u): throw Failure(u.message)
        case .list(let l): return .list(try indices(l.count).map { l[$0] })
        case .tuple(let l): return .tuple(try indices(l.count).map { l[$0] })
        case .string(let s):
            let sc = Array(s.unicodeScalars)
            var v = String.UnicodeScalarView()
            for i in try indices(sc.count) { v.append(sc[i]) }
            return .string(String(v))
        default:
            return .undef("'\(obj.typeName) object' is not subscriptable")
        }
    }

    func loopAttribute(_ l: LoopContext, _ name: String) -> Value {
        let n = l.items.count
        switch name {
        case "index": return .int(l.index0 + 1)
        case "index0": return .int(l.index0)
        case "revindex": return .int(n - l.index0)
        case "revindex0": return .int(n - l.index0 - 1)
        case "first": return .bool(l.index0 == 0)
        case "last": return .bool(l.index0 == n - 1)
        case "length": return .int(n)
        case "depth": return .int(l.depth0 + 1)
        case "depth0": return .int(l.depth0)
        case "previtem": return l.index0 > 0 ? l.items[l.index0 - 1] : .undef("there is no previous item")
        case "nextitem": return l.index0 + 1 < n ? l.items[l.index0 + 1] : .undef("there is no next item")
        case "cycle":
            return .function(NativeFunction("cycle") { _, args in
                guard !args.positional.isEmpty else { throw Failure("no items for cycling given") }
                return args.positional[l.index0 % args.positional.count]
            })
        case "changed":
            return .function(NativeFunction("changed") { _, args in
                let now = args.positional
                if let last = l.lastChanged, last.count == now.count, zip(last, now).allSatisfy({ pyEqual($0, $1) }) {
                    return .bool(false)
                }
                l.lastChanged = now
                return .bool(true)
            })
        default:
            return .undef("'LoopContext object' has no attribute '\(name)'")
        }
    }

    // MARK: calls

    func callValue(_ f: Value, _ args: Arguments) throws -> Value {
        switch f {
        case .function(let fn):
            return try fn.body(self, args)
        case .macro(let m):
            return try callMacro(m, args)
        case .loop(let l):
            guard let r = l.recurse else { throw Failure("the loop must be marked 'recursive' to be called") }
            return try r.body(self, args)
        case .undefined(let u):
            throw Failure(u.message)
        default:
            throw Failure("'\(f.typeName)' object is not callable")
        }
    }

    func callMacro(_ m: Macro, _ args: Arguments) throws -> Value {
        callDepth += 1
        defer { callDepth -= 1 }
        if callDepth > limits.maxCallDepth {
            throw Failure("macro calls nest deeper than \(limits.maxCallDepth) levels (runaway recursion in '\(m.def.name)'?)")
        }
        let s = Scope(parent: m.closure)
        let params = m.def.params
        var keyword = args.keyword
        if let i = keyword.firstIndex(where: { $0.0 == "caller" }) {
            s.vars["caller"] = keyword[i].1
            keyword.remove(at: i)
        }
        for (i, (name, def)) in params.enumerated() {
            if i < args.positional.count {
                if keyword.contains(where: { $0.0 == name }) {
                    throw Failure("macro '\(m.def.name)' got multiple values for argument '\(name)'")
                }
                s.vars[name] = args.positional[i]
            } else if let k = keyword.firstIndex(where: { $0.0 == name }) {
                s.vars[name] = keyword[k].1
                keyword.remove(at: k)
            } else if let def {
                s.vars[name] = try eval(def, s)
            } else {
                s.vars[name] = .undef("parameter '\(name)' was not provided")
            }
        }
        s.vars["varargs"] = .tuple(args.positional.count > params.count ? Array(args.positional[params.count...]) : [])
        var kw = PyDict()
        for (k, v) in keyword { kw.set(k, v) }
        s.vars["kwargs"] = .dict(kw)
        var out = ""
        _ = try exec(m.def.body, s, &out)
        return .string(out)
    }

    // MARK: iteration

    func iterate(_ v: Value) throws -> [Value] {
        switch v {
        case .list(let l), .tuple(let l): return l
        case .dict(let d): return d.keys
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        default: throw Failure("'\(v.typeName)' object is not iterable")
        }
    }

    func length(_ v: Value) throws -> Int {
        switch v {
        case .list(let l), .tuple(let l): return l.count
        case .dict(let d): return d.count
        case .string(let s): return s.unicodeScalars.count
        case .undefined: return 0
        case .namespace(let n): return n.attributes.count
        default: throw Failure("object of type '\(v.typeName)' has no len()")
        }
    }
}

extension Value {
    var isString: Bool {
        if case .string = self { return true }
        return false
    }
    var isList: Bool {
        if case .list = self { return true }
        return false
    }
    var isDouble: Bool {
        if case .double = self { return true }
        return false
    }
}
