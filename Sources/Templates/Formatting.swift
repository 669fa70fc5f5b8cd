import Foundation

/// Python string formatting: `"%s" % x`, `"{}".format(x)`, and `strftime`.
extension PyFormat {
    struct Spec {
        var fill: Character = " "
        var align: Character? = nil
        var sign: Character = "-"
        var zero = false
        var width = 0
        var precision: Int? = nil
        var type: Character? = nil
    }

    static func applyWidth(_ body: String, _ spec: Spec, numeric: Bool) -> String {
        let n = body.unicodeScalars.count
        if spec.width <= n { return body }
        let padCount = spec.width - n
        let align = spec.align ?? (numeric ? ">" : "<")
        if spec.zero && numeric && spec.align == nil {
            var b = body
            var signPart = ""
            if b.hasPrefix("-") || b.hasPrefix("+") || b.hasPrefix(" ") { signPart = String(b.removeFirst()) }
            return signPart + String(repeating: "0", count: padCount) + b
        }
        let pad = { (k: Int) in String(repeating: spec.fill, count: k) }
        switch align {
        case "<": return body + pad(padCount)
        case "^": return pad(padCount / 2) + body + pad(padCount - padCount / 2)
        case "=":
            var b = body
            var signPart = ""
            if b.hasPrefix("-") || b.hasPrefix("+") { signPart = String(b.removeFirst()) }
            return signPart + pad(padCount) + b
        default: return pad(padCount) + body
        }
    }

    /// Formats one value under a conversion type (shared by `%` and `format`).
    static func formatValue(_ v: Value, _ spec: Spec, percentStyle: Bool) throws -> String {
        var body: String
        var numeric = false
        let t = spec.type
        func signed(_ s: String, _ negative: Bool) -> String {
            if negative { return "-" + s }
            if spec.sign == "+" { return "+" + s }
            if spec.sign == " " { return " " + s }
            return s
        }
        switch t {
        case "d", "i", "x", "X", "o", "c":
            guard let n = v.asNumber else { throw Failure("%\(t!) format: a number is required, not \(v.typeName)") }
            numeric = true
            let i: Int
            switch n {
            case .int(let x): i = x
            case .double(let d): i = Int(exactly: d.rounded(.towardZero)) ?? 0
            default: i = 0
            }
            if t == "c" { return String(Character(Unicode.Scalar(UInt32(max(0, i))) ?? " ")) }
            let radix = t == "x" || t == "X" ? 16 : t == "o" ? 8 : 10
            var digits = String(i.magnitude, radix: radix)
            if t == "X" { digits = digits.uppercased() }
            body = signed(digits, i < 0)
        case "f", "F", "e", "E", "g", "G", "%":
            guard let d = v.asDouble else { throw Failure("format: a real number is required, not \(v.typeName)") }
            numeric = true
            let p = spec.precision ?? 6
            switch t {
            case "f", "F": body = String(format: "%.\(p)f", abs(d))
            case "e", "E": body = String(format: "%.\(p)\(t!)", abs(d))
            case "%": body = String(format: "%.\(p)f", abs(d) * 100) + "%"
            default: body = String(format: "%.\(max(p, 1))\(t!)", abs(d))
            }
            if d.isNaN { body = "nan" } else if d.isInfinite { body = "inf" }
            body = signed(body, d < 0 || (d == 0 && d.sign == .minus))
        case "r":
            body = repr(v)
            if let p = spec.precision { body = String(body.unicodeScalars.prefix(p).map(Character.init)) }
        default:
            let isBool: Bool
            if case .bool = v { isBool = true } else { isBool = false }
            if t == nil, !percentStyle, !isBool, let n = v.asNumber {
                switch n {
                case .int(let i):
                    return applyWidth(signed(String(i.magnitude), i < 0), spec, numeric: true)
                case .double(let d):
                    if let p = spec.precision {
                        return applyWidth(signed(String(format: "%.\(max(p, 1))g", abs(d)), d < 0), spec, numeric: true)
                    }
                    return applyWidth(signed(float(abs(d)), d < 0), spec, numeric: true)
                default: break
                }
            }
            body = str(v)
            if let p = spec.precision { body = String(String.UnicodeScalarView(body.unicodeScalars.prefix(p))) }
        }
        return applyWidth(body, spec, numeric: numeric)
    }

    /// Python printf-style `format % args`.
    static func percent(_ format: String, _ args: Value) throws -> String {
        var positional: [Value]
        var mapping: PyDict? = nil
        switch args {
        case .tuple(let t): positional = t
        case .dict(let d): positional = [args]; mapping = d
        default: positional = [args]
        }
        var next = 0
        var out = ""
        let sc = Array(format.unicodeScalars)
        var i = 0
        func take() throws -> Value {
            guard next < positional.count else { throw Failure("not enough arguments for format string") }
            defer { next += 1 }
            return positional[next]
        }
        while i < sc.count {
            let c = sc[i]
            if c != "%" { out.unicodeScalars.append(c); i += 1; continue }
            i += 1
            guard i < sc.count else { throw Failure("incomplete format") }
            var value: Value? = nil
            if sc[i] == "(" {
                var j = i + 1
                var key = ""
                while j < sc.count, sc[j] != ")" { key.unicodeScalars.append(sc[j]); j += 1 }
                guard j < sc.count, let m = mapping else { throw Failure("format requires a mapping") }
                value = m.get(key) ?? .undef("'\(key)' is undefined")
                if value!.isUndefined { throw Failure("KeyError: '\(key)'") }
                i = j + 1
            }
            var spec = Spec()
            while i < sc.count, "-+ 0#".unicodeScalars.contains(sc[i]) {
                switch sc[i] {
                case "-": spec.align = "<"
                case "+": spec.sign = "+"
                case " ": if spec.sign != "+" { spec.sign = " " }
                case "0": spec.zero = true
                default: break
                }
                i += 1
            }
            if spec.align == "<" { spec.zero = false }
            if i < sc.count, sc[i] == "*" {
                guard case .int(let w) = try take() else { throw Failure("* wants int") }
                spec.width = w; i += 1
            }
            while i < sc.count, let d = Int(String(sc[i])) { spec.width = spec.width * 10 + d; i += 1 }
            if i < sc.count, sc[i] == "." {
                i += 1
                var p = 0
                while i < sc.count, let d = Int(String(sc[i])) { p = p * 10 + d; i += 1 }
                spec.precision = p
            }
            guard i < sc.count else { throw Failure("incomplete format") }
            let conv = Character(sc[i])
            i += 1
            if conv == "%" { out += "%"; continue }
            guard "sdirfFeEgGxXoca".contains(conv) else { throw Failure("unsupported format character '\(conv)'") }
            let v = try value ?? take()
            spec.type = conv == "s" || conv == "a" ? nil : (conv == "i" ? "d" : conv)
            if spec.type == nil {
                var s = str(v)
                if let p = spec.precision { s = String(String.UnicodeScalarView(s.unicodeScalars.prefix(p))) }
                out += applyWidth(s, spec, numeric: false)
            } else {
                out += try formatValue(v, spec, percentStyle: true)
            }
        }
        if mapping == nil, next < positional.count {
            throw Failure("not all arguments converted during string formatting")
        }
        return out
    }

    static func parseSpec(_ s: String) throws -> Spec {
        var spec = Spec()
        var c = Array(s)
        if c.count >= 2, "<>^=".contains(c[1]) {
            spec.fill = c[0]; spec.align = c[1]; c.removeFirst(2)
        } else if let f = c.first, "<>^=".contains(f) {
            spec.align = f; c.removeFirst()
        }
        if let f = c.first, "+- ".contains(f) { spec.sign = f; c.removeFirst() }
        if c.first == "0" { spec.zero = true; c.removeFirst() }
        var w = ""
        while let f = c.first, f.isASCII, f.isNumber { w.append(f); c.removeFirst() }
        spec.width = Int(w) ?? 0
        if c.first == "," || c.first == "_" { c.removeFirst() }
        if c.first == "." {
            c.removeFirst()
            var p = ""
            while let f = c.first, f.isASCII, f.isNumber { p.append(f); c.removeFirst() }
            spec.precision = Int(p) ?? 0
        }
        if let f = c.first { spec.type = f; c.removeFirst() }
        if !c.isEmpty { throw Failure("invalid format specifier '\(s)'") }
        if spec.type == "s" { spec.type = nil }
        return spec
    }

    /// Python `str.format`: `{}`, `{0}`, `{name}`, `{x!r}`, `{x:>10}`.
    static func strFormat(_ format: String, _ args: Arguments) throws -> String {
        var out = ""
        var auto = 0
        let sc = Array(format)
        var i = 0
        while i < sc.count {
            let c = sc[i]
            if c == "{" {
                if i + 1 < sc.count, sc[i + 1] == "{" { out += "{"; i += 2; continue }
                var j = i + 1
                var field = ""
                while j < sc.count, sc[j] != "}" { field.append(sc[j]); j += 1 }
                guard j < sc.count else { throw Failure("single '{' encountered in format string") }
                i = j + 1
                var specText = ""
                if let colon = field.firstIndex(of: ":") {
                    specText = String(field[field.index(after: colon)...])
                    field = String(field[..<colon])
                }
                var conversion: Character? = nil
                if let bang = field.firstIndex(of: "!") {
                    conversion = field[field.index(after: bang)...].first
                    field = String(field[..<bang])
                }
                let value: Value
                if field.isEmpty {
                    guard auto < args.positional.count else { throw Failure("Replacement index \(auto) out of range for positional args tuple") }
                    value = args.positional[auto]; auto += 1
                } else if let n = Int(field) {
                    guard n < args.positional.count else { throw Failure("Replacement index \(n) out of range for positional args tuple") }
                    value = args.positional[n]
                } else {
                    guard let kw = args.keyword.first(where: { $0.0 == field }) else { throw Failure("KeyError: '\(field)'") }
                    value = kw.1
                }
                var v = value
                if conversion == "r" { v = .string(repr(value)) } else if conversion == "s" { v = .string(str(value)) }
                out += try formatValue(v, try parseSpec(specText), percentStyle: false)
            } else if c == "}" {
                if i + 1 < sc.count, sc[i + 1] == "}" { out += "}"; i += 2; continue }
                throw Failure("single '}' encountered in format string")
            } else {
                out.append(c); i += 1
            }
        }
        return out
    }

    static let monthNames = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
    static let dayNames = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

    /// C `strftime` for the common directives (English names), in the given time zone.
    static func strftime(_ format: String, _ date: Date, _ zone: TimeZone) -> String {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = zone
        let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday, .nanosecond], from: date)
        let year = c.year ?? 1970, month = c.month ?? 1, day = c.day ?? 1
        let hour = c.hour ?? 0, minute = c.minute ?? 0, second = c.second ?? 0
        let weekday = (c.weekday ?? 1) - 1
        let dayOfYear = cal.ordinality(of: .day, in: .year, for: date) ?? 1
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        var out = ""
        let it = Array(format)
        var i = 0
        while i < it.count {
            let ch = it[i]
            guard ch == "%", i + 1 < it.count else { out.append(ch); i += 1; continue }
            var d = it[i + 1]
            var noPad = false
            if d == "-", i + 2 < it.count { noPad = true; d = it[i + 2]; i += 1 }
            i += 2
            func num(_ n: Int, _ w: Int = 2) -> String {
                noPad ? "\(n)" : String(repeating: "0", count: max(0, w - "\(n)".count)) + "\(n)"
            }
            switch d {
            case "Y": out += "\(year)"
            case "y": out += num(year % 100)
            case "m": out += num(month)
            case "d": out += num(day)
            case "e": out += noPad ? "\(day)" : (day < 10 ? " \(day)" : "\(day)")
            case "H": out += num(hour)
            case "I": out += num(hour % 12 == 0 ? 12 : hour % 12)
            case "M": out += num(minute)
            case "S": out += num(second)
            case "p": out += hour < 12 ? "AM" : "PM"
            case "B": out += monthNames[month - 1]
            case "b", "h": out += String(monthNames[month - 1].prefix(3))
            case "A": out += dayNames[weekday]
            case "a": out += String(dayNames[weekday].prefix(3))
            case "j": out += num(dayOfYear, 3)
            case "w": out += "\(weekday)"
            case "u": out += "\(weekday == 0 ? 7 : weekday)"
            case "f": out += num((c.nanosecond ?? 0) / 1000, 6)
            case "F": out += "\(year)-\(two(month))-\(two(day))"
            case "T": out += "\(two(hour)):\(two(minute)):\(two(second))"
            case "D": out += "\(two(month))/\(two(day))/\(two(year % 100))"
            case "Z": out += zone.abbreviation(for: date) ?? zone.identifier
            case "z":
                let off = zone.secondsFromGMT(for: date)
                out += (off < 0 ? "-" : "+") + two(abs(off) / 3600) + two(abs(off) % 3600 / 60)
            case "%": out += "%"
            case "n": out += "\n"
            case "t": out += "\t"
            default: out += "%" + String(d)
            }
        }
        return out
    }
}
