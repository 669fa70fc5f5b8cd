import CKernels
import Foundation
import Kernels
import XCTest

/// Activation quantizers against straightforward Swift transcriptions of ggml's reference rules.
final class QuantizeTests: XCTestCase {
    override func tearDown() { setSIMDEnabled(true) }

    func rows(_ n: Int) -> [[Float]] {
        var r = Rand(5)
        var out: [[Float]] = [r.floats(n), r.floats(n, scale: 1000), [Float](repeating: 0, count: n)]
        var one = [Float](repeating: 0, count: n); one[3] = -2.5; out.append(one)
        // equal magnitudes of both signs: Q8_K keeps the sign of the first
        var tie = r.floats(n, scale: 0.5); tie[10] = 0.75; tie[20] = -0.75; out.append(tie)
        var tie2 = r.floats(n, scale: 0.5); tie2[10] = -0.75; tie2[200 % n] = 0.75; out.append(tie2)
        // halfway values: x·(127/amax) lands on k + 0.5
        out.append((0..<n).map { i in i % 32 == 0 ? 127 : Float(i % 17) + 0.5 })
        return out
    }

    /// ggml's x86 quantize_row_q8_0 / q8_1 (what llama.cpp runs on AVX2 machines; its _ref twins
    /// differ on halves): d = amax/127, q = round-half-to-even(x·(127/amax)), s = d·Σq.
    func refQ8(_ x: [Float], withSum: Bool) -> [UInt8] {
        var out: [UInt8] = []
        for b in 0..<(x.count / 32) {
            let blk = x[(b * 32)..<(b * 32 + 32)]
            let amax = blk.map { abs($0) }.max()!
            let d = amax / 127
            let id: Float = amax != 0 ? 127 / amax : 0
            let q = blk.map { Int8(($0 * id).rounded(.toNearestOrEven)) }
            let dh = Float16(d).bitPattern
            out += [UInt8(dh & 0xFF), UInt8(dh >> 8)]
            if withSum {
                let s = Float16(d * Float(q.reduce(0) { $0 + Int($1) })).bitPattern
                out += [UInt8(s & 0xFF), UInt8(s >> 8)]
            }
            out += q.map { UInt8(bitPattern: $0) }
        }
        return out
    }

    /// ggml quantize_row_q8_K_ref: iscale = -127/max (max = the signed value of largest
    /// magnitude), q = min(127, nearest_int(iscale·x)), d = 1/iscale, bsums over 16.
    func refQ8K(_ x: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        for b in 0..<(x.count / 256) {
            let blk = Array(x[(b * 256)..<(b * 256 + 256)])
            var amax: Float = 0, mx: Float = 0
            for v in blk where abs(v) > amax { amax = abs(v); mx = v }
            var d: Float = 0
            var q = [Int8](repeating: 0, count: 256)
            if amax != 0 {
                let iscale = -127 / mx
                q = blk.map { Int8(min(127, Int((iscale * $0).rounded(.toNearestOrEven)))) }
                d = 1 / iscale
            }
            out += withUnsafeBytes(of: d.bitPattern.littleEndian) { Array($0) }
            out += q.map { UInt8(bitPattern: $0) }
            for g in 0..<16 {
                let s = Int16(q[(g * 16)..<(g * 16 + 16)].reduce(0) { $0 + Int($1) })
                out += withUnsafeBytes(of: s.littleEndian) { Array($0) }
            }
        }
        return out
    }

    func testQ8_0AndQ8_1MatchReference() {
        for x in rows(256) {
            for simd in [false, true] {
                XCTAssertEqual(quantizeActivation(for: .q8_0, x, simd: simd), refQ8(x, withSum: false), "q8_0 simd=\(simd)")
                XCTAssertEqual(quantizeActivation(for: .q4_1, x, simd: simd), refQ8(x, withSum: true), "q8_1 simd=\(simd)")
            }
        }
    }

    func testQ8_KMatchesReference() {
        for x in rows(512) {
            for simd in [false, true] {
                XCTAssertEqual(quantizeActivation(for: .q4_K, x, simd: simd), refQ8K(x), "simd=\(simd)")
            }
        }
    }

    /// Our f16 conversions against Swift's Float16 (IEEE round to nearest even).
    func testHalfConversions() {
        for h in 0...UInt16.max {
            let f = Float16(bitPattern: h)
            let got = ck_f16_to_f32(h)
            if f.isNaN { XCTAssertTrue(got.isNaN); continue }
            XCTAssertEqual(got.bitPattern, Float(f).bitPattern, "\(h)")
            XCTAssertEqual(ck_f32_to_f16(got), h)
        }
        var r = Rand(3)
        for i in 0..<20000 {
            let scale: Float = [1e-7, 1e-5, 1, 100, 70000][i % 5]
            let v = r.uniform(-scale, scale)
            XCTAssertEqual(ck_f32_to_f16(v), Float16(v).bitPattern, "\(v)")
        }
    }
}
