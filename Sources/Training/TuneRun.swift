import Foundation
import Generation
import ModelFiles
import Models
import Templates
import Tokenization

/// One training example as tokens, with the positions whose prediction counts in the loss.
public struct TrainingExample: Sendable, Equatable {
    public var tokens: [Int32]
    /// mask[i]: token i is a target (assistant text in chat data, the completion otherwise).
    public var mask: [Bool]
    public var targetCount: Int { mask.dropFirst().filter { $0 }.count }
}

/// JSONL training data: chat (`{"messages": [{"role", "content"}, …]}`, loss on assistant
/// messages only, rendered with the model's chat template) or completion
/// (`{"prompt": "...", "completion": "..."}`, loss on the completion).
public enum TrainingData {
    public enum Format: String, Sendable { case chat, completion }

    public static func load(_ path: String, format: Format, tokenizer: Tokenizer, template: ChatTemplate?, maxTokens: Int) throws -> [TrainingExample] {
        guard let data = FileManager.default.contents(atPath: path) else { throw TrainingError.invalid("cannot read \(path)") }
        var out: [TrainingExample] = []
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let where_ = "\(path):\(i + 1)"
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw TrainingError.invalid("\(where_): not a JSON object")
            }
            let ex: TrainingExample
            switch format {
            case .completion:
                guard let p = o["prompt"] as? String, let c = o["completion"] as? String, !c.isEmpty else {
                    throw TrainingError.invalid("\(where_): a completion example needs \"prompt\" and a non-empty \"completion\" (or use --format chat)")
                }
                let pt = tokenizer.encode(p, addBOS: nil, parseSpecial: false)
                var all = tokenizer.encode(p + c, addBOS: nil, parseSpecial: false)
                if let eos = tokenizer.eosID { all.append(eos) }
                let start = commonPrefix(pt, all)
                ex = TrainingExample(tokens: all, mask: all.indices.map { $0 >= start })
            case .chat:
                guard let template else { throw TrainingError.invalid("the model has no chat template: use --format completion, or --template") }
                guard let msgs = o["messages"] as? [[String: Any]], !msgs.isEmpty else {
                    throw TrainingError.invalid("\(where_): a chat example needs \"messages\" (or use --format completion)")
                }
                let turns = try msgs.enumerated().map { j, m -> (String, String) in
                    guard let r = m["role"] as? String, let c = m["content"] as? String else {
                        throw TrainingError.invalid("\(where_): message \(j) needs a string role and content")
                    }
                    return (r, c)
                }
                guard turns.contains(where: { $0.0 == "assistant" }) else { throw TrainingError.invalid("\(where_): no assistant message to learn from") }
                ex = try chatExample(turns, tokenizer: tokenizer, template: template)
            }
            guard ex.tokens.count <= maxTokens else {
                throw TrainingError.invalid("\(where_): \(ex.tokens.count) tokens is over --seq-len \(maxTokens); raise --seq-len or shorten the example (nothing is truncated)")
            }
            guard ex.targetCount > 0 else { throw TrainingError.invalid("\(where_): no token to learn from") }
            out.append(ex)
        }
        guard !out.isEmpty else { throw TrainingError.invalid("\(path) holds no examples") }
        return out
    }

    /// Tokens of the whole conversation; the mask covers each assistant message's tokens (what
    /// its rendering adds after the prompt that precedes it), end-of-turn tokens included.
    static func chatExample(_ turns: [(String, String)], tokenizer: Tokenizer, template: ChatTemplate) throws -> TrainingExample {
        let (bos, eos) = tokenizer.templateSpecialTokens
        func render(_ msgs: ArraySlice<(String, String)>, generation: Bool) throws -> [Int32] {
            let v = TemplateValue.array(msgs.map { TemplateValue.object(TemplateObject([("role", .string($0.0)), ("content", .string($0.1))])) })
            let text = try template.render(messages: v, tools: nil, addGenerationPrompt: generation, bosToken: bos, eosToken: eos)
            return tokenizer.encode(text, addBOS: !bos.isEmpty && text.hasPrefix(bos) ? false : nil, parseSpecial: true)
        }
        let all = try render(turns[...], generation: false)
        var mask = [Bool](repeating: false, count: all.count)
        for (i, t) in turns.enumerated() where t.0 == "assistant" {
            let before = try render(turns[..<i], generation: true)
            let through = try render(turns[...i], generation: false)
            let start = commonPrefix(before, all), end = commonPrefix(through, all)
            for j in start..<max(start, end) { mask[j] = true }
        }
        return TrainingExample(tokens: all, mask: mask)
    }
}

/// Hyper-parameters of `steward tune`.
public struct TuneOptions: Sendable, Codable, Equatable {
    public var rank = 8
    public var alpha: Float = 16
    public var targets: [String] = ["q", "k", "v", "o"]
    public var epochs = 3
    public var learningRate: Float = 2e-4
    public var batch = 4
    public var seqLen = 512
    public var warmupFraction: Float = 0.1
    public var weightDecay: Float = 0
    public var clip: Float = 1
    public var seed: UInt64 = 1
    public init() {}

    public var loraTargets: [LoRATarget] {
        targets.compactMap { t in
            switch t {
            case "q": return .q
            case "k": return .k
            case "v": return .v
            case "o": return .o
            case "gate": return .gate
            case "up": return .up
            case "down": return .down
            default: return nil
            }
        }
    }
}

/// What a running `tune` reports after each optimizer step and each epoch.
public enum TuneEvent: Sendable {
    case step(epoch: Int, step: Int, totalSteps: Int, loss: Double, learningRate: Float, tokensPerSecond: Double, etaSeconds: Double)
    case epoch(epoch: Int, trainLoss: Double, validationLoss: Double?, checkpoint: String)
}

/// The training state a checkpoint holds (with the weights and AdamW moments beside it).
public struct TuneState: Codable, Sendable {
    public var options: TuneOptions
    public var step: Int
    public var epoch: Int
    public var totalSteps: Int
    public var history: [[String: Double]]
    public var baseModel: String
}

/// LoRA fine-tuning: AdamW (β 0.9/0.999, ε 1e-8, decoupled weight decay), linear warmup then
/// cosine decay to zero, gradient clipping by global norm, mini-batches of `batch` examples
/// (gradients summed over their target tokens and divided by the count), a checkpoint each
/// epoch (PEFT adapter + AdamW moments + state), validation loss each epoch, resume.
public final class TuneRun {
    public let trainer: LoRATrainer
    /// Recompute each layer's activations in the backward pass instead of keeping them
    /// (`LoRATrainer.lossAndGradients(checkpointing:)`): less memory, one more forward pass of time
    /// (measured ~12% slower), identical results, so it is a setting of the run and not saved with the hyper-parameters.
    public var gradientCheckpointing = false
    public let params: LoRAParameters
    public let options: TuneOptions
    var m: [Float], v: [Float]
    public private(set) var state: TuneState

    public init(trainer: LoRATrainer, options: TuneOptions, baseModel: String, examples: Int) throws {
        guard !options.loraTargets.isEmpty, options.loraTargets.count == options.targets.count else {
            throw TrainingError.invalid("--targets takes q, k, v, o, gate, up, down (got \(options.targets.joined(separator: ",")))")
        }
        guard options.rank >= 1, options.rank <= 256 else { throw TrainingError.invalid("--rank must be between 1 and 256") }
        guard options.epochs >= 1, options.batch >= 1, options.learningRate > 0, options.learningRate.isFinite else {
            throw TrainingError.invalid("--epochs and --batch must be ≥ 1 and --lr positive")
        }
        self.trainer = trainer
        self.options = options
        params = LoRAParameters(config: trainer.config, rank: options.rank, alpha: options.alpha, targets: options.loraTargets, seed: options.seed)
        m = [Float](repeating: 0, count: params.values.count)
        v = m
        let perEpoch = (examples + options.batch - 1) / options.batch
        state = TuneState(options: options, step: 0, epoch: 0, totalSteps: perEpoch * options.epochs, history: [], baseModel: baseModel)
    }

    func learningRate(_ step: Int) -> Float {
        let warm = max(1, Int(Float(state.totalSteps) * options.warmupFraction))
        if step < warm { return options.learningRate * Float(step + 1) / Float(warm) }
        let progress = Float(step - warm) / Float(max(1, state.totalSteps - warm))
        return options.learningRate * 0.5 * (1 + cos(Float.pi * min(1, progress)))
    }

    /// Mean loss per target token over `examples` (no gradients).
    public func evaluate(_ examples: [TrainingExample]) throws -> Double {
        var loss = 0.0, n = 0
        for e in examples {
            let r = try trainer.lossAndGradients(tokens: e.tokens, mask: e.mask, params: params, grads: nil)
            loss += r.loss; n += r.count
        }
        return n > 0 ? loss / Double(n) : .nan
    }

    /// The gradient of a mini-batch's loss (every target token's cross-entropy summed over the
    /// batch, divided by the batch's target-token count) into `grads`; returns the summed loss
    /// and that count.
    func batchGradients(_ batch: [TrainingExample], into grads: inout [Float]) throws -> (loss: Double, count: Int) {
        let count = batch.reduce(0) { $0 + $1.targetCount }
        for i in grads.indices { grads[i] = 0 }
        var loss = 0.0
        try grads.withUnsafeMutableBufferPointer { gp in
            for e in batch {
                loss += try trainer.lossAndGradients(tokens: e.tokens, mask: e.mask, params: params, grads: gp.baseAddress!,
                                                     gradScale: 1 / Float(count), checkpointing: gradientCheckpointing).loss
            }
        }
        return (loss, count)
    }

    /// Trains from the current state to the last epoch, checkpointing into `outDir`.
    /// `until` stops after that many epochs (as an interrupted run would; resume continues).
    public func train(_ examples: [TrainingExample], validation: [TrainingExample], outDir: String, until: Int? = nil,
                      onEvent: (TuneEvent) -> Void) throws {
        let perEpoch = (examples.count + options.batch - 1) / options.batch
        var grads = [Float](repeating: 0, count: params.values.count)
        let t0 = Date()
        var tokensDone = 0
        let startStep = state.step
        while state.epoch < min(options.epochs, until ?? options.epochs) {
            // The same order for a given seed and epoch, so a resumed run continues identically.
            var order = Array(examples.indices)
            var rng = SeededGenerator(seed: options.seed &+ UInt64(state.epoch) &* 7919)
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            var epochLoss = 0.0, epochTokens = 0
            let firstBatch = state.step - state.epoch * perEpoch
            for b in firstBatch..<perEpoch {
                let batch = order[(b * options.batch)..<min(order.count, (b + 1) * options.batch)].map { examples[$0] }
                let (loss, count) = try batchGradients(batch, into: &grads)
                // Clip by global norm, then AdamW.
                let norm = grads.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
                let clip = norm > Double(options.clip) ? Float(Double(options.clip) / norm) : 1
                let lr = learningRate(state.step)
                let t = Float(state.step + 1)
                let c1 = 1 - powf(0.9, t), c2 = 1 - powf(0.999, t)
                params.values.withUnsafeMutableBufferPointer { p in
                    for i in p.indices {
                        let g = grads[i] * clip
                        m[i] = 0.9 * m[i] + 0.1 * g
                        v[i] = 0.999 * v[i] + 0.001 * g * g
                        p[i] -= lr * ((m[i] / c1) / ((v[i] / c2).squareRoot() + 1e-8) + options.weightDecay * p[i])
                    }
                }
                state.step += 1
                tokensDone += batch.reduce(0) { $0 + $1.tokens.count }
                epochLoss += loss; epochTokens += count
                let elapsed = Date().timeIntervalSince(t0)
                let rate = Double(tokensDone) / max(elapsed, 1e-9)
                let eta = elapsed / Double(state.step - startStep) * Double(state.totalSteps - state.step)
                onEvent(.step(epoch: state.epoch + 1, step: state.step, totalSteps: state.totalSteps, loss: loss / Double(max(count, 1)),
                              learningRate: lr, tokensPerSecond: rate, etaSeconds: eta))
            }
            state.epoch += 1
            let val = validation.isEmpty ? nil : try evaluate(validation)
            var entry: [String: Double] = ["epoch": Double(state.epoch), "train_loss": epochLoss / Double(max(epochTokens, 1))]
            if let val { entry["validation_loss"] = val }
            state.history.append(entry)
            let dir = outDir + "/checkpoint-\(state.epoch)"
            try save(to: dir, checkpoint: true)
            onEvent(.epoch(epoch: state.epoch, trainLoss: entry["train_loss"]!, validationLoss: val, checkpoint: dir))
        }
        if state.epoch == options.epochs { try save(to: outDir, checkpoint: false) }
    }

    // MARK: Saving and resuming

    /// A PEFT adapter folder (adapter_config.json + adapter_model.safetensors, Hugging Face row
    /// order), plus with `checkpoint` the AdamW moments and the state to resume from.
    public func save(to dir: String, checkpoint: Bool) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let c = trainer.config
        var w = SafetensorsWriter(metadata: ["format": "pt", "steward.base_model": state.baseModel])
        for s in params.slots {
            let block = [.gate, .up, .down].contains(s.target) ? "mlp" : "self_attn"
            let name = "base_model.model.model.layers.\(s.layer).\(block).\(s.target.peftName)"
            let a = Array(params.values[s.a ..< s.a + params.rank * s.inDim])
            var b = Array(params.values[s.b ..< s.b + s.outDim * params.rank])
            if c.architecture == "llama" && (s.target == .q || s.target == .k) {
                b = LoRAAdapter.permuteRows(b, rows: s.outDim, cols: params.rank, heads: s.target == .q ? c.heads : c.kvHeads, inverse: true)
            }
            w.addTensor(name: name + ".lora_A.weight", dtype: .f32, shape: [params.rank, s.inDim], bytes: TensorBytes(elements: a))
            w.addTensor(name: name + ".lora_B.weight", dtype: .f32, shape: [s.outDim, params.rank], bytes: TensorBytes(elements: b))
        }
        try w.write(to: dir + "/adapter_model.safetensors")
        let config: [String: Any] = [
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": params.rank, "lora_alpha": Double(params.alpha), "lora_dropout": 0.0,
            "target_modules": params.targets.map(\.peftName), "use_rslora": false, "fan_in_fan_out": false, "bias": "none",
            "modules_to_save": NSNull(), "base_model_name_or_path": state.baseModel, "inference_mode": true,
        ]
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys, .prettyPrinted]).write(to: URL(fileURLWithPath: dir + "/adapter_config.json"))
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        try enc.encode(state).write(to: URL(fileURLWithPath: dir + "/trainer_state.json"))
        if checkpoint {
            var o = SafetensorsWriter(metadata: ["format": "steward-adamw"])
            o.addTensor(name: "m", dtype: .f32, shape: [m.count], bytes: TensorBytes(elements: m))
            o.addTensor(name: "v", dtype: .f32, shape: [v.count], bytes: TensorBytes(elements: v))
            o.addTensor(name: "params", dtype: .f32, shape: [params.values.count], bytes: TensorBytes(elements: params.values))
            try o.write(to: dir + "/optimizer.safetensors")
        }
    }

    /// Continues from a checkpoint folder written by `save(checkpoint: true)`.
    public func resume(from dir: String) throws {
        guard let data = FileManager.default.contents(atPath: dir + "/trainer_state.json"),
              let s = try? JSONDecoder().decode(TuneState.self, from: data) else {
            throw TrainingError.invalid("\(dir) is not a tune checkpoint (no trainer_state.json); give a checkpoint-N folder")
        }
        guard s.options == options || (s.options.rank == options.rank && s.options.targets == options.targets) else {
            throw TrainingError.invalid("\(dir) was trained with rank \(s.options.rank) and targets \(s.options.targets.joined(separator: ",")); resume with the same")
        }
        let st = try SafetensorsFile(path: dir + "/optimizer.safetensors")
        let pv = try st.floats(named: "params"), mv = try st.floats(named: "m"), vv = try st.floats(named: "v")
        guard pv.count == params.values.count, mv.count == m.count, vv.count == v.count else {
            throw TrainingError.invalid("\(dir)/optimizer.safetensors does not match this model and rank")
        }
        params.values = pv; m = mv; v = vv
        let total = state.totalSteps
        state = s
        state.totalSteps = total
    }
}
