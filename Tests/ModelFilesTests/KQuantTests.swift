import XCTest
@testable import ModelFiles
import TestSupport

/// The K-quant writers (Q4_K, Q5_K, Q6_K): bytes decoded by the dequantizer that matches ggml's
/// bit for bit, so what is checked here is how close the decoded values come back.
final class KQuantTests: XCTestCase {
    /// Weight-like data: roughly normal values (sum of uniforms) with block scales spread over
    /// three orders of magnitude and a few outliers, as trained matrices have.
    static func weights(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        func u() -> Float { Float(rng.next() >> 40) / Float(1 << 24) - 0.5 }
        return (0..<n).map { i in
            let scale = Float(1 << (i / 256 % 10)) * 0.001
            var v = (u() + u() + u() + u()) * scale
            if i % 397 == 0 { v *= 8 }
            return v
        }
    }

    /// Root-mean-square error relative to the data's, block by block of 256, averaged.
    static func relativeError(_ type: GGMLType, _ x: [Float]) throws -> Double {
        let q = try quantize(type, x)
        let y = try q.withUnsafeBytes { try dequantize(type, $0, count: x.count) }
        var total = 0.0
        for b in 0..<(x.count / 256) {
            var e = 0.0, s = 0.0
            for i in (256 * b)..<(256 * b + 256) {
                e += Double(y[i] - x[i]) * Double(y[i] - x[i]); s += Double(x[i]) * Double(x[i])
            }
            total += (e / s).squareRoot()
        }
        return total / Double(x.count / 256)
    }

    func testErrorFallsWithBitsAndBeatsTheSameSizeBlockTypes() throws {
        let x = Self.weights(256 * 40, seed: 7)
        var err: [GGMLType: Double] = [:]
        for t in [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K] { err[t] = try Self.relativeError(t, x) }
        print("relative RMSE:", err.sorted { $0.value > $1.value }.map { "\($0.key.name) \(String(format: "%.4f", $0.value))" }.joined(separator: ", "))
        let e4 = try XCTUnwrap(err[.q4_K]), e5 = try XCTUnwrap(err[.q5_K]), e6 = try XCTUnwrap(err[.q6_K])
        // Each extra bit halves the step: the error roughly halves.
        XCTAssertLessThan(e5, e4 * 0.6)
        XCTAssertLessThan(e6, e5 * 0.6)
        // Q4_K (4.5 bits a weight) and Q5_K (5.5) against the 32-block types of about their size
        // (Q4_1 5 bits, Q5_1 6 bits): the searched fits come out ahead in spite of 6-bit scales.
        XCTAssertLessThan(e4, try XCTUnwrap(err[.q4_1]))
        XCTAssertLessThan(e5, try XCTUnwrap(err[.q5_1]))
        // Q6_K (6.56 bits) sits between Q5_1 and Q8_0.
        XCTAssertLessThan(e6, try XCTUnwrap(err[.q5_1]))
        XCTAssertGreaterThan(e6, try XCTUnwrap(err[.q8_0]))
    }

    /// No value comes back further than one and a half steps of its own sub-block's grid. Half a
    /// step is rounding; the rest is the sub-scale's own rounding to 6 bits against the
    /// super-block's largest (a sub-block with a small range next to an outlier's gets a scale up
    /// to a few per cent off, which can clip its top values), and the fit trading the extremes
    /// for the bulk.
    func testEveryValueWithinAStepAndAHalfOfItsSubBlock() throws {
        let x = Self.weights(256 * 20, seed: 11)
        for (type, group, levels) in [(GGMLType.q4_K, 32, 15), (.q5_K, 32, 31), (.q6_K, 16, 63)] {
            let q = try quantize(type, x)
            let y = try q.withUnsafeBytes { try dequantize(type, $0, count: x.count) }
            var worst: Float = 0
            for g in 0..<(x.count / group) {
                let r = (group * g)..<(group * g + group)
                let lo = min(0, x[r].min()!), hi = max(0, x[r].max()!)
                let step = (hi - lo) / Float(levels)
                for i in r {
                    worst = max(worst, abs(y[i] - x[i]) / step)
                    XCTAssertLessThanOrEqual(abs(y[i] - x[i]), 1.5 * step, "\(type) value \(i)")
                }
            }
            print("\(type): worst error \(worst) steps")
        }
    }

    func testOddBlocks() throws {
        var blocks: [[Float]] = []
        blocks.append([Float](repeating: 0.25, count: 256))                          // constant
        blocks.append((0..<256).map { -0.001 * Float($0 + 1) })                    // all negative
        blocks.append((0..<256).map { $0 == 77 ? 40 : 0.01 * Float($0 % 7) })      // one outlier
        blocks.append((0..<256).map { $0 < 128 ? 0 : 1e-3 * Float($0) })           // half zero
        blocks.append((0..<256).map { Float($0 % 2 == 0 ? 1e-8 : -1e-8) })         // tiny
        for (n, x) in blocks.enumerated() {
            for type in [GGMLType.q4_K, .q5_K, .q6_K] {
                let q = try quantize(type, x)
                let y = try q.withUnsafeBytes { try dequantize(type, $0, count: 256) }
                let amax = x.map(abs).max()!
                for i in 0..<256 {
                    XCTAssertTrue(y[i].isFinite, "\(type) block \(n)")
                    XCTAssertLessThanOrEqual(abs(y[i] - x[i]), amax * 0.07 + 1e-6, "\(type) block \(n) value \(i)")
                }
            }
        }
        // A constant block comes back exactly enough to matter (Q6_K: a symmetric grid).
        let c = try quantize(.q6_K, blocks[0])
        let back = try c.withUnsafeBytes { try dequantize(.q6_K, $0, count: 256) }
        XCTAssertEqual(back[0], 0.25, accuracy: 0.25 * 0.002)
    }

    /// Re-quantizing a block of rows at a time (GGUFRewrite.requantize, what quantize uses)
    /// gives the bytes of quantizing the whole tensor at once: SmolLM2's 49152-row embedding
    /// (blocks of 1820 rows) to Q8_0 and Q5_0 (the 576-wide rows take no K-quant), and Q6_K
    /// on a 1536-wide ffn_down.
    func testRowBlockRequantizeEqualsWholeTensor() throws {
        let f = try GGUFFile(path: try TestPaths.model("smollm2-135m-instruct"))
        for (name, type) in [("token_embd.weight", GGMLType.q8_0), ("token_embd.weight", .q5_0), ("blk.0.ffn_down.weight", .q6_K)] {
            let info = try XCTUnwrap(f.tensor(named: name))
            let size = try XCTUnwrap(type.byteCount(elements: info.elementCount))
            let whole = try quantize(type, try f.dequantized(info))
            XCTAssertEqual(try GGUFRewrite.requantize(f, info, to: type, size: size), whole, "\(name) → \(type.name)")
        }
    }

    func testRecipeTypes() throws {
        func info(_ name: String, _ dims: [Int]) -> GGUFTensorInfo { GGUFTensorInfo(name: name, type: .f16, dims: dims, fileOffset: 0, byteCount: 0) }
        let m = try XCTUnwrap(QuantizeRecipe.named("Q4_K_M"))
        XCTAssertEqual(m.fileType, 15)
        XCTAssertEqual(m.type(for: info("blk.0.ffn_down.weight", [2048, 512]), layers: 24, tiedOutput: false), .q6_K)
        XCTAssertEqual(m.type(for: info("blk.4.ffn_down.weight", [2048, 512]), layers: 24, tiedOutput: false), .q4_K)
        XCTAssertEqual(m.type(for: info("blk.5.attn_v.weight", [512, 128]), layers: 24, tiedOutput: false), .q6_K)
        XCTAssertEqual(m.type(for: info("blk.23.attn_v.weight", [512, 128]), layers: 24, tiedOutput: false), .q6_K)
        XCTAssertEqual(m.type(for: info("output.weight", [512, 1000]), layers: 24, tiedOutput: false), .q6_K)
        XCTAssertEqual(m.type(for: info("token_embd.weight", [512, 1000]), layers: 24, tiedOutput: false), .q4_K)
        XCTAssertEqual(m.type(for: info("token_embd.weight", [512, 1000]), layers: 24, tiedOutput: true), .q6_K)
        XCTAssertEqual(m.type(for: info("blk.4.attn_q.weight", [576, 576]), layers: 24, tiedOutput: false), .q5_0, "fallback")
        XCTAssertEqual(m.type(for: info("blk.4.attn_norm.weight", [512]), layers: 24, tiedOutput: false), nil)
        XCTAssertEqual(m.type(for: info("blk.4.attn_q.weight", [40, 40]), layers: 24, tiedOutput: false), nil, "not even 32-blocks")
        // The single types follow llama-quantize's defaults: the output (or tied embedding) in
        // Q6_K, Q8_0 when its rows are not whole blocks of the type, Q8_0 kept; Q4_K_S's layers.
        let q41 = try XCTUnwrap(QuantizeRecipe.named("q4_1"))
        XCTAssertEqual(q41.type(for: info("output.weight", [512, 1000]), layers: 24, tiedOutput: false), .q6_K)
        XCTAssertEqual(q41.type(for: info("token_embd.weight", [576, 1000]), layers: 24, tiedOutput: true), .q8_0, "q6_k, 576 wide → q8_0")
        XCTAssertEqual(q41.type(for: info("token_embd.weight", [576, 1000]), layers: 24, tiedOutput: false), .q4_1)
        XCTAssertEqual(q41.type(for: info("blk.0.attn_v.weight", [512, 128]), layers: 24, tiedOutput: false), .q4_1)
        XCTAssertEqual(QuantizeRecipe.named("q8_0")?.type(for: info("output.weight", [512, 1000]), layers: 24, tiedOutput: false), .q8_0)
        XCTAssertEqual(QuantizeRecipe.named("f16")?.type(for: info("output.weight", [512, 1000]), layers: 24, tiedOutput: false), .f16)
        let ks = try XCTUnwrap(QuantizeRecipe.named("q4_k"))
        XCTAssertEqual(ks.fileType, 14, "llama.cpp's MOSTLY_Q4_K_S")
        XCTAssertEqual(ks.type(for: info("blk.3.attn_v.weight", [512, 128]), layers: 24, tiedOutput: false), .q5_K)
        XCTAssertEqual(ks.type(for: info("blk.4.attn_v.weight", [512, 128]), layers: 24, tiedOutput: false), .q4_K)
        XCTAssertEqual(ks.type(for: info("blk.2.ffn_down.weight", [2048, 512]), layers: 24, tiedOutput: false), .q5_K)
        XCTAssertEqual(ks.type(for: info("blk.3.ffn_down.weight", [2048, 512]), layers: 24, tiedOutput: false), .q4_K)
        XCTAssertEqual(ks.type(for: info("blk.3.ffn_down.weight", [576, 512]), layers: 24, tiedOutput: false), .q5_0, "fallback")
        let pure = QuantizeRecipe(.uniform(.q4_1), pure: true)
        XCTAssertEqual(pure.type(for: info("output.weight", [512, 1000]), layers: 24, tiedOutput: false), .q4_1)
        XCTAssertEqual(QuantizeRecipe(.uniform(.q4_K), pure: true).type(for: info("blk.0.attn_v.weight", [512, 128]), layers: 24, tiedOutput: false), .q4_K)
        let six = try XCTUnwrap(QuantizeRecipe.named("q6_k"))
        XCTAssertEqual(six.type(for: info("blk.4.attn_q.weight", [576, 576]), layers: 24, tiedOutput: false), .q8_0)
        XCTAssertEqual(try XCTUnwrap(QuantizeRecipe.named("q5_k")).type(for: info("a.weight", [640, 2]), layers: 1, tiedOutput: false), .q5_1)
        XCTAssertNil(QuantizeRecipe.named("q2_k"))
        // llama.cpp's more-bits layers for 30 layers: 0–2, 27–29 and every third between.
        XCTAssertEqual((0..<30).filter { QuantizeRecipe.moreBits(layer: $0, of: 30) }, [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29])
    }
}
