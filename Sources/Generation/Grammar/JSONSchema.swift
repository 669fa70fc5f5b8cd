import Foundation

/// Why a JSON schema cannot be turned into a grammar.
public enum JSONSchemaError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A keyword or value this compiler does not support and that would change which
    /// documents are valid (so ignoring it could produce invalid output). `feature` names it.
    case unsupported(feature: String, path: String)
    /// The schema itself is malformed (bad JSON, a $ref that points nowhere, …).
    case invalidSchema(String)

    public var feature: String? {
        if case let .unsupported(f, _) = self { return f }
        return nil
    }

    public var description: String {
        switch self {
        case let .unsupported(f, path):
            return "unsupported JSON schema feature '\(f)' at \(path.isEmpty ? "#" : path); remove it or express the constraint differently"
        case let .invalidSchema(m):
            return "invalid JSON schema: \(m)"
        }
    }
}

/// Compiles a JSON schema into GBNF whose sentences are JSON documents valid under the schema
/// (modelled on llama.cpp's json-schema-to-grammar, written anew).
///
/// Output form: properties come in schema order (required ones always, optional ones may be
/// left out); between tokens the JSON may hold at most one whitespace run — a space, or a
/// newline plus up to 20 spaces/tabs — so the model can pretty-print but cannot loop on
/// whitespace. Numbers have at most 16 integer digits, 16 fraction digits and 16 exponent digits.
/// See `unsupportedKeywords` for what is refused.
public enum JSONSchemaGrammar {
    /// Keywords that change validity and are not implemented: a schema using one is refused.
    public static let unsupportedKeywords: [String] = [
        "multipleOf", "patternProperties", "propertyNames", "uniqueItems", "not", "if", "then", "else",
        "dependentRequired", "dependentSchemas", "dependencies", "contains", "minContains", "maxContains",
        "prefixItems", "additionalItems", "unevaluatedProperties", "unevaluatedItems", "minProperties",
        "maxProperties", "$dynamicRef", "$recursiveRef", "contentSchema",
    ]
    public static let supportedFormats = ["date", "time", "date-time", "uuid", "email"]

    /// GBNF for documents valid under `schema`.
    public static func gbnf(schema: OrderedJSON) throws(JSONSchemaError) -> String {
        var c = SchemaCompiler(root: schema)
        let root = try c.visit(schema, path: "", name: "root")
        if root != "root" { c.define("root", root) }
        return c.text()
    }

    public static func grammar(schema: OrderedJSON) throws(JSONSchemaError) -> Grammar {
        let text = try gbnf(schema: schema)
        do { return try Grammar(gbnf: text) } catch {
            throw .invalidSchema("the schema compiled to a grammar that does not parse (\(error)); this is a bug in steward")
        }
    }

    public static func grammar(schemaJSON: String) throws(JSONSchemaError) -> Grammar {
        try grammar(schema: try OrderedJSON.parse(schemaJSON))
    }

    /// Any JSON object (OpenAI's `json_object`, Ollama's `format: "json"`).
    public static func anyObject() throws(JSONSchemaError) -> Grammar {
        try grammar(schema: .object([.init("type", .string("object")), .init("additionalProperties", .bool(true))]))
    }
}

/// GBNF string literal for `s`.
public func gbnfLiteral(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 || u.value == 0x7F { out += String(format: "\\x%02X", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

struct SchemaCompiler {
    let root: OrderedJSON
    private var order: [String] = []
    private var bodies: [String: String] = [:]
    private var refNames: [String: String] = [:]

    init(root: OrderedJSON) { self.root = root }

    static let primitives: [String: (String, [String])] = [
        "ws": (#"| " " | "\n" [ \t]{0,20}"#, []),
        "char": (#"[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})"#, []),
        "string": (#""\"" char* "\"" ws"#, ["char", "ws"]),
        "integral-part": (#"[0] | [1-9] [0-9]{0,15}"#, []),
        "integer": (#""-"? integral-part ws"#, ["integral-part", "ws"]),
        "number": (#""-"? integral-part ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,16})? ws"#, ["integral-part", "ws"]),
        "boolean": (#"("true" | "false") ws"#, ["ws"]),
        "null": (#""null" ws"#, ["ws"]),
        "value": ("object | array | string | number | boolean | null", ["object", "array", "string", "number", "boolean", "null"]),
        "object": (#""{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws"#, ["ws", "string", "value"]),
        "array": (#""[" ws ( value ("," ws value)* )? "]" ws"#, ["ws", "value"]),
        "date": (#"[0-9]{4} "-" ( ( "0" [13578] | "1" [02] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ) | ( "0" [469] | "11" ) "-" ( "0" [1-9] | [12] [0-9] | "30" ) | "02-" ( "0" [1-9] | "1" [0-9] | "2" [0-8] ) )"#, []),
        "time": (#"( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )"#, []),
        "date-time": (#"date "T" time"#, ["date", "time"]),
        "uuid": (#"[0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12}"#, []),
        "email": (#"[a-zA-Z0-9_+-] [a-zA-Z0-9._+-]{0,63} "@" [a-zA-Z0-9] [a-zA-Z0-9-]{0,62} ( "." [a-zA-Z0-9] [a-zA-Z0-9-]{0,62} )* "." [a-zA-Z]{2,12}"#, []),
    ]

    /// Adds a primitive rule (and what it uses); returns its name.
    mutating func primitive(_ name: String) -> String {
        if bodies[name] != nil { return name }
        guard let (body, deps) = Self.primitives[name] else { return name }
        bodies[name] = body
        order.append(name)
        for d in deps { _ = primitive(d) }
        return name
    }

    mutating func define(_ name: String, _ body: String) {
        if bodies[name] == nil { order.append(name) }
        bodies[name] = body
    }

    /// A rule named after `hint`, reusing an existing rule with the same body.
    mutating func rule(_ hint: String, _ body: String) -> String {
        if let existing = order.first(where: { bodies[$0] == body && Self.primitives[$0] == nil }) { return existing }
        var name = hint.isEmpty ? "r" : hint
        var k = 1
        while bodies[name] != nil || Self.primitives[name] != nil { k += 1; name = "\(hint)-\(k)" }
        define(name, body)
        return name
    }

    func text() -> String {
        var out = ""
        if let r = bodies["root"] { out += "root ::= \(r)\n" }
        for n in order where n != "root" { out += "\(n) ::= \(bodies[n] ?? "\"\"")\n" }
        return out
    }

    static func ruleName(_ s: String) -> String {
        let mapped = s.unicodeScalars.map { c -> Character in
            (c.properties.isASCIIHexDigit || (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9")) ? Character(c) : "-"
        }
        let r = String(mapped)
        return r.isEmpty ? "r" : r
    }

    static let annotations: Set<String> = ["title", "description", "examples", "default", "$schema", "$id", "$comment",
                                           "readOnly", "writeOnly", "deprecated", "$defs", "definitions", "$anchor",
                                           "contentMediaType", "contentEncoding", "strict", "discriminator", "nullable"]

    // MARK: visiting

    mutating func visit(_ s: OrderedJSON, path: String, name: String) throws(JSONSchemaError) -> String {
        if case let .bool(b) = s {
            guard b else { throw .unsupported(feature: "false schema", path: path) }
            return primitive("value")
        }
        guard case let .object(members) = s else { throw .invalidSchema("a schema must be an object or a boolean at \(path.isEmpty ? "#" : path)") }
        for m in members where JSONSchemaGrammar.unsupportedKeywords.contains(m.key) {
            throw .unsupported(feature: m.key, path: path)
        }
        let keys = Set(members.map(\.key))
        if case let .string(ref)? = s["$ref"] {
            if keys.subtracting(Self.annotations).subtracting(["$ref"]).count > 0 {
                throw .unsupported(feature: "$ref with sibling keywords", path: path)
            }
            return try reference(ref, path: path)
        }
        if let c = s["const"] { return try literal(c, path: path) }
        if case let .array(values)? = s["enum"] {
            guard !values.isEmpty else { throw .invalidSchema("'enum' is empty at \(path)") }
            var alts: [String] = []
            for v in values { alts.append(try literal(v, path: path)) }
            return rule(name, alts.joined(separator: " | "))
        }
        for key in ["anyOf", "oneOf"] {
            if case let .array(subs)? = s[key] {
                // oneOf is generated like anyOf: exact when the alternatives do not overlap.
                let other = keys.subtracting(Self.annotations).subtracting([key, "type"])
                if !other.isEmpty { throw .unsupported(feature: "\(key) together with \(other.sorted().joined(separator: ", "))", path: path) }
                guard !subs.isEmpty else { throw .invalidSchema("'\(key)' is empty at \(path)") }
                var alts: [String] = []
                for (i, sub) in subs.enumerated() { alts.append(try visit(sub, path: "\(path)/\(key)/\(i)", name: "\(name)-\(i)")) }
                return rule(name, alts.joined(separator: " | "))
            }
        }
        if case let .array(parts)? = s["allOf"] {
            return try allOf(parts, s, path: path, name: name)
        }
        var types: [String] = []
        switch s["type"] {
        case let .string(t)?: types = [t]
        case let .array(ts)?:
            for t in ts { guard case let .string(x) = t else { throw .invalidSchema("'type' entries must be strings at \(path)") }; types.append(x) }
        case nil:
            if keys.contains("properties") || keys.contains("additionalProperties") || keys.contains("required") { types = ["object"] }
            else if keys.contains("items") || keys.contains("minItems") || keys.contains("maxItems") { types = ["array"] }
            else if keys.contains("minLength") || keys.contains("maxLength") || keys.contains("pattern") || keys.contains("format") { types = ["string"] }
            else if keys.contains("minimum") || keys.contains("maximum") || keys.contains("exclusiveMinimum") || keys.contains("exclusiveMaximum") {
                throw .unsupported(feature: "minimum/maximum without \"type\": \"integer\"", path: path)
            }
            else { return primitive("value") }
        default: throw .invalidSchema("'type' must be a string or a list of strings at \(path)")
        }
        var alts: [String] = []
        for t in types { alts.append(try typed(t, s, path: path, name: types.count > 1 ? "\(name)-\(t)" : name)) }
        return alts.count == 1 ? alts[0] : rule(name, alts.joined(separator: " | "))
    }

    mutating func literal(_ v: OrderedJSON, path: String) throws(JSONSchemaError) -> String {
        _ = primitive("ws")
        return gbnfLiteral(v.jsonText) + " ws"
    }

    mutating func reference(_ ref: String, path: String) throws(JSONSchemaError) -> String {
        if let n = refNames[ref] { return n }
        guard ref.hasPrefix("#") else { throw .unsupported(feature: "external $ref '\(ref)'", path: path) }
        var target = root
        let pointer = ref.dropFirst()
        if !pointer.isEmpty {
            guard pointer.hasPrefix("/") else { throw .unsupported(feature: "$ref to an anchor '\(ref)'", path: path) }
            for raw in pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
                let part = String(raw).removingPercentEncoding?.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~") ?? String(raw)
                if let next = target[part] { target = next; continue }
                if case let .array(a) = target, let i = Int(part), i >= 0, i < a.count { target = a[i]; continue }
                throw .invalidSchema("$ref '\(ref)' points to nothing")
            }
        }
        let name = rule("ref-" + Self.ruleName(String(ref.split(separator: "/").last ?? "root")), "\"\" # placeholder \(ref)")
        refNames[ref] = name
        let body = try visit(target, path: String(ref.dropFirst()), name: name + "-body")
        define(name, body)
        return name
    }

    mutating func allOf(_ parts: [OrderedJSON], _ s: OrderedJSON, path: String, name: String) throws(JSONSchemaError) -> String {
        // Only objects merge: properties and required are unioned; additionalProperties is
        // false if any part says so.
        var props: [OrderedJSON.Member] = []
        var required: [OrderedJSON] = []
        var additional: OrderedJSON? = nil
        var all = parts
        if case let .object(ms) = s { all.append(.object(ms.filter { $0.key != "allOf" })) }
        for (i, var p) in all.enumerated() {
            var guardDepth = 0
            while case let .string(r)? = p["$ref"], guardDepth < 32 {
                guardDepth += 1
                p = try resolve(r, path: path)
            }
            guard case let .object(ms) = p else { throw .unsupported(feature: "allOf (only of objects)", path: "\(path)/allOf/\(i)") }
            for m in ms {
                switch m.key {
                case "properties":
                    guard case let .object(pm) = m.value else { continue }
                    for x in pm { if let at = props.firstIndex(where: { $0.key == x.key }) { props[at] = x } else { props.append(x) } }
                case "required":
                    if case let .array(r) = m.value { required += r }
                case "additionalProperties":
                    if m.value == .bool(false) || additional == nil { additional = m.value }
                case "type":
                    guard m.value == .string("object") else { throw .unsupported(feature: "allOf (only of objects)", path: "\(path)/allOf/\(i)") }
                default:
                    if !Self.annotations.contains(m.key) { throw .unsupported(feature: "allOf with '\(m.key)' (only properties, required, additionalProperties merge)", path: "\(path)/allOf/\(i)") }
                }
            }
        }
        var merged: [OrderedJSON.Member] = [.init("type", .string("object")), .init("properties", .object(props)), .init("required", .array(required))]
        if let additional { merged.append(.init("additionalProperties", additional)) }
        return try typed("object", .object(merged), path: path, name: name)
    }

    func resolve(_ ref: String, path: String) throws(JSONSchemaError) -> OrderedJSON {
        guard ref.hasPrefix("#") else { throw .unsupported(feature: "external $ref '\(ref)'", path: path) }
        var target = root
        for raw in ref.dropFirst().split(separator: "/") {
            guard let next = target[String(raw)] else { throw .invalidSchema("$ref '\(ref)' points to nothing") }
            target = next
        }
        return target
    }

    func int(_ v: OrderedJSON?, _ key: String, path: String) throws(JSONSchemaError) -> Int? {
        guard let v else { return nil }
        guard case let .number(d, _) = v, d >= 0, d == d.rounded(), d < 1e9 else {
            throw .invalidSchema("'\(key)' must be a non-negative integer at \(path)")
        }
        return Int(d)
    }

    mutating func typed(_ t: String, _ s: OrderedJSON, path: String, name: String) throws(JSONSchemaError) -> String {
        switch t {
        case "string": return try string(s, path: path, name: name)
        case "integer": return try integer(s, path: path, name: name)
        case "number":
            for k in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] where s[k] != nil {
                throw .unsupported(feature: "\(k) on type number (bounds are supported on integers only)", path: path)
            }
            return primitive("number")
        case "boolean": return primitive("boolean")
        case "null": return primitive("null")
        case "array": return try array(s, path: path, name: name)
        case "object": return try object(s, path: path, name: name)
        default: throw .invalidSchema("unknown type '\(t)' at \(path)")
        }
    }

    mutating func string(_ s: OrderedJSON, path: String, name: String) throws(JSONSchemaError) -> String {
        let minL = try int(s["minLength"], "minLength", path: path) ?? 0
        let maxL = try int(s["maxLength"], "maxLength", path: path)
        if let maxL, maxL < minL { throw .invalidSchema("maxLength < minLength at \(path)") }
        _ = primitive("ws")
        if let f = s["format"] {
            guard case let .string(format) = f, JSONSchemaGrammar.supportedFormats.contains(format) else {
                throw .unsupported(feature: "format \(f.jsonText)", path: path)
            }
            if s["pattern"] != nil || s["minLength"] != nil || s["maxLength"] != nil {
                throw .unsupported(feature: "format together with pattern/minLength/maxLength", path: path)
            }
            return rule(name, "\"\\\"\" \(primitive(format)) \"\\\"\" ws")
        }
        if let p = s["pattern"] {
            guard case let .string(pattern) = p else { throw .invalidSchema("'pattern' must be a string at \(path)") }
            if s["minLength"] != nil || s["maxLength"] != nil {
                throw .unsupported(feature: "pattern together with minLength/maxLength", path: path)
            }
            let body = try RegexToGBNF.convert(pattern, path: path, anyChar: primitive("char"))
            return rule(name, "\"\\\"\" \(body) \"\\\"\" ws")
        }
        if minL == 0 && maxL == nil { return primitive("string") }
        let ch = primitive("char")
        let rep = maxL.map { "{\(minL),\($0)}" } ?? "{\(minL),}"
        return rule(name, "\"\\\"\" \(ch)\(rep) \"\\\"\" ws")
    }

    mutating func integer(_ s: OrderedJSON, path: String, name: String) throws(JSONSchemaError) -> String {
        func bound(_ key: String) throws(JSONSchemaError) -> Double? {
            guard let v = s[key] else { return nil }
            if case let .bool(b) = v { return b ? .nan : nil }   // draft-4 boolean exclusives, handled below
            guard case let .number(d, _) = v else { throw .invalidSchema("'\(key)' must be a number at \(path)") }
            return d
        }
        var lo: Int64? = nil, hi: Int64? = nil
        let limit = 1e15
        func check(_ d: Double, _ key: String) throws(JSONSchemaError) {
            guard abs(d) < limit else { throw .unsupported(feature: "\(key) beyond ±10^15", path: path) }
        }
        if let d = try bound("minimum"), !d.isNaN {
            try check(d, "minimum")
            lo = Int64(d.rounded(.up))
            if s["exclusiveMinimum"] == .bool(true) { lo = Int64(d.rounded(.down)) + 1 }
        }
        if let d = try bound("exclusiveMinimum"), !d.isNaN { try check(d, "exclusiveMinimum"); lo = max(lo ?? .min, Int64(d.rounded(.down)) + 1) }
        if let d = try bound("maximum"), !d.isNaN {
            try check(d, "maximum")
            hi = Int64(d.rounded(.down))
            if s["exclusiveMaximum"] == .bool(true) { hi = Int64(d.rounded(.up)) - 1 }
        }
        if let d = try bound("exclusiveMaximum"), !d.isNaN { try check(d, "exclusiveMaximum"); hi = min(hi ?? .max, Int64(d.rounded(.up)) - 1) }
        if lo == nil && hi == nil { return primitive("integer") }
        if let lo, let hi, lo > hi { throw .invalidSchema("no integer satisfies the bounds at \(path)") }
        _ = primitive("ws")
        return rule(name, "( \(IntegerRange.gbnf(lo: lo, hi: hi)) ) ws")
    }

    mutating func array(_ s: OrderedJSON, path: String, name: String) throws(JSONSchemaError) -> String {
        let minI = try int(s["minItems"], "minItems", path: path) ?? 0
        let maxI = try int(s["maxItems"], "maxItems", path: path)
        if let maxI, maxI < minI { throw .invalidSchema("maxItems < minItems at \(path)") }
        if let maxI, maxI > 10_000 { throw .unsupported(feature: "maxItems above 10000", path: path) }
        _ = primitive("ws")
        var item = primitive("value")
        if let items = s["items"] {
            if items == .bool(false) {
                guard minI == 0 else { throw .invalidSchema("items: false with minItems > 0 at \(path)") }
                return rule(name, "\"[\" ws \"]\" ws")
            }
            if case .array = items { throw .unsupported(feature: "items as a list (tuple form)", path: path) }
            item = try visit(items, path: path + "/items", name: name + "-item")
        }
        if maxI == 0 { return rule(name, "\"[\" ws \"]\" ws") }
        let more: String
        if let maxI {
            more = "(\",\" ws \(item)){\(max(minI - 1, 0)),\(maxI - 1)}"
        } else {
            more = "(\",\" ws \(item)){\(max(minI - 1, 0)),}"
        }
        let list = "\(item) \(more)"
        return rule(name, minI == 0 ? "\"[\" ws ( \(list) )? \"]\" ws" : "\"[\" ws \(list) \"]\" ws")
    }

    mutating func object(_ s: OrderedJSON, path: String, name: String) throws(JSONSchemaError) -> String {
        var props: [OrderedJSON.Member] = []
        if let p = s["properties"] {
            guard case let .object(pm) = p else { throw .invalidSchema("'properties' must be an object at \(path)") }
            props = pm
        }
        var required = Set<String>()
        if case let .array(r)? = s["required"] {
            for x in r {
                guard case let .string(k) = x else { throw .invalidSchema("'required' must list strings at \(path)") }
                required.insert(k)
                if !props.contains(where: { $0.key == k }) { props.append(.init(k, .bool(true))) }
            }
        }
        _ = primitive("ws")
        var kvs: [String] = []
        for p in props {
            let v = try visit(p.value, path: "\(path)/properties/\(p.key)", name: "\(name == "root" ? "" : name + "-")\(Self.ruleName(p.key))")
            kvs.append(rule("\(name)-\(Self.ruleName(p.key))-kv", "\(gbnfLiteral(OrderedJSON.quote(p.key))) ws \":\" ws \(v)"))
        }
        // additionalProperties: absent or false → none (absent follows llama.cpp: fewer keys
        // are still valid); true or a schema → extra keys, which must differ from the named ones.
        var extra: String? = nil
        switch s["additionalProperties"] {
        case nil, .bool(false)?: break
        case let a?:
            let v = a == .bool(true) ? primitive("value") : try visit(a, path: path + "/additionalProperties", name: name + "-additional")
            let key = props.isEmpty ? primitive("string") : rule(name + "-extra-key", "\"\\\"\" " + excludingKeys(props.map(\.key), name: name + "-extra-key") + " \"\\\"\" ws")
            extra = rule(name + "-extra-kv", "\(key) \":\" ws \(v)")
        }
        // after[i]: properties i… when one has already been written (each needs a comma);
        // first[i]: the same when none has (the first written has none). Linear in the count.
        var after = Array(repeating: "", count: props.count + 1)
        var first = Array(repeating: "", count: props.count + 1)
        if let extra {
            after[props.count] = rule(name + "-rest", "(\",\" ws \(extra))*")
            first[props.count] = rule(name + "-rest0", "( \(extra) \(after[props.count]) )?")
        } else {
            after[props.count] = "\"\""
            first[props.count] = "\"\""
        }
        for i in stride(from: props.count - 1, through: 0, by: -1) {
            let kv = kvs[i]
            if required.contains(props[i].key) {
                after[i] = rule("\(name)-after-\(i)", "\",\" ws \(kv) \(after[i + 1])")
                first[i] = rule("\(name)-first-\(i)", "\(kv) \(after[i + 1])")
            } else {
                after[i] = rule("\(name)-after-\(i)", "\",\" ws \(kv) \(after[i + 1]) | \(after[i + 1])")
                first[i] = rule("\(name)-first-\(i)", "\(kv) \(after[i + 1]) | \(first[i + 1])")
            }
        }
        return rule(name, "\"{\" ws \(first[0]) \"}\" ws")
    }

    /// The inside of a JSON string (no quotes) that is none of `keys`: walks the keys' trie so
    /// that at every point the text may leave all of them.
    mutating func excludingKeys(_ keys: [String], name: String) -> String {
        let ch = primitive("char")
        func build(_ prefixes: [[Unicode.Scalar]], depth: Int) -> String {
            // Strings that, having matched `depth` scalars of some key, must differ from every key.
            var nextChars: [Unicode.Scalar: [[Unicode.Scalar]]] = [:]
            var endsHere = false
            for k in prefixes {
                if k.count == depth { endsHere = true } else { nextChars[k[depth], default: []].append(k) }
            }
            var alts: [String] = []
            // Stop here (an empty rest) unless a key ends exactly here.
            if !endsHere { alts.append("\"\"") }
            // Leave the trie with a character no key continues with, then anything.
            let banned = nextChars.keys.sorted { $0.value < $1.value }
            var cls = "[^\"\\\\\\x7F\\x00-\\x1F"
            for b in banned { cls += b == "]" || b == "\\" || b == "^" || b == "-" ? "\\\(b)" : String(b) }
            cls += "]"
            alts.append("\(cls) \(ch)*")
            if banned.contains(where: { $0 == "\\" || $0 == "\"" || $0.value < 0x20 }) { alts.append("\"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}) \(ch)*") }
            for c in banned {
                let sub = build(nextChars[c] ?? [], depth: depth + 1)
                alts.append(gbnfLiteral(String(c)) + " " + rule(name, sub))
            }
            return alts.joined(separator: " | ")
        }
        return "(" + build(keys.map { Array(OrderedJSON.quote($0).dropFirst().dropLast().unicodeScalars) }, depth: 0) + ")"
    }
}

/// GBNF for decimal integers in a range, built digit position by digit position (the usual
/// range-to-regex construction). No leading zeros, no "-0".
enum IntegerRange {
    static func gbnf(lo: Int64?, hi: Int64?) -> String {
        var alts: [String] = []
        // Negative part: -(a…b) with a = max(1, -hi), b = -lo.
        if (lo ?? -1) < 0 {
            let a = hi.map { $0 < 0 ? UInt64(-$0) : 1 } ?? 1
            let b = lo.map { UInt64(-$0) }
            alts.append("\"-\" ( " + nonNegative(a, b) + " )")
        }
        if (hi ?? 0) >= 0 {
            let a = lo.map { UInt64(max($0, 0)) } ?? 0
            alts.append(nonNegative(a, hi.map { UInt64($0) }))
        }
        return alts.joined(separator: " | ")
    }

    /// a…b (b nil: no upper bound, but at most 16 digits like the plain integer rule).
    static func nonNegative(_ a: UInt64, _ b: UInt64?) -> String {
        let la = String(a).count
        var alts: [String] = []
        if let b {
            let lb = String(b).count
            for len in la...lb {
                let low = len == la ? String(a) : "1" + String(repeating: "0", count: len - 1)
                let high = len == lb ? String(b) : String(repeating: "9", count: len)
                alts += sameLength(Array(low), Array(high))
            }
        } else {
            alts += sameLength(Array(String(a)), Array(String(repeating: "9", count: la)))
            if la < 16 { alts.append("[1-9] [0-9]{\(la),15}") }
        }
        return alts.joined(separator: " | ")
    }

    static func sameLength(_ lo: [Character], _ hi: [Character]) -> [String] {
        if lo.isEmpty { return ["\"\""] }
        if lo == hi { return ["\"" + String(lo) + "\""] }
        let n = lo.count
        if lo[0] == hi[0] {
            let rest = sameLength(Array(lo.dropFirst()), Array(hi.dropFirst()))
            return ["\"\(lo[0])\" ( " + rest.joined(separator: " | ") + " )"]
        }
        if lo.dropFirst().allSatisfy({ $0 == "0" }) && hi.dropFirst().allSatisfy({ $0 == "9" }) {
            return ["[\(lo[0])-\(hi[0])]" + (n > 1 ? " [0-9]{\(n - 1)}" : "")]
        }
        var out: [String] = []
        let l0 = lo[0].wholeNumberValue ?? 0, h0 = hi[0].wholeNumberValue ?? 0
        out.append("\"\(lo[0])\" ( " + sameLength(Array(lo.dropFirst()), Array(repeating: "9", count: n - 1)).joined(separator: " | ") + " )")
        if h0 - l0 > 1 { out.append("[\(l0 + 1)-\(h0 - 1)]" + (n > 1 ? " [0-9]{\(n - 1)}" : "")) }
        out.append("\"\(hi[0])\" ( " + sameLength(Array(repeating: "0", count: n - 1), Array(hi.dropFirst())).joined(separator: " | ") + " )")
        return out
    }
}
