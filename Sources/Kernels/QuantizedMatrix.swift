import CKernels
import ModelFiles

/// Errors from setting up kernels on model data: what is wrong and what the caller can do.
public enum KernelError: Error, CustomStringConvertible, Equatable {
    case unsupportedType(GGMLType, String)
    case badShape(String)

    public var description: String {
        switch self {
        case let .unsupportedType(t, what):
            return "\(what): weights of type \(t.name) have no matrix kernel; supported: "
                + QuantizedMatrix.supportedTypes.map(\.name).joined(separator: ", ")
        case let .badShape(s): return s
        }
    }
}

/// A weight matrix as ggml stores it: `rows` rows (ne[1]) of `cols` elements (ne[0]), each row
/// a contiguous run of blocks. A zero-copy view: `data` usually points into a memory-mapped
/// GGUF file, which must outlive the matrix.
public struct QuantizedMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let data: UnsafeRawPointer
    /// Bytes of one row.
    public let rowBytes: Int

    public static let supportedTypes: [GGMLType] = GGMLType.allCases.filter {
        $0 != .q8_1 && $0 != .q8_K && ck_vec_dot_type(Int32($0.rawValue)) >= 0
    }

    /// Checks the type has a kernel and that `rows × cols` elements fit in `bytes`.
    public init(type: GGMLType, rows: Int, cols: Int, bytes: UnsafeRawBufferPointer, name: String = "matrix") throws(KernelError) {
        guard QuantizedMatrix.supportedTypes.contains(type) else { throw .unsupportedType(type, name) }
        guard rows >= 0, cols > 0, cols % type.blockSize == 0 else {
            throw .badShape("\(name): \(cols) columns is not a whole number of \(type.name) blocks of \(type.blockSize); the file may be damaged")
        }
        let rb = ck_row_bytes(Int32(type.rawValue), Int64(cols))
        let (total, overflow) = rows.multipliedReportingOverflow(by: rb)
        guard !overflow, total <= bytes.count, let base = bytes.baseAddress ?? (total == 0 ? UnsafeRawPointer(bitPattern: 1) : nil) else {
            throw .badShape("\(name): \(rows)×\(cols) \(type.name) needs \(total) bytes but only \(bytes.count) are there; the file may be truncated")
        }
        self.type = type
        self.rows = rows
        self.cols = cols
        self.data = base
        self.rowBytes = rb
    }

    /// A view of a 1-D or 2-D GGUF tensor (ne[0] = columns, ne[1] = rows).
    public init(file: GGUFFile, tensor name: String) throws {
        guard let info = file.tensor(named: name) else {
            throw KernelError.badShape("tensor '\(name)' is missing from \(file.path); is this the right model file?")
        }
        guard info.dims.count >= 1, info.dims.dropFirst(2).allSatisfy({ $0 == 1 }) else {
            throw KernelError.badShape("tensor '\(name)' has shape \(info.dims); expected a matrix")
        }
        let cols = info.dims[0]
        let rows = info.dims.count > 1 ? info.dims[1] : 1
        try self.init(type: info.type, rows: rows, cols: cols, bytes: file.data(of: info), name: name)
    }

    /// Pointer to row `r`.
    @inlinable public func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    /// Row `r` as floats (e.g. an embedding lookup).
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows, "row \(r) out of 0..<\(rows)")
        _ = ck_dequantize_row(Int32(type.rawValue), row(r), out, Int64(cols))
    }

    public func dequantizeRow(_ r: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: cols) { buf, n in
            dequantizeRow(r, into: buf.baseAddress!)
            n = cols
        }
    }
}
