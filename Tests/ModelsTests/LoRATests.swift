import XCTest
import ModelFiles
import Models
import TestSupport

/// LoRA adapters applied at run time, against references made independently by
/// scripts/make-lora-fixtures (numpy): the base model with W + scaling·B·A merged into its
/// weights. The tiny llama adapter exercises llama.cpp's q/k row permutation and plain
/// alpha/r scaling; the qwen2 one rank-stabilised scaling (alpha/√r), F16 lora_B weights and
/// no permutation. Both are also read from llama.cpp's GGUF LoRA format.
final class LoRATests: XCTestCase {
    let ids: [Int32] = [1, 17, 200, 5, 93, 42, 7, 128, 3, 250, 64, 9]

    func model(_ file: String) throws -> DecoderModel {
        try DecoderModel(file: try GGUFFile(path: try TestPaths.fixture(file)), threads: 1)
    }

    func logits(_ m: DecoderModel, _ adapters: [LoRAUse] = [], tokens: [Int32]? = nil) throws -> [Float] {
        let cache = m.makeCache(capacity: 64)
        cache.adapters = adapters
        return try m.forward(tokens: tokens ?? ids, cache: cache, allLogits: true)
    }

    /// A layer-0 intermediate (llama.cpp's eval-callback names) for the whole prompt.
    func firstLayer(_ name: String, _ m: DecoderModel, _ adapters: [LoRAUse] = []) throws -> [Float] {
        var out: [Float] = []
        m.debugTap = { n, layer, p, count in if n == name && layer == 0 { out = Array(UnsafeBufferPointer(start: p, count: count)) } }
        defer { m.debugTap = nil }
        _ = try logits(m, adapters)
        return out
    }

    func argmaxes(_ l: [Float], _ v: Int) -> [Int] {
        stride(from: 0, to: l.count, by: v).map { s in (s..<(s + v)).max { l[$0] < l[$1] }! - s }
    }

    func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    func testPEFTAndGGUFAdaptersEqualTheMergedModel() throws {
        for name in ["llama", "qwen2"] {
            let base = try model("tiny/\(name).gguf")
            let merged = try logits(try model("lora/\(name)-merged.gguf"))
            let peft = try LoRAAdapter.load(try TestPaths.fixture("lora/\(name)-peft"), for: base.config)
            XCTAssertEqual(peft.format, "peft")
            XCTAssertEqual(peft.rank, 4)
            XCTAssertEqual(peft.targets.count, 7)
            XCTAssertEqual(peft.scaling, 2, accuracy: 1e-6, "llama: 8/4; qwen2: rsLoRA 4/√4")
            let gguf = try LoRAAdapter.load(try TestPaths.fixture("lora/\(name)-lora.gguf"), for: base.config)
            XCTAssertEqual(gguf.format, "gguf")
            XCTAssertEqual(gguf.scaling, 2, accuracy: 1e-6)
            let plain = try logits(base)
            let viaPEFT = try logits(base, [LoRAUse(peft)])
            let viaGGUF = try logits(base, [LoRAUse(gguf)])
            // The adapter changes the output a lot. Layer 0's projections (f32 all the way) agree
            // to float rounding: the base and low-rank products are only summed in another order.
            XCTAssertGreaterThan(maxAbsDiff(plain, merged), 1, name)
            let mergedModel = try model("lora/\(name)-merged.gguf")
            for tap in ["Qcur", "Kcur", "Vcur"] {
                XCTAssertLessThan(maxAbsDiff(try firstLayer(tap, base, [LoRAUse(peft)]), try firstLayer(tap, mergedModel)), 1e-4, "\(name) \(tap)")
            }
            // Later layers read K and V back from the f16 cache, so a value near an f16 rounding
            // step can round the other way: logits then agree within the bar TinyModelTests uses
            // for the same roundings (2e-2 on logits with a standard deviation of 3–6), with the
            // same greedy token everywhere.
            XCTAssertLessThan(maxAbsDiff(viaPEFT, merged), 2e-2, name)
            XCTAssertLessThan(maxAbsDiff(viaGGUF, merged), 2e-2, name)
            XCTAssertEqual(argmaxes(viaPEFT, base.config.vocabSize), argmaxes(merged, base.config.vocabSize), name)
            XCTAssertLessThan(maxAbsDiff(viaPEFT, viaGGUF), 1e-4, name)
        }
    }

    func testScaleZeroIsTheBaseAndScalesCompose() throws {
        let base = try model("tiny/llama.gguf")
        let a = try LoRAAdapter.load(try TestPaths.fixture("lora/llama-peft"), for: base.config)
        XCTAssertEqual(try logits(base, [LoRAUse(a, scale: 0)]), try logits(base), "scale 0 is exactly the base model")
        // Two halves are one whole: ΔW is linear in the scale.
        let twoHalves = try logits(base, [LoRAUse(a, scale: 0.5), LoRAUse(a, scale: 0.5)])
        XCTAssertLessThan(maxAbsDiff(twoHalves, try logits(base, [LoRAUse(a)])), 1e-3)
        XCTAssertGreaterThan(maxAbsDiff(try logits(base, [LoRAUse(a, scale: 0.5)]), try logits(base, [LoRAUse(a)])), 0.1)
    }

    /// One batched decode step with a different adapter per row gives each row exactly what
    /// it gets alone: the base product is shared, each sequence adds its own low-rank part.
    func testBatchedDecodeMixesAdaptersPerSequence() throws {
        let base = try model("tiny/llama.gguf")
        let a = try LoRAAdapter.load(try TestPaths.fixture("lora/llama-peft"), for: base.config)
        let setups: [[LoRAUse]] = [[], [LoRAUse(a)], [LoRAUse(a, scale: 0.3)]]
        let prompts: [[Int32]] = [[1, 17, 200], [1, 5, 93, 42], [1, 9]]
        // Alone: prompt then one more token.
        var alone: [[Float]] = []
        for (s, p) in zip(setups, prompts) {
            let c = base.makeCache(capacity: 16)
            c.adapters = s
            _ = try base.forward(tokens: p, cache: c)
            alone.append(try base.forward(tokens: [64], cache: c))
        }
        // Batched: the same prompts, then one decode step for all three together.
        let caches = setups.map { s -> KVCache in let c = base.makeCache(capacity: 16); c.adapters = s; return c }
        for (c, p) in zip(caches, prompts) { _ = try base.forward(tokens: p, cache: c) }
        let batched = try base.decode(tokens: [64, 64, 64], caches: caches)
        let v = base.config.vocabSize
        for i in 0..<3 {
            XCTAssertEqual(Array(batched[i * v ..< (i + 1) * v]), alone[i], "row \(i)")
        }
        XCTAssertNotEqual(alone[0], alone[1])
    }

    func testBadAdaptersAreClearErrors() throws {
        let llama = try model("tiny/llama.gguf")
        // An adapter for another architecture's shapes.
        XCTAssertThrowsError(try LoRAAdapter.load(try TestPaths.fixture("lora/qwen2-lora.gguf"), for: llama.config)) {
            XCTAssertTrue("\($0)".contains("architecture 'qwen2'"), "\($0)")
        }
        XCTAssertThrowsError(try LoRAAdapter.load("/nonexistent/adapter", for: llama.config)) {
            XCTAssertTrue("\($0)".contains("does not exist"), "\($0)")
        }
        // A base model GGUF is not an adapter.
        XCTAssertThrowsError(try LoRAAdapter.load(try TestPaths.fixture("tiny/llama.gguf"), for: llama.config)) {
            XCTAssertTrue("\($0)".contains("not a LoRA adapter"), "\($0)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lora-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = try TestPaths.fixture("lora/llama-peft")
        let config = try String(contentsOfFile: src + "/adapter_config.json", encoding: .utf8)
        let weights = try Data(contentsOf: URL(fileURLWithPath: src + "/adapter_model.safetensors"))
        func attempt(config c: String, weights w: Data) -> String {
            try? c.write(to: dir.appendingPathComponent("adapter_config.json"), atomically: true, encoding: .utf8)
            try? w.write(to: dir.appendingPathComponent("adapter_model.safetensors"))
            do { _ = try LoRAAdapter.load(dir.path, for: llama.config); return "loaded" } catch { return "\(error)" }
        }
        XCTAssertEqual(attempt(config: config, weights: weights), "loaded")
        XCTAssertTrue(attempt(config: config, weights: weights.prefix(weights.count - 100)).contains("adapter_model.safetensors"), "truncated")
        XCTAssertTrue(attempt(config: config.replacingOccurrences(of: "\"bias\": \"none\"", with: "\"bias\": \"all\""), weights: weights).contains("bias 'all'"))
        XCTAssertTrue(attempt(config: config.replacingOccurrences(of: "\"r\": 4", with: "\"r\": 8"), weights: weights).contains("expected [8"))
        XCTAssertTrue(attempt(config: "{\"r\": 4, \"lora_alpha\": 8, \"use_dora\": true}", weights: weights).contains("DoRA"))
        XCTAssertTrue(attempt(config: "not json", weights: weights).contains("not a PEFT adapter config"))
    }

    func testRowPermutationMatchesTheConverter() {
        // 2 heads of 4 rows (half 2), 1 column: rows h*4 + a*2 + i go to h*4 + 2i + a.
        let m: [Float] = [0, 1, 2, 3, 4, 5, 6, 7]
        XCTAssertEqual(LoRAAdapter.permuteRows(m, rows: 8, cols: 1, heads: 2), [0, 2, 1, 3, 4, 6, 5, 7])
    }
}

/// `LoRAMerge` writes what the numpy reference merged (scripts/make-lora-fixtures).
final class LoRAMergeTests: XCTestCase {
    func testMergedFileEqualsTheReferenceMerge() throws {
        for name in ["llama", "qwen2"] {
            let baseFile = try GGUFFile(path: try TestPaths.fixture("tiny/\(name).gguf"))
            let config = try DecoderConfig(gguf: baseFile)
            let adapter = try LoRAAdapter.load(try TestPaths.fixture("lora/\(name)-peft"), for: config)
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("merged-\(name)-\(UUID().uuidString).gguf").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            var seen = 0
            let report = try LoRAMerge.merge(base: baseFile, config: config, adapters: [LoRAUse(adapter)], to: out) { i, n, _ in seen = max(seen, i); XCTAssertLessThanOrEqual(i, n) }
            XCTAssertEqual(report.merged.count, 14, "7 projections × 2 layers")
            XCTAssertEqual(seen, baseFile.tensors.count, "progress reached every tensor")
            let mine = try GGUFFile(path: out)
            let reference = try GGUFFile(path: try TestPaths.fixture("lora/\(name)-merged.gguf"))
            XCTAssertEqual(mine.tensors.map(\.name), reference.tensors.map(\.name))
            for t in mine.tensors {
                let a = try mine.dequantized(t), b = try reference.dequantized(try XCTUnwrap(reference.tensor(named: t.name)))
                let d = zip(a, b).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
                XCTAssertLessThan(d, 1e-5, "\(name) \(t.name)")
            }
            XCTAssertEqual(mine.string("general.architecture"), baseFile.string("general.architecture"))
            XCTAssertTrue(mine.string("steward.merged_adapters")?.contains("\(name)-peft") == true)
        }
    }

    func testKQuantTensorsAreWidenedAndTypesAreChecked() throws {
        let baseFile = try GGUFFile(path: try TestPaths.fixture("tiny/llama.gguf"))
        let config = try DecoderConfig(gguf: baseFile)
        let adapter = try LoRAAdapter.load(try TestPaths.fixture("lora/llama-peft"), for: config)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("merged-q8-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try LoRAMerge.merge(base: baseFile, config: config, adapters: [LoRAUse(adapter)], type: .q8_0, to: out)
        XCTAssertTrue(r.merged.allSatisfy { $0.type == .q8_0 })
        let f = try GGUFFile(path: out)
        XCTAssertEqual(f.tensor(named: "blk.0.attn_q.weight")?.type, .q8_0)
        XCTAssertEqual(f.tensor(named: "blk.0.attn_norm.weight")?.type, .f32, "untouched tensors keep their type")
        XCTAssertThrowsError(try LoRAMerge.merge(base: baseFile, config: config, adapters: [LoRAUse(adapter)], type: .q2_K, to: out + "x"))
        // A K-quant is written where rows are whole 256-value super-blocks, else its 32-block fallback.
        defer { try? FileManager.default.removeItem(atPath: out + "k") }
        let k = try LoRAMerge.merge(base: baseFile, config: config, adapters: [LoRAUse(adapter)], type: .q4_K, to: out + "k")
        for (name, type) in k.merged {
            let width = try XCTUnwrap(baseFile.tensor(named: name)?.dims.first)
            XCTAssertEqual(type, width % 256 == 0 ? .q4_K : .q5_0, name)
        }
        XCTAssertThrowsError(try LoRAMerge.merge(base: baseFile, config: config, adapters: [], to: out + "y"))
    }
}

final class LoRAPermutationTests: XCTestCase {
    func testInversePermutationRestoresHuggingFaceOrder() {
        let m = (0..<(12 * 3)).map(Float.init)
        let p = LoRAAdapter.permuteRows(m, rows: 12, cols: 3, heads: 3)
        XCTAssertNotEqual(p, m)
        XCTAssertEqual(LoRAAdapter.permuteRows(p, rows: 12, cols: 3, heads: 3, inverse: true), m)
    }
}
