import CKernels
import Foundation
import Kernels
import ModelFiles
import XCTest

final class TileTests: XCTestCase {
    /// The 4-row × 4-token prefill tiles against the scalar dot of every (row, token), with row
    /// and token counts that leave tails on both sides.
    func testTileMatchesScalarDots() {
        var r = Rand(9)
        for type in [GGMLType.q4_1, .q5_0, .q8_0, .q4_K, .q6_K] {
            let cols = type.blockSize == 256 ? 512 : 160, rows = 10, tokens = 7
            let w = (0..<rows).flatMap { _ in randomRow(type, cols, &r) }
            let rowBytes = w.count / rows
            let acts = (0..<tokens).map { _ in quantizeActivation(for: type, r.floats(cols, scale: 2), simd: true) }
            let actBytes = acts[0].count
            let a = acts.flatMap { $0 }
            var out = [Float](repeating: .nan, count: rows * tokens)
            w.withUnsafeBytes { wp in
                a.withUnsafeBytes { ap in
                    ck_vec_dot_tile(Int32(type.rawValue), Int64(cols), wp.baseAddress, rowBytes, Int64(rows),
                                    ap.baseAddress, actBytes, Int64(tokens), &out, Int64(rows))
                }
            }
            for t in 0..<tokens {
                for row in 0..<rows {
                    let want = Array(w[(row * rowBytes)..<((row + 1) * rowBytes)]).withUnsafeBytes { wp in
                        acts[t].withUnsafeBytes { ck_vec_dot_scalar(Int32(type.rawValue), Int64(cols), wp.baseAddress, $0.baseAddress) }
                    }
                    // summation order differs from the scalar dot: bound by Σ|w·a|
                    let wd = dequantize(type, Array(w[(row * rowBytes)..<((row + 1) * rowBytes)]), cols)
                    let ad = dequantize(activationType(type), acts[t], cols)
                    let bound = zip(wd, ad).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                    XCTAssertEqual(Double(out[t * rows + row]), Double(want), accuracy: 2e-6 * bound + 1e-30, "\(type) token \(t) row \(row)")
                }
            }
        }
    }
}
