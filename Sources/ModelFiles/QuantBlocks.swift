/// Byte layouts of ggml's quantized blocks, declared once here (from ggml-common.h, QK_K = 256).
///
/// Each `Block…` enum names the byte offset of every field and lists the fields with their sizes;
/// a test checks that the fields are contiguous and add up to `GGMLType.blockBytes`. The
/// dequantizers (Quantization.swift), quantizers (QuantizeRows.swift) and later the kernels read
/// blocks only through these offsets. Blocks sit at any byte address in a file (a Q4_0 block is 18
/// bytes), so every multi-byte field is read with an unaligned little-endian load.

/// One field of a block: name, byte offset and size in bytes.
public struct BlockField: Sendable, Equatable, CustomStringConvertible {
    public let name: String
    public let offset: Int
    public let byteCount: Int

    public init(_ name: String, _ offset: Int, _ byteCount: Int) {
        self.name = name
        self.offset = offset
        self.byteCount = byteCount
    }

    public var description: String { "\(name)@\(offset)[\(byteCount)]" }
}

/// A declared block layout: which type, how many weights, how many bytes, and the fields.
public protocol QuantBlockLayout {
    static var type: GGMLType { get }
    static var elements: Int { get }
    static var byteCount: Int { get }
    static var fields: [BlockField] { get }
}

/// block_q4_0: 32 weights, w = d * (q - 8) with 4-bit q. Weight j (j < 16) is the low nibble of
/// qs[j], weight j + 16 the high nibble.
public enum BlockQ4_0: QuantBlockLayout {
    public static let type = GGMLType.q4_0
    public static let elements = 32
    public static let d = 0       // f16 scale
    public static let qs = 2      // 16 bytes of nibbles
    public static let byteCount = 18
    public static var fields: [BlockField] { [BlockField("d", d, 2), BlockField("qs", qs, 16)] }
}

/// block_q4_1: 32 weights, w = d * q + m with 4-bit q (nibble order as Q4_0).
public enum BlockQ4_1: QuantBlockLayout {
    public static let type = GGMLType.q4_1
    public static let elements = 32
    public static let d = 0       // f16 scale
    public static let m = 2       // f16 minimum
    public static let qs = 4      // 16 bytes of nibbles
    public static let byteCount = 20
    public static var fields: [BlockField] { [BlockField("d", d, 2), BlockField("m", m, 2), BlockField("qs", qs, 16)] }
}

/// block_q5_0: 32 weights, w = d * (q - 16) with 5-bit q: low 4 bits as Q4_0, bit 4 of weight j is
/// bit j of the little-endian u32 `qh`.
public enum BlockQ5_0: QuantBlockLayout {
    public static let type = GGMLType.q5_0
    public static let elements = 32
    public static let d = 0       // f16 scale
    public static let qh = 2      // u32 of high bits
    public static let qs = 6      // 16 bytes of low nibbles
    public static let byteCount = 22
    public static var fields: [BlockField] { [BlockField("d", d, 2), BlockField("qh", qh, 4), BlockField("qs", qs, 16)] }
}

/// block_q5_1: 32 weights, w = d * q + m with 5-bit q (bits as Q5_0).
public enum BlockQ5_1: QuantBlockLayout {
    public static let type = GGMLType.q5_1
    public static let elements = 32
    public static let d = 0       // f16 scale
    public static let m = 2       // f16 minimum
    public static let qh = 4      // u32 of high bits
    public static let qs = 8      // 16 bytes of low nibbles
    public static let byteCount = 24
    public static var fields: [BlockField] {
        [BlockField("d", d, 2), BlockField("m", m, 2), BlockField("qh", qh, 4), BlockField("qs", qs, 16)]
    }
}

/// block_q8_0: 32 weights, w = d * q with signed 8-bit q.
public enum BlockQ8_0: QuantBlockLayout {
    public static let type = GGMLType.q8_0
    public static let elements = 32
    public static let d = 0       // f16 scale
    public static let qs = 2      // 32 × i8
    public static let byteCount = 34
    public static var fields: [BlockField] { [BlockField("d", d, 2), BlockField("qs", qs, 32)] }
}

/// block_q8_1: 32 weights, w = d * q; `s` caches d * sum(q) for dot products. (Two f16, 36 bytes,
/// as in current ggml; gguf-py's GGML_QUANT_SIZES still says 40 from the old f32 layout.)
public enum BlockQ8_1: QuantBlockLayout {
    public static let type = GGMLType.q8_1
    public static let elements = 32
    public static let d = 0       // f16 scale
    public static let s = 2       // f16 d * sum(qs)
    public static let qs = 4      // 32 × i8
    public static let byteCount = 36
    public static var fields: [BlockField] { [BlockField("d", d, 2), BlockField("s", s, 2), BlockField("qs", qs, 32)] }
}

/// block_q2_K: 256 weights in 16 groups of 16. Group g has 4-bit scale `scales[g] & 15` and 4-bit
/// min `scales[g] >> 4`; w = d * scale * q - dmin * min with 2-bit q.
public enum BlockQ2_K: QuantBlockLayout {
    public static let type = GGMLType.q2_K
    public static let elements = 256
    public static let scales = 0  // 16 bytes: scale | min << 4
    public static let qs = 16     // 64 bytes of 2-bit quants
    public static let d = 80      // f16 super-scale of the scales
    public static let dmin = 82   // f16 super-scale of the mins
    public static let byteCount = 84
    public static var fields: [BlockField] {
        [BlockField("scales", scales, 16), BlockField("qs", qs, 64), BlockField("d", d, 2), BlockField("dmin", dmin, 2)]
    }
}

/// block_q3_K: 256 weights in 16 groups of 16, w = d * (scale - 32) * q with q = 2 low bits from
/// `qs` minus 4 when the weight's `hmask` bit is clear; 6-bit scales packed into 12 bytes.
public enum BlockQ3_K: QuantBlockLayout {
    public static let type = GGMLType.q3_K
    public static let elements = 256
    public static let hmask = 0   // 32 bytes of high bits
    public static let qs = 32     // 64 bytes of 2-bit low parts
    public static let scales = 96 // 12 bytes of 6-bit scales
    public static let d = 108     // f16 super-scale
    public static let byteCount = 110
    public static var fields: [BlockField] {
        [BlockField("hmask", hmask, 32), BlockField("qs", qs, 64), BlockField("scales", scales, 12), BlockField("d", d, 2)]
    }
}

/// block_q4_K: 256 weights in 8 groups of 32, w = d * scale * q - dmin * min with 4-bit q and
/// 6-bit scales/mins packed into 12 bytes (ggml's get_scale_min_k4).
public enum BlockQ4_K: QuantBlockLayout {
    public static let type = GGMLType.q4_K
    public static let elements = 256
    public static let d = 0       // f16 super-scale of the scales
    public static let dmin = 2    // f16 super-scale of the mins
    public static let scales = 4  // 12 bytes of 6-bit scales and mins
    public static let qs = 16     // 128 bytes of nibbles
    public static let byteCount = 144
    public static var fields: [BlockField] {
        [BlockField("d", d, 2), BlockField("dmin", dmin, 2), BlockField("scales", scales, 12), BlockField("qs", qs, 128)]
    }
}

/// block_q5_K: as Q4_K plus a fifth bit per weight in `qh`.
public enum BlockQ5_K: QuantBlockLayout {
    public static let type = GGMLType.q5_K
    public static let elements = 256
    public static let d = 0       // f16 super-scale of the scales
    public static let dmin = 2    // f16 super-scale of the mins
    public static let scales = 4  // 12 bytes of 6-bit scales and mins
    public static let qh = 16     // 32 bytes of high bits
    public static let qs = 48     // 128 bytes of low nibbles
    public static let byteCount = 176
    public static var fields: [BlockField] {
        [BlockField("d", d, 2), BlockField("dmin", dmin, 2), BlockField("scales", scales, 12),
         BlockField("qh", qh, 32), BlockField("qs", qs, 128)]
    }
}

/// block_q6_K: 256 weights in 16 groups of 16, w = d * scale * (q - 32) with 6-bit q (4 bits in
/// `ql`, 2 in `qh`) and signed 8-bit scales.
public enum BlockQ6_K: QuantBlockLayout {
    public static let type = GGMLType.q6_K
    public static let elements = 256
    public static let ql = 0      // 128 bytes of low nibbles
    public static let qh = 128    // 64 bytes of 2-bit high parts
    public static let scales = 192 // 16 × i8
    public static let d = 208     // f16 super-scale
    public static let byteCount = 210
    public static var fields: [BlockField] {
        [BlockField("ql", ql, 128), BlockField("qh", qh, 64), BlockField("scales", scales, 16), BlockField("d", d, 2)]
    }
}

/// block_q8_K: 256 weights, w = d * q (f32 d), with `bsums` = sums of q over each 16 weights —
/// the activation format the k-quant dot products use.
public enum BlockQ8_K: QuantBlockLayout {
    public static let type = GGMLType.q8_K
    public static let elements = 256
    public static let d = 0       // f32 scale
    public static let qs = 4      // 256 × i8
    public static let bsums = 260 // 16 × i16
    public static let byteCount = 292
    public static var fields: [BlockField] { [BlockField("d", d, 4), BlockField("qs", qs, 256), BlockField("bsums", bsums, 32)] }
}

public enum QuantBlocks {
    /// Every declared quantized block layout.
    public static var all: [any QuantBlockLayout.Type] {
        [BlockQ4_0.self, BlockQ4_1.self, BlockQ5_0.self, BlockQ5_1.self, BlockQ8_0.self, BlockQ8_1.self,
         BlockQ2_K.self, BlockQ3_K.self, BlockQ4_K.self, BlockQ5_K.self, BlockQ6_K.self, BlockQ8_K.self]
    }

    /// The declared layout of a quantized type (nil for plain element types such as F16).
    public static func layout(of type: GGMLType) -> (any QuantBlockLayout.Type)? {
        all.first { $0.type == type }
    }
}

// MARK: - Scalar conversions

/// IEEE half (binary16) bits → Float. Exact for every input, including subnormals, infinities
/// and NaN. Written out rather than using `Float16` so it behaves the same on every platform.
@inlinable
public func floatFromHalf(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1F
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0 {
        // Zero or subnormal: mantissa × 2^-24, exact in Float.
        let v = Float(mantissa) * 0x1p-24
        return sign != 0 ? -v : v
    }
    if exponent == 31 {
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    }
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
}

/// Float → IEEE half bits, rounding to nearest with ties to even (as F16C's vcvtps2ph and ggml's
/// GGML_FP32_TO_FP16). Values past the half range become ±infinity; NaN stays a quiet NaN.
@inlinable
public func halfFromFloat(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
    let magnitude = bits & 0x7FFF_FFFF
    if magnitude >= 0x7F80_0000 {
        // Infinity, or NaN with the quiet bit forced and the top payload bits kept.
        if magnitude == 0x7F80_0000 { return sign | 0x7C00 }
        return sign | 0x7E00 | UInt16(truncatingIfNeeded: (magnitude >> 13) & 0x3FF)
    }
    if magnitude >= 0x477F_F000 {
        return sign | 0x7C00  // ≥ 65520 rounds past the largest half (65504)
    }
    if magnitude >= 0x3880_0000 {
        // Normal half: rebias the exponent (127 → 15) and round off 13 mantissa bits to even.
        // A carry out of the mantissa correctly bumps the exponent.
        let rebased = magnitude - (112 << 23)
        let rounded = rebased + 0xFFF + ((rebased >> 13) & 1)
        return sign | UInt16(truncatingIfNeeded: rounded >> 13)
    }
    // Half subnormal (or zero): count units of 2^-24. Scaling by 2^24 is exact, so one rounding.
    let units = (Float(bitPattern: magnitude) * 0x1p24).rounded(.toNearestOrEven)
    return sign | UInt16(units)
}

/// bfloat16 bits → Float (the top 16 bits of a Float). Exact.
@inlinable
public func floatFromBF16(_ b: UInt16) -> Float {
    Float(bitPattern: UInt32(b) << 16)
}

/// Float → bfloat16 bits, rounding to nearest even; NaN becomes a quiet NaN (as ggml's
/// ggml_compute_fp32_to_bf16).
@inlinable
public func bf16FromFloat(_ f: Float) -> UInt16 {
    let u = f.bitPattern
    if u & 0x7FFF_FFFF > 0x7F80_0000 {
        return UInt16(truncatingIfNeeded: u >> 16) | 64
    }
    return UInt16(truncatingIfNeeded: (u &+ (0x7FFF + ((u >> 16) & 1))) >> 16)
}

// MARK: - Unaligned little-endian field reads

extension UnsafeRawPointer {
    @inline(__always) func u8(_ offset: Int) -> UInt8 { load(fromByteOffset: offset, as: UInt8.self) }
    @inline(__always) func i8(_ offset: Int) -> Int8 { load(fromByteOffset: offset, as: Int8.self) }
    @inline(__always) func u16(_ offset: Int) -> UInt16 {
        UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inline(__always) func u32(_ offset: Int) -> UInt32 {
        UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    @inline(__always) func u64(_ offset: Int) -> UInt64 {
        UInt64(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
    @inline(__always) func f16(_ offset: Int) -> Float { floatFromHalf(u16(offset)) }
    @inline(__always) func f32(_ offset: Int) -> Float { Float(bitPattern: u32(offset)) }
}
