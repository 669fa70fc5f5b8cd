#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A read-only memory map of a whole file. Tensor views point into it, so it must outlive them;
/// `GGUFFile` and `SafetensorsFile` keep a strong reference.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let base: UnsafeRawPointer
    public let count: Int

    public init(path: String) throws(ModelFileError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            throw .cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 {
            throw .cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        if (st.st_mode & S_IFMT) != S_IFREG {
            throw .cannotOpen(path: path, reason: "not a regular file")
        }
        let size = Int(st.st_size)
        if size == 0 {
            throw .truncated(path: path, what: "file is empty")
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw .cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        self.base = UnsafeRawPointer(p)
        self.count = size
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), count)
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// Bounds-checked little-endian cursor over a byte range. Every read checks the remaining length
/// first, so a truncated or hostile file produces an error and never an out-of-bounds read.
struct ByteCursor {
    let buffer: UnsafeRawBufferPointer
    var offset: Int
    let path: String

    init(_ buffer: UnsafeRawBufferPointer, path: String, offset: Int = 0) {
        self.buffer = buffer
        self.offset = offset
        self.path = path
    }

    var remaining: Int { buffer.count - offset }

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws(ModelFileError) {
        if n < 0 || n > remaining {
            throw .truncated(path: path, what: "\(what()) needs \(n) bytes at offset \(offset), only \(remaining) remain")
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(ModelFileError) -> T {
        try need(MemoryLayout<T>.size, what())
        let v = buffer.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func readF32(_ what: @autoclosure () -> String) throws(ModelFileError) -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    mutating func readF64(_ what: @autoclosure () -> String) throws(ModelFileError) -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }

    mutating func readBytes(_ n: Int, _ what: @autoclosure () -> String) throws(ModelFileError) -> UnsafeRawBufferPointer {
        try need(n, what())
        let slice = UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + n)])
        offset += n
        return slice
    }
}
