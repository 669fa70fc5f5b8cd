import CKernels
import Foundation
import Kernels
import ModelFiles
import TestSupport

/// The shared SplitMix64 generator, under the short name these tests use.
typealias Rand = SplitMix64
extension SplitMix64 {
    init(_ seed: UInt64) { self.init(seed: seed) }
}

/// Byte offsets of the f16 fields in each block type (ggml-common.h layouts).
let f16Fields: [GGMLType: [Int]] = [
    .q4_0: [0], .q4_1: [0, 2], .q5_0: [0], .q5_1: [0, 2], .q8_0: [0],
    .q2_K: [80, 82], .q3_K: [108], .q4_K: [0, 2], .q5_K: [0, 2], .q6_K: [208],
]

let quantTypes: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

/// A weight row of `n` elements: random bytes with finite f16 scales (F32/F16: random values).
func randomRow(_ type: GGMLType, _ n: Int, _ r: inout Rand) -> [UInt8] {
    switch type {
    case .f32:
        return r.floats(n).withUnsafeBytes { Array($0) }
    case .f16:
        return r.floats(n).map { ck_f32_to_f16($0) }.withUnsafeBytes { Array($0) }
    case .bf16:
        return r.floats(n).map { UInt16($0.bitPattern >> 16) }.withUnsafeBytes { Array($0) }
    default:
        let bb = type.blockBytes
        var bytes = (0..<(n / type.blockSize * bb)).map { _ in r.byte() }
        for b in 0..<(n / type.blockSize) {
            for off in f16Fields[type]! {
                let h = ck_f32_to_f16(r.uniform(-0.05, 0.05))
                bytes[b * bb + off] = UInt8(h & 0xFF)
                bytes[b * bb + off + 1] = UInt8(h >> 8)
            }
        }
        return bytes
    }
}

func dequantize(_ type: GGMLType, _ bytes: [UInt8], _ n: Int) -> [Float] {
    var out = [Float](repeating: .nan, count: n)
    let ok = bytes.withUnsafeBytes { ck_dequantize_row(Int32(type.rawValue), $0.baseAddress, &out, Int64(n)) }
    precondition(ok == 1)
    return out
}

func activationType(_ t: GGMLType) -> GGMLType { GGMLType(rawValue: UInt32(ck_vec_dot_type(Int32(t.rawValue))))! }

/// Activation row of `x` in the type `weight` is dotted with (scalar or SIMD quantizer).
func quantizeActivation(for weight: GGMLType, _ x: [Float], simd: Bool) -> [UInt8] {
    let at = activationType(weight)
    var out = [UInt8](repeating: 0, count: ck_row_bytes(Int32(at.rawValue), Int64(x.count)))
    out.withUnsafeMutableBytes { o in
        switch (at, simd) {
        case (.q8_0, false): ck_quantize_row_q8_0_scalar(x, o.baseAddress, Int64(x.count))
        case (.q8_1, false): ck_quantize_row_q8_1_scalar(x, o.baseAddress, Int64(x.count))
        case (.q8_K, false): ck_quantize_row_q8_K_scalar(x, o.baseAddress, Int64(x.count))
        case (.q8_0, true): ck_quantize_row_q8_0(x, o.baseAddress, Int64(x.count))
        case (.q8_1, true): ck_quantize_row_q8_1(x, o.baseAddress, Int64(x.count))
        case (.q8_K, true): ck_quantize_row_q8_K(x, o.baseAddress, Int64(x.count))
        default: _ = x.withUnsafeBytes { memcpy(o.baseAddress!, $0.baseAddress!, $0.count) }
        }
    }
    return out
}

func dotScalar(_ t: GGMLType, _ n: Int, _ w: [UInt8], _ a: [UInt8]) -> Float {
    ck_vec_dot_scalar(Int32(t.rawValue), Int64(n), w, a)
}

func dotDispatch(_ t: GGMLType, _ n: Int, _ w: [UInt8], _ a: [UInt8]) -> Float {
    ck_vec_dot(Int32(t.rawValue), Int64(n), w, a)
}
