#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ModelFiles
import Models

// Memory estimates from model metadata alone (no weights read), shared by `steward inspect`,
// `steward plan` and the check `steward serve` makes before loading. Each figure follows what
// the engine allocates (Sources/Models/Decoder.swift, Generation/BatchingEngine.swift), so the
// formulas here must change when those allocations do.

/// The shape numbers a decoder's memory depends on.
struct DecoderShape {
    var architecture: String
    var layers: Int
    var hidden: Int
    var heads: Int
    var kvHeads: Int
    var headDim: Int
    var valueDim: Int
    var ffn: Int
    var vocab: Int
    var ropeDims: Int
    var trainedContext: Int

    /// The context a server or session uses when none is given (Session, BatchingEngine).
    var defaultContext: Int { min(trainedContext, 4096) }
}

extension DecoderShape {
    init(config c: DecoderConfig) {
        self.init(architecture: c.architecture, layers: c.layers, hidden: c.hiddenSize, heads: c.heads, kvHeads: c.kvHeads,
                  headDim: c.headDim, valueDim: c.valueDim, ffn: c.ffnSize, vocab: c.vocabSize, ropeDims: c.ropeDims,
                  trainedContext: c.contextLength)
    }

    /// The shape of any GGUF decoder, supported by the engine or not (for `inspect`): the
    /// engine's own configuration when it reads the file, else the metadata as written.
    init?(lenient f: GGUFFile) {
        if let c = try? DecoderConfig(gguf: f) { self.init(config: c); return }
        guard let arch = f.architecture else { return nil }
        func int(_ k: String) -> Int? { f.int("\(arch).\(k)").flatMap { $0 > 0 && $0 < 1 << 24 ? $0 : nil } }
        guard let layers = int("block_count"), let hidden = int("embedding_length"), let heads = int("attention.head_count") else { return nil }
        let headDim = int("attention.key_length") ?? hidden / heads
        self.init(architecture: arch, layers: layers, hidden: hidden, heads: heads,
                  kvHeads: int("attention.head_count_kv") ?? heads, headDim: headDim,
                  valueDim: int("attention.value_length") ?? headDim, ffn: int("feed_forward_length") ?? 4 * hidden,
                  vocab: int("vocab_size") ?? f.metadata["tokenizer.ggml.tokens"]?.arrayValue?.count ?? 0,
                  ropeDims: int("rope.dimension_count") ?? headDim, trainedContext: int("context_length") ?? 2048)
    }
}

/// What one decoder takes at a context length and number of parallel sequences.
struct DecoderMemory {
    var shape: DecoderShape
    var weightBytes: Int
    var context: Int
    var parallel: Int
    var threads: Int

    /// Tokens per compute step (DecoderModel.stepTokens) and per prompt slice (BatchingEngine).
    static let stepTokens = 128
    /// Query rows and keys per tile of the tiled attention (CKernels/attention_tiled.c QT, KVT).
    static let attentionTile = 64
    /// Fixed cost of a loaded model besides its buffers: thread stacks, the norm vectors copied
    /// out of the file, the tokenizer's tables (per vocabulary entry), the Swift runtime.
    /// Calibrated on peak RSS of `steward run --max-tokens 4 --prompt hi --raw` (which touches
    /// every weight but little KV cache) less the file size: 42 MB for SmolLM2 (vocab 49152),
    /// 82 MB for Gemma 3 (vocab 262144), about 33 MB + 190 bytes per entry; rounded up here.
    static let runtimeBaseBytes = 48 << 20
    static let runtimeBytesPerVocabEntry = 256

    /// f16 K and V rows for every layer and position (KVCache.bytes).
    var kvBytesPerSequence: Int { shape.layers * context * shape.kvHeads * (shape.headDim + shape.valueDim) * 2 }
    var kvBytes: Int { parallel * kvBytesPerSequence }

    /// Rows the scratch holds: a prompt step of up to 128 tokens, or one decode step of every
    /// parallel sequence at once.
    var scratchRows: Int { max(min(Self.stepTokens, context), parallel) }

    /// DecoderModel.Scratch (f32 activations per row, f16 and tiled-attention scratch per
    /// thread) plus Compute's quantized copy of a step's input (at most Q8_K's 292 bytes per 256
    /// values, or Q8_1's 36 per 32, whichever is larger).
    var scratchBytes: Int {
        let s = shape
        let perRow = 3 * s.hidden + s.heads * s.headDim + s.kvHeads * s.headDim + s.kvHeads * s.valueDim
            + s.heads * s.valueDim + 2 * s.ffn + 2 * s.ropeDims
        let t = Self.attentionTile
        let tiledFloats = s.headDim * t + t * s.valueDim + t * t + t * s.valueDim
        let perThread = (s.headDim + s.valueDim) * 2 + tiledFloats * 4
        let widest = max(s.hidden, s.ffn, s.heads * s.valueDim)
        let quantizedRow = max((widest + 255) / 256 * 292, (widest + 31) / 32 * 36)
        return scratchRows * (perRow * 4 + quantizedRow) + threads * perThread
    }

    /// Logits: one decode step's rows for every sequence, the rows of a scored prompt slice
    /// (echo / prompt logprobs), and one sequence's row copy and sampling candidates (12 bytes).
    var logitsBytes: Int {
        let rows = parallel + min(Self.stepTokens, context)
        return rows * shape.vocab * 4 + shape.vocab * (4 + 12)
    }

    var runtimeBytes: Int { Self.runtimeBaseBytes + shape.vocab * Self.runtimeBytesPerVocabEntry }

    var totalBytes: Int { weightBytes + kvBytes + scratchBytes + logitsBytes + runtimeBytes }
}

/// A sentence-embedding model (safetensors): its weights, f32 copies of tensors the engine
/// widens (BF16, F64), and one sequence's activations.
struct EmbedderMemory {
    var weightBytes: Int
    var widenedBytes: Int
    var sequenceLength: Int
    var activationBytes: Int
    static let runtimeBytes = 48 << 20
    var totalBytes: Int { weightBytes + widenedBytes + activationBytes + Self.runtimeBytes }

    /// One sequence's activations in f32 for an encoder pass: the hidden state and a few
    /// same-sized buffers (q, k, v, output), the feed-forward intermediate, and the attention
    /// scores of all heads (seq × seq each).
    static func activations(sequence n: Int, hidden: Int, heads: Int, ffn: Int?) -> Int {
        n * (5 * hidden + (ffn ?? 4 * hidden)) * 4 + heads * n * n * 4
    }
}

/// This machine's memory: /proc/meminfo and the cgroup limit (v2 memory.max, or v1).
struct MachineMemory {
    var total: Int?
    var available: Int?
    var cgroupLimit: Int?

    static func current() -> MachineMemory {
        var m = MachineMemory()
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let parts = line.split(whereSeparator: { $0 == " " || $0 == ":" })
                guard parts.count >= 2, let kb = Int(parts[1]) else { continue }
                if parts[0] == "MemTotal" { m.total = kb * 1024 }
                if parts[0] == "MemAvailable" { m.available = kb * 1024 }
            }
        }
        for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            guard let s = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            // "max" (v2) or a near-2^63 number (v1) means no limit.
            if let v = Int(s.trimmingCharacters(in: .whitespacesAndNewlines)), v < 1 << 60 { m.cgroupLimit = v }
            break
        }
        return m
    }
}

/// Everything `plan` (and `serve` before loading) works out: each model's memory at a context
/// and parallelism, adapters, the memory there is, the verdict, and the largest that fits.
struct MemoryPlan {
    enum Model {
        case decoder(name: String, path: String, DecoderMemory)
        case embedder(name: String, path: String, EmbedderMemory)
        var totalBytes: Int {
            switch self {
            case let .decoder(_, _, d): return d.totalBytes
            case let .embedder(_, _, e): return e.totalBytes
            }
        }
    }

    /// The memory planned against, where that number came from, and the safety margin.
    struct Budget {
        var available: Int
        var source: String
        /// Kept back for the system, other processes, and what the estimate leaves out:
        /// 10% of the memory available, at least 128 MiB.
        var margin: Int { max(available / 10, 128 << 20) }
        var usable: Int { max(0, available - margin) }
        static let marginRule = "10% of the available memory, at least 128 MiB"
    }

    var models: [Model]
    var adapters: [(path: String, bytes: Int)]
    var machine: MachineMemory
    var budget: Budget
    /// --ctx as given (nil: each model's default), --parallel.
    var context: Int?
    var parallel: Int
    var threads: Int

    var adapterBytes: Int { adapters.reduce(0) { $0 + $1.bytes } }
    var totalBytes: Int { models.reduce(0) { $0 + $1.totalBytes } + adapterBytes }
    var fits: Bool { totalBytes <= budget.usable }

    var decoders: [DecoderMemory] {
        models.compactMap { if case let .decoder(_, _, d) = $0 { return d } else { return nil } }
    }

    /// The same plan at another context (for every decoder) and parallelism.
    func with(context c: Int?, parallel p: Int) -> MemoryPlan {
        var copy = self
        copy.context = c
        copy.parallel = p
        copy.models = models.map {
            guard case let .decoder(n, path, d) = $0 else { return $0 }
            var d2 = d
            d2.context = c ?? d.shape.defaultContext
            d2.parallel = p
            return .decoder(name: n, path: path, d2)
        }
        return copy
    }

    /// The largest context (≤ every decoder's trained context) that fits at this parallelism;
    /// nil when not even one token does, or there is no decoder.
    var largestContext: Int? {
        guard let limit = decoders.map(\.shape.trainedContext).min() else { return nil }
        return Self.largest(in: 1...limit) { with(context: $0, parallel: parallel).fits }
    }

    /// The largest parallelism that fits at this context; nil when not even one does.
    var largestParallel: Int? {
        guard !decoders.isEmpty else { return nil }
        var hi = 1
        while hi < 1 << 24, with(context: context, parallel: hi * 2).fits { hi *= 2 }
        return Self.largest(in: 1...(hi * 2)) { with(context: context, parallel: $0).fits }
    }

    /// Binary search for the largest value that passes a test monotone in it (memory grows with
    /// context and parallelism).
    static func largest(in range: ClosedRange<Int>, _ ok: (Int) -> Bool) -> Int? {
        guard ok(range.lowerBound) else { return nil }
        var lo = range.lowerBound, hi = range.upperBound
        if ok(hi) { return hi }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if ok(mid) { lo = mid } else { hi = mid }
        }
        return lo
    }

    // MARK: - Building a plan from the command line's models

    /// Reads each model's metadata (never its weights) and sizes it at `context` (nil: the
    /// model's default) and `parallel`. Decoders must be ones the engine can load: the same
    /// configuration check loading makes, so an unsupported model fails here, not later.
    static func make(models arguments: [String], context: Int?, parallel: Int, threads: Int?,
                     adapters: [String], memory: Int?) throws -> MemoryPlan {
        let t = threads ?? ProcessInfo.processInfo.activeProcessorCount
        var models: [Model] = []
        for arg in arguments {
            let path = try ModelLocator.resolve(arg)
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
            if isDir.boolValue || path.hasSuffix(".safetensors") {
                models.append(.embedder(name: arg, path: path, try embedder(path: path, isDirectory: isDir.boolValue)))
                continue
            }
            let f = try GGUFFile(path: path)
            let config = try DecoderConfig(gguf: f)
            let n = context ?? min(config.contextLength, 4096)
            guard n <= config.contextLength else {
                throw UsageError("--ctx \(n) exceeds what \(arg) was trained for (\(config.contextLength))")
            }
            models.append(.decoder(name: arg, path: path,
                                   DecoderMemory(shape: DecoderShape(config: config), weightBytes: f.mapped.count,
                                                 context: n, parallel: parallel, threads: t)))
        }
        var adapterSizes: [(String, Int)] = []
        for a in adapters {
            guard let attrs = try? FileManager.default.attributesOfItem(atPath: a),
                  let size = (attrs[.size] as? NSNumber)?.intValue else {
                throw ModelFileError.cannotOpen(path: a, reason: "no such adapter file")
            }
            adapterSizes.append((a, size))
        }
        let machine = MachineMemory.current()
        let budget: Budget
        if let memory {
            budget = Budget(available: memory, source: "--memory")
        } else if let avail = machine.available {
            if let limit = machine.cgroupLimit, limit < avail {
                budget = Budget(available: limit, source: "cgroup memory limit")
            } else {
                budget = Budget(available: avail, source: "MemAvailable")
            }
        } else {
            throw ModelFileError.cannotOpen(path: "/proc/meminfo", reason: "no MemAvailable line; give --memory BYTES to plan for a known amount")
        }
        return MemoryPlan(models: models, adapters: adapterSizes, machine: machine, budget: budget,
                          context: context, parallel: parallel, threads: t)
    }

    static func embedder(path: String, isDirectory: Bool) throws -> EmbedderMemory {
        let dir = isDirectory ? path : (path as NSString).deletingLastPathComponent
        let names = isDirectory ? ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted().map { dir + "/" + $0 } : [path]
        guard !names.isEmpty else {
            throw ModelFileError.cannotOpen(path: path, reason: "a directory without any *.safetensors file")
        }
        let files = try names.map { try SafetensorsFile(path: $0) }
        let widened = files.flatMap(\.tensors).filter { $0.dtype == .bf16 || $0.dtype == .f64 }.reduce(0) { $0 + $1.elementCount * 4 }
        let config = try ModelReport.readJSONObject(dir + "/config.json")
        func int(_ key: String) -> Int? { (config?[key] as? NSNumber)?.intValue }
        let hidden = int("hidden_size") ?? 0, heads = int("num_attention_heads") ?? 0
        let n = int("max_position_embeddings") ?? 512
        return EmbedderMemory(weightBytes: files.reduce(0) { $0 + $1.mapped.count }, widenedBytes: widened, sequenceLength: n,
                              activationBytes: EmbedderMemory.activations(sequence: n, hidden: hidden, heads: heads, ffn: int("intermediate_size")))
    }

    /// The error `serve` stops with: the plan's explanation and how to see the whole plan.
    struct DoesNotFit: Error, CustomStringConvertible {
        let plan: MemoryPlan
        var description: String {
            let models = plan.models.map { m -> String in
                switch m { case let .decoder(n, _, _), let .embedder(n, _, _): return "--model \(n)" }
            }.joined(separator: " ")
            let ctx = plan.context.map { " --ctx \($0)" } ?? ""
            return "\(plan.explanation). Nothing was loaded; see `steward plan \(models)\(ctx) --parallel \(plan.parallel)` for the breakdown."
        }
    }

    // MARK: - Explaining it

    /// "2 × 4096 tokens" style description of the request.
    var requestText: String { "--parallel \(parallel) at \(contextText)" }

    /// "--ctx 4096", or "the default context" when models given no --ctx default differently.
    var contextText: String {
        if let context { return "--ctx \(context)" }
        let defaults = Set(decoders.map(\.context))
        if defaults.count == 1, let c = defaults.first { return "--ctx \(c) (the default)" }
        return "the default context"
    }

    /// The largest values that fit, as options a user can pass.
    var largestText: String {
        guard !decoders.isEmpty else { return "" }
        var parts: [String] = []
        let ctxText = contextText
        if let c = largestContext {
            let trained = decoders.map(\.shape.trainedContext).min() ?? c
            parts.append("--ctx \(c)\(c == trained ? " (the trained maximum)" : "") at --parallel \(parallel)")
        } else {
            parts.append("no context at --parallel \(parallel)")
        }
        if let p = largestParallel {
            parts.append("--parallel \(p) at \(ctxText)")
        } else {
            parts.append("not even --parallel 1 at \(ctxText)")
        }
        return parts.joined(separator: "; ")
    }

    /// The verdict in one paragraph: what is needed, what there is, and what would fit.
    var explanation: String {
        let need = "needs \(Format.bytes(totalBytes))"
        let have = "\(Format.bytes(budget.usable)) usable (\(budget.source) \(Format.bytes(budget.available)) less a \(Format.bytes(budget.margin)) safety margin)"
        if fits {
            return "fits: \(requestText) \(need) of \(have)"
        }
        var s = "does not fit: \(requestText) \(need) but there are \(have)"
        if !decoders.isEmpty {
            s += ". Largest that fits: " + largestText
            let minimum = with(context: 1, parallel: 1)
            if !minimum.fits { s += " (even one sequence of one token needs \(Format.bytes(minimum.totalBytes)): the model itself is too large)" }
        }
        return s
    }

    var json: [String: Any] {
        var out: [String: Any] = [:]
        out["models"] = models.map { m -> [String: Any] in
            switch m {
            case let .decoder(name, path, d):
                return ["model": name, "path": path, "kind": "decoder", "architecture": d.shape.architecture,
                        "context": d.context, "trained_context": d.shape.trainedContext, "parallel": d.parallel,
                        "weights_bytes": d.weightBytes, "kv_cache_bytes_per_sequence": d.kvBytesPerSequence,
                        "kv_cache_bytes": d.kvBytes, "scratch_bytes": d.scratchBytes, "logits_bytes": d.logitsBytes,
                        "runtime_bytes": d.runtimeBytes, "total_bytes": d.totalBytes]
            case let .embedder(name, path, e):
                return ["model": name, "path": path, "kind": "embedder", "weights_bytes": e.weightBytes,
                        "widened_weights_bytes": e.widenedBytes, "sequence_length": e.sequenceLength,
                        "activation_bytes": e.activationBytes, "runtime_bytes": EmbedderMemory.runtimeBytes,
                        "total_bytes": e.totalBytes]
            }
        }
        out["adapters"] = adapters.map { ["path": $0.path, "bytes": $0.bytes] as [String: Any] }
        out["adapters_bytes"] = adapterBytes
        out["total_bytes"] = totalBytes
        out["context"] = context.map { $0 as Any } ?? NSNull()
        out["parallel"] = parallel
        out["threads"] = threads
        out["machine"] = ["mem_total_bytes": machine.total.map { $0 as Any } ?? NSNull(),
                          "mem_available_bytes": machine.available.map { $0 as Any } ?? NSNull(),
                          "cgroup_limit_bytes": machine.cgroupLimit.map { $0 as Any } ?? NSNull()] as [String: Any]
        out["budget"] = ["available_bytes": budget.available, "source": budget.source, "margin_bytes": budget.margin,
                         "margin_rule": Budget.marginRule, "usable_bytes": budget.usable] as [String: Any]
        out["fits"] = fits
        if !decoders.isEmpty {
            out["largest"] = ["context": largestContext.map { $0 as Any } ?? NSNull(), "context_at_parallel": parallel,
                              "parallel": largestParallel.map { $0 as Any } ?? NSNull(),
                              "parallel_at_context": context.map { $0 as Any } ?? NSNull()] as [String: Any]
        }
        out["explanation"] = explanation
        return out
    }

    var text: String {
        var rows: [(String, String)] = []
        for m in models {
            switch m {
            case let .decoder(name, _, d):
                let s = d.shape
                rows.append(("model", "\(name) (\(s.architecture), \(s.layers) layers, \(s.kvHeads) KV heads × \(s.headDim)+\(s.valueDim), vocab \(s.vocab))"))
                rows.append(("context", "\(d.context) tokens per sequence (trained \(s.trainedContext)\(context == nil ? "; default: at most 4096" : ""))"))
                rows.append(("parallel", "\(d.parallel) sequence\(d.parallel == 1 ? "" : "s"), \(d.threads) thread\(d.threads == 1 ? "" : "s")"))
                rows.append(("weights", "\(Format.bytes(d.weightBytes)) (the file, memory-mapped)"))
                rows.append(("KV cache", "\(Format.bytes(d.kvBytesPerSequence)) per sequence (f16: \(s.layers) layers × \(d.context) tokens × \(s.kvHeads * (s.headDim + s.valueDim)) values × 2 bytes) × \(d.parallel) = \(Format.bytes(d.kvBytes))"))
                rows.append(("buffers", "scratch \(Format.bytes(d.scratchBytes)) (\(d.scratchRows) rows), logits \(Format.bytes(d.logitsBytes)), runtime and tokenizer ≈ \(Format.bytes(d.runtimeBytes))"))
                rows.append(("model total", Format.bytes(d.totalBytes)))
            case let .embedder(name, _, e):
                rows.append(("model", "\(name) (sentence embeddings)"))
                rows.append(("weights", "\(Format.bytes(e.weightBytes)) (memory-mapped)" + (e.widenedBytes > 0 ? " + \(Format.bytes(e.widenedBytes)) widened to f32" : "")))
                rows.append(("buffers", "activations \(Format.bytes(e.activationBytes)) for one \(e.sequenceLength)-token sequence, runtime ≈ \(Format.bytes(EmbedderMemory.runtimeBytes))"))
                rows.append(("model total", Format.bytes(e.totalBytes)))
            }
        }
        for a in adapters { rows.append(("adapter", "\(a.path): \(Format.bytes(a.bytes)) (counted as memory; applying adapters is not supported yet)")) }
        rows.append(("total", "\(Format.bytes(totalBytes)) (\(totalBytes) bytes)"))
        var machineText = [machine.total.map { "MemTotal \(Format.bytes($0))" }, machine.available.map { "MemAvailable \(Format.bytes($0))" }].compactMap { $0 }
        machineText.append(machine.cgroupLimit.map { "cgroup limit \(Format.bytes($0))" } ?? "no cgroup limit")
        rows.append(("machine", machineText.joined(separator: ", ")))
        rows.append(("budget", "\(Format.bytes(budget.available)) (\(budget.source)) − safety margin \(Format.bytes(budget.margin)) (\(Budget.marginRule)) = \(Format.bytes(budget.usable)) usable"))
        rows.append(("verdict", explanation))
        if fits, !decoders.isEmpty { rows.append(("largest", largestText)) }
        return rows.map { $0.0.padding(toLength: 13, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n") + "\n"
    }
}

/// Parses a byte count: 123456, 512M / 512MiB (binary), 8G / 8GiB, 8GB (decimal), 1T.
func parseByteCount(_ s: String) -> Int? {
    let t = s.trimmingCharacters(in: .whitespaces)
    let digits = t.prefix { $0.isNumber || $0 == "." }
    guard let value = Double(digits), value >= 0 else { return nil }
    let unit = t.dropFirst(digits.count).lowercased()
    let scale: Double
    switch unit {
    case "", "b": scale = 1
    case "k", "kib": scale = 1024
    case "m", "mib": scale = 1_048_576
    case "g", "gib": scale = 1_073_741_824
    case "t", "tib": scale = Double(1 << 40)
    case "kb": scale = 1e3
    case "mb": scale = 1e6
    case "gb": scale = 1e9
    case "tb": scale = 1e12
    default: return nil
    }
    let bytes = value * scale
    guard bytes.isFinite, bytes < Double(1 << 62) else { return nil }
    return Int(bytes)
}
