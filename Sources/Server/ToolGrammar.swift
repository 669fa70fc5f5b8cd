import Foundation
import Generation
import Templates

/// The grammar that makes a tool call well-formed by construction: the call format's markers,
/// one of the callable functions' names, and arguments that validate against that function's
/// parameters schema (compiled by `JSONSchemaGrammar`).
///
/// - `tool_choice: required` or a named function: the grammar applies from the first token, so
///   the answer is exactly one call (or, with `parallel_tool_calls`, one or more).
/// - `auto`: the grammar is lazy (`GenerationRequest.grammarTriggers`): the model writes freely
///   until it opens a call with the format's marker, and from that marker on it must complete
///   well-formed calls and then stop.
public enum ToolGrammar {
    public struct Constraint: Sendable {
        public var grammar: Grammar
        /// Empty for an eager grammar; the call marker(s) for a lazy one.
        public var triggers: [String]
        public var gbnf: String
    }

    /// The constraint for a request, or nil when no call can be made. Throws a 400 naming the
    /// tool whose schema cannot be enforced.
    public static func constraint(_ setup: ToolSetup) throws -> Constraint? {
        guard setup.active else { return nil }
        let lazy = setup.choice == .auto
        let text = try gbnf(setup, lazy: lazy)
        let g: Grammar
        do { g = try Grammar(gbnf: text) } catch {
            throw APIError(status: 500, message: "the tool-call grammar did not parse (\(error)); this is a bug in steward", type: "server_error")
        }
        return Constraint(grammar: g, triggers: lazy ? [setup.format.trigger] : [], gbnf: text)
    }

    /// GBNF for the calls `setup` allows. With `lazy`, the text starts at the format's marker.
    public static func gbnf(_ setup: ToolSetup, lazy: Bool) throws -> String {
        var rules: [String] = []
        var alternatives: [String] = []
        for (k, tool) in setup.callable.enumerated() {
            let prefix = "t\(k)-"
            let schemaText = ToolJSON.string(tool.parameters ?? .object(TemplateObject([("type", "object")])))
            let compiled: String
            do {
                compiled = try JSONSchemaGrammar.gbnf(schema: try OrderedJSON.parse(schemaText))
            } catch {
                let index = setup.tools.firstIndex { $0.name == tool.name } ?? k
                switch error {
                case let .unsupported(feature, path):
                    throw APIError.invalid("'tools[\(index)].function.parameters' uses '\(feature)' (at \(path.isEmpty ? "#" : path)), which steward cannot enforce on the arguments; remove it or express the constraint differently",
                                           param: "tools", code: "unsupported_schema_feature")
                case .invalidSchema:
                    throw APIError.invalid("'tools[\(index)].function.parameters': \(error)", param: "tools", code: "invalid_schema")
                }
            }
            rules.append(prefixRules(compiled, with: prefix))
            let args = prefix + "root"
            let name = ToolJSON.quote(tool.name)
            let body: String
            switch setup.format {
            case .hermes, .mistral, .granite:
                body = literal("{\"name\": \(name), \"arguments\": ") + " " + args + " " + literal("}")
            case .llama3:
                body = literal("{\"name\": \(name), \"parameters\": ") + " " + args + " " + literal("}")
            }
            rules.append("tc-fn\(k) ::= \(body)")
            alternatives.append("tc-fn\(k)")
        }
        guard !alternatives.isEmpty else {
            throw APIError.invalid("no function can be called under this 'tool_choice'", param: "tool_choice", code: "invalid_value")
        }
        rules.append("tc-call ::= " + alternatives.joined(separator: " | "))
        let root: String
        switch setup.format {
        case .hermes:
            rules.append("tc-block ::= " + literal("<tool_call>\n") + " tc-call " + literal("\n</tool_call>"))
            root = setup.parallel ? "tc-block (" + literal("\n") + " tc-block)*" : "tc-block"
        case .llama3:
            // One call: Llama 3.1's template takes a single call per turn.
            root = (lazy ? literal("<|python_tag|>") + " " : "") + "tc-call"
        case .mistral, .granite:
            let open = literal(setup.format.trigger + "[")
            root = open + " tc-call " + (setup.parallel ? "(" + literal(", ") + " tc-call)* " : "") + literal("]")
        }
        return "root ::= \(root)\n" + rules.joined(separator: "\n") + "\n"
    }

    /// A GBNF string literal (control characters escaped as the grammar parser reads them).
    static func literal(_ s: String) -> String { gbnfLiteral(s) }

    /// Renames every rule of a GBNF text by prefixing it, so several schemas' rules can live in
    /// one grammar. Literals, character classes, repetition counts and comments are left alone.
    static func prefixRules(_ gbnf: String, with prefix: String) -> String {
        let s = Array(gbnf.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        func isName(_ c: Unicode.Scalar) -> Bool {
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "-" || c == "_"
        }
        while i < s.count {
            let c = s[i]
            switch c {
            case "\"", "[":
                let close: Unicode.Scalar = c == "\"" ? "\"" : "]"
                out.append(c); i += 1
                while i < s.count {
                    out.append(s[i])
                    if s[i] == "\\", i + 1 < s.count { out.append(s[i + 1]); i += 2; continue }
                    i += 1
                    if s[i - 1] == close { break }
                }
            case "{":
                while i < s.count { out.append(s[i]); i += 1; if s[i - 1] == "}" { break } }
            case "#":
                while i < s.count, s[i] != "\n" { out.append(s[i]); i += 1 }
            default:
                if isName(c) {
                    let start = i
                    while i < s.count, isName(s[i]) { i += 1 }
                    out.append(contentsOf: prefix.unicodeScalars)
                    out.append(contentsOf: s[start..<i])
                } else {
                    out.append(c); i += 1
                }
            }
        }
        return String(out)
    }
}
