import Foundation

public enum EvalError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case backend(String)

    public var description: String {
        switch self {
        case let .invalid(m), let .backend(m): return m
        }
    }
}

/// A task: a JSON spec naming a JSONL data file and how to prompt and score each row.
///
///     {"name": "capitals", "type": "generate", "data": "capitals.jsonl",
///      "prompt": "Q: What is the capital of {country}?\nA:", "target": "{capital}",
///      "metric": "contains", "max_tokens": 12, "stop": ["\n"], "fewshot": 2}
///
///     {"name": "animals", "type": "multiple_choice", "data": "animals.jsonl",
///      "prompt": "Question: {question}\nAnswer:", "choices": "choices", "gold": "label"}
///
/// `type`: "multiple_choice" (scored by log-likelihood: acc and acc_norm, as lm-evaluation-harness
/// computes them), "generate" (metric exact_match, contains, regex with `pattern`, json_schema
/// with `schema`: valid JSON of the schema's required keys and types, or tests: the row's
/// `tests` run against the completed expression, see `CodeTests`) or "perplexity" (`text`:
/// a text file; llama.cpp's method). Templates fill `{field}` from the row. Few-shot examples are
/// other rows of the same file (never the row itself), drawn with the run's seed, each rendered as
/// prompt + target and joined by `fewshot_separator` (default a blank line).
public struct TaskSpec: Codable, Sendable, Equatable {
    public var name: String
    public var type: String
    public var data: String?
    public var text: String?
    public var prompt: String?
    public var target: String?
    public var choices: String?
    public var gold: String?
    public var choice_prefix: String?
    public var metric: String?
    public var pattern: String?
    public var schema: JSONValueBox?
    public var max_tokens: Int?
    public var stop: [String]?
    public var fewshot: Int?
    public var fewshot_separator: String?
    public var context: Int?
    public var description: String?

    /// Where relative paths in the spec start.
    public var directory: String = ""

    enum CodingKeys: String, CodingKey {
        case name, type, data, text, prompt, target, choices, gold, choice_prefix, metric, pattern, schema, max_tokens, stop, fewshot,
             fewshot_separator, context, description
    }

    public static func load(_ path: String) throws -> TaskSpec {
        guard let d = FileManager.default.contents(atPath: path) else { throw EvalError.invalid("cannot read task \(path)") }
        var t: TaskSpec
        do { t = try JSONDecoder().decode(TaskSpec.self, from: d) } catch {
            throw EvalError.invalid("\(path) is not a task spec (JSON with name, type, data, prompt…): \(error)")
        }
        t.directory = (path as NSString).deletingLastPathComponent
        guard ["multiple_choice", "generate", "perplexity"].contains(t.type) else {
            throw EvalError.invalid("\(path): type must be multiple_choice, generate or perplexity, not '\(t.type)'")
        }
        switch t.type {
        case "multiple_choice":
            guard t.data != nil, t.prompt != nil, t.choices != nil, t.gold != nil else {
                throw EvalError.invalid("\(path): a multiple_choice task needs data, prompt, choices (the field with the list) and gold (the field with the index)")
            }
        case "generate":
            guard t.data != nil, t.prompt != nil else { throw EvalError.invalid("\(path): a generate task needs data and prompt") }
            let m = t.metric ?? "exact_match"
            guard ["exact_match", "contains", "regex", "json_schema", "tests"].contains(m) else {
                throw EvalError.invalid("\(path): metric must be exact_match, contains, regex, json_schema or tests, not '\(m)'")
            }
            // A pattern with {field}s is checked once filled, per row.
            if m == "regex", t.pattern?.range(of: #"\{[A-Za-z0-9_]+\}"#, options: .regularExpression) == nil,
               (t.pattern.flatMap { try? NSRegularExpression(pattern: $0) }) == nil {
                throw EvalError.invalid("\(path): the regex metric needs a valid 'pattern'")
            }
            if m == "json_schema", t.schema == nil { throw EvalError.invalid("\(path): the json_schema metric needs 'schema'") }
            if !["json_schema", "regex", "tests"].contains(m), t.target == nil { throw EvalError.invalid("\(path): \(m) needs a 'target' template") }
        default:
            guard t.text != nil else { throw EvalError.invalid("\(path): a perplexity task needs 'text' (a text file)") }
        }
        return t
    }

    func resolve(_ p: String) -> String { p.hasPrefix("/") || directory.isEmpty ? p : directory + "/" + p }

    /// The data rows (JSON objects), in file order.
    public func rows() throws -> [[String: Any]] {
        guard let data else { return [] }
        let path = resolve(data)
        guard let d = FileManager.default.contents(atPath: path) else { throw EvalError.invalid("cannot read \(path) (task \(name))") }
        var out: [[String: Any]] = []
        for (i, line) in String(decoding: d, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw EvalError.invalid("\(path):\(i + 1): not a JSON object")
            }
            out.append(o)
        }
        guard !out.isEmpty else { throw EvalError.invalid("\(path) holds no rows") }
        return out
    }

    /// `{field}` replaced by the row's value (strings as they are, other JSON as JSON).
    public static func fill(_ template: String, _ row: [String: Any]) throws -> String {
        var out = ""
        var i = template.startIndex
        while i < template.endIndex {
            let c = template[i]
            if c == "{", let close = template[i...].firstIndex(of: "}") {
                let key = String(template[template.index(after: i)..<close])
                if !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
                    guard let v = row[key] else { throw EvalError.invalid("the template uses {\(key)} but the row has no '\(key)'") }
                    out += TaskSpec.text(v)
                    i = template.index(after: close)
                    continue
                }
            }
            out.append(c)
            i = template.index(after: i)
        }
        return out
    }

    static func text(_ v: Any) -> String {
        if let s = v as? String { return s }
        if let n = v as? NSNumber { return n.stringValue }
        if let d = try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]) { return String(decoding: d, as: UTF8.self) }
        return "\(v)"
    }
}

/// A JSON value kept as its bytes (the schema of the json_schema metric).
public struct JSONValueBox: Codable, Sendable, Equatable {
    public let json: Data
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let v = try c.decode(AnyJSON.self)
        json = try JSONSerialization.data(withJSONObject: v.value, options: [.sortedKeys, .fragmentsAllowed])
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(AnyJSON(try JSONSerialization.jsonObject(with: json, options: [.fragmentsAllowed])))
    }
    public var object: Any { (try? JSONSerialization.jsonObject(with: json, options: [.fragmentsAllowed])) ?? [:] }
}

/// Any JSON through Codable.
struct AnyJSON: Codable {
    let value: Any
    init(_ v: Any) { value = v }
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { value = NSNull() }
        else if let b = try? c.decode(Bool.self) { value = b }
        else if let i = try? c.decode(Int.self) { value = i }
        else if let d = try? c.decode(Double.self) { value = d }
        else if let s = try? c.decode(String.self) { value = s }
        else if let a = try? c.decode([AnyJSON].self) { value = a.map(\.value) }
        else { value = try c.decode([String: AnyJSON].self).mapValues(\.value) }
    }
    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch value {
        case is NSNull: try c.encodeNil()
        case let b as Bool: try c.encode(b)
        case let i as Int: try c.encode(i)
        case let d as Double: try c.encode(d)
        case let s as String: try c.encode(s)
        case let a as [Any]: try c.encode(a.map(AnyJSON.init))
        case let o as [String: Any]: try c.encode(o.mapValues(AnyJSON.init))
        default: try c.encode("\(value)")
        }
    }
}
