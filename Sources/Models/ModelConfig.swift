import ModelFiles

/// Hyperparameters of a decoder-only transformer, read from GGUF metadata. One configuration
/// covers the llama family (Llama, SmolLM, Mistral, Qwen2/2.5 with QKV bias, Qwen3 with q/k norm)
/// and Gemma 3; the flags say which parts of the block an architecture uses.
public struct DecoderConfig: Sendable, Equatable {
    public enum RopeStyle: Sendable, Equatable {
        /// Rotate adjacent pairs (x[2i], x[2i+1]): llama.cpp's LLAMA_ROPE_TYPE_NORM.
        case interleaved
        /// Rotate halves (x[i], x[i + d/2]): LLAMA_ROPE_TYPE_NEOX (Gemma, Qwen).
        case neox
    }

    public enum Activation: Sendable, Equatable { case silu, geluTanh }

    public var architecture: String
    public var hiddenSize: Int          // n_embd
    public var layers: Int              // n_layer
    public var heads: Int               // n_head
    public var kvHeads: Int             // n_head_kv
    public var headDim: Int             // n_embd_head_k
    public var valueDim: Int            // n_embd_head_v
    public var ffnSize: Int             // n_ff
    public var vocabSize: Int
    public var contextLength: Int       // trained context
    public var rmsEps: Float
    public var ropeBase: Float
    /// RoPE base of sliding-window (local) layers; equal to ropeBase where there are none.
    public var ropeBaseLocal: Float
    public var ropeScale: Float         // position multiplier (1 / linear scaling factor)
    public var ropeStyle: RopeStyle
    public var ropeDims: Int
    public var activation: Activation
    /// Multiplies the token embeddings (Gemma: sqrt(hidden)).
    public var embeddingScale: Float
    /// Scale of q·k before softmax.
    public var attentionScale: Float
    /// Whether the scale multiplies the queries before attention (Gemma) rather than q·k; the
    /// product is the same, the f16 rounding of the query is not.
    public var scalesQueries: Bool
    public var hasQKNorm: Bool
    public var hasPostNorms: Bool
    public var hasQKVBias: Bool
    /// Sliding-window attention: window length, and which layers use it.
    public var slidingWindow: Int?
    public var slidingLayers: [Bool]

    public func isSliding(layer: Int) -> Bool { slidingWindow != nil && slidingLayers[layer] }
}

public enum ModelError: Error, CustomStringConvertible, Equatable {
    case unsupportedArchitecture(String, supported: [String])
    case missingTensor(String)
    case badTensorShape(String, expected: [Int], found: [Int])
    case unsupportedTensorType(String, GGMLType)
    case unusedTensors([String])
    case badConfig(String)
    case file(ModelFileError)

    public var description: String {
        switch self {
        case let .unsupportedArchitecture(a, s):
            return "architecture '\(a)' is not supported (supported: \(s.joined(separator: ", ")))"
        case let .missingTensor(n):
            return "the model file lacks tensor '\(n)'; the file is incomplete or not the architecture it claims"
        case let .badTensorShape(n, e, f):
            return "tensor '\(n)' has shape \(f), expected \(e)"
        case let .unsupportedTensorType(n, t):
            return "tensor '\(n)' has type \(t), which this engine cannot compute with yet"
        case let .unusedTensors(ns):
            let shown = ns.prefix(5).joined(separator: ", ")
            return "the model file has \(ns.count) tensor(s) this architecture does not use (\(shown)\(ns.count > 5 ? ", …" : "")); refusing to load a model we might run wrongly"
        case let .badConfig(s):
            return "bad model configuration: \(s)"
        case let .file(e):
            return e.description
        }
    }
}

extension DecoderConfig {
    /// Reads the configuration of a GGUF model, checked against what the forward pass supports.
    public init(gguf f: GGUFFile) throws(ModelError) {
        guard let arch = f.architecture else { throw .badConfig("general.architecture is missing") }
        let supported = ["llama", "mistral", "qwen2", "qwen3", "gemma3"]
        guard supported.contains(arch) else { throw .unsupportedArchitecture(arch, supported: supported) }
        func int(_ k: String) throws(ModelError) -> Int {
            guard let v = f.int("\(arch).\(k)") else { throw .badConfig("\(arch).\(k) is missing or not an integer") }
            guard v > 0, v < 1 << 24 else { throw .badConfig("\(arch).\(k) = \(v) is out of range") }
            return v
        }
        func float(_ k: String) -> Float? { f.double("\(arch).\(k)").map(Float.init) }

        architecture = arch
        hiddenSize = try int("embedding_length")
        layers = try int("block_count")
        heads = try int("attention.head_count")
        kvHeads = (f.int("\(arch).attention.head_count_kv")) ?? heads
        guard kvHeads > 0, heads % kvHeads == 0 else { throw .badConfig("head_count \(heads) is not a multiple of head_count_kv \(kvHeads)") }
        headDim = f.int("\(arch).attention.key_length") ?? hiddenSize / heads
        valueDim = f.int("\(arch).attention.value_length") ?? headDim
        guard headDim > 0, headDim % 2 == 0, valueDim > 0 else { throw .badConfig("head dimension \(headDim) must be even and positive") }
        ffnSize = try int("feed_forward_length")
        if let vs = f.int("\(arch).vocab_size") {
            vocabSize = vs
        } else if let toks = f.metadata["tokenizer.ggml.tokens"]?.arrayValue {
            vocabSize = toks.count
        } else {
            throw .badConfig("vocabulary size unknown (no \(arch).vocab_size and no tokenizer.ggml.tokens)")
        }
        contextLength = try int("context_length")
        rmsEps = float("attention.layer_norm_rms_epsilon") ?? 1e-5
        ropeBase = float("rope.freq_base") ?? 10000
        ropeScale = 1
        if let t = f.string("\(arch).rope.scaling.type"), t != "none" {
            guard t == "linear", let factor = float("rope.scaling.factor"), factor > 0 else {
                throw .badConfig("rope scaling '\(t)' is not supported yet")
            }
            ropeScale = 1 / factor
        }
        ropeDims = f.int("\(arch).rope.dimension_count") ?? headDim
        guard ropeDims <= headDim, ropeDims % 2 == 0 else { throw .badConfig("rope.dimension_count \(ropeDims) must be even and ≤ head dim \(headDim)") }

        switch arch {
        case "gemma3":
            // per llama.cpp's llm_build_gemma3_iswa: scaled embeddings, q/k RMSNorm, norms after
            // attention and FFN, GELU-tanh gated MLP, NeoX RoPE with a separate base for local
            // layers, and every sixth layer global.
            ropeStyle = .neox
            activation = .geluTanh
            embeddingScale = Float(hiddenSize).squareRoot()
            // HF scales by query_pre_attn_scalar^-½, which GGUF doesn't carry. It equals head_dim
            // in every Gemma 3 except the 27B (62 layers), where it is hidden/heads (168 ≠ 128);
            // llama.cpp's llama_model_gemma3 keys on the layer count the same way.
            attentionScale = 1 / Float(layers == 62 ? hiddenSize / heads : headDim).squareRoot()
            scalesQueries = true
            hasQKNorm = true
            hasPostNorms = true
            hasQKVBias = false
            ropeBaseLocal = float("rope.freq_base_swa") ?? 10000
            slidingWindow = f.int("gemma3.attention.sliding_window")
            slidingLayers = (0..<layers).map { $0 % 6 < 5 }
        default:
            ropeStyle = (arch == "qwen2" || arch == "qwen3") ? .neox : .interleaved
            activation = .silu
            embeddingScale = 1
            attentionScale = 1 / Float(headDim).squareRoot()
            scalesQueries = false
            hasQKNorm = arch == "qwen3"
            hasPostNorms = false
            hasQKVBias = arch == "qwen2"
            ropeBaseLocal = ropeBase
            slidingWindow = f.int("\(arch).attention.sliding_window")
            slidingLayers = Array(repeating: slidingWindow != nil, count: layers)
        }
        if let w = slidingWindow, w <= 0 { throw .badConfig("sliding window \(w) must be positive") }
    }
}
