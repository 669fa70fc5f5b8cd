import CKernels
import Foundation
import Kernels
import ModelFiles
import XCTest

final class AttentionTests: XCTestCase {
    /// Scores, softmax and weighted value sum in double precision from the same f16 K/V.
    static func reference(q: [Float], k: [UInt16], kStride: Int, v: [UInt16], vStride: Int, headDim: Int, valueDim: Int,
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
                let want = Self.reference(q: q, k: k, kStride: kStride, v: v, vStride: vStride, headDim: headDim,
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

final class TiledAttentionTests: XCTestCase {
    /// ggml's vector exp approximation: within 2 ulp-ish of libm over the softmax range, exactly 0
    /// at -inf and for large negative inputs, and finite up to where expf overflows.
    func testExpApproximation() {
        XCTAssertEqual(ck_exp_approx(-.infinity), 0)
        XCTAssertEqual(ck_exp_approx(0), 1)
        XCTAssertEqual(ck_exp_approx(-200), 0)
        var x: Float = -87
        while x <= 88 {
            let want = Foundation.exp(Double(x))
            XCTAssertEqual(Double(ck_exp_approx(x)), want, accuracy: want * 4e-7, "exp(\(x))")
            x += 0.173
        }
    }

    /// The AVX2 tiled kernel equals its scalar twin bit for bit, rows come out the same however
    /// they are grouped into calls, and results stay within float error of a double reference
    /// (causal, with and without a sliding window, partial tiles, odd head sizes).
    func testTiledAttentionMatchesTwinGroupingAndReference() {
        var r = Rand(11)
        for (headDim, valueDim) in [(64, 64), (256, 256), (40, 24)] {
            for (pos0, nq, window) in [(0, 64, 0), (0, 37, 0), (70, 64, 0), (130, 5, 0), (0, 64, 16), (100, 64, 50), (190, 30, 128)] {
                let kStride = headDim * 2, vStride = valueDim + 8
                let positions = pos0 + nq
                let qStride = headDim + 4, outStride = valueDim + 3
                let q = r.floats(nq * qStride, scale: 1)
                let k = r.floats(positions * kStride, scale: 1).map { ck_f32_to_f16($0) }
                let v = r.floats(positions * vStride, scale: 1).map { ck_f32_to_f16($0) }
                let scale = 1 / Float(headDim).squareRoot()
                var scratch = [Float](repeating: .nan, count: ck_attention_tiled_scratch_floats(Int64(headDim), Int64(valueDim)))
                var fast = [Float](repeating: .nan, count: nq * outStride), slow = fast, split = fast
                ck_attention_tiled(q, qStride, Int64(nq), Int64(headDim), Int64(valueDim), k, kStride, v, vStride,
                                   Int64(pos0), Int64(window), scale, &fast, outStride, &scratch)
                ck_attention_tiled_scalar(q, qStride, Int64(nq), Int64(headDim), Int64(valueDim), k, kStride, v, vStride,
                                          Int64(pos0), Int64(window), scale, &slow, outStride, &scratch)
                // the same rows in two calls (7 rows, then the rest)
                let first = min(7, nq)
                ck_attention_tiled(q, qStride, Int64(first), Int64(headDim), Int64(valueDim), k, kStride, v, vStride,
                                   Int64(pos0), Int64(window), scale, &split, outStride, &scratch)
                if nq > first {
                    q.withUnsafeBufferPointer { qp in
                        split.withUnsafeMutableBufferPointer { sp in
                            ck_attention_tiled(qp.baseAddress! + first * qStride, qStride, Int64(nq - first), Int64(headDim), Int64(valueDim),
                                               k, kStride, v, vStride, Int64(pos0 + first), Int64(window), scale,
                                               sp.baseAddress! + first * outStride, outStride, &scratch)
                        }
                    }
                }
                for i in 0..<nq {
                    let pos = pos0 + i
                    let lo = window > 0 ? max(0, pos - window + 1) : 0
                    let want = AttentionTests.reference(q: Array(q[(i * qStride)..<(i * qStride + headDim)]), k: k, kStride: kStride, v: v,
                                             vStride: vStride, headDim: headDim, valueDim: valueDim, lo: lo, hi: pos, scale: scale)
                    for d in 0..<valueDim {
                        let at = i * outStride + d
                        let where_ = "head \(headDim) pos0 \(pos0) row \(i) dim \(d) window \(window)"
                        XCTAssertEqual(fast[at], slow[at], "\(where_): AVX2 vs scalar twin")
                        XCTAssertEqual(fast[at], split[at], "\(where_): depends on grouping")
                        XCTAssertEqual(Double(fast[at]), want[d], accuracy: 2e-5, "\(where_) vs double reference")
                    }
                }
            }
        }
    }
}
