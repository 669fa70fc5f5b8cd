import XCTest
import ModelFiles
import Models
import Generation
import TestSupport
@testable import Training

/// The backward pass against finite differences, and the training forward against the engine.
final class GradientTests: XCTestCase {
    let tokens: [Int32] = [1, 17, 200, 5, 93, 42, 7, 128, 3, 250, 64, 9]

    func setUp(_ name: String, targets: [LoRATarget] = LoRATarget.allCases) throws -> (LoRATrainer, LoRAParameters) {
        let m = try DecoderModel(file: try GGUFFile(path: try TestPaths.fixture("tiny/\(name).gguf")), threads: 1)
        let trainer = try LoRATrainer(model: m)
        let p = LoRAParameters(config: m.config, rank: 4, alpha: 8, targets: targets, seed: 3)
        // B starts at zero (no gradient reaches A then); make it non-zero for the check.
        var rng = SeededGenerator(seed: 9)
        for s in p.slots { for i in 0..<(s.outDim * p.rank) { p.values[s.b + i] = (rng.uniform() * 2 - 1) * 0.3 } }
        return (trainer, p)
    }

    func loss(_ t: LoRATrainer, _ p: LoRAParameters, mask: [Bool]) throws -> Double {
        try t.lossAndGradients(tokens: tokens, mask: mask, params: p, grads: nil).loss
    }

    /// Gradient checkpointing recomputes each layer's activations in the backward pass with the
    /// same arithmetic: loss and every gradient are bitwise equal to the run that keeps them,
    /// on F32 and Q8_0 bases with every projection adapted.
    func testCheckpointingGivesBitwiseTheSameGradients() throws {
        for name in ["llama", "llama-q8_0"] {
            let (t, p) = try setUp(name)
            var mask = [Bool](repeating: true, count: tokens.count)
            mask[0] = false; mask[5] = false
            var kept = [Float](repeating: 0, count: p.values.count), recomputed = kept
            let a = try kept.withUnsafeMutableBufferPointer { try t.lossAndGradients(tokens: tokens, mask: mask, params: p, grads: $0.baseAddress!, gradScale: 0.5) }
            let b = try recomputed.withUnsafeMutableBufferPointer {
                try t.lossAndGradients(tokens: tokens, mask: mask, params: p, grads: $0.baseAddress!, gradScale: 0.5, checkpointing: true)
            }
            XCTAssertEqual(a.loss, b.loss, name)
            XCTAssertEqual(a.count, b.count, name)
            XCTAssertEqual(kept.map(\.bitPattern), recomputed.map(\.bitPattern), "\(name): gradients differ with checkpointing")
            XCTAssertGreaterThan(kept.filter { $0 != 0 }.count, kept.count / 2, "\(name): most gradients are non-zero")
        }
    }

    /// Every parameter kind of every layer and projection: the analytic gradient equals the
    /// central difference within 2% relative error (float32 forward, h = 1e-2 on weights of
    /// size ~0.2; |g| below 1e-3 is compared absolutely).
    func testGradientsMatchFiniteDifferences() throws {
        for name in ["llama"] {
            let (t, p) = try setUp(name)
            var mask = [Bool](repeating: true, count: tokens.count)
            mask[0] = false; mask[3] = false   // the loss skips masked targets
            var g = [Float](repeating: 0, count: p.values.count)
            let (l0, n) = try g.withUnsafeMutableBufferPointer { try t.lossAndGradients(tokens: tokens, mask: mask, params: p, grads: $0.baseAddress!) }
            XCTAssertEqual(n, tokens.count - 2, "every next-token target but the masked one")
            XCTAssertGreaterThan(l0, 0)
            var rng = SeededGenerator(seed: 5)
            var worst = 0.0
            var checked = 0
            for s in p.slots {
                for (offset, count) in [(s.a, p.rank * s.inDim), (s.b, s.outDim * p.rank)] {
                    for _ in 0..<3 {
                        let i = offset + Int(rng.next() % UInt64(count))
                        let h: Float = 1e-2
                        let keep = p.values[i]
                        p.values[i] = keep + h
                        let lp = try loss(t, p, mask: mask)
                        p.values[i] = keep - h
                        let lm = try loss(t, p, mask: mask)
                        p.values[i] = keep
                        let fd = (lp - lm) / Double(2 * h)
                        let an = Double(g[i])
                        let err = abs(fd - an) / max(abs(fd), abs(an), 1e-3)
                        worst = max(worst, err)
                        XCTAssertLessThan(err, 0.02, "\(name) layer \(s.layer) \(s.target) \(offset == s.a ? "A" : "B")[\(i - offset)]: analytic \(an), numeric \(fd)")
                        checked += 1
                    }
                }
            }
            XCTAssertEqual(checked, p.slots.count * 6)
            print("\(name): \(checked) gradients checked, worst relative error \(worst)")
        }
    }

    /// The training forward (all f32) and the engine with the same weights as an adapter (f16
    /// K/V cache) give the same loss to within the engine's f16 roundings.
    func testTrainingLossEqualsTheEnginesWithTheAdapter() throws {
        let (t, p) = try setUp("llama")
        let mask = [false] + [Bool](repeating: true, count: tokens.count - 1)
        let trained = try loss(t, p, mask: mask)
        let cache = t.model.makeCache(capacity: 32)
        cache.adapters = [LoRAUse(p.adapter(name: "x"))]
        let logits = try t.model.forward(tokens: tokens, cache: cache, allLogits: true)
        let v = t.model.config.vocabSize
        var engine = 0.0
        for i in 0..<(tokens.count - 1) {
            let row = Array(logits[i * v ..< (i + 1) * v])
            let mx = row.max()!
            let lse = Foundation.log(row.reduce(0.0) { $0 + Double(Foundation.exp($1 - mx)) }) + Double(mx)
            engine += lse - Double(row[Int(tokens[i + 1])])
        }
        XCTAssertEqual(trained, engine, accuracy: abs(engine) * 2e-3, "training \(trained), engine \(engine)")
        // And without the adapter's effect (B = 0) it is the base model's loss.
        let zero = LoRAParameters(config: t.config, rank: 4, alpha: 8, targets: [.q, .v], seed: 1)
        let base = try t.lossAndGradients(tokens: tokens, mask: mask, params: zero, grads: nil).loss
        XCTAssertNotEqual(base, trained)
    }

    func testUnsupportedArchitecturesAreRefused() throws {
        let gemma = try DecoderModel(file: try GGUFFile(path: try TestPaths.fixture("tiny/gemma3.gguf")), threads: 1)
        XCTAssertThrowsError(try LoRATrainer(model: gemma)) { XCTAssertTrue("\($0)".contains("llama-family"), "\($0)") }
    }
}
