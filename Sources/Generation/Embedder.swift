import Foundation
import Models
import Tokenization

/// Errors from sentence embedding. Messages say what is wrong and what to do.
public enum EmbedderError: Error, CustomStringConvertible, Equatable {
    /// A text needs more tokens (special tokens included) than the model takes. Nothing is
    /// truncated silently: split the text into chunks.
    case tooLong(tokens: Int, max: Int)
    case badModelDirectory(path: String, reason: String)
    case unsupported(path: String, what: String)
    /// A text that gives no tokens at all (an empty string, for a model that adds no BOS):
    /// there is nothing to pool.
    case emptyText(index: Int)

    public var description: String {
        switch self {
        case let .tooLong(tokens, max):
            return "text is \(tokens) tokens but the embedding model takes at most \(max); "
                + "split it into shorter chunks (nothing is truncated silently)"
        case let .badModelDirectory(path, reason):
            return "\(path) is not a usable sentence-transformers model directory: \(reason)"
        case let .emptyText(index):
            return "text \(index) gives no tokens, so it has no embedding; leave empty texts out"
        case let .unsupported(path, what):
            return "\(path): \(what) is not supported by this embedder (supported: a Transformer module, "
                + "one Pooling module with exactly one of mean / CLS / max / mean-sqrt-len pooling, "
                + "and an optional Normalize module)"
        }
    }
}

/// Sentence embeddings the way sentence-transformers computes them for a BERT model directory
/// (e.g. all-MiniLM-L6-v2): WordPiece tokens → BERT last hidden state → pooling as
/// `1_Pooling/config.json` says (mean over the real tokens for MiniLM) → L2 normalization when
/// `modules.json` lists a Normalize module.
///
/// The token limit is sentence_bert_config.json's `max_seq_length` (256 for MiniLM), capped by
/// the model's positions. Unlike sentence-transformers, longer texts are refused with
/// `EmbedderError.tooLong` rather than cut.
public final class Embedder: @unchecked Sendable {
    public enum Pooling: String, Sendable {
        case mean, cls, max, meanSqrtLength
    }

    public let model: BertModel
    public let tokenizer: WordPieceTokenizer
    public let pooling: Pooling
    public let normalize: Bool
    /// sentence_bert_config.json's do_lower_case: lowercase texts before tokenizing.
    public let lowercase: Bool
    /// Length of each embedding.
    public var dimension: Int { model.config.hiddenSize }
    /// Most tokens a text may take, [CLS] and [SEP] included.
    public let maxTokens: Int
    /// Tokens per forward pass: batches are packed up to this many (bounds memory, keeps
    /// matrix products large).
    public var batchTokens = 2048

    public init(directory: String, threads: Int? = nil) throws {
        let dir = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw EmbedderError.badModelDirectory(path: dir, reason: "no such directory")
        }

        // modules.json: Transformer → Pooling → (Normalize). Without it sentence-transformers
        // builds Transformer + mean pooling; we refuse instead, so a plain BERT checkpoint is
        // not mistaken for a sentence model.
        let modulesPath = dir + "/modules.json"
        guard let modules = try Embedder.json(modulesPath) as? [[String: Any]] else {
            throw EmbedderError.badModelDirectory(path: dir, reason: "modules.json is not a list of modules")
        }
        var poolingDir: String?
        var normalize = false
        var sawTransformer = false
        for m in modules {
            guard let type = m["type"] as? String else {
                throw EmbedderError.badModelDirectory(path: dir, reason: "a module in modules.json has no type")
            }
            let sub = (m["path"] as? String) ?? ""
            guard !sub.contains("..") else {
                throw EmbedderError.badModelDirectory(path: dir, reason: "module path '\(sub)' leaves the directory")
            }
            switch type.split(separator: ".").last.map(String.init) ?? type {
            case "Transformer" where !sawTransformer && poolingDir == nil:
                sawTransformer = true
            case "Pooling" where sawTransformer && poolingDir == nil:
                poolingDir = sub.isEmpty ? dir : dir + "/" + sub
            case "Normalize" where poolingDir != nil && !normalize:
                normalize = true
            default:
                throw EmbedderError.unsupported(path: modulesPath, what: "module '\(type)' at this position")
            }
        }
        guard sawTransformer, let poolingDir else {
            throw EmbedderError.unsupported(path: modulesPath, what: "a module list without Transformer and Pooling")
        }
        self.normalize = normalize

        // Pooling config: exactly one mode.
        let poolingPath = poolingDir + "/config.json"
        guard let pc = try Embedder.json(poolingPath) as? [String: Any] else {
            throw EmbedderError.badModelDirectory(path: dir, reason: "\(poolingPath) is not an object")
        }
        let modes: [(String, Pooling)] = [("pooling_mode_mean_tokens", .mean), ("pooling_mode_cls_token", .cls),
                                          ("pooling_mode_max_tokens", .max), ("pooling_mode_mean_sqrt_len_tokens", .meanSqrtLength)]
        let on = modes.filter { (pc[$0.0] as? Bool) == true }
        let known = Set(modes.map(\.0) + ["word_embedding_dimension", "include_prompt"])
        if let other = pc.first(where: { key, value in !known.contains(key) && (value as? Bool) == true }) {
            throw EmbedderError.unsupported(path: poolingPath, what: "'\(other.key)'")
        }
        if let include = pc["include_prompt"] as? Bool, !include {
            throw EmbedderError.unsupported(path: poolingPath, what: "include_prompt = false")
        }
        guard on.count == 1 else {
            throw EmbedderError.unsupported(path: poolingPath, what: "\(on.count) pooling modes at once (\(on.map(\.0).joined(separator: ", ")))")
        }
        pooling = on[0].1

        model = try BertModel(directory: dir, threads: threads)
        if let d = pc["word_embedding_dimension"] as? Int, d != model.config.hiddenSize {
            throw EmbedderError.badModelDirectory(path: dir, reason: "pooling expects \(d)-dimensional token embeddings but the model's hidden size is \(model.config.hiddenSize)")
        }

        // Token limit: max_seq_length if given, never more than the model's positions.
        var limit = model.config.maxPositions
        var lowercase = false
        let sbertPath = dir + "/sentence_bert_config.json"
        if fm.fileExists(atPath: sbertPath) {
            guard let sc = try Embedder.json(sbertPath) as? [String: Any] else {
                throw EmbedderError.badModelDirectory(path: dir, reason: "sentence_bert_config.json is not an object")
            }
            if let m = sc["max_seq_length"] as? Int {
                guard m >= 2 else {
                    throw EmbedderError.badModelDirectory(path: dir, reason: "max_seq_length \(m) leaves no room for text")
                }
                limit = min(limit, m)
            }
            lowercase = (sc["do_lower_case"] as? Bool) ?? false
        }
        self.lowercase = lowercase
        maxTokens = limit
        tokenizer = try WordPieceTokenizer(tokenizerJSON: dir + "/tokenizer.json", modelMaxLength: limit)
        guard tokenizer.vocabSize <= model.config.vocabSize else {
            throw EmbedderError.badModelDirectory(path: dir, reason: "tokenizer has \(tokenizer.vocabSize) tokens but the model only \(model.config.vocabSize)")
        }
    }

    private static func json(_ path: String) throws -> Any {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw EmbedderError.badModelDirectory(path: (path as NSString).deletingLastPathComponent,
                                                  reason: "cannot read \((path as NSString).lastPathComponent): \(error.localizedDescription)")
        }
        do {
            return try JSONSerialization.jsonObject(with: data)
        } catch {
            throw EmbedderError.badModelDirectory(path: (path as NSString).deletingLastPathComponent,
                                                  reason: "\((path as NSString).lastPathComponent) is not valid JSON")
        }
    }

    /// Token ids of `text` as the model will see them ([CLS] … [SEP]), after the length check.
    public func tokens(_ text: String) throws -> [Int32] {
        let ids = tokenizer.encode(lowercase ? text.lowercased() : text)
        guard ids.count <= maxTokens else { throw EmbedderError.tooLong(tokens: ids.count, max: maxTokens) }
        return ids
    }

    /// One embedding of `dimension` floats per text, in order. Every text is tokenized and
    /// checked before any is embedded, so a too-long text fails the whole call up front.
    public func embed(_ texts: [String]) throws -> [[Float]] {
        let all = try texts.map { try tokens($0) }
        var result: [[Float]] = []
        result.reserveCapacity(texts.count)
        var start = 0
        while start < all.count {
            var end = start, budget = 0
            while end < all.count, end == start || budget + all[end].count <= batchTokens {
                budget += all[end].count
                end += 1
            }
            let hidden = try model.forward(all[start..<end].map { BertSequence(ids: $0) })
            for (ids, states) in zip(all[start..<end], hidden) {
                result.append(pool(states, tokens: ids.count))
            }
            start = end
        }
        return result
    }

    /// One text's embedding.
    public func embed(_ text: String) throws -> [Float] { try embed([text])[0] }

    /// Pools (tokens × dimension) hidden states, per sentence-transformers' Pooling module (all
    /// tokens are real here: batches are packed, not padded), then L2-normalizes if configured.
    private func pool(_ states: [Float], tokens n: Int) -> [Float] {
        let d = dimension
        var out = [Float](repeating: 0, count: d)
        switch pooling {
        case .cls:
            for j in 0..<d { out[j] = states[j] }
        case .max:
            for j in 0..<d { out[j] = states[j] }
            for t in 1..<max(1, n) { for j in 0..<d { out[j] = Swift.max(out[j], states[t * d + j]) } }
        case .mean, .meanSqrtLength:
            for t in 0..<n { for j in 0..<d { out[j] += states[t * d + j] } }
            let div = pooling == .mean ? Float(n) : Float(n).squareRoot()
            for j in 0..<d { out[j] /= div }
        }
        if normalize {
            // torch.nn.functional.normalize: x / max(‖x‖, 1e-12).
            let norm = Swift.max(out.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            for j in 0..<d { out[j] /= norm }
        }
        return out
    }
}
