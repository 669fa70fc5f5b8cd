/// A small declarative argument parser in the spirit of swift-argument-parser: each command
/// declares its options once; parsing, validation and `--help` text come from that declaration.

public struct OptionSpec: Sendable {
    public enum Kind: Sendable { case flag, value, repeated }
    public let names: [String]          // e.g. ["--model", "-m"]
    public let kind: Kind
    public let valueName: String
    public let help: String

    public static func flag(_ names: String..., help: String) -> OptionSpec {
        OptionSpec(names: names, kind: .flag, valueName: "", help: help)
    }
    public static func value(_ names: String..., valueName: String, help: String) -> OptionSpec {
        OptionSpec(names: names, kind: .value, valueName: valueName, help: help)
    }
    public static func repeated(_ names: String..., valueName: String, help: String) -> OptionSpec {
        OptionSpec(names: names, kind: .repeated, valueName: valueName, help: help)
    }
    var key: String { names[0] }
}

public struct UsageError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The result of parsing: option values by primary name, plus positionals.
public struct ParsedArguments: Sendable {
    var flags: Set<String> = []
    var values: [String: [String]] = [:]
    public var positionals: [String] = []

    public func flag(_ name: String) -> Bool { flags.contains(name) }
    public func value(_ name: String) -> String? { values[name]?.last }
    public func values(_ name: String) -> [String] { values[name] ?? [] }

    public func require(_ name: String) throws -> String {
        guard let v = value(name) else { throw UsageError("missing required option \(name)") }
        return v
    }

    public func int(_ name: String) throws -> Int? {
        guard let v = value(name) else { return nil }
        guard let i = Int(v) else { throw UsageError("\(name) expects an integer, got '\(v)'") }
        return i
    }

    public func double(_ name: String) throws -> Double? {
        guard let v = value(name) else { return nil }
        guard let d = Double(v), d.isFinite else { throw UsageError("\(name) expects a number, got '\(v)'") }
        return d
    }
}

public struct CommandSpec: Sendable {
    public let name: String
    public let summary: String
    public let usage: String
    public let options: [OptionSpec]
    public let discussion: String

    public init(name: String, summary: String, usage: String, options: [OptionSpec], discussion: String = "") {
        self.name = name
        self.summary = summary
        self.usage = usage
        self.options = options + [.flag("--help", "-h", help: "Show this help.")]
        self.discussion = discussion
    }

    public var helpText: String {
        var s = "\(summary)\n\nUsage: \(usage)\n"
        if !discussion.isEmpty { s += "\n\(discussion)\n" }
        s += "\nOptions:\n"
        for o in options {
            let left = o.names.joined(separator: ", ") + (o.kind == .flag ? "" : " \(o.valueName)")
            let pad = String(repeating: " ", count: max(2, 28 - left.count))
            s += "  \(left)\(pad)\(o.help)\(o.kind == .repeated ? " (repeatable)" : "")\n"
        }
        return s
    }

    /// Parses `args` (without the command name). `--name=value` and `--name value` both work;
    /// `--` ends option parsing.
    public func parse(_ args: [String]) throws -> ParsedArguments {
        var out = ParsedArguments()
        var i = 0
        var onlyPositionals = false
        while i < args.count {
            let a = args[i]
            i += 1
            if onlyPositionals || !a.hasPrefix("-") || a == "-" {
                out.positionals.append(a)
                continue
            }
            if a == "--" { onlyPositionals = true; continue }
            var name = a
            var inline: String?
            if a.hasPrefix("--"), let eq = a.firstIndex(of: "=") {
                name = String(a[..<eq])
                inline = String(a[a.index(after: eq)...])
            }
            guard let spec = options.first(where: { $0.names.contains(name) }) else {
                // A negative number is a positional value, not an option.
                if Double(a) != nil { out.positionals.append(a); continue }
                throw UsageError("unknown option \(name) for '\(self.name)'; see 'steward \(self.name) --help'")
            }
            switch spec.kind {
            case .flag:
                if inline != nil { throw UsageError("\(name) takes no value") }
                out.flags.insert(spec.key)
            case .value, .repeated:
                let v: String
                if let inline { v = inline } else {
                    guard i < args.count else { throw UsageError("\(name) needs a value (\(spec.valueName))") }
                    v = args[i]
                    i += 1
                }
                out.values[spec.key, default: []].append(v)
                if spec.kind == .value, out.values[spec.key]!.count > 1 {
                    throw UsageError("\(name) given more than once")
                }
            }
        }
        return out
    }
}
