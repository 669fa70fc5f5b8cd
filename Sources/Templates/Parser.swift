/// Recursive-descent parser following jinja2's parser.py precedence:
/// condexpr < or < and < not < compare < +,- < ~ < *,/,//,% < ** < unary < filters/tests/postfix.
struct Parser {
    var tokens: [Token]
    var k = 0
    var depth = 0
    var loopDepth = 0
    static let maxDepth = 200

    init(tokens: [Token]) { self.tokens = tokens }

    var cur: Token { tokens[min(k, tokens.count - 1)] }
    var next: Token { tokens[min(k + 1, tokens.count - 1)] }

    func fail(_ m: String, _ p: SourcePos? = nil) -> TemplateError {
        let p = p ?? cur.pos
        return .syntax(message: m, line: p.line, column: p.column)
    }

    mutating func advance() { if k < tokens.count - 1 { k += 1 } }

    func isOp(_ o: String) -> Bool { cur.tok == .op(o) }
    func isName(_ n: String) -> Bool { cur.tok == .name(n) }

    mutating func skipOp(_ o: String) -> Bool {
        if isOp(o) { advance(); return true }
        return false
    }

    mutating func skipName(_ n: String) -> Bool {
        if isName(n) { advance(); return true }
        return false
    }

    mutating func expectOp(_ o: String) throws(TemplateError) {
        guard skipOp(o) else { throw fail("expected '\(o)', found \(describe(cur.tok))") }
    }

    mutating func expectName() throws(TemplateError) -> String {
        guard case .name(let n) = cur.tok else { throw fail("expected a name, found \(describe(cur.tok))") }
        advance()
        return n
    }

    mutating func expectBlockEnd() throws(TemplateError) {
        guard cur.tok == .blockEnd else { throw fail("expected end of statement '%}', found \(describe(cur.tok))") }
        advance()
    }

    func describe(_ t: Tok) -> String {
        switch t {
        case .text: return "text"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "'%}'"
        case .varBegin: return "'{{'"
        case .varEnd: return "'}}'"
        case .name(let n): return "'\(n)'"
        case .string: return "a string"
        case .int, .float: return "a number"
        case .op(let o): return "'\(o)'"
        case .raw: return "raw block"
        case .eof: return "end of template"
        }
    }

    mutating func enter() throws(TemplateError) {
        depth += 1
        if depth > Parser.maxDepth { throw fail("template nests deeper than \(Parser.maxDepth) levels") }
    }

    // MARK: statements

    mutating func parseTemplate() throws(TemplateError) -> [Stmt] {
        let (body, end) = try parseBody(until: [])
        if let end { throw fail("unexpected '\(end)' tag") }
        return body
    }

    /// Parses statements until a block tag whose name is in `until`; returns that name (the
    /// parser is positioned just after the name) or nil at end of input.
    mutating func parseBody(until: Set<String>) throws(TemplateError) -> ([Stmt], String?) {
        try enter()
        defer { depth -= 1 }
        var out: [Stmt] = []
        while true {
            let t = cur
            switch t.tok {
            case .eof:
                if !until.isEmpty {
                    throw fail("unexpected end of template; expected one of: \(until.sorted().joined(separator: ", "))")
                }
                return (out, nil)
            case .text(let s):
                out.append(.text(s)); advance()
            case .raw(let s):
                out.append(.text(s)); advance()
            case .varBegin:
                advance()
                let e = try parseTuple()
                guard cur.tok == .varEnd else { throw fail("expected end of print statement '}}', found \(describe(cur.tok))") }
                advance()
                out.append(.output(e))
            case .blockBegin:
                advance()
                guard case .name(let n) = cur.tok else { throw fail("expected a statement name, found \(describe(cur.tok))") }
                if until.contains(n) {
                    advance()
                    return (out, n)
                }
                out.append(try parseStatement())
            default:
                throw fail("unexpected \(describe(t.tok))")
            }
        }
    }

    mutating func parseStatement() throws(TemplateError) -> Stmt {
        let p = cur.pos
        let n = try expectName()
        switch n {
        case "for": return try parseFor(p)
        case "if": return try parseIf()
        case "set": return try parseSet(p)
        case "macro": return try parseMacro()
        case "call": return try parseCallBlock()
        case "filter": return try parseFilterBlock()
        case "with": return try parseWith()
        case "break", "continue":
            if loopDepth == 0 { throw fail("'\(n)' outside of a for loop", p) }
            try expectBlockEnd()
            return n == "break" ? .breakLoop(p) : .continueLoop(p)
        case "endfor", "endif", "endmacro", "endcall", "endfilter", "endset", "endwith", "else", "elif":
            throw fail("unexpected '\(n)' tag", p)
        default:
            throw fail("unknown or unsupported statement '\(n)'", p)
        }
    }

    mutating func parseFor(_ p: SourcePos) throws(TemplateError) -> Stmt {
        let target = try parseAssignTarget(extraEnd: "in")
        guard skipName("in") else { throw fail("expected 'in' in for loop") }
        let iter = try parseTuple(withCondExpr: false)
        var filter: Expr? = nil
        if skipName("if") { filter = try parseExpression() }
        let recursive = skipName("recursive")
        try expectBlockEnd()
        loopDepth += 1
        let (body, end) = try parseBody(until: ["endfor", "else"])
        loopDepth -= 1
        var elseBody: [Stmt]? = nil
        try expectBlockEnd()
        if end == "else" {
            let (e, _) = try parseBody(until: ["endfor"])
            try expectBlockEnd()
            elseBody = e
        }
        return .forStmt(target: target, iter: iter, filter: filter, body: body, elseBody: elseBody, recursive: recursive, pos: p)
    }

    mutating func parseIf() throws(TemplateError) -> Stmt {
        var branches: [(Expr, [Stmt])] = []
        var cond = try parseTuple()
        while true {
            try expectBlockEnd()
            let (body, end) = try parseBody(until: ["elif", "else", "endif"])
            branches.append((cond, body))
            if end == "elif" {
                cond = try parseTuple()
                continue
            }
            if end == "else" {
                try expectBlockEnd()
                let (e, _) = try parseBody(until: ["endif"])
                try expectBlockEnd()
                return .ifStmt(branches, e)
            }
            try expectBlockEnd()
            return .ifStmt(branches, nil)
        }
    }

    mutating func parseSet(_ p: SourcePos) throws(TemplateError) -> Stmt {
        let target = try parseAssignTarget(withNamespace: true)
        if skipOp("=") {
            let e = try parseTuple()
            try expectBlockEnd()
            return .set(target, e, p)
        }
        var filters: [FilterCall] = []
        while isOp("|") {
            advance()
            filters.append(try parseFilterCall())
        }
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endset"])
        try expectBlockEnd()
        return .setBlock(target, filters, body, p)
    }

    mutating func parseSignature() throws(TemplateError) -> [(String, Expr?)] {
        var params: [(String, Expr?)] = []
        try expectOp("(")
        while !isOp(")") {
            if !params.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let n = try expectName()
            var def: Expr? = nil
            if skipOp("=") { def = try parseExpression() }
            params.append((n, def))
        }
        try expectOp(")")
        return params
    }

    mutating func parseMacro() throws(TemplateError) -> Stmt {
        let name = try expectName()
        let params = try parseSignature()
        try expectBlockEnd()
        let saved = loopDepth
        loopDepth = 0
        let (body, _) = try parseBody(until: ["endmacro"])
        loopDepth = saved
        if case .name = cur.tok { advance() }  // {% endmacro name %}
        try expectBlockEnd()
        return .macro(MacroDef(name: name, params: params, body: body))
    }

    mutating func parseCallBlock() throws(TemplateError) -> Stmt {
        var params: [(String, Expr?)] = []
        if isOp("(") { params = try parseSignature() }
        let call = try parseExpression()
        guard case .call = call.kind else { throw fail("expected a macro call in call block", call.pos) }
        try expectBlockEnd()
        let saved = loopDepth
        loopDepth = 0
        let (body, _) = try parseBody(until: ["endcall"])
        loopDepth = saved
        try expectBlockEnd()
        return .callBlock(call: call, params: params, body: body)
    }

    mutating func parseFilterBlock() throws(TemplateError) -> Stmt {
        var filters: [FilterCall] = [try parseFilterCall()]
        while skipOp("|") { filters.append(try parseFilterCall()) }
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endfilter"])
        try expectBlockEnd()
        return .filterBlock(filters, body)
    }

    mutating func parseWith() throws(TemplateError) -> Stmt {
        var assigns: [(Target, Expr)] = []
        while cur.tok != .blockEnd {
            if !assigns.isEmpty { try expectOp(",") }
            let t = try parseAssignTarget()
            try expectOp("=")
            assigns.append((t, try parseExpression()))
        }
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endwith"])
        try expectBlockEnd()
        return .with(assigns, body)
    }

    mutating func parseAssignTarget(extraEnd: String? = nil, withNamespace: Bool = false) throws(TemplateError) -> Target {
        func one(_ p: inout Parser) throws(TemplateError) -> Target {
            let n = try p.expectName()
            if withNamespace, p.skipOp(".") {
                return .attribute(n, try p.expectName())
            }
            return .name(n)
        }
        var items: [Target] = []
        var sawComma = false
        if skipOp("(") {
            let t = try parseAssignTarget(extraEnd: nil, withNamespace: withNamespace)
            try expectOp(")")
            items.append(t)
        } else {
            items.append(try one(&self))
        }
        while skipOp(",") {
            sawComma = true
            if let extraEnd, isName(extraEnd) { break }
            if isOp("=") { break }
            if skipOp("(") {
                items.append(try parseAssignTarget(extraEnd: nil, withNamespace: withNamespace))
                try expectOp(")")
            } else {
                items.append(try one(&self))
            }
        }
        return sawComma ? .tuple(items) : items[0]
    }

    mutating func parseFilterCall() throws(TemplateError) -> FilterCall {
        let p = cur.pos
        var name = try expectName()
        while isOp("."), case .name(let more) = next.tok { advance(); advance(); name += "." + more }
        var args = CallArgs()
        if isOp("(") { args = try parseCallArgs() }
        return FilterCall(name: name, args: args, pos: p)
    }

    // MARK: expressions

    /// A comma-separated list becomes a tuple (as in `{{ a, b }}` or `for x in a, b`).
    mutating func parseTuple(withCondExpr: Bool = true) throws(TemplateError) -> Expr {
        let p = cur.pos
        var items: [Expr] = []
        var sawComma = false
        while true {
            if !items.isEmpty {
                guard skipOp(",") else { break }
                sawComma = true
                if cur.tok == .blockEnd || cur.tok == .varEnd || isOp(")") || isName("in") || isName("if") { break }
            }
            items.append(withCondExpr ? try parseExpression() : try parseOr())
        }
        if !sawComma, items.count == 1 { return items[0] }
        return Expr(.tuple(items), p)
    }

    mutating func parseExpression() throws(TemplateError) -> Expr {
        try enter()
        defer { depth -= 1 }
        var e = try parseOr()
        while isName("if") {
            let p = cur.pos
            advance()
            let test = try parseOr()
            var other: Expr? = nil
            if skipName("else") { other = try parseExpression() }
            e = Expr(.cond(test: test, then: e, else: other), p)
        }
        return e
    }

    mutating func parseOr() throws(TemplateError) -> Expr {
        var l = try parseAnd()
        while isName("or") {
            let p = cur.pos
            advance()
            l = Expr(.or(l, try parseAnd()), p)
        }
        return l
    }

    mutating func parseAnd() throws(TemplateError) -> Expr {
        var l = try parseNot()
        while isName("and") {
            let p = cur.pos
            advance()
            l = Expr(.and(l, try parseNot()), p)
        }
        return l
    }

    mutating func parseNot() throws(TemplateError) -> Expr {
        if isName("not") {
            let p = cur.pos
            advance()
            try enter()
            defer { depth -= 1 }
            return Expr(.not(try parseNot()), p)
        }
        return try parseCompare()
    }

    mutating func parseCompare() throws(TemplateError) -> Expr {
        let p = cur.pos
        let first = try parseMath1()
        var ops: [(String, Expr)] = []
        while true {
            if case .op(let o) = cur.tok, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                advance()
                ops.append((o, try parseMath1()))
            } else if isName("in") {
                advance()
                ops.append(("in", try parseMath1()))
            } else if isName("not"), next.tok == .name("in") {
                advance(); advance()
                ops.append(("notin", try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? first : Expr(.compare(first, ops), p)
    }

    mutating func parseMath1() throws(TemplateError) -> Expr {
        var l = try parseConcat()
        while case .op(let o) = cur.tok, o == "+" || o == "-" {
            let p = cur.pos
            advance()
            l = Expr(.binary(o, l, try parseConcat()), p)
        }
        return l
    }

    mutating func parseConcat() throws(TemplateError) -> Expr {
        var l = try parseMath2()
        while isOp("~") {
            let p = cur.pos
            advance()
            l = Expr(.binary("~", l, try parseMath2()), p)
        }
        return l
    }

    mutating func parseMath2() throws(TemplateError) -> Expr {
        var l = try parsePow()
        while case .op(let o) = cur.tok, ["*", "/", "//", "%"].contains(o) {
            let p = cur.pos
            advance()
            l = Expr(.binary(o, l, try parsePow()), p)
        }
        return l
    }

    mutating func parsePow() throws(TemplateError) -> Expr {
        var l = try parseUnary()
        while isOp("**") {
            let p = cur.pos
            advance()
            l = Expr(.binary("**", l, try parseUnary()), p)
        }
        return l
    }

    mutating func parseUnary(withFilter: Bool = true) throws(TemplateError) -> Expr {
        try enter()
        defer { depth -= 1 }
        let p = cur.pos
        var e: Expr
        if isOp("-") {
            advance()
            e = Expr(.neg(try parseUnary(withFilter: false)), p)
        } else if isOp("+") {
            advance()
            e = Expr(.pos(try parseUnary(withFilter: false)), p)
        } else {
            e = try parsePostfix(try parsePrimary())
        }
        if withFilter { e = try parseFilterExpr(e) }
        return e
    }

    mutating func parsePrimary() throws(TemplateError) -> Expr {
        let t = cur
        switch t.tok {
        case .name(let n):
            advance()
            switch n {
            case "true", "True": return Expr(.literal(.bool(true)), t.pos)
            case "false", "False": return Expr(.literal(.bool(false)), t.pos)
            case "none", "None": return Expr(.literal(.none), t.pos)
            default: return Expr(.name(n), t.pos)
            }
        case .string(let s):
            advance()
            var str = s
            while case .string(let more) = cur.tok { str += more; advance() }  // adjacent literals join
            return Expr(.literal(.string(str)), t.pos)
        case .int(let n):
            advance()
            return Expr(.literal(.int(n)), t.pos)
        case .float(let d):
            advance()
            return Expr(.literal(.double(d)), t.pos)
        case .op("("):
            advance()
            if skipOp(")") { return Expr(.tuple([]), t.pos) }
            let e = try parseTuple()
            try expectOp(")")
            return e
        case .op("["):
            advance()
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return Expr(.list(items), t.pos)
        case .op("{"):
            advance()
            var items: [(Expr, Expr)] = []
            while !isOp("}") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let key = try parseExpression()
                try expectOp(":")
                items.append((key, try parseExpression()))
            }
            try expectOp("}")
            return Expr(.dict(items), t.pos)
        default:
            throw fail("unexpected \(describe(t.tok)) in expression")
        }
    }

    mutating func parsePostfix(_ start: Expr) throws(TemplateError) -> Expr {
        var e = start
        while true {
            let p = cur.pos
            if isOp(".") {
                advance()
                switch cur.tok {
                case .name(let n):
                    advance()
                    e = Expr(.getattr(e, n), p)
                case .int(let i):
                    advance()
                    e = Expr(.getitem(e, Expr(.literal(.int(i)), p)), p)
                default:
                    throw fail("expected an attribute name after '.'")
                }
            } else if isOp("[") {
                advance()
                e = try parseSubscript(e, p)
            } else if isOp("(") {
                e = Expr(.call(e, try parseCallArgs()), p)
            } else {
                return e
            }
        }
    }

    mutating func parseSubscript(_ base: Expr, _ p: SourcePos) throws(TemplateError) -> Expr {
        // Either an index expression or a slice a:b:c.
        var parts: [Expr?] = []
        var current: Expr? = nil
        var isSlice = false
        while true {
            if isOp("]") { break }
            if skipOp(":") {
                isSlice = true
                parts.append(current)
                current = nil
                continue
            }
            if current != nil { throw fail("expected ']' or ':' in subscript") }
            current = try parseExpression()
            if isOp(",") { throw fail("tuple subscripts are not supported") }
        }
        try expectOp("]")
        if !isSlice {
            guard let current else { throw fail("empty subscript", p) }
            return Expr(.getitem(base, current), p)
        }
        parts.append(current)
        if parts.count > 3 { throw fail("too many ':' in slice", p) }
        while parts.count < 3 { parts.append(nil) }
        return Expr(.slice(base, parts[0], parts[1], parts[2]), p)
    }

    mutating func parseCallArgs() throws(TemplateError) -> CallArgs {
        try expectOp("(")
        var args = CallArgs()
        var first = true
        while !isOp(")") {
            if !first { try expectOp(",") }
            first = false
            if isOp(")") { break }
            if skipOp("**") {
                args.doubleStar = try parseExpression()
            } else if skipOp("*") {
                args.star = try parseExpression()
            } else if case .name(let n) = cur.tok, next.tok == .op("=") {
                advance(); advance()
                args.keyword.append((n, try parseExpression()))
            } else {
                if !args.keyword.isEmpty { throw fail("positional argument after keyword argument") }
                args.positional.append(try parseExpression())
            }
        }
        try expectOp(")")
        return args
    }

    mutating func parseFilterExpr(_ start: Expr) throws(TemplateError) -> Expr {
        var e = start
        while true {
            if isOp("|") {
                advance()
                let f = try parseFilterCall()
                e = Expr(.filter(e, f.name, f.args), f.pos)
            } else if isName("is") {
                let p = cur.pos
                advance()
                let negated = skipName("not")
                var name = try expectName()
                while isOp("."), case .name(let more) = next.tok { advance(); advance(); name += "." + more }
                var args = CallArgs()
                if isOp("(") {
                    args = try parseCallArgs()
                } else if startsTestArgument {
                    if isName("is") { throw fail("you cannot chain multiple tests with 'is'") }
                    args.positional = [try parsePostfix(try parsePrimary())]
                }
                e = Expr(.test(e, name, args, negated: negated), p)
            } else if isOp("(") {
                e = Expr(.call(e, try parseCallArgs()), cur.pos)
            } else {
                return e
            }
        }
    }

    /// jinja2 lets a test take one argument without parentheses: `x is divisibleby 3`.
    var startsTestArgument: Bool {
        switch cur.tok {
        case .name(let n): return !["else", "or", "and"].contains(n)
        case .string, .int, .float: return true
        case .op(let o): return o == "(" || o == "[" || o == "{"
        default: return false
        }
    }
}
