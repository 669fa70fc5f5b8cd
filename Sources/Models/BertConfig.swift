import Foundation

/// Errors from loading or running a BERT encoder. Each message says what is wrong and what to do.
public enum BertError: Error, CustomStringConvertible, Equatable {
    case cannotRead(path: String, reason: String)
    case invalidJSON(path: String, reason: String)
    case missingField(path: String, field: String)
    case badConfig(path: String, field: String, reason: String)
    case unsupported(path: String, field: String, value: String, supported: [String])
    case missingTensor(path: String, name: String)
    case badTensorShape(path: String, name: String, expected: [Int], found: [Int])
    case unsupportedTensorType(path: String, name: String, dtype: String)
    case unusedTensors(path: String, names: [String])
    case badInput(String)

    public var description: String {
        switch self {
        case let .cannotRead(path, reason):
            return "cannot read \(path): \(reason)"
        case let .invalidJSON(path, reason):
            return "\(path) is not valid JSON (\(reason)); re-download the model"
        case let .missingField(path, field):
            return "\(path) has no '\(field)'; it does not look like a Hugging Face BERT config.json"
        case let .badConfig(path, field, reason):
            return "\(path): '\(field)' \(reason)"
        case let .unsupported(path, field, value, supported):
            return "\(path): \(field) '\(value)' is not supported by this BERT encoder (supported: "
                + supported.joined(separator: ", ") + ")"
        case let .missingTensor(path, name):
            return "\(path) lacks tensor '\(name)'; the file is incomplete or not a BERT encoder"
        case let .badTensorShape(path, name, expected, found):
            return "\(path): tensor '\(name)' has shape \(found), but config.json implies \(expected); "
                + "config.json and model.safetensors do not belong together"
        case let .unsupportedTensorType(path, name, dtype):
            return "\(path): tensor '\(name)' has dtype \(dtype); supported: F32, F16, BF16, F64"
        case let .unusedTensors(path, names):
            let shown = names.prefix(5).joined(separator: ", ")
            return "\(path) has \(names.count) tensor(s) a BERT encoder does not use (\(shown)"
                + "\(names.count > 5 ? ", …" : "")); refusing to load a model we might run wrongly"
        case let .badInput(s):
            return s
        }
    }
}

/// Hyperparameters of a BERT encoder, read from a Hugging Face `config.json` (transformers'
/// `BertConfig`). Keys that only matter for training (dropout, initializer range, …) are
/// ignored; keys that would change the forward pass in ways we do not implement are refused.
public struct BertConfig: Sendable, Equatable {
    public enum Activation: String, Sendable, Equatable {
        /// 0.5·x·(1 + erf(x/√2)): transformers' "gelu" (torch's default, exact form).
        case gelu
        /// The tanh approximation: transformers' "gelu_new" / "gelu_pytorch_tanh".
        case geluTanh
    }

    public var vocabSize: Int
    public var hiddenSize: Int
    public var layers: Int
    public var heads: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float
    public var activation: Activation
    public var padTokenID: Int

    public var headDim: Int { hiddenSize / heads }

    public init(vocabSize: Int, hiddenSize: Int, layers: Int, heads: Int, intermediateSize: Int,
                maxPositions: Int, typeVocabSize: Int, layerNormEps: Float, activation: Activation,
                padTokenID: Int = 0) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.heads = heads
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps
        self.activation = activation
        self.padTokenID = padTokenID
    }

    /// Reads `config.json` at `path`.
    public init(contentsOf path: String) throws(BertError) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .cannotRead(path: path, reason: error.localizedDescription)
        }
        try self.init(json: data, path: path)
    }

    /// Parses config.json contents; `path` only names the file in errors.
    public init(json data: Data, path: String = "config.json") throws(BertError) {
        let root: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw BertError.invalidJSON(path: path, reason: "the top level is not an object")
            }
            root = o
        } catch let e as BertError {
            throw e
        } catch {
            throw .invalidJSON(path: path, reason: error.localizedDescription)
        }

        func int(_ key: String, default d: Int? = nil, min lo: Int = 1) throws(BertError) -> Int {
            guard let raw = root[key], !(raw is NSNull) else {
                if let d { return d }
                throw .missingField(path: path, field: key)
            }
            // JSONSerialization gives NSNumber; refuse fractions posing as integers.
            guard let n = raw as? NSNumber, n.doubleValue.magnitude < 1e15, let v = Int(exactly: n.doubleValue) else {
                throw .badConfig(path: path, field: key, reason: "should be an integer but is \(raw)")
            }
            guard v >= lo, v < 1 << 24 else {
                throw .badConfig(path: path, field: key, reason: "= \(v) is out of range (\(lo) … \(1 << 24))")
            }
            return v
        }
        func string(_ key: String) throws(BertError) -> String? {
            guard let raw = root[key], !(raw is NSNull) else { return nil }
            guard let s = raw as? String else {
                throw .badConfig(path: path, field: key, reason: "should be a string but is \(raw)")
            }
            return s
        }
        func flag(_ key: String) throws(BertError) -> Bool {
            guard let raw = root[key], !(raw is NSNull) else { return false }
            guard let b = raw as? Bool else {
                throw .badConfig(path: path, field: key, reason: "should be true or false but is \(raw)")
            }
            return b
        }

        if let t = try string("model_type"), t != "bert" {
            throw .unsupported(path: path, field: "model_type", value: t, supported: ["bert"])
        }
        // Absolute learned positions only; relative_key(_query) adds distance embeddings to attention.
        if let p = try string("position_embedding_type"), p != "absolute" {
            throw .unsupported(path: path, field: "position_embedding_type", value: p, supported: ["absolute"])
        }
        if try flag("is_decoder") {
            throw .unsupported(path: path, field: "is_decoder", value: "true", supported: ["false (encoder)"])
        }
        if try flag("add_cross_attention") {
            throw .unsupported(path: path, field: "add_cross_attention", value: "true", supported: ["false"])
        }
        let act = try string("hidden_act") ?? "gelu"
        switch act {
        case "gelu": activation = .gelu
        case "gelu_new", "gelu_pytorch_tanh": activation = .geluTanh
        default:
            throw .unsupported(path: path, field: "hidden_act", value: act,
                               supported: ["gelu", "gelu_new", "gelu_pytorch_tanh"])
        }

        vocabSize = try int("vocab_size")
        hiddenSize = try int("hidden_size")
        layers = try int("num_hidden_layers")
        heads = try int("num_attention_heads")
        intermediateSize = try int("intermediate_size")
        maxPositions = try int("max_position_embeddings")
        typeVocabSize = try int("type_vocab_size", default: 2)
        padTokenID = try int("pad_token_id", default: 0, min: 0)
        guard hiddenSize % heads == 0 else {
            throw .badConfig(path: path, field: "num_attention_heads",
                             reason: "= \(heads) does not divide hidden_size \(hiddenSize)")
        }

        if let raw = root["layer_norm_eps"], !(raw is NSNull) {
            guard let n = raw as? NSNumber else {
                throw .badConfig(path: path, field: "layer_norm_eps", reason: "should be a number but is \(raw)")
            }
            let e = n.doubleValue
            guard e > 0, e < 1, Float(e) > 0 else {
                throw .badConfig(path: path, field: "layer_norm_eps", reason: "= \(e) should be a small positive number")
            }
            layerNormEps = Float(e)
        } else {
            layerNormEps = 1e-12  // transformers' BertConfig default
        }
    }
}
