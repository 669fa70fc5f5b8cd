/// safetensors reader and writer (format: huggingface/safetensors README).
///
/// Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
/// `{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, …}`
/// (padded with spaces), then the data section; offsets are relative to the data section.
/// Shapes are row-major (PyTorch order), unlike GGUF's ggml order.

public enum SafetensorsDType: String, Sendable, CaseIterable, CustomStringConvertible {
    case bool = "BOOL"
    case u8 = "U8"
    case i8 = "I8"
    case f8e5m2 = "F8_E5M2"
    case f8e4m3 = "F8_E4M3"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    public var elementSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64: return 8
        }
    }

    /// Rank in the reference writer's dtype ordering (its `Dtype` enum order, which rises with
    /// alignment). Tensors are written highest rank first so each one starts aligned to its
    /// element size when the header is padded to 8.
    var writeRank: Int { Self.allCases.firstIndex(of: self) ?? 0 }

    public var description: String { rawValue }
}

public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    /// Row-major shape; `[]` is a scalar.
    public let shape: [Int]
    /// Offset of the data from the start of the file.
    public let fileOffset: Int
    public let byteCount: Int

    public var elementCount: Int { shape.reduce(1, *) }
}

public final class SafetensorsFile: @unchecked Sendable {
    /// The reference implementation refuses headers over 100 MB; so do we.
    public static let maxHeaderBytes = 100_000_000
    /// Deeper JSON than this is not a safetensors header (real ones nest three levels).
    static let maxJSONDepth = 32

    public let mapped: MappedFile
    public var path: String { mapped.path }
    /// `__metadata__` (empty when absent).
    public let metadata: [String: String]
    /// Tensors ordered by where their data lies in the file.
    public let tensors: [SafetensorsTensorInfo]
    public let tensorIndex: [String: Int]
    /// Start of the data section (8 + header length).
    public let dataOffset: Int

    public convenience init(path: String) throws(ModelFileError) {
        try self.init(mapped: MappedFile(path: path))
    }

    public init(mapped: MappedFile) throws(ModelFileError) {
        self.mapped = mapped
        let path = mapped.path
        var c = ByteCursor(mapped.bytes, path: path)
        let n = try c.read(UInt64.self, "safetensors header length")
        guard n <= UInt64(Self.maxHeaderBytes) else {
            throw .corrupt(path: path, what: "safetensors header length \(n) is over the \(Self.maxHeaderBytes)-byte limit (not a safetensors file?)")
        }
        guard n <= UInt64(c.remaining) else {
            throw .truncated(path: path, what: "safetensors header of \(n) bytes runs past the end of the file (\(mapped.count) bytes)")
        }
        let header = try c.readBytes(Int(n), "safetensors header")
        guard header.first == UInt8(ascii: "{") else {
            let head = header.prefix(8).map { b -> String in
                (0x20..<0x7f).contains(b) ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
            }.joined()
            throw .badMagic(path: path, found: "a header of \(n) bytes beginning \"\(head)\" instead of a JSON object")
        }
        var parser = JSONParser(bytes: header, path: path, maxDepth: Self.maxJSONDepth)
        let root = try parser.parseDocument()
        guard case let .object(entries) = root else {
            throw .corrupt(path: path, what: "safetensors header is not a JSON object")
        }
        dataOffset = 8 + Int(n)
        let dataSize = mapped.count - dataOffset

        var meta: [String: String] = [:]
        var infos: [SafetensorsTensorInfo] = []
        infos.reserveCapacity(entries.count)
        var seen = Set<String>()
        for (name, value) in entries {
            guard seen.insert(name).inserted else {
                throw .corrupt(path: path, what: "safetensors header names '\(name)' twice")
            }
            if name == "__metadata__" {
                guard case let .object(pairs) = value else {
                    throw .corrupt(path: path, what: "__metadata__ is not a JSON object of strings")
                }
                for (k, v) in pairs {
                    guard case let .string(s) = v else {
                        throw .corrupt(path: path, what: "__metadata__ value of '\(k)' is not a string")
                    }
                    meta[k] = s
                }
                continue
            }
            infos.append(try Self.tensorInfo(name: name, value, dataOffset: dataOffset, dataSize: dataSize, path: path))
        }
        infos.sort { ($0.fileOffset, $0.name) < ($1.fileOffset, $1.name) }
        var index: [String: Int] = [:]
        for (i, t) in infos.enumerated() { index[t.name] = i }
        metadata = meta
        tensors = infos
        tensorIndex = index
    }

    static func tensorInfo(name: String, _ value: JSONValue, dataOffset: Int, dataSize: Int,
                           path: String) throws(ModelFileError) -> SafetensorsTensorInfo {
        guard case let .object(fields) = value else {
            throw .corrupt(path: path, what: "entry for tensor '\(name)' is not a JSON object")
        }
        var dtypeValue: JSONValue?, shapeValue: JSONValue?, offsetsValue: JSONValue?
        for (k, v) in fields {
            switch k {
            case "dtype": dtypeValue = v
            case "shape": shapeValue = v
            case "data_offsets": offsetsValue = v
            default: break  // like the reference reader, unknown fields are ignored
            }
        }
        guard case let .string(dtypeName)? = dtypeValue else {
            throw .corrupt(path: path, what: "tensor '\(name)' has no string \"dtype\"")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            let known = SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw .corrupt(path: path, what: "tensor '\(name)' has dtype '\(dtypeName)', which Steward cannot read (known: \(known))")
        }
        guard case let .array(shapeItems)? = shapeValue else {
            throw .corrupt(path: path, what: "tensor '\(name)' has no \"shape\" array")
        }
        var shape: [Int] = []
        var elements = 1
        for (i, item) in shapeItems.enumerated() {
            guard let d = item.nonNegativeInt else {
                throw .corrupt(path: path, what: "tensor '\(name)' shape entry \(i) is not a non-negative integer")
            }
            let (e, o) = elements.multipliedReportingOverflow(by: d)
            guard !o else { throw .corrupt(path: path, what: "tensor '\(name)' shape \(shapeItems.count)-D element count overflows") }
            elements = e
            shape.append(d)
        }
        let (bytes, o) = elements.multipliedReportingOverflow(by: dtype.elementSize)
        guard !o else { throw .corrupt(path: path, what: "tensor '\(name)' byte size overflows") }
        guard case let .array(offsetItems)? = offsetsValue, offsetItems.count == 2,
              let begin = offsetItems[0].nonNegativeInt, let end = offsetItems[1].nonNegativeInt else {
            throw .corrupt(path: path, what: "tensor '\(name)' needs \"data_offsets\": [begin, end] of non-negative integers")
        }
        guard begin <= end else {
            throw .corrupt(path: path, what: "tensor '\(name)' data_offsets [\(begin), \(end)] end before they begin")
        }
        guard end - begin == bytes else {
            throw .corrupt(path: path, what: "tensor '\(name)' (\(dtype), shape \(shape)) needs \(bytes) bytes but data_offsets [\(begin), \(end)] span \(end - begin)")
        }
        guard end <= dataSize else {
            throw .truncated(path: path, what: "tensor '\(name)' data_offsets [\(begin), \(end)] run past the end of the \(dataSize)-byte data section")
        }
        return SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, fileOffset: dataOffset + begin, byteCount: bytes)
    }

    public func tensor(named name: String) -> SafetensorsTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// Zero-copy view of a tensor's bytes inside the mmap. Valid while this file is alive.
    public func data(of info: SafetensorsTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: mapped.base + info.fileOffset, count: info.byteCount)
    }

    public func data(named name: String) throws(ModelFileError) -> UnsafeRawBufferPointer {
        guard let t = tensor(named: name) else { throw .tensorNotFound(path: path, name: name) }
        return data(of: t)
    }

    /// A floating-point tensor (F32, F16, BF16 or F64) widened or narrowed to Float.
    public func floats(named name: String) throws(ModelFileError) -> [Float] {
        guard let t = tensor(named: name) else { throw .tensorNotFound(path: path, name: name) }
        let b = data(of: t)
        let n = t.elementCount
        switch t.dtype {
        case .f32:
            return (0..<n).map { Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        case .f16:
            return (0..<n).map { Float(halfBits: UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
        case .bf16:
            // bfloat16 is the top half of an IEEE float32.
            return (0..<n).map { Float(bitPattern: UInt32(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) << 16) }
        case .f64:
            return (0..<n).map { Float(Double(bitPattern: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)))) }
        default:
            throw .typeMismatch(path: path, key: name, expected: "a floating-point tensor (F32, F16, BF16, F64)", found: t.dtype.rawValue)
        }
    }
}

extension Float {
    /// IEEE half to float, done by hand so it works where Swift's Float16 is unavailable.
    init(halfBits h: UInt16) {
        let sign = UInt32(h >> 15) << 31
        let exp = Int(h >> 10) & 0x1f
        let mant = UInt32(h & 0x3ff)
        if exp == 0 {
            // Zero or subnormal: mant * 2^-24.
            let v = Float(mant) * 0x1p-24
            self = sign == 0 ? v : -v
        } else if exp == 31 {
            self = Float(bitPattern: sign | 0x7f80_0000 | (mant << 13))
        } else {
            self = Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
        }
    }
}

/// Writes safetensors files the way the reference `safetensors` library does, so output is
/// deterministic and, for the same tensors and metadata, byte-identical to it: tensors sorted by
/// dtype (widest first, so every tensor is aligned to its element size) then by name; compact JSON
/// with `__metadata__` first; header padded with spaces to a multiple of 8 bytes.
public struct SafetensorsWriter: Sendable {
    public struct Tensor: Sendable {
        public let name: String
        public let dtype: SafetensorsDType
        public let shape: [Int]
        public let bytes: TensorBytes

        public init(name: String, dtype: SafetensorsDType, shape: [Int], bytes: TensorBytes) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.bytes = bytes
        }
    }

    public var metadata: [String: String]
    public private(set) var tensors: [Tensor]

    public init(metadata: [String: String] = [:], tensors: [Tensor] = []) {
        self.metadata = metadata
        self.tensors = tensors
    }

    public mutating func addTensor(name: String, dtype: SafetensorsDType, shape: [Int], bytes: TensorBytes) {
        tensors.append(Tensor(name: name, dtype: dtype, shape: shape, bytes: bytes))
    }

    public func validate() throws(ModelFileError) {
        var names = Set<String>()
        for t in tensors {
            guard t.name != "__metadata__" else {
                throw .invalidArgument("'__metadata__' is reserved in safetensors and cannot name a tensor")
            }
            guard names.insert(t.name).inserted else {
                throw .invalidArgument("tensor name '\(t.name)' is given twice; tensor names must be unique")
            }
            var elements = 1
            for d in t.shape {
                guard d >= 0 else { throw .invalidArgument("tensor '\(t.name)' has a negative dimension in shape \(t.shape)") }
                let (e, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw .invalidArgument("tensor '\(t.name)' shape \(t.shape) overflows") }
                elements = e
            }
            let (bytes, o) = elements.multipliedReportingOverflow(by: t.dtype.elementSize)
            guard !o, bytes == t.bytes.count else {
                throw .invalidArgument("tensor '\(t.name)' (\(t.dtype), shape \(t.shape)) needs \(o ? "too many" : String(bytes)) bytes but was given \(t.bytes.count)")
            }
        }
    }

    /// Tensors in the order their data is written.
    var orderedTensors: [Tensor] {
        tensors.sorted { a, b in
            a.dtype.writeRank != b.dtype.writeRank
                ? a.dtype.writeRank > b.dtype.writeRank
                : a.name.utf8.lexicographicallyPrecedes(b.name.utf8)  // byte order, as Rust compares strings
        }
    }

    /// The 8-byte length plus the padded JSON header.
    public func headerBytes() throws(ModelFileError) -> [UInt8] {
        try validate()
        return header(for: orderedTensors)
    }

    func header(for ordered: [Tensor]) -> [UInt8] {
        var json: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        func comma() { if !first { json.append(UInt8(ascii: ",")) }; first = false }
        if !metadata.isEmpty {
            comma()
            JSONWriter.string("__metadata__", into: &json)
            json.append(contentsOf: Array(":{".utf8))
            for (i, key) in metadata.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
                if i > 0 { json.append(UInt8(ascii: ",")) }
                JSONWriter.string(key, into: &json)
                json.append(UInt8(ascii: ":"))
                JSONWriter.string(metadata[key] ?? "", into: &json)
            }
            json.append(UInt8(ascii: "}"))
        }
        var offset = 0
        for t in ordered {
            comma()
            JSONWriter.string(t.name, into: &json)
            json.append(contentsOf: Array(":{\"dtype\":".utf8))
            JSONWriter.string(t.dtype.rawValue, into: &json)
            json.append(contentsOf: Array(",\"shape\":[".utf8))
            json.append(contentsOf: Array(t.shape.map(String.init).joined(separator: ",").utf8))
            let end = offset + t.bytes.count
            json.append(contentsOf: Array("],\"data_offsets\":[\(offset),\(end)]}".utf8))
            offset = end
        }
        json.append(UInt8(ascii: "}"))
        json.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - json.count % 8) % 8))
        var out = ByteWriter()
        out.u64(UInt64(json.count))
        out.bytes.append(contentsOf: json)
        return out.bytes
    }

    /// Validates, then writes the file atomically with mode 0644 (deferred tensors are produced
    /// one at a time as they are reached).
    public func write(to path: String) throws {
        try validate()
        let ordered = orderedTensors
        let head = header(for: ordered)
        let file = try AtomicFileWriter(path: path)
        do {
            try withRawBytes(head) { (b) throws(ModelFileError) in try file.write(b) }
            for t in ordered {
                try t.bytes.withUnsafeBytes { b in try file.write(b) }
            }
            try file.commit()
        } catch {
            file.abandon()
            throw error
        }
    }
}

// MARK: - JSON

/// The JSON a safetensors header can hold. Objects keep their order and duplicates so the reader
/// can reject a tensor named twice instead of silently keeping one.
indirect enum JSONValue {
    case object([(String, JSONValue)])
    case array([JSONValue])
    case string(String)
    /// The number's literal text, so large integers are checked exactly rather than via Double.
    case number(String)
    case bool(Bool)
    case null

    /// The value when it is an integer literal in 0...Int.max.
    var nonNegativeInt: Int? {
        guard case let .number(text) = self, !text.isEmpty else { return nil }
        var v = 0
        for ch in text.utf8 {
            guard ch >= UInt8(ascii: "0"), ch <= UInt8(ascii: "9") else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(ch - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            v = a
        }
        return v
    }
}

/// A strict RFC 8259 parser over untrusted bytes: bounded nesting, every index checked, invalid
/// UTF-8 and unpaired surrogates rejected (the reference reader requires valid UTF-8 too).
struct JSONParser {
    let bytes: UnsafeRawBufferPointer
    let path: String
    let maxDepth: Int
    var i = 0
    static let maxArrayItems = 1 << 16

    init(bytes: UnsafeRawBufferPointer, path: String, maxDepth: Int) {
        self.bytes = bytes
        self.path = path
        self.maxDepth = maxDepth
    }

    func fail(_ what: String) -> ModelFileError {
        .corrupt(path: path, what: "safetensors header JSON: \(what) at byte \(i)")
    }

    var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    mutating func skipWhitespace() {
        while let c = peek, c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d { i += 1 }
    }

    mutating func parseDocument() throws(ModelFileError) -> JSONValue {
        let v = try parseValue(depth: 0)
        skipWhitespace()
        guard i == bytes.count else { throw fail("unexpected text after the header object") }
        return v
    }

    mutating func expect(_ literal: String) throws(ModelFileError) {
        for ch in literal.utf8 {
            guard peek == ch else { throw fail("expected '\(literal)'") }
            i += 1
        }
    }

    mutating func parseValue(depth: Int) throws(ModelFileError) -> JSONValue {
        skipWhitespace()
        guard let c = peek else { throw fail("unexpected end") }
        switch c {
        case UInt8(ascii: "{"):
            guard depth < maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
            i += 1
            var pairs: [(String, JSONValue)] = []
            skipWhitespace()
            if peek == UInt8(ascii: "}") { i += 1; return .object(pairs) }
            while true {
                skipWhitespace()
                guard peek != nil else { throw fail("unexpected end") }
                guard peek == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try parseString()
                skipWhitespace()
                try expect(":")
                pairs.append((key, try parseValue(depth: depth + 1)))
                skipWhitespace()
                if peek == UInt8(ascii: ",") { i += 1; continue }
                if peek == UInt8(ascii: "}") { i += 1; return .object(pairs) }
                throw fail("expected ',' or '}' in an object")
            }
        case UInt8(ascii: "["):
            guard depth < maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
            i += 1
            var items: [JSONValue] = []
            skipWhitespace()
            if peek == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                // Header arrays are shapes and offsets; a huge one is an attack on memory.
                guard items.count < Self.maxArrayItems else { throw fail("array longer than \(Self.maxArrayItems) items") }
                items.append(try parseValue(depth: depth + 1))
                skipWhitespace()
                if peek == UInt8(ascii: ",") { i += 1; continue }
                if peek == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw fail("expected ',' or ']' in an array")
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try expect("true"); return .bool(true)
        case UInt8(ascii: "f"):
            try expect("false"); return .bool(false)
        case UInt8(ascii: "n"):
            try expect("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        default:
            throw fail("unexpected character 0x\(String(c, radix: 16))")
        }
    }

    mutating func digits() -> Int {
        let start = i
        while let c = peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { i += 1 }
        return i - start
    }

    mutating func parseNumber() throws(ModelFileError) -> String {
        let start = i
        if peek == UInt8(ascii: "-") { i += 1 }
        let intStart = i
        let n = digits()
        guard n > 0 else { throw fail("malformed number") }
        guard n == 1 || bytes[intStart] != UInt8(ascii: "0") else { throw fail("number with a leading zero") }
        if peek == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw fail("malformed number") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            i += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw fail("malformed number") }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
    }

    mutating func hex4() throws(ModelFileError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("bad hex digit in \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    mutating func parseString() throws(ModelFileError) -> String {
        i += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard let c = peek else { throw fail("unterminated string") }
            i += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
                return s
            case UInt8(ascii: "\\"):
                guard let e = peek else { throw fail("unterminated escape") }
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard peek == UInt8(ascii: "\\") else { throw fail("unpaired surrogate") }
                        i += 1
                        guard peek == UInt8(ascii: "u") else { throw fail("unpaired surrogate") }
                        i += 1
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(code) {
                        throw fail("unpaired surrogate")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    throw fail("unknown escape '\\\(String(UnicodeScalar(e)))'")
                }
            case 0..<0x20:
                throw fail("control character in a string")
            default:
                out.append(c)
            }
        }
    }
}

/// JSON string output escaped the way serde_json does (short escapes for \b \f \n \r \t,
/// `\u00XX` for other control characters, everything else raw UTF-8), so headers match the
/// reference writer byte for byte.
enum JSONWriter {
    static func string(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        let hex = Array("0123456789abcdef".utf8)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5c, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5c, 0x5c])
            case 0x08: out.append(contentsOf: [0x5c, UInt8(ascii: "b")])
            case 0x0c: out.append(contentsOf: [0x5c, UInt8(ascii: "f")])
            case 0x0a: out.append(contentsOf: [0x5c, UInt8(ascii: "n")])
            case 0x0d: out.append(contentsOf: [0x5c, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5c, UInt8(ascii: "t")])
            case 0..<0x20:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 15)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
