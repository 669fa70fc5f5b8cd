import Foundation

/// A parsed Jinja template, rendered with the semantics of Python jinja2 3.1 as Hugging Face's
/// `apply_chat_template` configures it: sandboxed and immutable, `trim_blocks`, `lstrip_blocks`,
/// loop controls, autoescape off.
public struct Template: Sendable {
    let body: SendableBody
    public var limits = TemplateLimits()

    public init(source: String) throws(TemplateError) {
        let parsed: Result<SendableBody, TemplateError> = onLargeStack {
            do throws(TemplateError) {
                var lexer = Lexer(source: source)
                var parser = Parser(tokens: try lexer.tokenize())
                return .success(SendableBody(stmts: try parser.parseTemplate()))
            } catch {
                return .failure(error)
            }
        }
        body = try parsed.get()
    }

    /// Renders with the given variables. Besides jinja2's globals (`range`, `namespace`, `dict`,
    /// `joiner`), `raise_exception(msg)` and `strftime_now(format)` (formatting `now` in the local
    /// time zone, as transformers does) are available. `strftimeNow`, when given, replaces that
    /// clock-based formatter entirely (for reproducing a reference that stubbed it).
    public func render(context: [String: TemplateValue], now: Date = Date(),
                       strftimeNow: (@Sendable (_ format: String) -> String)? = nil) throws(TemplateError) -> String
    {
        let job = RenderJob(body: body, limits: limits, now: now, strftimeNow: strftimeNow, context: context)
        return try onLargeStack { job.run() }.get()
    }
}

/// Runs `body` on its own thread with a large stack and waits for it: the parser and interpreter
/// are recursive, and the caller may be on a 512 KiB secondary thread, too small for the nesting
/// our limits allow.
func onLargeStack<T>(_ body: @escaping () -> T) -> T {
    let box = LargeStackBox(body)
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        box.value = box.body()
        done.signal()
    }
    thread.stackSize = 64 << 20  // virtual; only touched pages are committed
    thread.start()
    done.wait()
    guard let value = box.value else { return body() }  // unreachable: the thread always sets it
    return value
}

/// Carries the work and its result across the thread hand-off (the semaphore orders the accesses).
final class LargeStackBox<T>: @unchecked Sendable {
    let body: () -> T
    var value: T? = nil
    init(_ body: @escaping () -> T) { self.body = body }
}

/// One render's inputs and the interpreter run.
final class RenderJob: @unchecked Sendable {
    let body: SendableBody
    let limits: TemplateLimits
    let now: Date
    let strftimeNow: (@Sendable (String) -> String)?
    let context: [String: TemplateValue]

    init(body: SendableBody, limits: TemplateLimits, now: Date, strftimeNow: (@Sendable (String) -> String)?,
         context: [String: TemplateValue]) {
        self.body = body
        self.limits = limits
        self.now = now
        self.strftimeNow = strftimeNow
        self.context = context
    }

    func run() -> Result<String, TemplateError> {
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
            return .failure(e)
        } catch let r as RaisedByTemplate {
            return .failure(.raised(r.message))
        } catch let f as Failure {
            return .failure(.runtime(message: f.message, line: 0, column: 0))
        } catch {
            return .failure(.runtime(message: "\(error)", line: 0, column: 0))
        }
        return .success(out)
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
