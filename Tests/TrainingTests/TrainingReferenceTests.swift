import XCTest
import ModelFiles
import Models
import Generation
import TestSupport
@testable import Training

/// Two full `steward tune` steps (batch loss, LoRA gradients, global-norm clipping, warm-up
/// schedule, AdamW with decoupled weight decay) against PyTorch: transformers' LlamaForCausalLM
/// + PEFT LoRA + torch.optim.AdamW on the same base weights, dequantized by gguf-py.
/// Reference: Tests/Fixtures/training/reference-step.json, written by
/// `/work/venv-ref/bin/python scripts/make-training-reference` (CI only reads it).
final class TrainingReferenceTests: XCTestCase {
    struct Tensors { var a: [Float], b: [Float] }

    var dir = ""
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "tune-ref-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func reference() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("training/reference-step.json")))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func floats(_ v: Any?) throws -> [Float] {
        try XCTUnwrap(v as? [Any]).map { Float(try XCTUnwrap(($0 as? NSNumber)?.doubleValue)) }
    }

    /// name ("layers.L.q_proj") → A, B in Steward's layout: q/k B rows go from the reference's
    /// Hugging Face order to GGUF order, as loading a PEFT adapter does.
    static func tensors(_ v: Any?, config c: DecoderConfig, rank: Int) throws -> [String: Tensors] {
        var out: [String: Tensors] = [:]
        for (name, t) in try XCTUnwrap(v as? [String: Any]) {
            let t = try XCTUnwrap(t as? [String: Any])
            var b = try floats(t["B"])
            if name.hasSuffix(".q_proj") || name.hasSuffix(".k_proj") {
                let heads = name.hasSuffix(".q_proj") ? c.heads : c.kvHeads
                b = LoRAAdapter.permuteRows(b, rows: b.count / rank, cols: rank, heads: heads)
            }
            out[name] = Tensors(a: try floats(t["A"]), b: b)
        }
        return out
    }

    static func name(_ s: LoRAParameters.Slot) -> String { "layers.\(s.layer).\(s.target.peftName)" }

    static func relativeError(_ x: [Float], _ ref: [Float]) -> Double {
        precondition(x.count == ref.count)
        var d = 0.0, n = 0.0
        for i in x.indices { let e = Double(x[i]) - Double(ref[i]); d += e * e; n += Double(ref[i]) * Double(ref[i]) }
        return (d / n).squareRoot()
    }

    /// Relative-error bounds: on every loss; on each gradient tensor (‖g − g_ref‖/‖g_ref‖); on each
    /// tensor's update at step 1 and step 2 (‖Δ − Δ_ref‖/‖Δ_ref‖).
    struct Bounds { var loss: Double, grad: Double, update1: Double, update2: Double }

    func check(_ caseName: String, _ bounds: Bounds) throws {
        let ref = try reference()
        let cs = try XCTUnwrap((ref["cases"] as? [String: Any])?[caseName] as? [String: Any])
        let o = try XCTUnwrap(ref["options"] as? [String: Any])
        var opts = TuneOptions()
        opts.rank = try XCTUnwrap(o["rank"] as? Int)
        opts.alpha = Float(try XCTUnwrap(o["alpha"] as? Double))
        opts.targets = try XCTUnwrap(o["targets"] as? [String])
        opts.epochs = try XCTUnwrap(o["epochs"] as? Int)
        opts.batch = try XCTUnwrap(o["batch"] as? Int)
        opts.learningRate = Float(try XCTUnwrap(o["learning_rate"] as? Double))
        opts.warmupFraction = Float(try XCTUnwrap(o["warmup_fraction"] as? Double))
        opts.weightDecay = Float(try XCTUnwrap(o["weight_decay"] as? Double))
        opts.clip = Float(try XCTUnwrap(o["clip"] as? Double))
        // The reference's fixed AdamW constants are Steward's.
        XCTAssertEqual(try XCTUnwrap(ref["betas"] as? [Double]), [0.9, 0.999])
        XCTAssertEqual(try XCTUnwrap(ref["eps"] as? Double), 1e-8)
        let examples = try XCTUnwrap(ref["examples"] as? [[String: Any]]).map {
            TrainingExample(tokens: try XCTUnwrap($0["tokens"] as? [Int]).map(Int32.init), mask: try XCTUnwrap($0["mask"] as? [Bool]))
        }
        XCTAssertEqual(opts.batch, examples.count, "one batch of all examples per epoch: the data order cannot matter")

        let file = try GGUFFile(path: TestPaths.fixture(try XCTUnwrap(cs["fixture"] as? String)))
        let trainer = try LoRATrainer(model: try DecoderModel(file: file, threads: 1))
        let c = trainer.config
        let run = try TuneRun(trainer: trainer, options: opts, baseModel: caseName, examples: examples.count)
        let p = run.params
        XCTAssertEqual(Double(p.scaling), try XCTUnwrap(ref["scaling"] as? Double))
        let initial = try Self.tensors(cs["init"], config: c, rank: p.rank)
        XCTAssertEqual(initial.count, p.slots.count)
        for s in p.slots {
            let t = try XCTUnwrap(initial[Self.name(s)])
            XCTAssertEqual(t.a.count, p.rank * s.inDim); XCTAssertEqual(t.b.count, s.outDim * p.rank)
            for i in t.a.indices { p.values[s.a + i] = t.a[i] }
            for i in t.b.indices { p.values[s.b + i] = t.b[i] }
        }
        let start = p.values
        func slices(_ v: [Float], _ s: LoRAParameters.Slot) -> Tensors {
            Tensors(a: Array(v[s.a ..< s.a + p.rank * s.inDim]), b: Array(v[s.b ..< s.b + s.outDim * p.rank]))
        }
        let steps = try XCTUnwrap(cs["steps"] as? [[String: Any]])
        let count = try XCTUnwrap(cs["scored_tokens"] as? Int)
        XCTAssertEqual(examples.reduce(0) { $0 + $1.targetCount }, count)

        // Loss before the step (evaluate: mean over the batch's target tokens).
        let lossRef = try XCTUnwrap(cs["loss_before"] as? Double)
        let loss0 = try run.evaluate(examples)
        let lossErr0 = abs(loss0 - lossRef) / abs(lossRef)
        XCTAssertLessThan(lossErr0, bounds.loss, "\(caseName): loss \(loss0), PyTorch \(lossRef)")

        // Gradients of every A and B, by the function TuneRun.train uses for a batch.
        var g = [Float](repeating: 0, count: p.values.count)
        let (summed, n) = try run.batchGradients(examples, into: &g)
        XCTAssertEqual(n, count)
        XCTAssertEqual(summed / Double(n), loss0, accuracy: 1e-12 * abs(loss0), "the training loss is the evaluated loss")
        let gradRef = try Self.tensors(steps[0]["grads"], config: c, rank: p.rank)
        var worstGrad = (0.0, "")
        for s in p.slots {
            let r = try XCTUnwrap(gradRef[Self.name(s)]), mine = slices(g, s)
            for (x, y, ab) in [(mine.a, r.a, "A"), (mine.b, r.b, "B")] {
                let e = Self.relativeError(x, y)
                if e > worstGrad.0 { worstGrad = (e, "\(Self.name(s)).\(ab)") }
                XCTAssertLessThan(e, bounds.grad, "\(caseName) \(Self.name(s)) gradient of \(ab)")
            }
        }
        let norm = g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let normRef = try XCTUnwrap(steps[0]["grad_norm"] as? Double)
        XCTAssertEqual(norm, normRef, accuracy: bounds.grad * normRef, "global gradient norm")
        XCTAssertGreaterThan(norm, Double(opts.clip), "clipping is active, so it is checked")

        // Two optimizer steps by TuneRun.train itself (one batch per epoch, so until: k stops after k steps).
        var measured: [String] = []
        var refBefore = initial, mineBefore = start
        for (k, step) in steps.enumerated() {
            var events: [(Double, Float)] = []
            try run.train(examples, validation: [], outDir: dir + "/\(caseName)", until: k + 1) {
                if case let .step(_, _, _, loss, lr, _, _) = $0 { events.append((loss, lr)) }
            }
            XCTAssertEqual(events.count, 1, "one optimizer step per epoch")
            let lrRef = try XCTUnwrap(step["learning_rate"] as? Double)
            XCTAssertEqual(Double(try XCTUnwrap(events.first).1), lrRef, accuracy: 1e-7 * lrRef, "step \(k + 1) learning rate")
            let stepLoss = try XCTUnwrap(step["loss"] as? Double)
            XCTAssertLessThan(abs(try XCTUnwrap(events.first).0 - stepLoss) / stepLoss, bounds.loss, "step \(k + 1) batch loss")
            // The update Δ = after − before per tensor, each side from its own weights before the
            // step (the weights themselves are dominated by their starting values, which would
            // hide update errors).
            let afterRef = try Self.tensors(step["params_after"], config: c, rank: p.rank)
            var worst = (0.0, "")
            for s in p.slots {
                let r = try XCTUnwrap(afterRef[Self.name(s)]), r0 = try XCTUnwrap(refBefore[Self.name(s)])
                let mine = slices(p.values, s), mine0 = slices(mineBefore, s)
                for (x, x0, y, y0, ab) in [(mine.a, mine0.a, r.a, r0.a, "A"), (mine.b, mine0.b, r.b, r0.b, "B")] {
                    let e = Self.relativeError(zip(x, x0).map { $0 - $1 }, zip(y, y0).map { $0 - $1 })
                    if e > worst.0 { worst = (e, "\(Self.name(s)).\(ab)") }
                    XCTAssertLessThan(e, k == 0 ? bounds.update1 : bounds.update2, "\(caseName) step \(k + 1) update of \(Self.name(s)).\(ab)")
                }
            }
            refBefore = afterRef
            mineBefore = p.values
            let afterLossRef = try XCTUnwrap(step["loss_after"] as? Double)
            let afterLoss = try run.evaluate(examples)
            let lossErr = abs(afterLoss - afterLossRef) / abs(afterLossRef)
            XCTAssertLessThan(lossErr, bounds.loss, "\(caseName): loss after step \(k + 1) \(afterLoss), PyTorch \(afterLossRef)")
            measured.append("step \(k + 1): update \(worst.0) (\(worst.1)), loss after \(lossErr)")
        }
        print("\(caseName) vs PyTorch: loss \(lossErr0), gradient \(worstGrad.0) (\(worstGrad.1)), " + measured.joined(separator: ", "))
    }

    /// Tolerances (relative; measured worst in brackets, F32 / Q8_0 fixture, on x86_64):
    ///  * loss 2e-5 [before the steps 9e-8 / 1e-7; after step 2 2.1e-6 / 2e-8]. Before the steps
    ///    only float32 summation order differs (the f32 reference is 1e-7 from float64). After a
    ///    step the weights differ by the update's rounding (below), which moves the loss by about
    ///    ‖g‖·‖δp‖ ≈ 15 · 4e-6.
    ///  * gradient of each tensor 1e-5 [1.1e-6 / 7.4e-7]: the float32 reference itself is 9e-7
    ///    from the same computation in float64; ten times that. A real error (mask, scaling,
    ///    RoPE order, a missed term) is of order 1e-2 to 1.
    ///  * update of each tensor at each step 1e-4 [step 1 1.2e-5 / 1.2e-5, step 2 1.4e-5 /
    ///    1.8e-5]: Δ ≈ lr = 2.5e-3 is the difference of two f32 weights of size ~0.2, so half an
    ///    ulp of the weight (7e-9) plus the reference's 7 printed digits (2e-8) is already ~1e-5
    ///    of Δ; the f32 reference's updates are 8e-6–1.3e-5 from float64. For scale: dropping
    ///    the weight decay changes the updates by 1.2e-2, dropping the clipping changes step 2's
    ///    by 7.7e-3 (measured by rerunning the generator with clip off / decay 0).
    /// The Q8_0 case holds when the reference emulates the trainer's two roundings (Q8_0 blocks
    /// on each base projection's input, f16 transposed weights in the backward); see below for
    /// the reference without them.
    static let bounds = Bounds(loss: 2e-5, grad: 1e-5, update1: 1e-4, update2: 1e-4)

    func testF32BaseMatchesPyTorch() throws { try check("llama", Self.bounds) }

    func testQ8BaseMatchesPyTorch() throws { try check("llama-q8_0", Self.bounds) }

    /// Against PyTorch in exact float32 arithmetic on the same dequantized Q8_0 weights (no
    /// engine roundings) the losses differ by what rounding activations to 8 bits does:
    /// measured 2.2e-3 before the steps, 1.0e-3 and 1.4e-4 after them (and 2.7e-2 on the worst
    /// gradient tensor, recorded in the JSON). Bound 5e-3: about twice the measured worst.
    func testQ8BaseWithoutEngineRoundingIsClose() throws {
        let ref = try reference()
        let cs = try XCTUnwrap((ref["cases"] as? [String: Any])?["llama-q8_0"] as? [String: Any])
        let pure = try XCTUnwrap(cs["without_engine_rounding"] as? [String: Any])
        let steps = try XCTUnwrap(cs["steps"] as? [[String: Any]])
        let emulated = [try XCTUnwrap(cs["loss_before"] as? Double)] + (try steps.map { try XCTUnwrap($0["loss_after"] as? Double) })
        let exact = [try XCTUnwrap(pure["loss_before"] as? Double)] + (try XCTUnwrap(pure["loss_after"] as? [Double]))
        XCTAssertEqual(emulated.count, exact.count)
        // The emulated reference equals Steward to 2e-5 (testQ8BaseMatchesPyTorch), so this is
        // Steward against the exact reference, within 5e-3 + 2e-5.
        for (e, x) in zip(emulated, exact) {
            XCTAssertLessThan(abs(e - x) / x, 5e-3, "loss with the engine's roundings \(e), without \(x)")
        }
    }
}
