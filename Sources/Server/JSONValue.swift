import Foundation

/// Any JSON value, for fields whose shape varies (Ollama's `format`, `keep_alive`) or that we
/// only pass through (`model_info`).
public enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case let .bool(b): try c.encode(b)
        case let .number(n):
            if n == n.rounded(), abs(n) < 1e15 { try c.encode(Int64(n)) } else { try c.encode(n) }
        case let .string(s): try c.encode(s)
        case let .array(a): try c.encode(a)
        case let .object(o): try c.encode(o)
        }
    }

    /// True for null, "", [] and {}: a field given but saying nothing.
    public var isEmpty: Bool {
        switch self {
        case .null: return true
        case let .string(s): return s.isEmpty
        case let .array(a): return a.isEmpty
        case let .object(o): return o.isEmpty
        default: return false
        }
    }
}

/// A field that takes one string or a list of strings (`stop`, `prompt`, `input`).
public enum StringOrList: Codable, Sendable, Equatable {
    case one(String)
    case list([String])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .one(s); return }
        self = .list(try c.decode([String].self))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case let .one(s): try c.encode(s)
        case let .list(l): try c.encode(l)
        }
    }

    public var values: [String] {
        switch self {
        case let .one(s): return [s]
        case let .list(l): return l
        }
    }
}
