import Foundation
import Generation
import Templates

// Tool (function) calling for /v1/chat/completions and /api/chat.
//
// The request's tools reach the model one of two ways:
//  - through the model's own chat template, when it renders `tools` and we know the call format
//    it teaches (Hermes/Qwen `<tool_call>`, Llama 3.x JSON, Mistral `[TOOL_CALLS]`, Granite
//    `<|tool_call|>`); messages are handed over in Hugging Face's shape (`tool_calls[j].function`
//    with `arguments` as an object, `role: tool` with `tool_call_id` and `name`);
//  - otherwise through the built-in prompt (`ToolPrompt.builtinSystemText`): a system-message
//    addition in the Hermes/Qwen style, with earlier calls written back as `<tool_call>` blocks
//    and tool results as `<tool_response>` blocks in a user turn.
// The output is then split into content and calls by `ToolCallParser`, incrementally, so the
// same code serves streamed and whole responses.

/// A function the model may call, as the request defined it.
public struct ToolFunction: Sendable, Equatable {
    public var name: String
    public var description: String?
    /// The JSON schema of the arguments (key order kept); nil when the request gave none.
    public var parameters: TemplateValue?
    /// The tool object as sent (`{"type": "function", "function": {...}}`), for the template.
    public var definition: TemplateValue
}

/// OpenAI's `tool_choice`.
public enum ToolChoice: Sendable, Equatable {
    case auto, none, required
    case function(String)
}

/// One call the model made (or an earlier call a client sends back in the history).
public struct ToolCall: Sendable, Equatable {
    public var id: String
    public var name: String
    /// The arguments object, key order kept.
    public var arguments: TemplateValue
    /// The arguments as compact JSON text (what OpenAI's `function.arguments` carries).
    public var argumentsJSON: String { ToolJSON.string(arguments) }

    public init(id: String, name: String, arguments: TemplateValue) {
        self.id = id; self.name = name; self.arguments = arguments
    }

    static func newID() -> String { API.randomID("call_") }
}

/// How a model writes a tool call.
public enum ToolCallFormat: String, Sendable, CaseIterable {
    /// `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`, possibly several
    /// (Hermes, Qwen 2.5/3, and Steward's built-in prompt).
    case hermes
    /// The whole answer is `{"name": ..., "parameters": {...}}`, optionally after `<|python_tag|>`
    /// (Llama 3.1/3.2 with JSON-based tool calling).
    case llama3
    /// `[TOOL_CALLS][{"name": ..., "arguments": {...}, "id": "..."}, ...]` (Mistral Nemo).
    case mistral
    /// `<|tool_call|>[{"name": ..., "arguments": {...}}, ...]` (Granite 3.x).
    case granite

    /// The text that opens a call in this format (Llama 3's bare JSON also opens with `{`).
    public var trigger: String {
        switch self {
        case .hermes: return "<tool_call>"
        case .llama3: return "<|python_tag|>"
        case .mistral: return "[TOOL_CALLS]"
        case .granite: return "<|tool_call|>"
        }
    }

    /// The format a chat template teaches, when it renders tools in a way we can parse.
    /// Templates that mention `tools` but use another format (DeepSeek's, gpt-oss's harmony)
    /// return nil and get the built-in prompt.
    public static func taught(byTemplate source: String) -> ToolCallFormat? {
        guard source.contains("tools") else { return nil }
        if source.contains("[TOOL_CALLS]") { return .mistral }
        if source.contains("<|tool_call|>") { return .granite }
        if source.contains("<tool_call>") { return .hermes }
        if source.contains("<|start_header_id|>") && source.contains("\"parameters\": ") { return .llama3 }
        return nil
    }
}

/// Everything tool-related about one chat request.
public struct ToolSetup: Sendable {
    public var tools: [ToolFunction] = []
    public var choice: ToolChoice = .auto
    public var parallel = true
    /// The call format the prompt teaches and the parser reads.
    public var format: ToolCallFormat = .hermes
    /// True when the model's template renders the tools; false for the built-in prompt.
    public var viaTemplate = false
    /// Mistral's template insists on 9-character alphanumeric call ids.
    public var shortIDs = false

    public init() {}

    /// Whether this request may produce tool calls at all.
    public var active: Bool { !tools.isEmpty && choice != .none }

    /// The tools the model may call under the choice (one for a named function).
    public var callable: [ToolFunction] {
        switch choice {
        case .none: return []
        case let .function(n): return tools.filter { $0.name == n }
        case .auto, .required: return tools
        }
    }

    /// Reads `tools`, `tool_choice` and `parallel_tool_calls` from the request body (parsed with
    /// key order kept) and picks the prompt path from the model's template source.
    /// Throws a 400 naming the bad field.
    public static func read(_ body: TemplateValue, templateSource: String?) throws -> ToolSetup {
        var s = ToolSetup()
        if let src = templateSource, let f = ToolCallFormat.taught(byTemplate: src) {
            s.format = f
            s.viaTemplate = true
            s.shortIDs = src.contains("length != 9")
        }
        switch body["tools"] {
        case nil, .none?: break
        case let .array(list)?:
            for (i, t) in list.enumerated() { s.tools.append(try readTool(t, index: i)) }
            var seen = Set<String>()
            for t in s.tools where !seen.insert(t.name).inserted {
                throw APIError.invalid("'tools' defines the function '\(t.name)' twice; function names must be unique", param: "tools", code: "invalid_value")
            }
        default:
            throw APIError.invalid("'tools' must be an array of {\"type\": \"function\", \"function\": {...}} objects", param: "tools", code: "invalid_type")
        }
        switch body["tool_choice"] {
        case nil, .none?:
            s.choice = .auto
        case .string("auto")?: s.choice = .auto
        case .string("none")?: s.choice = .none
        case .string("required")?, .string("any")?: s.choice = .required
        case let .string(other)?:
            throw APIError.invalid("'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}, got '\(other)'",
                                   param: "tool_choice", code: "invalid_value")
        case let .object(o)?:
            guard case let .string(name)? = o["function"]?["name"], !name.isEmpty else {
                throw APIError.invalid("'tool_choice' as an object must be {\"type\": \"function\", \"function\": {\"name\": ...}}", param: "tool_choice", code: "invalid_value")
            }
            if let t = o["type"], t != .string("function") {
                throw APIError.invalid("'tool_choice.type' must be 'function'", param: "tool_choice", code: "invalid_value")
            }
            s.choice = .function(name)
        default:
            throw APIError.invalid("'tool_choice' must be a string or an object", param: "tool_choice", code: "invalid_type")
        }
        if s.choice != .auto && s.choice != .none && s.tools.isEmpty {
            throw APIError.invalid("'tool_choice' asks for a tool call but 'tools' is empty", param: "tool_choice", code: "invalid_value")
        }
        if case let .function(n) = s.choice, !s.tools.contains(where: { $0.name == n }) {
            throw APIError.invalid("'tool_choice' names the function '\(n)', which is not in 'tools' (\(s.tools.map(\.name).joined(separator: ", ")))",
                                   param: "tool_choice", code: "invalid_value")
        }
        switch body["parallel_tool_calls"] {
        case nil, .none?: s.parallel = true
        case let .bool(b)?: s.parallel = b
        default: throw APIError.invalid("'parallel_tool_calls' must be a boolean", param: "parallel_tool_calls", code: "invalid_type")
        }
        return s
    }

    static func readTool(_ t: TemplateValue, index i: Int) throws -> ToolFunction {
        func bad(_ what: String) -> APIError {
            APIError.invalid("'tools[\(i)]\(what)", param: "tools", code: "invalid_value")
        }
        guard case .object = t else { throw bad("' must be an object") }
        let type = t["type"] ?? .string("function")
        guard type == .string("function") else { throw bad(".type' must be 'function' (the only tool type supported)") }
        guard let fn = t["function"], case .object = fn else { throw bad(".function' is required: {\"name\": ..., \"description\": ..., \"parameters\": {...}}") }
        guard case let .string(name)? = fn["name"] else { throw bad(".function.name' is required") }
        guard !name.isEmpty, name.count <= 64,
              name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) && $0.isASCII || $0 == "_" || $0 == "-" }) else {
            throw bad(".function.name' must be 1 to 64 letters, digits, '_' or '-', got '\(name)'")
        }
        var description: String?
        switch fn["description"] {
        case nil, .none?: break
        case let .string(d)?: description = d
        default: throw bad(".function.description' must be a string")
        }
        var parameters: TemplateValue?
        switch fn["parameters"] {
        case nil, .none?: break
        case let p?:
            if let problem = ToolSchemaCheck.problem(p) {
                throw bad(".function.parameters' is not a usable JSON schema: \(problem)")
            }
            parameters = p
        }
        // The template sees the tool in the standard shape even when `type` was left out.
        var def = TemplateObject()
        def["type"] = .string("function")
        def["function"] = fn
        if case let .object(o) = t { for (k, v) in o.entries where k != "type" && k != "function" { def[k] = v } }
        return ToolFunction(name: name, description: description, parameters: parameters, definition: .object(def))
    }
}

/// Structural checks on a function's parameters schema, so a broken schema is a 400 before
/// anything runs. (The grammar compiler, when arguments are constrained, checks the rest.)
enum ToolSchemaCheck {
    static func problem(_ p: TemplateValue) -> String? {
        guard case let .object(o) = p else { return "it must be a JSON object" }
        if let t = o["type"] {
            guard t == .string("object") else { return "the top-level 'type' must be \"object\" (arguments are a JSON object), got \(ToolJSON.string(t))" }
        }
        return check(p, path: "parameters", depth: 0)
    }

    private static let types: Set<String> = ["object", "array", "string", "number", "integer", "boolean", "null"]

    private static func check(_ s: TemplateValue, path: String, depth: Int) -> String? {
        if depth > 64 { return "\(path) nests too deeply" }
        if case .bool = s { return nil }
        guard case let .object(o) = s else { return "\(path) must be a schema object" }
        switch o["type"] {
        case nil: break
        case let .string(t)?:
            if !types.contains(t) { return "\(path).type '\(t)' is not a JSON Schema type (\(types.sorted().joined(separator: ", ")))" }
        case let .array(ts)?:
            for t in ts {
                guard case let .string(n) = t, types.contains(n) else { return "\(path).type lists \(ToolJSON.string(t)), which is not a JSON Schema type" }
            }
        default: return "\(path).type must be a string or a list of strings"
        }
        var propertyNames: Set<String> = []
        switch o["properties"] {
        case nil: break
        case let .object(props)?:
            for (k, v) in props.entries {
                propertyNames.insert(k)
                if let e = check(v, path: "\(path).properties.\(k)", depth: depth + 1) { return e }
            }
        default: return "\(path).properties must be an object mapping names to schemas"
        }
        switch o["required"] {
        case nil: break
        case let .array(r)?:
            for n in r {
                guard case let .string(name) = n else { return "\(path).required must list property names (strings)" }
                if o["properties"] != nil && !propertyNames.contains(name) && o["additionalProperties"] == .bool(false) {
                    return "\(path).required names '\(name)', which is not in \(path).properties"
                }
            }
        default: return "\(path).required must be an array of property names"
        }
        if let items = o["items"], let e = check(items, path: "\(path).items", depth: depth + 1) { return e }
        if let ap = o["additionalProperties"], let e = check(ap, path: "\(path).additionalProperties", depth: depth + 1) { return e }
        for key in ["anyOf", "oneOf", "allOf"] {
            guard let v = o[key] else { continue }
            guard case let .array(list) = v, !list.isEmpty else { return "\(path).\(key) must be a non-empty array of schemas" }
            for (j, sub) in list.enumerated() {
                if let e = check(sub, path: "\(path).\(key)[\(j)]", depth: depth + 1) { return e }
            }
        }
        if let e = o["enum"] {
            guard case let .array(list) = e, !list.isEmpty else { return "\(path).enum must be a non-empty array" }
        }
        for key in ["$defs", "definitions"] {
            guard let v = o[key] else { continue }
            guard case let .object(defs) = v else { return "\(path).\(key) must be an object" }
            for (k, d) in defs.entries {
                if let e = check(d, path: "\(path).\(key).\(k)", depth: depth + 1) { return e }
            }
        }
        return nil
    }
}

// MARK: - Conversation in

/// One message of a chat request, with its tool parts.
public struct ChatTurn: Sendable, Equatable {
    public var role: String
    public var content: String?
    public var toolCalls: [ToolCall] = []
    /// For `role: tool`: the call this result answers (OpenAI), and the function's name.
    public var toolCallID: String?
    public var name: String?

    public init(role: String, content: String?, toolCalls: [ToolCall] = [], toolCallID: String? = nil, name: String? = nil) {
        self.role = role; self.content = content; self.toolCalls = toolCalls; self.toolCallID = toolCallID; self.name = name
    }

    /// The turns in plain (role, content) form when there is nothing tool-related in them.
    var isPlain: Bool { toolCalls.isEmpty && toolCallID == nil && role != "tool" }
}

extension ChatTurn {
    /// Reads `messages[i].tool_calls` in either API's shape: arguments as a JSON string (OpenAI)
    /// or an object (Ollama). Calls without an id get one (Ollama sends none).
    public static func readToolCalls(_ v: TemplateValue?, message i: Int) throws -> [ToolCall] {
        guard let v, v != .none else { return [] }
        guard case let .array(list) = v else {
            throw APIError.invalid("'messages[\(i)].tool_calls' must be an array", param: "messages[\(i)].tool_calls", code: "invalid_type")
        }
        var out: [ToolCall] = []
        for (j, c) in list.enumerated() {
            let p = "messages[\(i)].tool_calls[\(j)]"
            guard case let .string(name)? = c["function"]?["name"], !name.isEmpty else {
                throw APIError.invalid("'\(p).function.name' is required", param: "\(p).function.name", code: "missing_required_parameter")
            }
            var args: TemplateValue
            switch c["function"]?["arguments"] {
            case nil, .none?: args = .object(TemplateObject())
            case let .string(s)?:
                if s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { args = .object(TemplateObject()); break }
                do { args = try TemplateValue.parseJSON(s) } catch {
                    throw APIError.invalid("'\(p).function.arguments' is not valid JSON: \(error)", param: "\(p).function.arguments", code: "invalid_value")
                }
            case let a?: args = a
            }
            guard case .object = args else {
                throw APIError.invalid("'\(p).function.arguments' must be a JSON object", param: "\(p).function.arguments", code: "invalid_value")
            }
            var id = ""
            if case let .string(s)? = c["id"] { id = s }
            out.append(ToolCall(id: id, name: name, arguments: args))
        }
        return out
    }

    /// Gives ids to calls that have none and links `tool` turns without an id to the calls in
    /// order (Ollama's history has no ids), and fills in the function name of each result.
    static func linkToolResults(_ turns: inout [ChatTurn]) {
        var pending: [ToolCall] = []
        var counter = 0
        for k in turns.indices {
            if !turns[k].toolCalls.isEmpty {
                for c in turns[k].toolCalls.indices where turns[k].toolCalls[c].id.isEmpty {
                    counter += 1
                    turns[k].toolCalls[c].id = "call_\(counter)"
                }
                pending = turns[k].toolCalls
            } else if turns[k].role == "tool" {
                if let id = turns[k].toolCallID, let call = pending.first(where: { $0.id == id }) {
                    if turns[k].name == nil { turns[k].name = call.name }
                    pending.removeAll { $0.id == id }
                } else if turns[k].toolCallID == nil, !pending.isEmpty {
                    let call = pending.removeFirst()
                    if turns[k].name == nil || turns[k].name == call.name {
                        turns[k].toolCallID = call.id
                        turns[k].name = call.name
                    }
                }
            }
        }
    }
}

// MARK: - Prompt

public enum ToolPrompt {
    /// The built-in instructions for models whose template does not render tools. Added to the
    /// system message (or sent as one). Same wording and call format as Qwen 2.5's template, which
    /// follows Hermes: small models have seen it most.
    public static func builtinSystemText(_ tools: [ToolFunction], choice: ToolChoice, parallel: Bool) -> String {
        var s = "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        s += "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
        for t in tools { s += "\n" + ToolJSON.string(t.definition) }
        s += "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
        s += "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>"
        switch choice {
        case .required: s += "\n\nYou must call at least one of these functions."
        case let .function(n): s += "\n\nYou must call the function \"\(n)\"."
        case .auto, .none: break
        }
        if !parallel { s += "\nCall at most one function." }
        return s
    }

    /// How an earlier call is written back for the built-in prompt.
    static func hermesBlock(_ c: ToolCall) -> String {
        "<tool_call>\n{\"name\": " + ToolJSON.quote(c.name) + ", \"arguments\": " + ToolJSON.string(c.arguments) + "}\n</tool_call>"
    }

    /// The messages (and tools) to render with the chat template.
    public static func render(_ turns: [ChatTurn], _ setup: ToolSetup) -> (messages: TemplateValue, tools: TemplateValue?) {
        var turns = turns
        ChatTurn.linkToolResults(&turns)
        let offered = setup.choice == .none ? [] : setup.tools
        if setup.viaTemplate {
            return (.array(nativeMessages(turns, setup)), offered.isEmpty ? nil : .array(offered.map(\.definition)))
        }
        return (.array(builtinMessages(turns, setup, offered: offered)), nil)
    }

    /// Hugging Face's message shape: `tool_calls[j] = {id, type, function: {name, arguments}}`
    /// with the arguments as an object, tool results with `tool_call_id` and `name`.
    static func nativeMessages(_ turns: [ChatTurn], _ setup: ToolSetup) -> [TemplateValue] {
        var idMap: [String: String] = [:]
        func id(_ s: String) -> String {
            guard setup.shortIDs else { return s }
            if s.count == 9, s.unicodeScalars.allSatisfy({ $0.isASCII && CharacterSet.alphanumerics.contains($0) }) { return s }
            if let m = idMap[s] { return m }
            // A 9-character id derived from the original, stable across requests.
            var h: UInt64 = 14695981039346656037
            for b in s.utf8 { h = (h ^ UInt64(b)) &* 1099511628211 }
            let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
            var out = ""
            for _ in 0..<9 { out.append(alphabet[Int(h % 62)]); h /= 62; if h == 0 { h = 0x9E3779B97F4A7C15 } }
            idMap[s] = out
            return out
        }
        return turns.map { t in
            var o = TemplateObject()
            o["role"] = .string(t.role)
            o["content"] = .string(t.content ?? "")
            if !t.toolCalls.isEmpty {
                o["tool_calls"] = .array(t.toolCalls.map { c in
                    .object(TemplateObject([("id", .string(id(c.id))), ("type", "function"),
                                            ("function", .object(TemplateObject([("name", .string(c.name)), ("arguments", c.arguments)])))]))
                })
            }
            if t.role == "tool" {
                if let tid = t.toolCallID { o["tool_call_id"] = .string(id(tid)) }
                if let n = t.name { o["name"] = .string(n) }
            }
            return .object(o)
        }
    }

    /// For templates without tools: instructions in the system message, calls as `<tool_call>`
    /// blocks in the assistant's text, results as `<tool_response>` blocks in a user turn
    /// (consecutive results share one, and a user message right after joins it too), so even a
    /// template that insists on user/assistant alternation accepts the conversation.
    static func builtinMessages(_ turns: [ChatTurn], _ setup: ToolSetup, offered: [ToolFunction]) -> [TemplateValue] {
        var out: [(role: String, content: String)] = []
        var lastWasToolResult = false
        for t in turns {
            if t.role == "tool" {
                let block = "<tool_response>\n" + (t.content ?? "") + "\n</tool_response>"
                if lastWasToolResult, let last = out.last, last.role == "user" {
                    out[out.count - 1].content += "\n" + block
                } else {
                    out.append(("user", block))
                }
                lastWasToolResult = true
                continue
            }
            if t.role == "user", lastWasToolResult, let last = out.last, last.role == "user" {
                out[out.count - 1].content += "\n" + (t.content ?? "")
                lastWasToolResult = false
                continue
            }
            lastWasToolResult = false
            var text = t.content ?? ""
            for c in t.toolCalls { text += (text.isEmpty ? "" : "\n") + hermesBlock(c) }
            out.append((t.role, text))
        }
        if !offered.isEmpty {
            let addition = builtinSystemText(offered, choice: setup.choice, parallel: setup.parallel)
            if let first = out.first, first.role == "system" {
                out[0].content = first.content.isEmpty ? addition : first.content + "\n\n" + addition
            } else {
                out.insert(("system", addition), at: 0)
            }
        }
        return out.map { .object(TemplateObject([("role", .string($0.role)), ("content", .string($0.content))])) }
    }
}

// MARK: - Output

/// What the parser hands on, in order.
public enum ToolOutputEvent: Sendable, Equatable {
    case content(String)
    case call(ToolCall)
}

/// Splits a model's output into content and tool calls, fed as it is generated. Text that could
/// be the start of a call is held back until it is clearly not one; a call is handed on once it
/// is complete and parses (name among the tools, arguments an object). A block that does not
/// parse is passed on as plain content, never dropped.
public struct ToolCallParser: Sendable {
    public let format: ToolCallFormat
    public let names: Set<String>
    private var buffer = ""
    private var inCall = false
    /// Llama 3's bare-JSON call: the answer starts with `{`, so it is held to the end.
    private var wholeAnswer = false
    private var sawText = false
    public private(set) var calls: [ToolCall] = []

    public init(format: ToolCallFormat, names: Set<String>) {
        self.format = format; self.names = names
    }

    private var closer: String? { format == .hermes ? "</tool_call>" : nil }

    public mutating func feed(_ text: String) -> [ToolOutputEvent] {
        buffer += text
        var out: [ToolOutputEvent] = []
        while true {
            if wholeAnswer { return out }
            if inCall {
                guard let closer, let end = buffer.range(of: closer) else { return out }   // wait for the end
                let block = String(buffer[..<end.upperBound])
                buffer = String(buffer[end.upperBound...])
                inCall = false
                out += parseBlock(block)
                continue
            }
            if format == .llama3 && !sawText {
                let trimmed = buffer.drop { $0.isWhitespace }
                if trimmed.isEmpty { return out }
                if trimmed.first == "{" { wholeAnswer = true; return out }
            }
            if let r = buffer.range(of: format.trigger) {
                let before = String(buffer[..<r.lowerBound])
                if !before.isEmpty { out.append(.content(before)); sawText = true }
                buffer = String(buffer[r.lowerBound...])
                if closer == nil { wholeAnswer = true; return out }  // the rest of the answer is the call list
                inCall = true
                continue
            }
            // Hold back a tail that may be the start of the trigger.
            let keep = ToolCallParser.partialSuffix(buffer, of: format.trigger)
            let emit = String(buffer.dropLast(keep))
            if !emit.isEmpty {
                if format == .llama3 && !sawText && emit.allSatisfy(\.isWhitespace) { return out }
                out.append(.content(emit)); sawText = true
                buffer = String(buffer.suffix(keep))
            }
            return out
        }
    }

    /// Call at the end of the output: settles whatever is held back.
    public mutating func finish() -> [ToolOutputEvent] {
        let rest = buffer
        buffer = ""
        if rest.isEmpty { return [] }
        if inCall || wholeAnswer {
            inCall = false; wholeAnswer = false
            return parseBlock(rest)
        }
        return [.content(rest)]
    }

    /// Length of the longest suffix of `s` that is a proper prefix of `trigger`.
    static func partialSuffix(_ s: String, of trigger: String) -> Int {
        let t = Array(trigger)
        let chars = Array(s.suffix(t.count - 1))
        var n = min(chars.count, t.count - 1)
        while n > 0 {
            if Array(chars.suffix(n)) == Array(t.prefix(n)) { return n }
            n -= 1
        }
        return 0
    }

    private mutating func parseBlock(_ block: String) -> [ToolOutputEvent] {
        guard let parsed = parseCalls(block) else { return [.content(block)] }
        calls += parsed
        return parsed.map { .call($0) }
    }

    /// The calls in one block (a `<tool_call>` element, or a whole Llama/Mistral/Granite answer).
    func parseCalls(_ block: String) -> [ToolCall]? {
        var body = Substring(block)
        switch format {
        case .hermes:
            guard body.hasPrefix("<tool_call>") else { return nil }
            body = body.dropFirst("<tool_call>".count)
            if body.hasSuffix("</tool_call>") { body = body.dropLast("</tool_call>".count) }
            return (try? TemplateValue.parseJSON(String(body))).flatMap(call).map { [$0] }
        case .llama3:
            if body.hasPrefix("<|python_tag|>") { body = body.dropFirst("<|python_tag|>".count) }
            for end in ["<|eom_id|>", "<|eot_id|>"] where body.hasSuffix(end) { body = body.dropLast(end.count) }
            guard let v = try? TemplateValue.parseJSON(String(body)) else {
                // Several calls separated by ';' (Llama 3.2 sometimes writes them so).
                let parts = body.split(separator: ";")
                guard parts.count > 1 else { return nil }
                var out: [ToolCall] = []
                for p in parts {
                    guard let v = try? TemplateValue.parseJSON(String(p)), let c = call(v) else { return nil }
                    out.append(c)
                }
                return out
            }
            return call(v).map { [$0] }
        case .mistral, .granite:
            body = body.dropFirst(format.trigger.count)
            guard case let .array(list)? = try? TemplateValue.parseJSON(String(body)), !list.isEmpty else { return nil }
            var out: [ToolCall] = []
            for v in list {
                guard let c = call(v) else { return nil }
                out.append(c)
            }
            return out
        }
    }

    /// `{"name": ..., "arguments": {...}}` (or `parameters`, or arguments as JSON text) for a known tool.
    func call(_ v: TemplateValue) -> ToolCall? {
        guard case let .string(name)? = v["name"], names.contains(name) else { return nil }
        var args = v["arguments"] ?? v["parameters"] ?? .object(TemplateObject())
        if case let .string(s) = args { guard let parsed = try? TemplateValue.parseJSON(s) else { return nil }; args = parsed }
        guard case .object = args else { return nil }
        return ToolCall(id: ToolCall.newID(), name: name, arguments: args)
    }

    /// Parses a whole output at once: the content (nil when only whitespace) and the calls.
    public static func parse(_ text: String, format: ToolCallFormat, names: Set<String>) -> (content: String?, calls: [ToolCall]) {
        var p = ToolCallParser(format: format, names: names)
        let events = p.feed(text) + p.finish()
        var content = ""
        var calls: [ToolCall] = []
        for e in events {
            switch e {
            case let .content(s): content += s
            case let .call(c): calls.append(c)
            }
        }
        if !calls.isEmpty { content = content.trimmingCharacters(in: .whitespacesAndNewlines) }
        return (content.isEmpty && !calls.isEmpty ? nil : content, calls)
    }
}

// MARK: - JSON text

/// JSON text for template values the way Python's json.dumps writes it by default (", " and
/// ": " separators, non-ASCII kept), which is how the templates' `tojson` shows tools and calls
/// to the model.
public enum ToolJSON {
    public static func string(_ v: TemplateValue) -> String {
        var s = ""
        write(v, &s)
        return s
    }

    static func write(_ v: TemplateValue, _ s: inout String) {
        switch v {
        case .none: s += "null"
        case let .bool(b): s += b ? "true" : "false"
        case let .int(i): s += String(i)
        case let .double(d):
            if d.isNaN { s += "NaN" } else if d.isInfinite { s += d > 0 ? "Infinity" : "-Infinity" }
            else if d == d.rounded(), abs(d) < 1e16 { s += String(format: "%.1f", d) }
            else { s += "\(d)" }
        case let .string(t): s += quote(t)
        case let .array(a):
            s += "["
            for (k, e) in a.enumerated() { if k > 0 { s += ", " }; write(e, &s) }
            s += "]"
        case let .object(o):
            s += "{"
            for (k, e) in o.entries.enumerated() {
                if k > 0 { s += ", " }
                s += quote(e.key) + ": "
                write(e.value, &s)
            }
            s += "}"
        }
    }

    /// A JSON string literal (the one escaping grammar and schema code use too).
    public static func quote(_ t: String) -> String { OrderedJSON.quote(t) }

    /// For Ollama's `arguments` object.
    static func jsonValue(_ v: TemplateValue) -> JSONValue {
        switch v {
        case .none: return .null
        case let .bool(b): return .bool(b)
        case let .int(i): return .number(Double(i))
        case let .double(d): return .number(d)
        case let .string(s): return .string(s)
        case let .array(a): return .array(a.map(jsonValue))
        case let .object(o): return .object(Dictionary(o.entries.map { ($0.key, jsonValue($0.value)) }, uniquingKeysWith: { a, _ in a }))
        }
    }
}

/// A parser shared with a streaming callback (which may run on another thread).
final class ToolStream: @unchecked Sendable {
    private let lock = NSLock()
    private var parser: ToolCallParser
    private var index = 0

    init(_ setup: ToolSetup) {
        parser = ToolCallParser(format: setup.format, names: Set(setup.callable.map(\.name)))
    }

    func feed(_ text: String) -> [ToolOutputEvent] { lock.lock(); defer { lock.unlock() }; return parser.feed(text) }
    func finish() -> [ToolOutputEvent] { lock.lock(); defer { lock.unlock() }; return parser.finish() }
    var madeCalls: Bool { lock.lock(); defer { lock.unlock() }; return !parser.calls.isEmpty }
    /// The `index` of the next call in a streamed choice.
    func nextIndex() -> Int { lock.lock(); defer { lock.unlock() }; index += 1; return index - 1 }
}
