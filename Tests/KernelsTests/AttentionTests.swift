import CKernels
import Foundation
import Kernels
import ModelFiles
import XCTest

final class AttentionTests: XCTestCase {
    /// Scores, softmax and weighted value sum in double precision from the same f16 K/V.
    func reference(q: [Float], k: [UInt16], kStride: Int, v: [UInt16], vStride: Int, headDim: Int, valueDim: Int,
                   lo: Int, hi: Int, scale: Float) -> [Double] {
        var s = (lo...hi).map { p in
            (0..<headDim).reduce(0.0) { $0 + Double(ck_f16_to_f32(k[p * kStride + $1])) * Double(q[$1]) } * Double(scale)
        }
        let m = s.max() ?? 0
        s = s.map { Foundation.exp($0 - m) }
        let total = s.reduce(0, +)
        s = s.map { $0 / total }
        return (0..<valueDim).map { d in
            (lo...hi).reduce(0.0) { $0 + Double(ck_f16_to_f32(v[$1 * vStride + d])) * s[$1 - lo] }
        }
    }

    /// The AVX2 kernel equals its scalar twin bit for bit (the same roundings: f16 query, f16
    /// running sum of V, online softmax), and both stay within f16 accumulation error of a
    /// double-precision reference. Head sizes of both models and odd ones, ranges that do not
    /// start at 0 (sliding windows), strides wider than a head (a head inside a cache row).
    func testAttentionHeadMatchesTwinAndReference() {
        var r = Rand(5)
        for (headDim, valueDim) in [(64, 64), (256, 256), (8, 12), (40, 24)] {
            for (lo, hi) in [(0, 0), (0, 2), (0, 7), (3, 11), (0, 32), (17, 129)] {
                let kStride = headDim * 3, vStride = valueDim * 2
                let positions = hi + 1
                let q = r.floats(headDim, scale: 1)
                let k = r.floats(positions * kStride, scale: 1).map { ck_f32_to_f16($0) }
                let v = r.floats(positions * vStride, scale: 1).map { ck_f32_to_f16($0) }
                let scale = 1 / Float(headDim).squareRoot()
                let want = reference(q: q, k: k, kStride: kStride, v: v, vStride: vStride, headDim: headDim,
                                     valueDim: valueDim, lo: lo, hi: hi, scale: scale)
                var q16 = [UInt16](repeating: 0, count: headDim), acc16 = [UInt16](repeating: 0, count: valueDim)
                var fast = [Float](repeating: .nan, count: valueDim), slow = fast
                ck_attention_head_f16(q, Int64(headDim), Int64(valueDim), k, kStride, v, vStride, Int64(lo), Int64(hi),
                                      scale, &fast, &q16, &acc16)
                ck_attention_head_f16_scalar(q, Int64(headDim), Int64(valueDim), k, kStride, v, vStride, Int64(lo), Int64(hi),
                                             scale, &slow, &q16, &acc16)
                for d in 0..<valueDim {
                    XCTAssertEqual(fast[d], slow[d], "head \(headDim) range \(lo)...\(hi) dim \(d): AVX2 vs scalar twin")
                    // values are ≤ 1 in magnitude; f16 has 11 significant bits and the sum
                    // rounds once per position
                    XCTAssertEqual(Double(fast[d]), want[d], accuracy: 2e-3 * Double(hi - lo + 1).squareRoot(),
                                   "head \(headDim) range \(lo)...\(hi) dim \(d) vs double reference")
                }
            }
        }
    }
}
