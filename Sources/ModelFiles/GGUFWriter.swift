#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The bytes of one tensor handed to a writer: owned; borrowed from memory (usually another
/// file's mmap) that `owner` keeps alive, so converting a model need not copy every tensor; or
/// produced when the writer reaches the tensor, so a whole model is never held in memory (the
/// size is known up front for the header).
public struct TensorBytes: @unchecked Sendable {
    enum Storage {
        case owned([UInt8])
        case borrowed(UnsafeRawBufferPointer, owner: AnyObject)
        case deferred(count: Int, produce: () throws -> TensorBytes)
    }
    let storage: Storage

    /// Bytes made by `produce` while the file is written, one tensor at a time; it must return
    /// exactly `count` bytes. Its errors abort the write (nothing is left behind).
    public init(count: Int, producing produce: @escaping () throws -> [UInt8]) {
        storage = .deferred(count: count, produce: { TensorBytes(try produce()) })
    }

    /// The same, for a producer that hands back borrowed or owned bytes (no copy of a tensor
    /// that is only passed through).
    public init(count: Int, producingBytes produce: @escaping () throws -> TensorBytes) {
        storage = .deferred(count: count, produce: produce)
    }

    public init(_ bytes: [UInt8]) { storage = .owned(bytes) }

    /// The raw little-endian bytes of plain values, e.g. `[Float]` for an F32 tensor.
    public init<T: BitwiseCopyable>(elements: [T]) {
        storage = .owned(elements.withUnsafeBytes { Array($0) })
    }

    /// Bytes owned by someone else. `owner` (for example a `GGUFFile` or `SafetensorsFile`) is
    /// retained so the memory stays valid until the write is done.
    public init(borrowing bytes: UnsafeRawBufferPointer, keepingAlive owner: AnyObject) {
        storage = .borrowed(bytes, owner: owner)
    }

    public var count: Int {
        switch storage {
        case let .owned(a): return a.count
        case let .borrowed(b, _): return b.count
        case let .deferred(n, _): return n
        }
    }

    /// The bytes, made now if they are deferred.
    public func resolved() throws -> TensorBytes {
        guard case let .deferred(n, produce) = storage else { return self }
        let bytes = try produce().resolved()
        guard bytes.count == n else {
            throw ModelFileError.invalidArgument("a tensor produced \(bytes.count) bytes where \(n) were announced")
        }
        return bytes
    }

    /// Calls `body` with the bytes (a deferred tensor is produced first).
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        switch storage {
        case let .owned(a): return try withRawBytes(a, body)
        case let .borrowed(b, owner):
            defer { withExtendedLifetime(owner) {} }
            return try body(b)
        case .deferred: return try resolved().withUnsafeBytes(body)
        }
    }
}

/// Writes GGUF v3 files (layout per ggml's docs/gguf.md, the same one `GGUFFile` reads):
/// header, metadata in the caller's order, tensor infos, zero padding to `general.alignment`
/// (default 32), then each tensor's data padded with zeros to the alignment. Tensor data is laid
/// out in the order the tensors were added, which is what llama.cpp and gguf-py do, so re-writing
/// a file they produced gives the same bytes.
///
/// The file appears atomically: it is written to a temporary file in the same directory, flushed,
/// and renamed over `path`, so a reader never sees a half-written model.
public struct GGUFWriter: Sendable {
    public struct Tensor: Sendable {
        public let name: String
        public let type: GGMLType
        /// Dimensions in ggml order: `dims[0]` is the contiguous (row) dimension.
        public let dims: [Int]
        public let bytes: TensorBytes

        public init(name: String, type: GGMLType, dims: [Int], bytes: TensorBytes) {
            self.name = name
            self.type = type
            self.dims = dims
            self.bytes = bytes
        }
    }

    /// llama.cpp's gguf loader rejects tensor names of GGML_MAX_NAME (64) bytes or more.
    public static let maxTensorNameBytes = 63

    public private(set) var metadata: [(key: String, value: GGUFValue)]
    public private(set) var tensors: [Tensor]

    public init(metadata: [(key: String, value: GGUFValue)] = [], tensors: [Tensor] = []) {
        self.metadata = metadata
        self.tensors = tensors
    }

    public mutating func addMetadata(_ key: String, _ value: GGUFValue) {
        metadata.append((key, value))
    }

    public mutating func addTensor(name: String, type: GGMLType, dims: [Int], bytes: TensorBytes) {
        tensors.append(Tensor(name: name, type: type, dims: dims, bytes: bytes))
    }

    /// The alignment the file will use: `general.alignment` when set, else 32.
    public var alignment: Int {
        if let v = metadata.first(where: { $0.key == "general.alignment" })?.value, case let .uint32(a) = v {
            return Int(a)
        }
        return GGUFFile.defaultAlignment
    }

    /// Checks everything `write` would reject, so a converter can fail before touching the disk.
    public func validate() throws(ModelFileError) {
        var keys = Set<String>()
        for (key, value) in metadata {
            guard !key.isEmpty else { throw .invalidArgument("GGUF metadata key is empty") }
            guard key.utf8.count <= Int(UInt16.max) else {
                throw .invalidArgument("GGUF metadata key '\(key.prefix(40))…' is longer than 65535 bytes")
            }
            guard keys.insert(key).inserted else {
                throw .invalidArgument("GGUF metadata key '\(key)' is given twice; keys must be unique")
            }
            try Self.validate(value, key: key, depth: 0)
        }
        if let a = metadata.first(where: { $0.key == "general.alignment" })?.value {
            // Same rule the reader applies, so whatever we write we can read back.
            guard case let .uint32(v) = a else {
                throw .invalidArgument("general.alignment must be a u32, not \(a.typeDescription)")
            }
            guard v > 0, v & (v - 1) == 0, v <= 1 << 20 else {
                throw .invalidArgument("general.alignment \(v) must be a power of two no larger than \(1 << 20)")
            }
        }
        var names = Set<String>()
        for t in tensors {
            let n = t.name
            guard !n.isEmpty else { throw .invalidArgument("a GGUF tensor name is empty") }
            guard n.utf8.count <= Self.maxTensorNameBytes else {
                throw .invalidArgument("tensor name '\(n)' is \(n.utf8.count) bytes; GGUF readers allow at most \(Self.maxTensorNameBytes)")
            }
            guard names.insert(n).inserted else {
                throw .invalidArgument("tensor name '\(n)' is given twice; tensor names must be unique")
            }
            guard (1...GGUFFile.maxDims).contains(t.dims.count) else {
                throw .invalidArgument("tensor '\(n)' has \(t.dims.count) dimensions; GGUF allows 1 to \(GGUFFile.maxDims)")
            }
            var elements = 1
            for (i, d) in t.dims.enumerated() {
                // The reader accepts dimensions 1...Int32.max and at most 2^40 elements.
                guard d >= 1, d <= Int(Int32.max) else {
                    throw .invalidArgument("tensor '\(n)' dimension \(i) is \(d); each must be 1...\(Int32.max)")
                }
                let (e, o) = elements.multipliedReportingOverflow(by: d)
                guard !o, e <= 1 << 40 else {
                    throw .invalidArgument("tensor '\(n)' with dims \(t.dims) has too many elements")
                }
                elements = e
            }
            guard t.dims[0] % t.type.blockSize == 0, let expected = t.type.byteCount(elements: elements) else {
                throw .invalidArgument("tensor '\(n)': a row of \(t.dims[0]) is not a whole number of \(t.type) blocks of \(t.type.blockSize)")
            }
            guard t.bytes.count == expected else {
                throw .invalidArgument("tensor '\(n)' (\(t.type), dims \(t.dims)) needs \(expected) bytes but was given \(t.bytes.count)")
            }
        }
    }

    static func validate(_ value: GGUFValue, key: String, depth: Int) throws(ModelFileError) {
        switch value {
        case let .array(elementType, elements):
            guard depth < GGUFFile.maxNesting else {
                throw .invalidArgument("GGUF metadata '\(key)' nests arrays deeper than \(GGUFFile.maxNesting)")
            }
            for (i, e) in elements.enumerated() {
                guard e.type == elementType else {
                    throw .invalidArgument("GGUF metadata '\(key)' is an array of \(elementType.name) but element \(i) is \(e.typeDescription)")
                }
                if case .array = e { try validate(e, key: key, depth: depth + 1) }
            }
        default:
            break
        }
    }

    /// Header, metadata, tensor infos and the padding before the data section: everything in the
    /// file before the first tensor's bytes.
    public func headerBytes() throws(ModelFileError) -> [UInt8] {
        try validate()
        return layout().header
    }

    func layout() -> (header: [UInt8], offsets: [Int]) {
        let align = alignment
        var out = ByteWriter()
        out.u32(0x4655_4747)  // "GGUF" little-endian
        out.u32(3)
        out.u64(UInt64(tensors.count))
        out.u64(UInt64(metadata.count))
        for (key, value) in metadata {
            out.string(key)
            out.u32(value.type.rawValue)
            out.value(value)
        }
        var offsets: [Int] = []
        var offset = 0
        for t in tensors {
            out.string(t.name)
            out.u32(UInt32(t.dims.count))
            for d in t.dims { out.u64(UInt64(d)) }
            out.u32(t.type.rawValue)
            out.u64(UInt64(offset))
            offsets.append(offset)
            offset += Self.padded(t.bytes.count, to: align)
        }
        out.zeros(Self.padded(out.bytes.count, to: align) - out.bytes.count)
        return (out.bytes, offsets)
    }

    static func padded(_ n: Int, to align: Int) -> Int { (n + align - 1) / align * align }

    /// Validates, then writes the file atomically with mode 0644. Deferred tensors are produced
    /// here, in order, each dropped once written; an error from one (or from the disk) removes
    /// the temporary file and is rethrown as it came.
    public func write(to path: String) throws {
        try validate()
        let align = alignment
        let (header, _) = layout()
        let file = try AtomicFileWriter(path: path)
        do {
            try withRawBytes(header) { (b) throws(ModelFileError) in try file.write(b) }
            for t in tensors {
                let bytes = try t.bytes.resolved()
                try bytes.withUnsafeBytes { b in try file.write(b) }
                try file.writeZeros(Self.padded(bytes.count, to: align) - bytes.count)
            }
            try file.commit()
        } catch {
            file.abandon()
            throw error
        }
    }
}

/// Little-endian encoder for GGUF headers.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func int<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    mutating func u32(_ v: UInt32) { int(v) }
    mutating func u64(_ v: UInt64) { int(v) }
    mutating func zeros(_ n: Int) { bytes.append(contentsOf: repeatElement(0, count: n)) }

    mutating func string(_ s: String) {
        u64(UInt64(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }

    /// A value's payload (its type tag is written by the caller; array elements carry none).
    mutating func value(_ v: GGUFValue) {
        switch v {
        case let .uint8(x): u8(x)
        case let .int8(x): int(x)
        case let .uint16(x): int(x)
        case let .int16(x): int(x)
        case let .uint32(x): int(x)
        case let .int32(x): int(x)
        case let .uint64(x): int(x)
        case let .int64(x): int(x)
        case let .float32(x): int(x.bitPattern)
        case let .float64(x): int(x.bitPattern)
        case let .bool(x): u8(x ? 1 : 0)
        case let .string(s): string(s)
        case let .array(t, elements):
            u32(t.rawValue)
            u64(UInt64(elements.count))
            for e in elements { value(e) }
        }
    }
}

/// Writes a file by way of a temporary file in the same directory, renamed into place only once
/// everything is written and flushed; on any failure the temporary file is removed.
final class AtomicFileWriter {
    let path: String
    let tempPath: String
    private var fd: Int32
    private var finished = false

    init(path: String) throws(ModelFileError) {
        self.path = path
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let base = url.lastPathComponent
        guard !base.isEmpty, base != ".", base != ".." else {
            throw .writeFailed(path: path, reason: "the path names a directory, not a file")
        }
        var opened: Int32 = -1
        var candidate = ""
        // A random suffix avoids clashing with another writer of the same file; O_EXCL guarantees it.
        for _ in 0..<16 {
            candidate = dir + "/." + base + ".tmp-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
            opened = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if opened >= 0 || errno != EEXIST { break }
        }
        guard opened >= 0 else {
            throw .writeFailed(path: path, reason: "cannot create a temporary file in \(dir): \(String(cString: strerror(errno)))")
        }
        // The umask may have cleared bits of 0644; models are meant to be world-readable.
        _ = fchmod(opened, 0o644)
        fd = opened
        tempPath = candidate
    }

    deinit { if !finished { abandon() } }

    func write(_ buffer: UnsafeRawBufferPointer) throws(ModelFileError) {
        var done = 0
        while done < buffer.count, let base = buffer.baseAddress {
            // Large writes are split so a single call never exceeds what Linux accepts (~2 GiB).
            let n = posixWrite(fd, base + done, min(buffer.count - done, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { throw .writeFailed(path: path, reason: "the disk accepted no more bytes") }
            done += n
        }
    }

    func writeZeros(_ n: Int) throws(ModelFileError) {
        guard n > 0 else { return }
        let zeros = [UInt8](repeating: 0, count: n)
        try withRawBytes(zeros) { (b) throws(ModelFileError) in try write(b) }
    }

    /// Flushes to disk and renames into place.
    func commit() throws(ModelFileError) {
        if fsync(fd) != 0 {
            throw .writeFailed(path: path, reason: "fsync failed: \(String(cString: strerror(errno)))")
        }
        if close(fd) != 0 {
            fd = -1
            throw .writeFailed(path: path, reason: "close failed: \(String(cString: strerror(errno)))")
        }
        fd = -1
        if rename(tempPath, path) != 0 {
            throw .writeFailed(path: path, reason: "cannot rename the finished file into place: \(String(cString: strerror(errno)))")
        }
        finished = true
        // Make the rename itself durable; a failure here leaves a complete file, so it is not an error.
        let dirFD = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 { _ = fsync(dirFD); close(dirFD) }
    }

    func abandon() {
        if fd >= 0 { close(fd); fd = -1 }
        if !finished { unlink(tempPath) }
        finished = true
    }
}

private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, p, n)
    #else
    return Darwin.write(fd, p, n)
    #endif
}

/// `Array.withUnsafeBytes` with a typed error, so callers keep `throws(ModelFileError)`.
func withRawBytes<R, E: Error>(_ a: [UInt8], _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let r: Result<R, E> = a.withUnsafeBytes { b in Result { () throws(E) -> R in try body(b) } }
    return try r.get()
}
