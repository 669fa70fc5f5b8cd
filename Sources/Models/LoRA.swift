import Foundation
import ModelFiles

/// The projections a LoRA adapter may change, by their Hugging Face (PEFT) module names and
/// their GGUF tensor names.
public enum LoRATarget: Int, CaseIterable, Sendable, CustomStringConvertible {
    case q, k, v, o, gate, up, down

    public var peftName: String {
        switch self {
        case .q: return "q_proj"
        case .k: return "k_proj"
        case .v: return "v_proj"
        case .o: return "o_proj"
        case .gate: return "gate_proj"
        case .up: return "up_proj"
        case .down: return "down_proj"
        }
    }

    public var ggufName: String {
        switch self {
        case .q: return "attn_q"
        case .k: return "attn_k"
        case .v: return "attn_v"
        case .o: return "attn_output"
        case .gate: return "ffn_gate"
        case .up: return "ffn_up"
        case .down: return "ffn_down"
        }
    }

    public var description: String { peftName }

    /// "blk.N.attn_q.weight" → (N, .q); nil for any other tensor.
    public static func ofGGUFWeight(_ name: String) -> (layer: Int, target: LoRATarget)? {
        let parts = name.split(separator: ".")
        guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]), parts[3] == "weight",
              let t = allCases.first(where: { $0.ggufName == parts[2] }) else { return nil }
        return (layer, t)
    }

    /// (output, input) features of the projection in this model.
    public func shape(_ c: DecoderConfig) -> (out: Int, in: Int) {
        let h = c.hiddenSize
        switch self {
        case .q: return (c.heads * c.headDim, h)
        case .k: return (c.kvHeads * c.headDim, h)
        case .v: return (c.kvHeads * c.valueDim, h)
        case .o: return (h, c.heads * c.valueDim)
        case .gate, .up: return (c.ffnSize, h)
        case .down: return (h, c.ffnSize)
        }
    }
}

/// One low-rank pair: ΔW = B·A with A (rank × in) and B (out × rank), row-major f32, rows in the
/// GGUF file's order (for llama-architecture files the q/k rows are permuted as llama.cpp's
/// converter permutes the base weights).
public struct LoRAPair: Sendable {
    public let rank: Int
    public let inDim: Int
    public let outDim: Int
    public let a: [Float]
    public let b: [Float]
    /// Bᵀ (rank × out), so the run-time product is `rank` contiguous axpys.
    public let bT: [Float]
    public init(rank: Int, inDim: Int, outDim: Int, a: [Float], b: [Float]) {
        self.rank = rank; self.inDim = inDim; self.outDim = outDim; self.a = a; self.b = b
        var t = [Float](repeating: 0, count: b.count)
        for o in 0..<outDim { for j in 0..<rank { t[j * outDim + o] = b[o * rank + j] } }
        bT = t
    }
}

public enum LoRAError: Error, CustomStringConvertible, Equatable {
    case unreadable(String)
    case unsupported(String)
    case mismatch(String)

    public var description: String {
        switch self {
        case let .unreadable(m), let .unsupported(m), let .mismatch(m): return m
        }
    }
}

/// A LoRA adapter for one base model: per layer and projection a low-rank pair, and the
/// scaling PEFT applies (lora_alpha / r, or lora_alpha / √r with rank-stabilised LoRA).
/// Applied at run time (`y = W·x + scale·scaling·B·(A·x)`), never written into the base weights.
public final class LoRAAdapter: @unchecked Sendable {
    /// A short name for the adapter (its folder or file name without extension).
    public let name: String
    public let path: String
    /// "peft" or "gguf".
    public let format: String
    public let rank: Int
    public let alpha: Float
    public let scaling: Float
    public let targets: [LoRATarget]
    /// [layer][target.rawValue]
    let pairs: [[LoRAPair?]]
    public var layerCount: Int { pairs.count }
    public var parameterCount: Int { pairs.joined().compactMap { $0 }.reduce(0) { $0 + $1.a.count + $1.b.count } }

    init(name: String, path: String, format: String, rank: Int, alpha: Float, scaling: Float, pairs: [[LoRAPair?]]) {
        self.name = name; self.path = path; self.format = format; self.rank = rank
        self.alpha = alpha; self.scaling = scaling; self.pairs = pairs
        targets = LoRATarget.allCases.filter { t in pairs.contains { $0[t.rawValue] != nil } }
    }

    /// An adapter from pairs made elsewhere (training): [layer][target.rawValue].
    public static func make(name: String, path: String, format: String, rank: Int, alpha: Float, scaling: Float, pairs: [[LoRAPair?]]) -> LoRAAdapter {
        LoRAAdapter(name: name, path: path, format: format, rank: rank, alpha: alpha, scaling: scaling, pairs: pairs)
    }

    public func pair(layer: Int, _ t: LoRATarget) -> LoRAPair? { layer < pairs.count ? pairs[layer][t.rawValue] : nil }

    /// Loads an adapter for `config`: a PEFT folder (adapter_config.json + adapter_model.safetensors),
    /// that safetensors file itself (its config beside it), or a llama.cpp GGUF LoRA file.
    public static func load(_ path: String, for config: DecoderConfig) throws(LoRAError) -> LoRAAdapter {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw .unreadable("adapter \(path) does not exist (give a PEFT folder with adapter_config.json and adapter_model.safetensors, or a GGUF LoRA file)")
        }
        if isDir.boolValue { return try loadPEFT(directory: path, config: config) }
        if path.hasSuffix(".safetensors") { return try loadPEFT(directory: (path as NSString).deletingLastPathComponent, config: config, file: path) }
        return try loadGGUF(path, config: config)
    }

    // MARK: PEFT

    struct PEFTConfig: Decodable {
        var r: Int?
        var lora_alpha: Double?
        var target_modules: TargetModules?
        var use_rslora: Bool?
        var fan_in_fan_out: Bool?
        var bias: String?
        var modules_to_save: [String]?
        var peft_type: String?
        var use_dora: Bool?
        var layers_to_transform: TargetLayers?
        var rank_pattern: [String: Int]?
        var alpha_pattern: [String: Double]?

        enum TargetModules: Decodable {
            case list([String]), one(String)
            init(from d: Decoder) throws {
                let c = try d.singleValueContainer()
                if let s = try? c.decode(String.self) { self = .one(s) } else { self = .list(try c.decode([String].self)) }
            }
        }
        enum TargetLayers: Decodable {
            case list([Int]), one(Int)
            init(from d: Decoder) throws {
                let c = try d.singleValueContainer()
                if let i = try? c.decode(Int.self) { self = .one(i) } else { self = .list(try c.decode([Int].self)) }
            }
        }
    }

    static func loadPEFT(directory: String, config: DecoderConfig, file: String? = nil) throws(LoRAError) -> LoRAAdapter {
        let configPath = directory + "/adapter_config.json"
        let weightsPath = file ?? directory + "/adapter_model.safetensors"
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw .unreadable("\(configPath) is missing: a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors")
        }
        let pc: PEFTConfig
        do { pc = try JSONDecoder().decode(PEFTConfig.self, from: data) } catch {
            throw .unreadable("\(configPath) is not a PEFT adapter config: \(error)")
        }
        if let t = pc.peft_type, t.uppercased() != "LORA" { throw .unsupported("\(configPath): peft_type \(t) is not supported (only LORA)") }
        if pc.use_dora == true { throw .unsupported("\(configPath): DoRA adapters (use_dora) are not supported") }
        if pc.fan_in_fan_out == true { throw .unsupported("\(configPath): fan_in_fan_out adapters (GPT-2 style Conv1D) are not supported") }
        if let b = pc.bias, b != "none" { throw .unsupported("\(configPath): bias '\(b)' is not supported (only 'none')") }
        if let m = pc.modules_to_save, !m.isEmpty { throw .unsupported("\(configPath): modules_to_save (\(m.joined(separator: ", "))) would replace whole base modules; not supported") }
        if pc.layers_to_transform != nil { throw .unsupported("\(configPath): layers_to_transform is not supported") }
        if let p = pc.rank_pattern, !p.isEmpty { throw .unsupported("\(configPath): rank_pattern is not supported") }
        if let p = pc.alpha_pattern, !p.isEmpty { throw .unsupported("\(configPath): alpha_pattern is not supported") }
        guard let r = pc.r, r >= 1, r <= 4096 else { throw .unreadable("\(configPath): 'r' (the rank) must be a positive integer") }
        guard let alpha = pc.lora_alpha, alpha.isFinite else { throw .unreadable("\(configPath): 'lora_alpha' is missing") }
        let rs = pc.use_rslora == true
        let scaling = Float(rs ? alpha / Double(r).squareRoot() : alpha / Double(r))

        let st: SafetensorsFile
        do { st = try SafetensorsFile(path: weightsPath) } catch { throw .unreadable("\(weightsPath): \(error)") }
        var pairs = [[LoRAPair?]](repeating: Array(repeating: nil, count: LoRATarget.allCases.count), count: config.layers)
        // base_model.model.model.layers.{i}.{self_attn|mlp}.{q_proj…}.lora_{A|B}.weight
        var seen = Set<String>()
        for t in st.tensors {
            guard let (layer, target, which) = parsePEFTName(t.name) else {
                throw .unsupported("\(weightsPath): tensor '\(t.name)' is not a LoRA A/B weight of a decoder projection (embedding and lm_head adapters are not supported)")
            }
            guard layer < config.layers else { throw .mismatch("\(weightsPath): '\(t.name)' is for layer \(layer), but the model has \(config.layers)") }
            seen.insert("\(layer).\(target.rawValue).\(which)")
            _ = which
        }
        for layer in 0..<config.layers {
            for target in LoRATarget.allCases {
                let hasA = seen.contains("\(layer).\(target.rawValue).A"), hasB = seen.contains("\(layer).\(target.rawValue).B")
                guard hasA || hasB else { continue }
                guard hasA && hasB else { throw .unreadable("\(weightsPath): layer \(layer) \(target.peftName) has only one of lora_A and lora_B") }
                let prefix = peftPrefix(st, layer: layer, target: target)
                let (out, inDim) = target.shape(config)
                let aInfo = st.tensor(named: prefix + ".lora_A.weight")!, bInfo = st.tensor(named: prefix + ".lora_B.weight")!
                guard aInfo.shape == [r, inDim] else { throw .mismatch("\(weightsPath): \(aInfo.name) has shape \(aInfo.shape), expected [\(r), \(inDim)] for this model") }
                guard bInfo.shape == [out, r] else { throw .mismatch("\(weightsPath): \(bInfo.name) has shape \(bInfo.shape), expected [\(out), \(r)] for this model") }
                let a: [Float], b: [Float]
                do { a = try st.floats(named: aInfo.name); b = try st.floats(named: bInfo.name) } catch { throw .unreadable("\(weightsPath): \(error)") }
                guard a.allSatisfy(\.isFinite), b.allSatisfy(\.isFinite) else { throw .unreadable("\(weightsPath): \(prefix) holds NaN or infinite values") }
                let permuted = config.architecture == "llama" && (target == .q || target == .k)
                    ? permuteRows(b, rows: out, cols: r, heads: target == .q ? config.heads : config.kvHeads) : b
                pairs[layer][target.rawValue] = LoRAPair(rank: r, inDim: inDim, outDim: out, a: a, b: permuted)
            }
        }
        guard pairs.contains(where: { $0.contains { $0 != nil } }) else { throw .unreadable("\(weightsPath) holds no LoRA weights") }
        return LoRAAdapter(name: (directory as NSString).lastPathComponent, path: directory, format: "peft", rank: r, alpha: Float(alpha),
                           scaling: scaling, pairs: pairs)
    }

    static func parsePEFTName(_ name: String) -> (Int, LoRATarget, String)? {
        let parts = name.split(separator: ".").map(String.init)
        guard parts.count >= 6, parts.last == "weight", let li = parts.firstIndex(of: "layers"), li + 4 < parts.count,
              let layer = Int(parts[li + 1]) else { return nil }
        let module = parts[li + 3]
        guard ["self_attn", "mlp"].contains(parts[li + 2]), let target = LoRATarget.allCases.first(where: { $0.peftName == module }) else { return nil }
        switch parts[li + 4] {
        case "lora_A": return (layer, target, "A")
        case "lora_B": return (layer, target, "B")
        default: return nil
        }
    }

    static func peftPrefix(_ st: SafetensorsFile, layer: Int, target: LoRATarget) -> String {
        let block = target == .gate || target == .up || target == .down ? "mlp" : "self_attn"
        let tail = "layers.\(layer).\(block).\(target.peftName)"
        let name = st.tensors.map(\.name).first { $0.hasSuffix(tail + ".lora_A.weight") } ?? tail
        return String(name.dropLast(".lora_A.weight".count))
    }

    /// llama.cpp's converter order for q/k rows (LlamaModel.permute): within each head, the
    /// first half and second half of the rows are interleaved, so its adjacent-pair RoPE equals
    /// Hugging Face's rotate-half RoPE. `inverse` goes back to Hugging Face order.
    public static func permuteRows(_ m: [Float], rows: Int, cols: Int, heads: Int, inverse: Bool = false) -> [Float] {
        let d = rows / heads, half = d / 2
        var out = [Float](repeating: 0, count: m.count)
        for h in 0..<heads {
            for i in 0..<half {
                for a in 0..<2 {
                    let hf = (h * d + a * half + i) * cols, gguf = (h * d + 2 * i + a) * cols
                    let (src, dst) = inverse ? (gguf, hf) : (hf, gguf)
                    for c in 0..<cols { out[dst + c] = m[src + c] }
                }
            }
        }
        return out
    }

    // MARK: GGUF (llama.cpp's convert_lora_to_gguf.py output)

    static func loadGGUF(_ path: String, config: DecoderConfig) throws(LoRAError) -> LoRAAdapter {
        let f: GGUFFile
        do { f = try GGUFFile(path: path) } catch { throw .unreadable("\(path): \(error)") }
        guard f.string("general.type") == "adapter", f.string("adapter.type") == "lora" else {
            throw .unreadable("\(path) is a GGUF file but not a LoRA adapter (general.type = adapter, adapter.type = lora); give a PEFT folder or a GGUF LoRA")
        }
        if let arch = f.string("general.architecture"), arch != config.architecture {
            throw .mismatch("\(path) is an adapter for architecture '\(arch)', not '\(config.architecture)'")
        }
        let alpha = f.metadata["adapter.lora.alpha"]?.doubleValue.map { Float($0) }
        var pairs = [[LoRAPair?]](repeating: Array(repeating: nil, count: LoRATarget.allCases.count), count: config.layers)
        var rank = 0
        for t in f.tensors where t.name.hasSuffix(".lora_a") {
            let base = String(t.name.dropLast(".lora_a".count))   // blk.N.attn_q.weight
            guard let (layer, target) = LoRATarget.ofGGUFWeight(base) else {
                throw .unsupported("\(path): tensor '\(t.name)' is not a LoRA pair of a decoder projection")
            }
            guard layer < config.layers else { throw .mismatch("\(path): '\(t.name)' is for layer \(layer), but the model has \(config.layers)") }
            guard let bInfo = f.tensor(named: base + ".lora_b") else { throw .unreadable("\(path): \(base) has lora_a but no lora_b") }
            let (out, inDim) = target.shape(config)
            // ggml dims: lora_a [in, r] (r rows of in), lora_b [r, out] (out rows of r).
            guard t.dims.count == 2, t.dims[0] == inDim, bInfo.dims == [t.dims[1], out] else {
                throw .mismatch("\(path): \(base) has lora_a \(t.dims) and lora_b \(bInfo.dims), expected [\(inDim), r] and [r, \(out)]")
            }
            let r = t.dims[1]
            if rank == 0 { rank = r }
            let a: [Float], b: [Float]
            do { a = try f.dequantized(t); b = try f.dequantized(bInfo) } catch { throw .unreadable("\(path): \(error)") }
            guard a.allSatisfy(\.isFinite), b.allSatisfy(\.isFinite) else { throw .unreadable("\(path): \(base) holds NaN or infinite values") }
            pairs[layer][target.rawValue] = LoRAPair(rank: r, inDim: inDim, outDim: out, a: a, b: b)
        }
        guard rank > 0 else { throw .unreadable("\(path) holds no lora_a/lora_b tensors") }
        let alphaValue = alpha ?? Float(rank)
        return LoRAAdapter(name: ((path as NSString).lastPathComponent as NSString).deletingPathExtension, path: path, format: "gguf",
                           rank: rank, alpha: alphaValue, scaling: alphaValue / Float(rank), pairs: pairs)
    }
}

/// An adapter applied with a user scale (`--adapter PATH:0.5`): ΔW = scale · scaling · B·A.
public struct LoRAUse: Sendable {
    public let adapter: LoRAAdapter
    public let scale: Float
    public init(_ adapter: LoRAAdapter, scale: Float = 1) { self.adapter = adapter; self.scale = scale }

    /// Whether two adapter lists are the same (same objects, same scales): KV caches computed
    /// under one are valid for the other.
    public static func same(_ a: [LoRAUse], _ b: [LoRAUse]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.adapter === $1.adapter && $0.scale == $1.scale }
    }
}
