import CKernels
import Foundation
import Kernels
import ModelFiles
import XCTest

final class AttentionTests: XCTestCase {
    /// Scores, softmax and weighted value sum in double precision from the same f16 data.
    func reference(q: [Float], k: [UInt16], kStride: Int, vt: [UInt16], vtStride: Int, headDim: Int, valueDim: Int,
                   count: Int, scale: Float) -> [Double] {
        var s = (0..<count).map { p in
            (0..<headDim).reduce(0.0) { $0 + Double(ck_f16_to_f32(k[p * kStride + $1])) * Double(q[$1]) } * Double(scale)
        }
        let m = s.max() ?? 0
        s = s.map { Foundation.exp($0 - m) }
        let total = s.reduce(0, +)
        s = s.map { $0 / total }
        return (0..<valueDim).map { d in (0..<count).reduce(0.0) { $0 + Double(ck_f16_to_f32(vt[d * vtStride + $1])) * s[$1] } }
    }

    /// The AVX2 kernel and its scalar twin against a double-precision reference, over head sizes
    /// of both models, counts that leave tails of the 4-position and 8-position loops, and
    /// strides wider than the rows (a head inside a multi-head cache row).
    func testAttentionMatchesReference() {
        var r = Rand(5)
        for (headDim, valueDim) in [(64, 64), (256, 256), (8, 12), (24, 6)] {
            for count in [1, 3, 4, 7, 8, 9, 33, 130] {
                let kStride = headDim * 3, vtStride = count + 5
                let q = r.floats(headDim, scale: 1)
                let k = r.floats(count * kStride, scale: 1).map { ck_f32_to_f16($0) }
                let vt = r.floats(valueDim * vtStride, scale: 1).map { ck_f32_to_f16($0) }
                let scale = 1 / Float(headDim).squareRoot()
                let want = reference(q: q, k: k, kStride: kStride, vt: vt, vtStride: vtStride, headDim: headDim,
                                     valueDim: valueDim, count: count, scale: scale)
                for simd in [true, false] {
                    var scores = [Float](repeating: .nan, count: count)
                    var out = [Float](repeating: .nan, count: valueDim)
                    if simd {
                        ck_attention_f16(q, k, Int64(kStride), vt, Int64(vtStride), Int64(headDim), Int64(valueDim),
                                         Int64(count), scale, &scores, &out)
                    } else {
                        ck_attention_f16_scalar(q, k, Int64(kStride), vt, Int64(vtStride), Int64(headDim), Int64(valueDim),
                                                Int64(count), scale, &scores, &out)
                    }
                    XCTAssertEqual(Double(scores.reduce(0, +)), 1, accuracy: 1e-5, "weights sum to one")
                    for d in 0..<valueDim {
                        XCTAssertEqual(Double(out[d]), want[d], accuracy: 1e-5, "head \(headDim) count \(count) dim \(d) simd \(simd)")
                    }
                }
            }
        }
    }
}
