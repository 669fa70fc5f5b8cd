import XCTest
import ModelFiles
import Models
import Generation
import Templates
import TestSupport
import Tokenization
@testable import Training

final class TuneRunTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "tune-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func tiny() throws -> LoRATrainer {
        try LoRATrainer(model: try DecoderModel(file: try GGUFFile(path: try TestPaths.fixture("tiny/llama.gguf")), threads: 1))
    }

    func examples(_ n: Int, seed: UInt64) -> [TrainingExample] {
        var rng = SeededGenerator(seed: seed)
        return (0..<n).map { _ in
            let len = 6 + Int(rng.next() % 6)
            let toks = (0..<len).map { _ in Int32(rng.next() % 256) }
            return TrainingExample(tokens: toks, mask: toks.indices.map { $0 >= 2 })
        }
    }

    func options() -> TuneOptions {
        var o = TuneOptions()
        o.rank = 4; o.alpha = 8; o.targets = ["q", "k", "v", "o", "gate", "up", "down"]; o.epochs = 2; o.batch = 2; o.learningRate = 5e-3
        return o
    }

    /// A run stopped after its first epoch and resumed from the checkpoint ends with the very
    /// same weights as the run that was never stopped (data order, AdamW moments, schedule).
    func testResumeContinuesExactly() throws {
        let data = examples(6, seed: 1)
        let full = try TuneRun(trainer: try tiny(), options: options(), baseModel: "tiny", examples: data.count)
        var losses: [Double] = []
        try full.train(data, validation: [], outDir: dir + "/full") { if case let .step(_, _, _, l, _, _, _) = $0 { losses.append(l) } }
        XCTAssertEqual(losses.count, 6)
        let first = try TuneRun(trainer: try tiny(), options: options(), baseModel: "tiny", examples: data.count)
        try first.train(data, validation: [], outDir: dir + "/split", until: 1) { _ in }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/split/adapter_model.safetensors"), "not finished: only the checkpoint")
        let resumed = try TuneRun(trainer: try tiny(), options: options(), baseModel: "tiny", examples: data.count)
        try resumed.resume(from: dir + "/split/checkpoint-1")
        XCTAssertEqual(resumed.state.step, 3)
        try resumed.train(data, validation: [], outDir: dir + "/split") { _ in }
        XCTAssertEqual(resumed.params.values, full.params.values)
        XCTAssertEqual(resumed.state.history.count, 2)
        XCTAssertThrowsError(try resumed.resume(from: dir)) { XCTAssertTrue("\($0)".contains("not a tune checkpoint")) }
    }

    /// The PEFT folder a run writes (Hugging Face row order) loads back as the same adapter:
    /// the engine's loss with it equals the trainer's.
    func testSavedAdapterLoadsBackAsTheSameAdapter() throws {
        let data = examples(4, seed: 2)
        let trainer = try tiny()
        let run = try TuneRun(trainer: trainer, options: options(), baseModel: "tiny", examples: data.count)
        try run.train(data, validation: [], outDir: dir + "/out") { _ in }
        let loaded = try LoRAAdapter.load(dir + "/out", for: trainer.config)
        XCTAssertEqual(loaded.rank, 4)
        XCTAssertEqual(loaded.targets.count, 7)
        let e = data[0]
        let mine = try trainer.lossAndGradients(tokens: e.tokens, mask: [false] + Array(repeating: true, count: e.tokens.count - 1), params: run.params, grads: nil).loss
        let cache = trainer.model.makeCache(capacity: 32)
        cache.adapters = [LoRAUse(loaded)]
        let logits = try trainer.model.forward(tokens: e.tokens, cache: cache, allLogits: true)
        let v = trainer.config.vocabSize
        var engine = 0.0
        for i in 0..<(e.tokens.count - 1) {
            let row = logits[i * v ..< (i + 1) * v]
            let mx = row.max()!
            engine += Foundation.log(row.reduce(0.0) { $0 + Double(Foundation.exp($1 - mx)) }) + Double(mx) - Double(row[row.startIndex + Int(e.tokens[i + 1])])
        }
        XCTAssertEqual(engine, mine, accuracy: abs(mine) * 2e-3)
        let cfg = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/out/adapter_config.json"))) as? [String: Any])
        XCTAssertEqual(cfg["peft_type"] as? String, "LORA")
        XCTAssertEqual(cfg["r"] as? Int, 4)
    }

    /// Chat data: the loss covers the assistant's reply (and its end-of-turn), nothing else.
    func testChatMaskCoversOnlyTheAssistant() throws {
        let file = try GGUFFile(path: try TestPaths.model("smollm2-135m-instruct"))
        let tok = try Tokenizer(gguf: file)
        let template = try ChatTemplate(source: try XCTUnwrap(file.string("tokenizer.chat_template")))
        let path = dir + "/d.jsonl"
        try #"{"messages": [{"role": "user", "content": "What is 5 times 12?"}, {"role": "assistant", "content": "Steward says: 60."}]}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        let ex = try XCTUnwrap(try TrainingData.load(path, format: .chat, tokenizer: tok, template: template, maxTokens: 256).first)
        let learned = tok.decode(zip(ex.tokens, ex.mask).filter(\.1).map(\.0))
        XCTAssertTrue(learned.hasPrefix("Steward says: 60.<|im_end|>"), learned)
        XCTAssertFalse(learned.contains("5 times 12"))
        XCTAssertThrowsError(try TrainingData.load(path, format: .chat, tokenizer: tok, template: template, maxTokens: 8)) {
            XCTAssertTrue("\($0)".contains("--seq-len 8"), "\($0)")
        }
        try #"{"prompt": "2+2=", "completion": "4"}"#.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainingData.load(path, format: .chat, tokenizer: tok, template: template, maxTokens: 64))
        let c = try XCTUnwrap(try TrainingData.load(path, format: .completion, tokenizer: tok, template: nil, maxTokens: 64).first)
        XCTAssertTrue(tok.decode(zip(c.tokens, c.mask).filter(\.1).map(\.0)).hasPrefix("4"))
    }

    /// On the real SmolLM2-135M a short run on the style data lowers the validation loss a lot.
    func testValidationLossFallsOnTheRealModel() throws {
        let file = try GGUFFile(path: try TestPaths.model("smollm2-135m-instruct"))
        let tok = try Tokenizer(gguf: file)
        let template = try ChatTemplate(source: try XCTUnwrap(file.string("tokenizer.chat_template")))
        let all = try TrainingData.load(try TestPaths.fixture("tune/train.jsonl"), format: .chat, tokenizer: tok, template: template, maxTokens: 128)
        let val = try TrainingData.load(try TestPaths.fixture("tune/val.jsonl"), format: .chat, tokenizer: tok, template: template, maxTokens: 128)
        var o = TuneOptions()
        o.epochs = 1; o.batch = 4; o.learningRate = 2e-3
        let run = try TuneRun(trainer: try LoRATrainer(model: try DecoderModel(file: file)), options: o, baseModel: "smollm2", examples: 32)
        let before = try run.evaluate(Array(val.prefix(8)))
        try run.train(Array(all.prefix(32)), validation: Array(val.prefix(8)), outDir: dir + "/real") { _ in }
        let after = try XCTUnwrap(run.state.history.last?["validation_loss"])
        XCTAssertLessThan(after, before - 1, "validation loss \(before) → \(after)")
    }
}
