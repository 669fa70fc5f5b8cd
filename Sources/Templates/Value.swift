import Foundation

/// Runtime values, mirroring the Python objects a jinja2 template sees.
enum Value {
    case undefined(Undefined)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([Value])
    case tuple([Value])
    case dict(PyDict)
    case namespace(Namespace)
    case loop(LoopContext)
    case macro(Macro)
    case function(NativeFunction)

    static func undef(_ hint: String) -> Value { .undefined(Undefined(hint: hint)) }
}

/// jinja2's Undefined: prints as "", is falsy and iterates as empty, but fails on attribute
/// access, arithmetic and calls. `hint` is the message used when it fails.
struct Undefined {
    var hint: String?
    var message: String { hint ?? "value is undefined" }
}

/// A hashable image of a dict key; Python treats 1, 1.0 and True as the same key.
enum DictKey: Hashable {
    case none
    case int(Int)
    case double(Double)
    case string(String)
    case tuple([DictKey])

    init?(_ v: Value) {
        switch v {
        case .none: self = .none
        case .bool(let b): self = .int(b ? 1 : 0)
        case .int(let i): self = .int(i)
        case .double(let d):
            if d == d.rounded(), abs(d) < 9e18 { self = .int(Int(d)) } else { self = .double(d) }
        case .string(let s): self = .string(s)
        case .tuple(let items):
            var ks: [DictKey] = []
            for i in items {
                guard let k = DictKey(i) else { return nil }
                ks.append(k)
            }
            self = .tuple(ks)
        default: return nil
        }
    }
}

/// Insertion-ordered dictionary like Python's dict.
struct PyDict {
    private(set) var keys: [Value] = []
    private(set) var values: [Value] = []
    private var index: [DictKey: Int] = [:]

    init() {}

    var count: Int { keys.count }

    func get(_ key: Value) -> Value? {
        guard let k = DictKey(key), let i = index[k] else { return nil }
        return values[i]
    }

    func get(_ key: String) -> Value? {
        guard let i = index[.string(key)] else { return nil }
        return values[i]
    }

    /// Returns false when the key is unhashable (a list or dict).
    @discardableResult
    mutating func set(_ key: Value, _ value: Value) -> Bool {
        guard let k = DictKey(key) else { return false }
        if let i = index[k] {
            values[i] = value
        } else {
            index[k] = keys.count
            keys.append(key)
            values.append(value)
        }
        return true
    }

    mutating func set(_ key: String, _ value: Value) { set(.string(key), value) }

    var items: [(Value, Value)] { Array(zip(keys, values)) }
}

final class Namespace {
    var attributes = PyDict()
}

final class LoopContext {
    let items: [Value]
    var index0 = 0
    let depth0: Int
    let recurse: NativeFunction?
    var lastChanged: [Value]? = nil
    init(items: [Value], depth0: Int, recurse: NativeFunction?) {
        self.items = items
        self.depth0 = depth0
        self.recurse = recurse
    }
}

final class Macro {
    let def: MacroDef
    let closure: Scope
    let caller: Value?
    init(def: MacroDef, closure: Scope, caller: Value? = nil) {
        self.def = def
        self.closure = closure
        self.caller = caller
    }
}

struct Arguments {
    var positional: [Value] = []
    var keyword: [(String, Value)] = []

    /// Fetches a parameter by position or keyword (Python-style binding).
    func get(_ position: Int, _ name: String) -> Value? {
        if let kw = keyword.first(where: { $0.0 == name }) { return kw.1 }
        if position >= 0, position < positional.count { return positional[position] }
        return nil
    }
}

final class NativeFunction {
    let name: String
    let body: (Interpreter, Arguments) throws -> Value
    init(_ name: String, _ body: @escaping (Interpreter, Arguments) throws -> Value) {
        self.name = name
        self.body = body
    }
}

/// Variable scope; frames chain to their parent (for loops, macros) as jinja2's frames do.
final class Scope {
    var vars: [String: Value] = [:]
    let parent: Scope?
    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> Value? {
        var s: Scope? = self
        while let c = s {
            if let v = c.vars[name] { return v }
            s = c.parent
        }
        return nil
    }
}

extension Value {
    init(_ t: TemplateValue) {
        switch t {
        case .none: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .list(a.map(Value.init))
        case .object(let o):
            var d = PyDict()
            for (k, v) in o.entries { d.set(k, Value(v)) }
            self = .dict(d)
        }
    }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    var isNone: Bool {
        if case .none = self { return true }
        return false
    }

    /// Python truthiness.
    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d): return d.count > 0
        case .namespace, .loop, .macro, .function: return true
        }
    }

    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .loop: return "LoopContext"
        case .macro: return "Macro"
        case .function: return "builtin_function_or_method"
        }
    }

    /// Numeric view: bool counts as int like in Python.
    var asNumber: Value? {
        switch self {
        case .bool(let b): return .int(b ? 1 : 0)
        case .int, .double: return self
        default: return nil
        }
    }

    var asDouble: Double? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }
}

/// Python `==`.
func pyEqual(_ a: Value, _ b: Value) -> Bool {
    switch (a, b) {
    case (.undefined, .undefined), (.none, .none): return true
    case (.string(let x), .string(let y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
    case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
        return x.count == y.count && zip(x, y).allSatisfy { pyEqual($0, $1) }
    case (.dict(let x), .dict(let y)):
        guard x.count == y.count else { return false }
        for (k, v) in x.items {
            guard let w = y.get(k), pyEqual(v, w) else { return false }
        }
        return true
    case (.namespace(let x), .namespace(let y)): return x === y
    case (.loop(let x), .loop(let y)): return x === y
    case (.macro(let x), .macro(let y)): return x === y
    case (.function(let x), .function(let y)): return x === y
    default:
        if let x = a.asNumber, let y = b.asNumber {
            switch (x, y) {
            case (.int(let i), .int(let j)): return i == j
            default: return x.asDouble == y.asDouble
            }
        }
        return false
    }
}

/// Compare strings by code point, as Python does.
func compareScalars(_ a: String, _ b: String) -> Int {
    var ia = a.unicodeScalars.makeIterator()
    var ib = b.unicodeScalars.makeIterator()
    while true {
        switch (ia.next(), ib.next()) {
        case (nil, nil): return 0
        case (nil, _): return -1
        case (_, nil): return 1
        case let (x?, y?):
            if x.value != y.value { return x.value < y.value ? -1 : 1 }
        }
    }
}
