/// Which type each tensor of a model gets when it is quantized: one type for every weight
/// matrix, or a mixed recipe in the manner of llama.cpp's `_M` files (most matrices in the base
/// K-quant, the tensors most sensitive to error in Q6_K).
///
/// Rules, in order (llama.cpp's `llama-quantize` defaults for the same file types):
/// - tensors that are not 2-D weight matrices (norms, biases, vectors) are kept as they are;
/// - for every quantized type, `output.weight` (or `token_embd.weight` when the model ties its
///   output to the embedding) goes to Q6_K — Q8_0 stays Q8_0, and rows that are not whole blocks
///   of the base type take Q8_0;
/// - Q4_K (llama.cpp's Q4_K_S) gives `attn_v` of the first four layers and `ffn_down` of the
///   first eighth Q5_K;
/// - the mixed recipes put `attn_v` / `ffn_down` in Q6_K on the first and last eighth of the
///   layers and every third layer in between; everything else in the base;
/// - `pure` turns all of the above off (llama-quantize --pure): every matrix in the one type;
/// - a K-quant needs rows of whole 256-value super-blocks: a matrix whose rows are not
///   (SmolLM2's 576-wide projections, for one) falls back to the nearest 32-block type —
///   Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0 — as llama.cpp does; a row that is not even whole
///   32-blocks keeps its type.
public struct QuantizeRecipe: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case uniform(GGMLType)
        /// Base K-quant for the bulk (q4_K for Q4_K_M, q5_K for Q5_K_M).
        case mixed(GGMLType)
    }
    public var kind: Kind
    /// Every matrix in the one type, with no output or per-layer rules (llama-quantize --pure).
    public var pure: Bool
    public init(_ kind: Kind, pure: Bool = false) { self.kind = kind; self.pure = pure }

    /// The recipe names `steward quantize --type` accepts.
    public static let names: [String: QuantizeRecipe] = {
        var m: [String: QuantizeRecipe] = [:]
        for t in [GGMLType.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K] {
            m[t.name.lowercased()] = QuantizeRecipe(.uniform(t))
        }
        m["q4_k_m"] = QuantizeRecipe(.mixed(.q4_K))
        m["q5_k_m"] = QuantizeRecipe(.mixed(.q5_K))
        return m
    }()

    public static func named(_ text: String) -> QuantizeRecipe? { names[text.lowercased()] }

    public var name: String {
        switch kind {
        case let .uniform(t): return t.name.lowercased()
        case let .mixed(t): return t.name.lowercased() + "_m"
        }
    }

    /// llama.cpp's LLAMA_FTYPE for the file (general.file_type).
    public var fileType: UInt32 {
        switch kind {
        case let .uniform(t):
            switch t {
            case .f32: return 0
            case .f16: return 1
            case .q4_0: return 2
            case .q4_1: return 3
            case .q8_0: return 7
            case .q5_0: return 8
            case .q5_1: return 9
            case .q4_K: return 14  // MOSTLY_Q4_K_S
            case .q5_K: return 16  // MOSTLY_Q5_K_S
            case .q6_K: return 18
            case .bf16: return 32
            default: return 0
            }
        case let .mixed(t): return t == .q5_K ? 17 : 15  // MOSTLY_Q5_K_M, MOSTLY_Q4_K_M
        }
    }

    /// The 32-block type a K-quant falls back to when rows are not whole super-blocks.
    public static func fallback(_ t: GGMLType) -> GGMLType {
        switch t {
        case .q4_K: return .q5_0
        case .q5_K: return .q5_1
        case .q6_K: return .q8_0
        default: return t
        }
    }

    /// True for the layers llama.cpp gives more bits in its mixed recipes.
    public static func moreBits(layer i: Int, of n: Int) -> Bool {
        i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
    }

    /// The layer index in a `blk.N.` tensor name.
    static func layer(of name: String) -> Int? {
        guard name.hasPrefix("blk.") else { return nil }
        return Int(name.dropFirst(4).prefix { $0 != "." })
    }

    /// The type for `info` (nil: copy it unchanged). `layers` is the model's block count;
    /// `tiedOutput` is true when the file has no `output.weight`.
    public func type(for info: GGUFTensorInfo, layers: Int, tiedOutput: Bool) -> GGMLType? {
        guard info.dims.count == 2, let width = info.dims.first else { return nil }
        let name = info.name
        let isOutput = name == "output.weight" || (tiedOutput && name == "token_embd.weight")
        let layer = Self.layer(of: name)
        var want: GGMLType
        switch kind {
        case let .uniform(t): want = t
        case let .mixed(base): want = base
        }
        if !pure, want.blockSize > 1 {
            if isOutput {
                if width % want.blockSize != 0 { want = .q8_0 } else if want != .q8_0 { want = .q6_K }
            } else if case .mixed = kind, name.hasSuffix(".attn_v.weight") || name.hasSuffix(".ffn_down.weight"),
                      let l = layer, Self.moreBits(layer: l, of: layers) {
                want = .q6_K
            } else if kind == .uniform(.q4_K), let l = layer,
                      (name.hasSuffix(".attn_v.weight") && l < 4) || (name.hasSuffix(".ffn_down.weight") && l < layers / 8) {
                want = .q5_K
            }
        }
        if width % want.blockSize != 0 { want = Self.fallback(want) }
        guard width % want.blockSize == 0 else { return nil }
        return want
    }
}
