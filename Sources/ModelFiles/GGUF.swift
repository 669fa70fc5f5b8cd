/// GGUF v2/v3 reader over an mmap (format: ggml's docs/gguf.md).
///
/// Layout: magic "GGUF", version u32, tensor count u64, metadata count u64, then metadata
/// key/value pairs, tensor infos, padding to `general.alignment` (default 32), and the tensor data.
/// Every count, length and offset is checked against the bytes that remain before it is used.

public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6
    case bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    public var name: String {
        switch self {
        case .uint8: return "u8"
        case .int8: return "i8"
        case .uint16: return "u16"
        case .int16: return "i16"
        case .uint32: return "u32"
        case .int32: return "i32"
        case .float32: return "f32"
        case .bool: return "bool"
        case .string: return "string"
        case .array: return "array"
        case .uint64: return "u64"
        case .int64: return "i64"
        case .float64: return "f64"
        }
    }

    /// Smallest encoded size of one value, used to bound array counts before allocating.
    var minimumEncodedSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64, .string: return 8
        case .array: return 12
        }
    }
}

public indirect enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }

    /// Any integer type as Int (nil for non-integers or an unrepresentable u64).
    public var intValue: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    /// Any numeric type as Double.
    public var doubleValue: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return intValue.map(Double.init)
        }
    }

    public var stringValue: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case let .bool(b) = self { return b }
        return nil
    }

    public var arrayValue: [GGUFValue]? {
        if case let .array(_, a) = self { return a }
        return nil
    }

    /// A short human description of the type, e.g. `array[string; 49152]`.
    public var typeDescription: String {
        if case let .array(t, a) = self { return "array[\(t.name); \(a.count)]" }
        return type.name
    }
}

public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    public let type: GGMLType
    /// Dimensions in ggml order: `dims[0]` is the contiguous (row) dimension.
    public let dims: [Int]
    /// Offset of the data from the start of the file.
    public let fileOffset: Int
    public let byteCount: Int

    public var elementCount: Int { dims.reduce(1, *) }
}

public final class GGUFFile: @unchecked Sendable {
    public static let maxDims = 4
    public static let defaultAlignment = 32
    /// Arrays nested deeper than this are rejected (real files nest at most once).
    static let maxNesting = 8

    public let mapped: MappedFile
    public var path: String { mapped.path }
    public let version: UInt32
    /// Metadata in file order.
    public let metadataPairs: [(key: String, value: GGUFValue)]
    public let metadata: [String: GGUFValue]
    public let tensors: [GGUFTensorInfo]
    public let tensorIndex: [String: Int]
    public let alignment: Int
    public let dataOffset: Int

    public convenience init(path: String) throws(ModelFileError) {
        try self.init(mapped: MappedFile(path: path))
    }

    public init(mapped: MappedFile) throws(ModelFileError) {
        self.mapped = mapped
        let path = mapped.path
        var c = ByteCursor(mapped.bytes, path: path)
        let magic = try c.read(UInt32.self, "magic")
        if magic != 0x4655_4747 {
            let head = mapped.bytes.prefix(4).map { b -> String in
                (0x20..<0x7f).contains(b) ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
            }.joined()
            throw .badMagic(path: path, found: "\"\(head)\"")
        }
        version = try c.read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw .unsupportedVersion(path: path, version: version) }
        let nTensors = try c.read(UInt64.self, "tensor count")
        let nKV = try c.read(UInt64.self, "metadata count")
        // Each KV needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least 8+4+4+8.
        guard nKV <= UInt64(c.remaining / 13) else {
            throw .corrupt(path: path, what: "metadata count \(nKV) cannot fit in the \(c.remaining) bytes that remain")
        }
        guard nTensors <= UInt64(c.remaining / 24) else {
            throw .corrupt(path: path, what: "tensor count \(nTensors) cannot fit in the \(c.remaining) bytes that remain")
        }
        var pairs: [(key: String, value: GGUFValue)] = []
        pairs.reserveCapacity(Self.initialCapacity(nKV))
        var dict: [String: GGUFValue] = [:]
        for i in 0..<Int(nKV) {
            let key = try Self.readString(&c, "key of metadata entry \(i)")
            let rawType = try c.read(UInt32.self, "type of '\(key)'")
            guard let t = GGUFValueType(rawValue: rawType) else {
                throw .corrupt(path: path, what: "metadata '\(key)' has unknown value type \(rawType)")
            }
            let v = try Self.readValue(&c, type: t, key: key, depth: 0)
            if dict[key] != nil {
                throw .corrupt(path: path, what: "metadata key '\(key)' appears twice")
            }
            dict[key] = v
            pairs.append((key, v))
        }
        metadataPairs = pairs
        metadata = dict

        var align = Self.defaultAlignment
        if let a = dict["general.alignment"] {
            guard case let .uint32(v) = a else {
                throw .typeMismatch(path: path, key: "general.alignment", expected: "u32", found: a.typeDescription)
            }
            guard v > 0, v & (v - 1) == 0, v <= 1 << 20 else {
                throw .corrupt(path: path, what: "general.alignment \(v) is not a power of two")
            }
            align = Int(v)
        }
        alignment = align

        struct RawInfo { let name: String; let type: GGMLType; let dims: [Int]; let offset: UInt64; let bytes: Int }
        var raws: [RawInfo] = []
        raws.reserveCapacity(Self.initialCapacity(nTensors))
        var index: [String: Int] = [:]
        for i in 0..<Int(nTensors) {
            let name = try Self.readString(&c, "name of tensor \(i)")
            let nDims = try c.read(UInt32.self, "dimension count of '\(name)'")
            guard nDims >= 1, nDims <= UInt32(Self.maxDims) else {
                throw .corrupt(path: path, what: "tensor '\(name)' has \(nDims) dimensions (1...\(Self.maxDims) allowed)")
            }
            var dims: [Int] = []
            var elements = 1
            for d in 0..<Int(nDims) {
                let n = try c.read(UInt64.self, "dimension \(d) of '\(name)'")
                guard n >= 1, n <= UInt64(Int32.max) else {
                    throw .corrupt(path: path, what: "tensor '\(name)' dimension \(d) is \(n)")
                }
                dims.append(Int(n))
                let (e, o) = elements.multipliedReportingOverflow(by: Int(n))
                guard !o, e <= Int(1) << 40 else {
                    throw .corrupt(path: path, what: "tensor '\(name)' element count overflows")
                }
                elements = e
            }
            let rawType = try c.read(UInt32.self, "type of '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw .unsupportedTensorType(path: path, tensor: name, type: rawType)
            }
            guard dims[0] % type.blockSize == 0, let bytes = type.byteCount(elements: elements) else {
                throw .corrupt(path: path, what: "tensor '\(name)' row of \(dims[0]) is not a whole number of \(type) blocks of \(type.blockSize)")
            }
            let off = try c.read(UInt64.self, "offset of '\(name)'")
            guard off % UInt64(align) == 0 else {
                throw .corrupt(path: path, what: "tensor '\(name)' offset \(off) is not aligned to \(align)")
            }
            if index[name] != nil {
                throw .corrupt(path: path, what: "tensor name '\(name)' appears twice")
            }
            index[name] = i
            raws.append(RawInfo(name: name, type: type, dims: dims, offset: off, bytes: bytes))
        }
        let pad = (align - c.offset % align) % align
        let start = c.offset + pad
        // A file with no tensors may end right after its header.
        if nTensors > 0 && start > mapped.count {
            throw .truncated(path: path, what: "tensor data section starts at \(start) beyond the end (\(mapped.count) bytes)")
        }
        dataOffset = start
        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(raws.count)
        for r in raws {
            let available = UInt64(max(0, mapped.count - start))
            guard r.offset <= available, UInt64(r.bytes) <= available - r.offset else {
                throw .truncated(path: path, what: "tensor '\(r.name)' (\(r.bytes) bytes at data offset \(r.offset)) runs past the end of the file (\(mapped.count) bytes)")
            }
            infos.append(GGUFTensorInfo(name: r.name, type: r.type, dims: r.dims,
                                        fileOffset: start + Int(r.offset), byteCount: r.bytes))
        }
        tensors = infos
        tensorIndex = index
    }

    /// Capacity to reserve for a count read from the file. Counts are only known to fit in the bytes
    /// that remain, and an array element in memory is larger than its smallest encoding, so trusting
    /// a lying count in a multi-GB file would reserve more memory than the machine has (a crash, not
    /// an error). Arrays grow past this as their elements actually parse.
    static func initialCapacity(_ count: UInt64) -> Int {
        Int(min(count, 1 << 16))
    }

    static func readString(_ c: inout ByteCursor, _ what: @autoclosure () -> String) throws(ModelFileError) -> String {
        let n = try c.read(UInt64.self, what())
        guard n <= UInt64(c.remaining) else {
            throw .truncated(path: c.path, what: "\(what()): string of \(n) bytes at offset \(c.offset - 8), only \(c.remaining) remain")
        }
        let b = try c.readBytes(Int(n), what())
        // GGUF strings are UTF-8; invalid sequences are repaired rather than trusted.
        return String(decoding: b, as: UTF8.self)
    }

    static func readValue(_ c: inout ByteCursor, type: GGUFValueType, key: String, depth: Int) throws(ModelFileError) -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try c.read(UInt8.self, key))
        case .int8: return .int8(try c.read(Int8.self, key))
        case .uint16: return .uint16(try c.read(UInt16.self, key))
        case .int16: return .int16(try c.read(Int16.self, key))
        case .uint32: return .uint32(try c.read(UInt32.self, key))
        case .int32: return .int32(try c.read(Int32.self, key))
        case .uint64: return .uint64(try c.read(UInt64.self, key))
        case .int64: return .int64(try c.read(Int64.self, key))
        case .float32: return .float32(try c.readF32(key))
        case .float64: return .float64(try c.readF64(key))
        case .bool:
            let b = try c.read(UInt8.self, key)
            guard b <= 1 else { throw .corrupt(path: c.path, what: "metadata '\(key)' bool has value \(b)") }
            return .bool(b == 1)
        case .string: return .string(try readString(&c, "metadata '\(key)'"))
        case .array:
            guard depth < maxNesting else {
                throw .corrupt(path: c.path, what: "metadata '\(key)' nests arrays deeper than \(maxNesting)")
            }
            let raw = try c.read(UInt32.self, "array type of '\(key)'")
            guard let et = GGUFValueType(rawValue: raw) else {
                throw .corrupt(path: c.path, what: "metadata '\(key)' array has unknown element type \(raw)")
            }
            let n = try c.read(UInt64.self, "array length of '\(key)'")
            guard n <= UInt64(c.remaining / et.minimumEncodedSize) else {
                throw .truncated(path: c.path, what: "metadata '\(key)' array of \(n) \(et.name) values cannot fit in the \(c.remaining) bytes that remain")
            }
            var out: [GGUFValue] = []
            out.reserveCapacity(initialCapacity(n))
            for _ in 0..<Int(n) {
                out.append(try readValue(&c, type: et, key: key, depth: depth + 1))
            }
            return .array(et, out)
        }
    }

    // MARK: - Typed metadata access

    public func string(_ key: String) -> String? { metadata[key]?.stringValue }
    public func int(_ key: String) -> Int? { metadata[key]?.intValue }
    public func double(_ key: String) -> Double? { metadata[key]?.doubleValue }
    public func bool(_ key: String) -> Bool? { metadata[key]?.boolValue }

    public func requireString(_ key: String) throws(ModelFileError) -> String {
        guard let v = metadata[key] else { throw .missingKey(path: path, key: key) }
        guard let s = v.stringValue else { throw .typeMismatch(path: path, key: key, expected: "string", found: v.typeDescription) }
        return s
    }

    public func requireInt(_ key: String) throws(ModelFileError) -> Int {
        guard let v = metadata[key] else { throw .missingKey(path: path, key: key) }
        guard let i = v.intValue else { throw .typeMismatch(path: path, key: key, expected: "integer", found: v.typeDescription) }
        return i
    }

    public func stringArray(_ key: String) throws(ModelFileError) -> [String]? {
        guard let v = metadata[key] else { return nil }
        guard case let .array(t, a) = v, t == .string else {
            throw .typeMismatch(path: path, key: key, expected: "array[string]", found: v.typeDescription)
        }
        return a.map { $0.stringValue! }
    }

    public func floatArray(_ key: String) throws(ModelFileError) -> [Float]? {
        guard let v = metadata[key] else { return nil }
        guard case let .array(_, a) = v else {
            throw .typeMismatch(path: path, key: key, expected: "array of numbers", found: v.typeDescription)
        }
        var out: [Float] = []
        out.reserveCapacity(a.count)
        for e in a {
            guard let d = e.doubleValue else { throw .typeMismatch(path: path, key: key, expected: "array of numbers", found: v.typeDescription) }
            out.append(Float(d))
        }
        return out
    }

    public func intArray(_ key: String) throws(ModelFileError) -> [Int]? {
        guard let v = metadata[key] else { return nil }
        guard case let .array(_, a) = v else {
            throw .typeMismatch(path: path, key: key, expected: "array of integers", found: v.typeDescription)
        }
        var out: [Int] = []
        out.reserveCapacity(a.count)
        for e in a {
            guard let i = e.intValue else { throw .typeMismatch(path: path, key: key, expected: "array of integers", found: v.typeDescription) }
            out.append(i)
        }
        return out
    }

    // MARK: - Tensors

    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// Zero-copy view of a tensor's bytes inside the mmap. Valid while this file is alive.
    public func data(of info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: mapped.base + info.fileOffset, count: info.byteCount)
    }

    public func data(named name: String) throws(ModelFileError) -> UnsafeRawBufferPointer {
        guard let t = tensor(named: name) else { throw .tensorNotFound(path: path, name: name) }
        return data(of: t)
    }

    /// Architecture-prefixed key, e.g. `key("context_length")` → `llama.context_length`.
    public var architecture: String? { string("general.architecture") }
}
