import Foundation

/// A parsed Jinja template, rendered with the semantics of Python jinja2 3.1 as Hugging Face's
/// `apply_chat_template` configures it: sandboxed and immutable, `trim_blocks`, `lstrip_blocks`,
/// loop controls, autoescape off.
public struct Template: Sendable {
    let body: SendableBody
    public var limits = TemplateLimits()

    public init(source: String) throws(TemplateError) {
        var lexer = Lexer(source: source)
        let tokens = try lexer.tokenize()
        var parser = Parser(tokens: tokens)
        body = SendableBody(stmts: try parser.parseTemplate())
    }

    /// Renders with the given variables. Besides jinja2's globals (`range`, `namespace`, `dict`,
    /// `joiner`), `raise_exception(msg)` and `strftime_now(format)` (formatting `now` in the local
    /// time zone, as transformers does) are available. `strftimeNow`, when given, replaces that
    /// clock-based formatter entirely (for reproducing a reference that stubbed it).
    public func render(context: [String: TemplateValue], now: Date = Date(),
                       strftimeNow: (@Sendable (_ format: String) -> String)? = nil) throws(TemplateError) -> String
    {
        let interp = Interpreter(limits: limits, now: now)
        interp.strftimeOverride = strftimeNow
        let globals = Scope(parent: nil)
        interp.makeGlobals(into: globals)
        for (k, v) in context { globals.vars[k] = Value(v) }
        let root = Scope(parent: globals)
        var out = ""
        do {
            _ = try interp.exec(body.stmts, root, &out)
        } catch let e as TemplateError {
            throw e
        } catch let r as RaisedByTemplate {
            throw .raised(r.message)
        } catch let f as Failure {
            throw .runtime(message: f.message, line: 0, column: 0)
        } catch {
            throw .runtime(message: "\(error)", line: 0, column: 0)
        }
        return out
    }
}

/// The syntax tree is immutable after parsing, so sharing it across threads is safe.
struct SendableBody: @unchecked Sendable {
    let stmts: [Stmt]
}

/// A model's chat template, rendered like `tokenizer.apply_chat_template(..., tokenize=False)`.
public struct ChatTemplate: Sendable {
    public let template: Template

    public init(source: String) throws(TemplateError) {
        template = try Template(source: source)
    }

    /// - Parameters:
    ///   - messages: a list of message objects (`role`, `content`, optional `tool_calls`, …).
    ///   - tools: the tool definitions, or nil for none (then `tools` is undefined in the template).
    ///   - extra: more template variables (e.g. `enable_thinking`), like apply_chat_template's kwargs.
    ///   - now: the clock `strftime_now` reads.
    ///   - strftimeNow: optional replacement for `strftime_now` itself (format in, text out).
    public func render(messages: TemplateValue, tools: TemplateValue? = nil, addGenerationPrompt: Bool,
                       bosToken: String, eosToken: String, extra: [String: TemplateValue] = [:],
                       now: Date = Date(), strftimeNow: (@Sendable (_ format: String) -> String)? = nil) throws(TemplateError) -> String
    {
        guard case .array = messages else {
            throw .runtime(message: "messages must be a list of message objects", line: 0, column: 0)
        }
        var context = extra
        context["messages"] = messages
        if let tools { context["tools"] = tools }
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        context["bos_token"] = .string(bosToken)
        context["eos_token"] = .string(eosToken)
        return try template.render(context: context, now: now, strftimeNow: strftimeNow)
    }
}
