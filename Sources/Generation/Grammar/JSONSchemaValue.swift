import Foundation

/// A JSON value that keeps object members in document order (a schema's property order
/// decides the output's property order, which `JSONSerialization` and `Codable` dictionaries
/// lose).
public indirect enum OrderedJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number and its literal text as written.
    case number(Double, String)
    case string(String)
    case array([OrderedJSON])
    case object([Member])

    public struct Member: Sendable, Equatable {
        public var key: String
        public var value: OrderedJSON
        public init(_ key: String, _ value: OrderedJSON) { self.key = key; self.value = value }
    }

    public subscript(key: String) -> OrderedJSON? {
        if case let .object(m) = self { return m.first(where: { $0.key == key })?.value }
        return nil
    }

    /// Parses JSON text (RFC 8259; duplicate keys keep the last value, as most parsers do).
    public static func parse(_ text: String) throws(JSONSchemaError) -> OrderedJSON {
        try parse(Array(text.utf8))
    }

    public static func parse(_ bytes: [UInt8]) throws(JSONSchemaError) -> OrderedJSON {
        var p = JSONTextParser(b: bytes)
        p.ws()
        let v = try p.value(depth: 0)
        p.ws()
        guard p.i == bytes.count else { throw p.fail("unexpected text after the JSON value") }
        return v
    }

    /// Compact JSON text of this value (numbers as written).
    public var jsonText: String {
        switch self {
        case .null: return "null"
        case let .bool(b): return b ? "true" : "false"
        case let .number(_, raw): return raw
        case let .string(s): return OrderedJSON.quote(s)
        case let .array(a): return "[" + a.map(\.jsonText).joined(separator: ",") + "]"
        case let .object(m): return "{" + m.map { OrderedJSON.quote($0.key) + ":" + $0.value.jsonText }.joined(separator: ",") + "}"
        }
    }

    /// `s` as a JSON string literal: `"`, `\` and control characters escaped, the rest as is.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}

struct JSONTextParser {
    let b: [UInt8]
    var i = 0

    func fail(_ m: String) -> JSONSchemaError { .invalidSchema("invalid JSON at byte \(i): \(m)") }

    mutating func ws() { while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }

    mutating func literal(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard i + u.count <= b.count, Array(b[i..<i + u.count]) == u else { return false }
        i += u.count
        return true
    }

    mutating func value(depth: Int) throws(JSONSchemaError) -> OrderedJSON {
        guard depth < 256 else { throw fail("nested too deeply") }
        guard i < b.count else { throw fail("unexpected end") }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1; ws()
            var members: [OrderedJSON.Member] = []
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object([]) }
            while true {
                ws()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let k = try string()
                ws()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1; ws()
                let v = try value(depth: depth + 1)
                if let at = members.firstIndex(where: { $0.key == k }) { members[at].value = v } else { members.append(.init(k, v)) }
                ws()
                guard i < b.count else { throw fail("unterminated object") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1; ws()
            var items: [OrderedJSON] = []
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array([]) }
            while true {
                ws()
                items.append(try value(depth: depth + 1))
                ws()
                guard i < b.count else { throw fail("unterminated array") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): if literal("true") { return .bool(true) }; throw fail("unknown literal")
        case UInt8(ascii: "f"): if literal("false") { return .bool(false) }; throw fail("unknown literal")
        case UInt8(ascii: "n"): if literal("null") { return .null }; throw fail("unknown literal")
        default:
            let start = i
            if b[i] == UInt8(ascii: "-") { i += 1 }
            while i < b.count, (b[i] >= 0x30 && b[i] <= 0x39) || b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: "e")
                    || b[i] == UInt8(ascii: "E") || b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            let raw = String(decoding: b[start..<i], as: UTF8.self)
            guard let d = Double(raw), d.isFinite else { throw fail("bad number '\(raw)'") }
            return .number(d, raw)
        }
    }

    mutating func string() throws(JSONSchemaError) -> String {
        i += 1
        var out: [UInt8] = []
        while true {
            guard i < b.count else { throw fail("unterminated string") }
            let c = b[i]
            i += 1
            if c == UInt8(ascii: "\"") { break }
            if c != UInt8(ascii: "\\") { out.append(c); continue }
            guard i < b.count else { throw fail("unterminated escape") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "t"): out.append(9)
            case UInt8(ascii: "r"): out.append(13)
            case UInt8(ascii: "b"): out.append(8)
            case UInt8(ascii: "f"): out.append(12)
            case UInt8(ascii: "u"):
                func hex4() throws(JSONSchemaError) -> UInt32 {
                    guard i + 4 <= b.count, let v = UInt32(String(decoding: b[i..<i + 4], as: UTF8.self), radix: 16) else { throw fail("bad \\u escape") }
                    i += 4
                    return v
                }
                var v = try hex4()
                if v >= 0xD800 && v < 0xDC00, i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") {
                    i += 2
                    let lo = try hex4()
                    v = 0x10000 + ((v - 0xD800) << 10) + (lo &- 0xDC00)
                }
                out += Array(String(Unicode.Scalar(v).map(Character.init) ?? "\u{FFFD}").utf8)
            default: out.append(e)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
