import Foundation
import Kernels
import XCTest

/// Float ops against double-precision references; run with and without the AVX2 paths.
final class FloatOpsTests: XCTestCase {
    override func tearDown() { setSIMDEnabled(true) }

    func eachPath(_ body: () -> Void) {
        for simd in [false, true] {
            setSIMDEnabled(simd)
            body()
        }
    }

    func assertClose(_ got: [Float], _ want: [Double], rel: Double, abs absTol: Double = 0, _ what: String) {
        XCTAssertEqual(got.count, want.count)
        for i in 0..<want.count {
            let tol = rel * Swift.abs(want[i]) + absTol
            if !(Swift.abs(Double(got[i]) - want[i]) <= tol) {
                XCTFail("\(what)[\(i)]: \(got[i]) vs \(want[i])")
                return
            }
        }
    }

    func testRMSNormAndLayerNorm() {
        var r = Rand(21)
        let n = 579
        let x = r.floats(n, scale: 3), w = r.floats(n), b = r.floats(n)
        let ms = x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n)
        let inv = 1 / (ms + 1e-6).squareRoot()
        let mean = x.reduce(0.0) { $0 + Double($1) } / Double(n)
        let v = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(n)
        let linv = 1 / (v + 1e-5).squareRoot()
        eachPath {
            var y = [Float](repeating: 0, count: n)
            FloatOps.rmsNorm(x, weight: w, into: &y, count: n, eps: 1e-6)
            assertClose(y, (0..<n).map { Double(x[$0]) * inv * Double(w[$0]) }, rel: 1e-5, abs: 1e-6, "rmsnorm")
            FloatOps.rmsNorm(x, weight: nil, into: &y, count: n, eps: 1e-6)
            assertClose(y, (0..<n).map { Double(x[$0]) * inv }, rel: 1e-5, abs: 1e-6, "rmsnorm no weight")
            FloatOps.layerNorm(x, weight: w, bias: b, into: &y, count: n, eps: 1e-5)
            assertClose(y, (0..<n).map { (Double(x[$0]) - mean) * linv * Double(w[$0]) + Double(b[$0]) }, rel: 1e-5, abs: 1e-5, "layernorm")
        }
    }

    func testSoftmax() {
        var r = Rand(22)
        var x = r.floats(301, scale: 20)
        x[7] = -.infinity; x[100] = -.infinity
        let m = Double(x.max()!)
        let e = x.map { Foundation.exp(Double($0) - m) }
        let s = e.reduce(0, +)
        eachPath {
            var y = x
            FloatOps.softmax(&y, count: y.count)
            assertClose(y, e.map { $0 / s }, rel: 2e-6, abs: 1e-12, "softmax")
            XCTAssertEqual(y[7], 0)
            var allMasked = [Float](repeating: -.infinity, count: 9)
            FloatOps.softmax(&allMasked, count: 9)
            XCTAssertEqual(allMasked, [Float](repeating: 0, count: 9))
        }
    }

    func testExpSiluGelu() {
        var r = Rand(23)
        var x = r.floats(1000, scale: 10) + r.floats(200, scale: 80) + [0, -0.0, 88, -87, -100, 100, 1e-8]
        x += [-.infinity]
        let n = x.count
        eachPath {
            var y = [Float](repeating: 0, count: n)
            FloatOps.exp(x, into: &y, count: n)
            let xe = Array(x.prefix(n - 3)) // exp(100) overflows float; checked separately
            assertClose(Array(y.prefix(n - 3)), xe.map { Foundation.exp(Double($0)) }, rel: 4e-7, abs: 1e-37, "exp")
            XCTAssertEqual(y[n - 1], 0)
            FloatOps.silu(x, into: &y, count: n)
            let xs = Array(x.prefix(n - 1))
            assertClose(Array(y.prefix(n - 1)), xs.map { Double($0) / (1 + Foundation.exp(-Double($0))) }, rel: 1e-6, abs: 1e-30, "silu")
            FloatOps.gelu(x, into: &y, count: n)
            let g = xs.map { v -> Double in
                let d = Double(v)
                return 0.5 * d * (1 + tanh(0.7978845608028654 * (d + 0.044715 * d * d * d)))
            }
            assertClose(Array(y.prefix(n - 1)), g, rel: 1e-5, abs: 1e-7, "gelu")
        }
    }

    func testRope() {
        var r = Rand(24)
        let heads = 3, headSize = 64, dims = 64
        for neox in [false, true] {
            for (pos, base, scale) in [(0, Float(10000), Float(1)), (7, 10000, 1), (913, 1_000_000, 0.125)] {
                var x = r.floats(heads * headSize)
                let orig = x
                let rope = Rope(dims: dims, freqBase: base, freqScale: scale, neox: neox)
                rope.apply(&x, heads: heads, headSize: headSize, position: pos)
                var want = [Double](repeating: 0, count: x.count)
                for h in 0..<heads {
                    for i in 0..<(dims / 2) {
                        let theta = Double(scale) * Double(pos) * pow(Double(base), -2.0 * Double(i) / Double(dims))
                        let a = h * headSize + (neox ? i : 2 * i), b = h * headSize + (neox ? i + dims / 2 : 2 * i + 1)
                        want[a] = Double(orig[a]) * cos(theta) - Double(orig[b]) * sin(theta)
                        want[b] = Double(orig[a]) * sin(theta) + Double(orig[b]) * cos(theta)
                    }
                }
                // theta accumulates in f32 as in ggml: error grows with position
                assertClose(x, want, rel: 0, abs: 2e-4 * Double(max(1, pos / 100)), "rope neox=\(neox) pos=\(pos)")
                // norm of each pair is preserved
                let n0 = orig.reduce(0.0) { $0 + Double($1 * $1) }, n1 = x.reduce(0.0) { $0 + Double($1 * $1) }
                XCTAssertEqual(n0, n1, accuracy: 1e-4 * n0)
            }
        }
        // partial rotation leaves the tail untouched
        var x = r.floats(2 * 16)
        let orig = x
        Rope(dims: 8, neox: true).apply(&x, heads: 2, headSize: 16, position: 5)
        XCTAssertEqual(Array(x[8..<16]), Array(orig[8..<16]))
        XCTAssertEqual(Array(x[24..<32]), Array(orig[24..<32]))
        XCTAssertNotEqual(Array(x[0..<8]), Array(orig[0..<8]))
    }

    func testElementwise() {
        var r = Rand(25)
        let a = r.floats(103), b = r.floats(103)
        eachPath {
            var y = [Float](repeating: 0, count: 103)
            FloatOps.mul(a, b, into: &y, count: 103)
            XCTAssertEqual(y, zip(a, b).map { $0 * $1 })
            FloatOps.add(a, b, into: &y, count: 103)
            XCTAssertEqual(y, zip(a, b).map { $0 + $1 })
            y = b
            FloatOps.axpy(0.5, a, &y, count: 103)
            for i in 0..<103 { XCTAssertEqual(y[i], b[i] + 0.5 * a[i], accuracy: 1e-6) }
            let d = FloatOps.dot(a, b, count: 103)
            XCTAssertEqual(Double(d), zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }, accuracy: 1e-4)
        }
    }
}
