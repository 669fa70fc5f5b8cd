import Foundation

/// Writes a copy of a GGUF file tensor by tensor: the metadata as it is (plus `extraMetadata`,
/// which replaces keys of the same name), each tensor either copied byte for byte or
/// dequantized, optionally changed, and quantized to a new type. What merge and quantize share.
public enum GGUFRewrite {
    /// What to do with one tensor: nil copies it; otherwise its values (dequantized to f32,
    /// row-major, `dims[0]` contiguous) go through `update` and are written as `type`.
    public struct Step {
        public var type: GGMLType
        public var update: ((inout [Float]) throws -> Void)?
        public init(type: GGMLType, update: ((inout [Float]) throws -> Void)? = nil) { self.type = type; self.update = update }
    }

    public static func write(_ base: GGUFFile, to path: String, extraMetadata: [(String, GGUFValue)] = [],
                             plan: (GGUFTensorInfo) throws -> Step?, progress: ((Int, Int, String) -> Void)? = nil) throws {
        var w = GGUFWriter()
        let replaced = Set(extraMetadata.map(\.0))
        for (k, v) in base.metadataPairs where !replaced.contains(k) { w.addMetadata(k, v) }
        for (k, v) in extraMetadata { w.addMetadata(k, v) }
        // Each tensor is dequantized, updated and quantized when the writer reaches it, so only
        // one is in memory at a time (progress is reported then too).
        let total = base.tensors.count
        for (i, info) in base.tensors.enumerated() {
            guard let step = try plan(info) else {
                w.addTensor(name: info.name, type: info.type, dims: info.dims, bytes: TensorBytes(count: info.byteCount, producingBytes: {
                    progress?(i + 1, total, info.name)
                    return TensorBytes(borrowing: base.data(of: info), keepingAlive: base)  // copied from the mmap by the write
                }))
                continue
            }
            guard let size = step.type.byteCount(elements: info.elementCount) else {
                throw ModelFileError.invalidArgument("\(info.name): \(info.elementCount) values are not whole \(step.type.name) blocks")
            }
            w.addTensor(name: info.name, type: step.type, dims: info.dims, bytes: TensorBytes(count: size) {
                progress?(i + 1, total, info.name)
                guard let update = step.update else { return try requantize(base, info, to: step.type, size: size) }
                var values = try base.dequantized(info)
                try update(&values)
                return try quantize(step.type, values)
            })
        }
        try w.write(to: path)
    }

    /// `info` re-quantized to `type` a block of rows at a time (about 1M values of f32 scratch),
    /// so a large embedding never exists in f32 whole. Every row is whole blocks of both types
    /// and each block is quantized on its own, so the bytes are those of the whole-tensor path.
    static func requantize(_ base: GGUFFile, _ info: GGUFTensorInfo, to type: GGMLType, size: Int) throws -> [UInt8] {
        let width = info.dims.first ?? 1
        let rows = info.elementCount / max(width, 1)
        guard let rowBytes = type.byteCount(elements: width) else {
            throw ModelFileError.invalidArgument("\(info.name): rows of \(width) values are not whole \(type.name) blocks")
        }
        let step = max(1, (1 << 20) / max(width, 1))
        var out = [UInt8](repeating: 0, count: size)
        var scratch = [Float](repeating: 0, count: min(rows, step) * width)
        var r = 0
        while r < rows {
            let n = min(step, rows - r)
            try scratch.withUnsafeMutableBufferPointer { sp in
                try base.dequantizeRows(of: info, r..<(r + n), into: sp.baseAddress!)
                try out.withUnsafeMutableBytes { op in
                    try Quantize.rows(type, UnsafeBufferPointer(rebasing: sp[0..<(n * width)]),
                                      into: UnsafeMutableRawBufferPointer(rebasing: op[(r * rowBytes)..<((r + n) * rowBytes)]))
                }
            }
            r += n
        }
        return out
    }
}
