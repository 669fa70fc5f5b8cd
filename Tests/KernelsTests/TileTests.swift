import CKernels
import Foundation
import Kernels
import ModelFiles
import XCTest

final class TileTests: XCTestCase {
    /// The Q5_0 and Q4_1 prompt tiles sum each (row, token) exactly as the decode kernel does:
    /// bitwise equal to ck_vec_dot, for 13 tokens (Q5_0 takes its pre-unpacked path from 8 on)
    /// and 11 rows (tails on both sides), 640 columns as in Gemma's projections.
    func testQ5_0AndQ4_1TilesAreBitwiseTheDecodeDot() throws {
        try XCTSkipUnless(cpuHasAVX2, "no AVX2 on this CPU")
        var r = Rand(21)
        for type in [GGMLType.q5_0, .q4_1] {
            let cols = 640, rows = 11, tokens = 13
            let w = (0..<rows).flatMap { _ in randomRow(type, cols, &r) }
            let rowBytes = w.count / rows
            let acts = (0..<tokens).map { _ in quantizeActivation(for: type, r.floats(cols, scale: 2), simd: true) }
            let a = acts.flatMap { $0 }
            var out = [Float](repeating: .nan, count: rows * tokens)
            w.withUnsafeBytes { wp in a.withUnsafeBytes { ap in
                ck_vec_dot_tile(Int32(type.rawValue), Int64(cols), wp.baseAddress, rowBytes, Int64(rows),
                                ap.baseAddress, acts[0].count, Int64(tokens), &out, Int64(rows))
            } }
            for t in 0..<tokens {
                for row in 0..<rows {
                    let want = Array(w[(row * rowBytes)..<((row + 1) * rowBytes)]).withUnsafeBytes { wp in
                        acts[t].withUnsafeBytes { ck_vec_dot(Int32(type.rawValue), Int64(cols), wp.baseAddress, $0.baseAddress) }
                    }
                    XCTAssertEqual(out[t * rows + row].bitPattern, want.bitPattern, "\(type) token \(t) row \(row)")
                }
            }
        }
    }

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

final class MatmulManyTests: XCTestCase {
    /// Several matrices over one input give exactly what separate products give, for decode
    /// and batches, with shared and with differing activation types, on one and two threads.
    func testMatmulManyEqualsSeparateProducts() throws {
        var r = Rand(21)
        let cols = 256
        for types in [[GGMLType.q4_1, .q4_1, .q4_1], [.q5_0, .q8_0, .q5_0], [.q4_K, .q6_K], [.q5_0, .q4_K]] {
            let shapes = types.enumerated().map { ($0.element, [64, 20, 36][$0.offset % 3]) }
            let data = shapes.map { (t, rows) in (0..<rows).flatMap { _ in randomRow(t, cols, &r) } }
            for threads in [1, 2] {
                let c = Compute(threads: threads)
                for tokens in [1, 5, 19] {
                    let x = r.floats(tokens * cols, scale: 2)
                    try withMatrices(shapes, data, cols) { ms in
                        let want = try ms.map { try c.matmul($0, x: x, tokens: tokens) }
                        var got = ms.map { [Float](repeating: .nan, count: tokens * $0.rows) }
                        let ptrs = got.indices.map { i in UnsafeMutablePointer<Float>.allocate(capacity: got[i].count) }
                        defer { ptrs.forEach { $0.deallocate() } }
                        x.withUnsafeBufferPointer { c.matmul(ms, x: $0.baseAddress!, tokens: tokens, ys: ptrs) }
                        for i in got.indices { got[i] = Array(UnsafeBufferPointer(start: ptrs[i], count: got[i].count)) }
                        XCTAssertEqual(got, want, "\(types) threads \(threads) tokens \(tokens)")
                    }
                }
            }
        }
    }

    func withMatrices(_ shapes: [(GGMLType, Int)], _ data: [[UInt8]], _ cols: Int, _ body: ([QuantizedMatrix]) throws -> Void) throws {
        let bufs = data.map { d -> UnsafeMutableRawBufferPointer in
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: d.count, alignment: 64)
            b.copyBytes(from: d)
            return b
        }
        defer { bufs.forEach { $0.deallocate() } }
        let ms = try zip(shapes, bufs).map { try QuantizedMatrix(type: $0.0.0, rows: $0.0.1, cols: cols, bytes: UnsafeRawBufferPointer($0.1)) }
        try body(ms)
    }
}
