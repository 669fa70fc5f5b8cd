import Foundation

/// Python's text forms of values: `str()`, `repr()`, float repr and `json.dumps`.
enum PyFormat {
    /// Python float repr: shortest round-trip digits, exponent form when the decimal exponent
    /// is below -4 or at least 16 (CPython's float_repr_style 'short').
    static func float(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description is also the shortest round-trip form; re-layout its digits.
        let desc = "\(abs(d))"
        var mantissa = desc
        var exp = 0
        if let e = desc.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = String(desc[..<e])
            exp = Int(desc[desc.index(after: e)...]) ?? 0
        }
        var intPart = mantissa
        var frac = ""
        if let dot = mantissa.firstIndex(of: ".") {
            intPart = String(mantissa[..<dot])
            frac = String(mantissa[mantissa.index(after: dot)...])
        }
        var digits = intPart + frac
        var point = intPart.count + exp  // decimal point position within digits
        // strip leading zeros
        while digits.hasPrefix("0"), digits.count > 1 { digits.removeFirst(); point -= 1 }
        while digits.hasSuffix("0"), digits.count > 1 { digits.removeLast() }
        let sciExp = point - 1
        var out = d < 0 ? "-" : ""
        if sciExp < -4 || sciExp >= 16 {
            out += String(digits.first!)
            if digits.count > 1 { out += "." + digits.dropFirst() }
            out += "e" + (sciExp < 0 ? "-" : "+") + (abs(sciExp) < 10 ? "0" : "") + String(abs(sciExp))
        } else if point <= 0 {
            out += "0." + String(repeating: "0", count: -point) + digits
        } else if point >= digits.count {
            out += digits + String(repeating: "0", count: point - digits.count) + ".0"
        } else {
            let idx = digits.index(digits.startIndex, offsetBy: point)
            out += digits[..<idx] + "." + digits[idx...]
        }
        return out
    }

    /// Python `str(value)`.
    static func str(_ v: Value) -> String {
        switch v {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr(v)
        }
    }

    /// Python `repr(value)` (what `str()` of a list or dict shows for its items).
    static func repr(_ v: Value) -> String {
        switch v {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return float(d)
        case .string(let s): return reprString(s)
        case .list(let a): return "[" + a.map(repr).joined(separator: ", ") + "]"
        case .tuple(let a):
            if a.count == 1 { return "(" + repr(a[0]) + ",)" }
            return "(" + a.map(repr).joined(separator: ", ") + ")"
        case .dict(let d):
            return "{" + d.items.map { repr($0.0) + ": " + repr($0.1) }.joined(separator: ", ") + "}"
        case .namespace(let n):
            return "<Namespace " + repr(.dict(n.attributes)) + ">"
        case .loop(let l): return "<LoopContext \(l.index0 + 1)/\(l.items.count)>"
        case .macro(let m): return "<Macro '\(m.def.name)'>"
        case .function(let f): return "<built-in function \(f.name)>"
        }
    }

    static func reprString(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(u) == quote {
                    out += "\\" + String(quote)
                } else if u.value < 0x20 || u.value == 0x7F || (u.value >= 0x80 && u.value < 0xA0) {
                    out += String(format: "\\x%02x", u.value)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out.append(quote)
        return out
    }

    /// `json.dumps(value, ensure_ascii=False, indent=..., separators=..., sort_keys=...)`.
    static func json(_ v: Value, indent: String?, itemSeparator: String? = nil, keySeparator: String? = nil,
                     sortKeys: Bool = false) throws -> String
    {
        var out = ""
        // Python's defaults: ", " without indent, "," with indent; ": " always.
        let itemSep = itemSeparator ?? (indent == nil ? ", " : ",")
        let keySep = keySeparator ?? ": "
        try writeJSON(v, into: &out, indent: indent, level: 0, itemSep: itemSep, keySep: keySep, sortKeys: sortKeys, depth: 0)
        return out
    }

    static func jsonString(_ s: String) -> String {
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
                if u.value < 0x20 {
                    out += String(format: "\\u%04x", u.value)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    private static func jsonKey(_ k: Value) throws -> String {
        switch k {
        case .string(let s): return jsonString(s)
        case .int(let i): return "\"\(i)\""
        case .double(let d): return "\"" + jsonFloat(d) + "\""
        case .bool(let b): return b ? "\"true\"" : "\"false\""
        case .none: return "\"null\""
        default: throw JSONFailure(message: "keys must be str, int, float, bool or None, not \(k.typeName)")
        }
    }

    static func jsonFloat(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        return float(d)
    }

    struct JSONFailure: Error { var message: String }

    private static func writeJSON(_ v: Value, into out: inout String, indent: String?, level: Int, itemSep: String,
                                  keySep: String, sortKeys: Bool, depth: Int) throws
    {
        if depth > 500 { throw JSONFailure(message: "value nests too deeply for tojson") }
        func newline(_ lvl: Int) {
            if let indent {
                out += "\n"
                for _ in 0..<lvl { out += indent }
            }
        }
        switch v {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += jsonFloat(d)
        case .string(let s): out += jsonString(s)
        case .list(let a), .tuple(let a):
            if a.isEmpty { out += "[]"; return }
            out += "["
            for (n, e) in a.enumerated() {
                if n > 0 { out += itemSep }
                newline(level + 1)
                try writeJSON(e, into: &out, indent: indent, level: level + 1, itemSep: itemSep, keySep: keySep, sortKeys: sortKeys, depth: depth + 1)
            }
            newline(level)
            out += "]"
        case .dict(let d):
            if d.count == 0 { out += "{}"; return }
            var items = d.items
            if sortKeys {
                items.sort { a, b in
                    if case .string(let x) = a.0, case .string(let y) = b.0 { return compareScalars(x, y) < 0 }
                    return (a.0.asDouble ?? 0) < (b.0.asDouble ?? 0)
                }
            }
            out += "{"
            for (n, (k, e)) in items.enumerated() {
                if n > 0 { out += itemSep }
                newline(level + 1)
                out += try jsonKey(k)
                out += keySep
                try writeJSON(e, into: &out, indent: indent, level: level + 1, itemSep: itemSep, keySep: keySep, sortKeys: sortKeys, depth: depth + 1)
            }
            newline(level)
            out += "}"
        case .namespace, .loop, .macro, .function, .undefined:
            throw JSONFailure(message: "Object of type \(v.typeName) is not JSON serializable")
        }
    }
}
