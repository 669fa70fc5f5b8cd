/// Template syntax tree, shaped after jinja2's nodes (Output, For, If, Assign, Macro, CallBlock, …).

final class Expr {
    let kind: ExprKind
    let pos: SourcePos
    init(_ kind: ExprKind, _ pos: SourcePos) {
        self.kind = kind
        self.pos = pos
    }
}

struct CallArgs {
    var positional: [Expr] = []
    var keyword: [(String, Expr)] = []
    var star: Expr? = nil
    var doubleStar: Expr? = nil
}

enum ExprKind {
    case literal(Value)
    case name(String)
    case list([Expr])
    case tuple([Expr])
    case dict([(Expr, Expr)])
    case getattr(Expr, String)
    case getitem(Expr, Expr)
    case slice(Expr, Expr?, Expr?, Expr?)
    case call(Expr, CallArgs)
    case filter(Expr, String, CallArgs)
    case test(Expr, String, CallArgs, negated: Bool)
    case neg(Expr)
    case pos(Expr)
    case not(Expr)
    case binary(String, Expr, Expr)
    case and(Expr, Expr)
    case or(Expr, Expr)
    case compare(Expr, [(String, Expr)])
    case cond(test: Expr, then: Expr, else: Expr?)
}

indirect enum Target {
    case name(String)
    case attribute(String, String)  // namespace attribute: ns.attr
    case tuple([Target])
}

struct FilterCall {
    var name: String
    var args: CallArgs
    var pos: SourcePos
}

final class MacroDef {
    let name: String
    let params: [(String, Expr?)]
    let body: [Stmt]
    init(name: String, params: [(String, Expr?)], body: [Stmt]) {
        self.name = name
        self.params = params
        self.body = body
    }
}

indirect enum Stmt {
    case text(String)
    case output(Expr)
    case ifStmt([(Expr, [Stmt])], [Stmt]?)
    case forStmt(target: Target, iter: Expr, filter: Expr?, body: [Stmt], elseBody: [Stmt]?, recursive: Bool, pos: SourcePos)
    case set(Target, Expr, SourcePos)
    case setBlock(Target, [FilterCall], [Stmt], SourcePos)
    case macro(MacroDef)
    case callBlock(call: Expr, params: [(String, Expr?)], body: [Stmt])
    case filterBlock([FilterCall], [Stmt])
    case with([(Target, Expr)], [Stmt])
    case breakLoop(SourcePos)
    case continueLoop(SourcePos)
}
