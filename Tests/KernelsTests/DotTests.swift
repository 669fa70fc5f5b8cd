import CKernels
import Foundation
import Kernels
import ModelFiles
import TestSupport
import XCTest

final class DotTests: XCTestCase {
    override func tearDown() { setSIMDEnabled(true) }

    /// Our scalar dequantizers against gguf-py's on random blocks of every type.
    func testDequantizeMatchesGGUFPyOnRandomBlocks() throws {
        let fx = try XCTUnwrap(TestPaths.loadJSON(TestPaths.fixture("kernels/dequant.json")) as? [String: Any])
        let cases = try XCTUnwrap(fx["random"] as? [[String: Any]])
        XCTAssertEqual(cases.count, quantTypes.count)
        for c in cases {
            let name = try XCTUnwrap(c["type"] as? String)
            let type = try XCTUnwrap(GGMLType.allCases.first { $0.name == name })
            let bytes = [UInt8](try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(c["bytes"] as? String))))
            let want = try XCTUnwrap(c["values"] as? [Double])
            let got = dequantize(type, bytes, want.count)
            for i in 0..<want.count {
                XCTAssertEqual(Double(got[i]), want[i], accuracy: 1e-6 * max(1, abs(want[i])), "\(name) element \(i)")
            }
        }
    }

    /// Rows of real model tensors (Q4_1, Q8_0, Q5_0, Q4_K, Q6_K) read through QuantizedMatrix.
    func testDequantizeMatchesGGUFPyOnModelRows() throws {
        let fx = try XCTUnwrap(TestPaths.loadJSON(TestPaths.fixture("kernels/dequant.json")) as? [String: Any])
        let cases = try XCTUnwrap(fx["model"] as? [[String: Any]])
        var files: [String: GGUFFile] = [:]
        var typesSeen = Set<GGMLType>()
        for c in cases {
            let model = try XCTUnwrap(c["model"] as? String)
            if files[model] == nil { files[model] = try GGUFFile(path: try TestPaths.model(model)) }
            let m = try QuantizedMatrix(file: files[model]!, tensor: try XCTUnwrap(c["tensor"] as? String))
            typesSeen.insert(m.type)
            XCTAssertEqual(m.type.name, c["type"] as? String)
            let rows = try XCTUnwrap(c["rows"] as? [Int])
            let values = try XCTUnwrap(c["values"] as? [[Double]])
            for (r, want) in zip(rows, values) {
                let got = m.dequantizeRow(r)
                XCTAssertEqual(got.count, want.count)
                let maxErr = zip(got, want).map { abs(Double($0) - $1) / max(1, abs($1)) }.max() ?? 0
                XCTAssertLessThan(maxErr, 1e-6, "\(m.type) row \(r)")
            }
        }
        XCTAssertEqual(typesSeen, [.q4_1, .q8_0, .q5_0, .q4_K, .q6_K])
    }

    /// The AVX2 dot of every type equals its scalar twin up to float summation order.
    func testSIMDDotMatchesScalar() throws {
        try XCTSkipUnless(cpuHasAVX2, "no AVX2 on this CPU")
        var r = Rand(42)
        for type in quantTypes + [.f16, .bf16, .f32] {
            for trial in 0..<12 {
                let n = (type.blockSize == 256 ? 256 : 32) * (1 + trial % 5) * (type.blockSize == 1 ? 7 : 1) + (type.blockSize == 1 ? trial : 0)
                let w = randomRow(type, n, &r)
                let x = r.floats(n, scale: Float(1 + trial))
                let a = quantizeActivation(for: type, x, simd: false)
                let s = dotScalar(type, n, w, a)
                let v = dotDispatch(type, n, w, a)
                // bound: Σ|w_i·a_i| over dequantized values
                let wd = dequantize(type, w, n)
                let ad = type.blockSize == 1 ? x : dequantize(activationType(type), a, n)
                let bound = zip(wd, ad).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                XCTAssertEqual(Double(v), Double(s), accuracy: 2e-6 * bound + 1e-30, "\(type) n=\(n) trial \(trial)")
            }
        }
    }

    /// BF16 widens to the float with the same top 16 bits, exactly; the kernels take it as a
    /// weight type with f32 activations.
    func testBF16IsTheTopHalfOfAFloat() throws {
        var r = Rand(3)
        let x = r.floats(77) + [0, -0.0, 1, -2.5, .infinity, 65504 * 4, 1e-39]
        let bits = x.map { UInt16($0.bitPattern >> 16) }
        let got = dequantize(.bf16, bits.withUnsafeBytes { Array($0) }, x.count)
        for (g, b) in zip(got, bits) { XCTAssertEqual(g.bitPattern, UInt32(b) << 16) }
        XCTAssertEqual(ck_vec_dot_type(Int32(GGMLType.bf16.rawValue)), Int32(GGMLType.f32.rawValue))
        XCTAssertTrue(QuantizedMatrix.supportedTypes.contains(.bf16))
    }

    /// Scalar quantized dots equal the float dot of the dequantized rows (the integer part is
    /// exact; only float rounding and Q8_1's f16 block sums differ).
    func testScalarDotMatchesDequantizedDot() throws {
        var r = Rand(7)
        for type in quantTypes + [.f16, .bf16, .f32] {
            for trial in 0..<6 {
                let n = type.blockSize == 1 ? 100 + trial : type.blockSize * (1 + trial)
                let w = randomRow(type, n, &r)
                let x = r.floats(n, scale: 3)
                let a = quantizeActivation(for: type, x, simd: false)
                let wd = dequantize(type, w, n)
                let ad = type.blockSize == 1 ? x : dequantize(activationType(type), a, n)
                let want = zip(wd, ad).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let bound = zip(wd, ad).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                // Q8_1 stores the block sum as f16 (relative error 2^-11 on the min term).
                let tol = activationType(type) == .q8_1 ? 1e-3 : 1e-5
                XCTAssertEqual(Double(dotScalar(type, n, w, a)), want, accuracy: tol * bound + 1e-30, "\(type) trial \(trial)")
            }
        }
    }

    /// The quantized dot is within the activation-quantization error of the true dot Σ w_i x_i.
    func testQuantizedDotApproximatesFloatDot() throws {
        var r = Rand(99)
        for type in quantTypes {
            let n = type.blockSize * 4
            let w = randomRow(type, n, &r)
            let x = r.floats(n, scale: 2)
            let a = quantizeActivation(for: type, x, simd: true)
            let wd = dequantize(type, w, n)
            let exact = zip(wd, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            // Each activation is off by at most half its block step (plus the f16 rounding of
            // the step): |Σ w_i e_i| ≤ Σ |w_i| (d_b/2 + |x_i| 2^-10).
            let bs = activationType(type) == .q8_K ? 256 : 32
            var bound = 0.0
            for b in 0..<(n / bs) {
                let amax = x[(b * bs)..<((b + 1) * bs)].map { abs(Double($0)) }.max()!
                for i in (b * bs)..<((b + 1) * bs) { bound += abs(Double(wd[i])) * (amax / 127 / 2 + abs(Double(x[i])) / 1024) }
            }
            let got = Double(dotDispatch(type, n, w, a))
            XCTAssertLessThanOrEqual(abs(got - exact), bound * 1.01 + 1e-6, "\(type)")
            XCTAssertGreaterThan(bound, 0)
        }
    }
}
