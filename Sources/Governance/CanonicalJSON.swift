import Foundation

/// JSON with sorted keys and no insignificant whitespace (RFC 8785's shape for the values used
/// here: strings, integers, arrays, objects, null), so a manifest's bytes are reproducible.
public indirect enum CanonicalJSON: Sendable, Equatable {
    case null
    case int(Int64)
    case string(String)
    case array([CanonicalJSON])
    case object([String: CanonicalJSON])

    public func encoded() -> String {
        switch self {
        case .null: return "null"
        case let .int(i): return String(i)
        case let .string(s): return Self.quote(s)
        case let .array(a): return "[" + a.map { $0.encoded() }.joined(separator: ",") + "]"
        case let .object(o):
            // Sorted by UTF-16 code units, as RFC 8785 specifies.
            let keys = o.keys.sorted { Array($0.utf16).lexicographicallyPrecedes(Array($1.utf16)) }
            return "{" + keys.map { Self.quote($0) + ":" + (o[$0] ?? .null).encoded() }.joined(separator: ",") + "}"
        }
    }

    /// Helpers for records made of strings (the audit log's hash chain): the same bytes as
    /// `.string(s)` / `.array(strings)` / `.object(strings)`, without building the enum.
    public static func text(_ s: String?) -> String { s.map(quote) ?? "null" }
    public static func stringArray(_ a: [String]) -> String { "[" + a.map(quote).joined(separator: ",") + "]" }
    public static func stringObject(_ o: [String: String]) -> String { Self.object(o.mapValues { .string($0) }).encoded() }

    static func quote(_ s: String) -> String {
        // Most values need no escaping: skip the per-scalar walk.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5c }) { return "\"" + s + "\"" }
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
