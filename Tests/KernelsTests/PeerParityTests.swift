import CKernels
import Foundation
import Kernels
import ModelFiles
import TestSupport
import XCTest

/// Bit-for-bit agreement with llama.cpp's CPU backend (AVX2) on fixtures the peer computed
/// (scripts/ggml-kernel-check --fixtures): Q4_K through its repack kernels (a 4-token-group gemm
/// and a gemv, which round differently), Q6_K through ggml_mul_mat (its tiled path from 8
/// tokens), and its f16-table GELU.
final class PeerParityTests: XCTestCase {
    func base64Floats(_ s: Any?) throws -> [Float] {
        let d = try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(s as? String)))
        return d.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func testMatmulEqualsLlamaCpp() throws {
        try XCTSkipUnless(ck_cpu_has_avx2() != 0, "the fixtures are llama.cpp's AVX2 results")
        let fx = try XCTUnwrap(TestPaths.loadJSON(TestPaths.fixture("kernels/matmul-peer.json")) as? [String: Any])
        let matrices = try XCTUnwrap(fx["matrices"] as? [[String: Any]])
        XCTAssertEqual(matrices.count, 2)
        for m in matrices {
            let type = try XCTUnwrap(GGMLType(rawValue: UInt32(try XCTUnwrap(m["type"] as? Int))))
            let rows = try XCTUnwrap(m["rows"] as? Int), cols = try XCTUnwrap(m["cols"] as? Int)
            let w = try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(m["weights"] as? String)))
            let cases = try XCTUnwrap(m["cases"] as? [[String: Any]])
            try w.withUnsafeBytes { wp in
                let matrix = try QuantizedMatrix(type: type, rows: rows, cols: cols, bytes: wp)
                for c in cases {
                    let tokens = try XCTUnwrap(c["tokens"] as? Int)
                    let x = try base64Floats(c["x"]), want = try base64Floats(c["y"])
                    XCTAssertEqual(x.count, tokens * cols)
                    XCTAssertEqual(want.count, tokens * rows)
                    for threads in [1, 2] {
                        let got = try Compute(threads: threads).matmul(matrix, x: x, tokens: tokens)
                        let bad = zip(got, want).filter { $0.0.bitPattern != $0.1.bitPattern }.count
                        XCTAssertEqual(bad, 0, "\(type) \(tokens) tokens, \(threads) threads: \(bad) of \(want.count) differ from llama.cpp")
                    }
                    if tokens == 1 {  // the decode entry point too
                        let got = try Compute(threads: 1).matvec(matrix, x: x)
                        XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "\(type) matvec")
                    }
                }
            }
        }
    }

    func testGeluTableEqualsLlamaCpp() throws {
        let fx = try XCTUnwrap(TestPaths.loadJSON(TestPaths.fixture("kernels/gelu-table.json")) as? [String: Any])
        let x = try base64Floats(fx["x"]), want = try base64Floats(fx["y"])
        XCTAssertEqual(x.count, want.count)
        for simd in [true, false] {
            ck_set_simd_enabled(simd ? 1 : 0)
            defer { ck_set_simd_enabled(1) }
            var y = [Float](repeating: .nan, count: x.count)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { FloatOps.geluTanhTable(xp.baseAddress!, into: $0.baseAddress!, count: x.count) }
            }
            for i in x.indices where y[i].bitPattern != want[i].bitPattern {
                XCTFail("gelu(\(x[i])) = \(y[i]), llama.cpp \(want[i]) (simd \(simd))")
                break
            }
        }
    }
}
