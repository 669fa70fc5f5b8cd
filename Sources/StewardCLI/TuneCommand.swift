import Foundation
import Governance
import Models
import Templates
import Training

/// `steward tune`: LoRA fine-tuning on the CPU, the base model frozen and kept quantized.
struct TuneCommand: Command {
    let spec = CommandSpec(
        name: "tune",
        summary: "Fine-tune a LoRA adapter on chat or completion data (CPU; the base stays frozen and quantized).",
        usage: "steward tune --model MODEL --data FILE.jsonl --out DIR [--format chat|completion] [--rank 8] [--alpha 16] [--targets q,k,v,o[,gate,up,down]] [--epochs 3] [--lr 2e-4] [--batch 4] [--seq-len 512] [--val FILE] [--resume DIR]",
        options: [
            .value("--model", "-m", valueName: "MODEL", help: "The base model (a llama-family GGUF: a fetched name, store name or path)."),
            .value("--data", valueName: "FILE", help: "JSONL: {\"messages\": [...]} (chat) or {\"prompt\", \"completion\"} (completion)."),
            .value("--format", valueName: "chat|completion", help: "Data format (default chat: loss on assistant messages only)."),
            .value("--out", "-o", valueName: "DIR", help: "Where the PEFT adapter goes (checkpoint-N/ folders each epoch)."),
            .value("--rank", "-r", valueName: "N", help: "LoRA rank (default 8)."),
            .value("--alpha", valueName: "A", help: "LoRA alpha; the update is scaled by alpha/rank (default 16)."),
            .value("--targets", valueName: "LIST", help: "Projections to adapt: q,k,v,o,gate,up,down (default q,k,v,o)."),
            .value("--epochs", valueName: "N", help: "Passes over the data (default 3)."),
            .value("--lr", valueName: "LR", help: "Peak learning rate (default 2e-4; 10% linear warm-up, then cosine to 0)."),
            .value("--batch", valueName: "N", help: "Examples per optimizer step (default 4)."),
            .value("--seq-len", valueName: "N", help: "Longest example in tokens; longer ones are an error, never truncated (default 512)."),
            .value("--val", valueName: "FILE", help: "Validation JSONL (same format): its loss is reported each epoch."),
            .value("--resume", valueName: "DIR", help: "Continue from a checkpoint-N folder of an earlier run."),
            .value("--weight-decay", valueName: "W", help: "AdamW decoupled weight decay (default 0)."),
            .value("--clip", valueName: "C", help: "Gradient clipping by global norm (default 1)."),
            .value("--seed", valueName: "S", help: "Seed for initialisation and data order (default 1)."),
            .flag("--gradient-checkpointing", help: "Recompute each layer's activations in the backward pass: less memory (1.4 GB → 0.6 GB at ~520 tokens on SmolLM2-135M), ~12% slower, bitwise the same result."),
            .value("--threads", "-t", valueName: "N", help: "Threads (default: all cores)."),
            .value("--template", valueName: "NAME|FILE", help: "Chat template override."),
            .flag("--override-license", help: "Fine-tune although the policy denies it (only when licenses.allow_override; recorded)."),
            GovernanceCLI.policyOption,
            GovernanceCLI.dbOption,
        ],
        discussion: """
        The forward and backward pass run through the whole transformer (attention, RMSNorm, RoPE, SwiGLU) with
        gradients only for the LoRA weights. The output folder is a PEFT adapter usable with --adapter, steward serve,
        steward merge, and PEFT itself. The base model's licence is checked for the 'finetune' derivative first.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        let modelArg = try a.require("--model")
        let dataPath = try a.require("--data")
        let out = try a.require("--out")
        var o = TuneOptions()
        if let v = try a.int("--rank") { o.rank = v }
        if let v = try a.double("--alpha") { o.alpha = Float(v) }
        if let v = a.value("--targets") { o.targets = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if let v = try a.int("--epochs") { o.epochs = v }
        if let v = try a.double("--lr") { o.learningRate = Float(v) }
        if let v = try a.int("--batch") { o.batch = v }
        if let v = try a.int("--seq-len") { o.seqLen = v }
        if let v = try a.double("--weight-decay") { o.weightDecay = Float(v) }
        if let v = try a.double("--clip") { o.clip = Float(v) }
        if let v = a.value("--seed") {
            guard let s = UInt64(v) else { throw UsageError("--seed expects a non-negative integer") }
            o.seed = s
        }
        let formatName = a.value("--format") ?? "chat"
        guard let format = TrainingData.Format(rawValue: formatName) else { throw UsageError("--format is chat or completion, not '\(formatName)'") }
        let store = try GovernanceCLI.store(a)
        let lm = try LoadedModel.load(modelArg, threads: try GenerationOptions.threads(a))
        try GovernanceCLI.checkDerivative(a, .finetune, model: try store.resolve(modelArg)?.name ?? lm.path, store: store)
        let template = format == .chat ? try lm.chatTemplate(override: a.value("--template"), modelName: modelArg) : nil
        let train = try TrainingData.load(dataPath, format: format, tokenizer: lm.tokenizer, template: template, maxTokens: o.seqLen)
        let val = try a.value("--val").map { try TrainingData.load($0, format: format, tokenizer: lm.tokenizer, template: template, maxTokens: o.seqLen) } ?? []
        console.err("tune: \(train.count) examples (\(train.reduce(0) { $0 + $1.targetCount }) target tokens), \(val.count) validation; building the trainer…\n")
        let trainer = try LoRATrainer(model: lm.model)
        let run = try TuneRun(trainer: trainer, options: o, baseModel: (lm.path as NSString).lastPathComponent, examples: train.count)
        run.gradientCheckpointing = a.flag("--gradient-checkpointing")
        if let r = a.value("--resume") {
            try run.resume(from: r)
            console.err("tune: resumed from \(r) at step \(run.state.step) of \(run.state.totalSteps)\n")
        }
        let before = val.isEmpty ? nil : try run.evaluate(val)
        if let before { console.err(String(format: "tune: validation loss before training %.4f\n", before)) }
        let t0 = Date()
        try run.train(train, validation: val, outDir: out) { event in
            switch event {
            case let .step(epoch, step, total, loss, lr, tps, eta):
                console.err(String(format: "epoch %d  step %d/%d  [%@]  loss %.4f  lr %.2e  %.0f tok/s  ETA %@\n", epoch, step, total,
                                   TuneCommand.bar(step, total), loss, lr, tps, TuneCommand.duration(eta)))
            case let .epoch(epoch, trainLoss, valLoss, checkpoint):
                console.err(String(format: "epoch %d done: train loss %.4f%@  (checkpoint %@)\n", epoch, trainLoss,
                                   valLoss.map { String(format: ", validation loss %.4f", $0) } ?? "", checkpoint))
            }
        }
        console.out("adapter written to \(out) (PEFT: adapter_config.json, adapter_model.safetensors) in \(TuneCommand.duration(Date().timeIntervalSince(t0))); use it with --adapter \(out)\n")
        return ExitCode.ok
    }

    static func bar(_ done: Int, _ total: Int, width: Int = 20) -> String {
        let filled = total > 0 ? min(width, done * width / total) : 0
        return String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s"
    }
}
