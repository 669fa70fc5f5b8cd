import Foundation
import ModelFiles
import Models
import Tokenization
import Templates
import Generation
import Governance

/// Named chat templates for models that ship none (the user picks one; we never guess).
public enum BuiltinChatTemplates {
    public static let all: [(String, String)] = [
        ("chatml", """
        {% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}
        """),
        ("gemma", """
        {{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}{% set msgs = messages[1:] %}{% else %}{% set first = '' %}{% set msgs = messages %}{% endif %}{% for message in msgs %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}{{ '<start_of_turn>' + role + '\n' + (first if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}
        """),
    ]
    public static var names: [String] { all.map(\.0) }
    public static func source(named n: String) -> String? { all.first { $0.0 == n }?.1 }
}

public enum ChatPrompt {
    /// Renders a conversation (role and content per message) with `template` and tokenizes it.
    /// Special tokens in the rendered prompt are parsed; BOS is added by the model's rule unless
    /// the template already wrote it.
    public static func encode(_ template: ChatTemplate, tokenizer: Tokenizer, messages: [(role: String, content: String)]) throws -> [Int32] {
        let msgs = TemplateValue.array(messages.map { m in
            TemplateValue.object(TemplateObject([("role", .string(m.role)), ("content", .string(m.content))]))
        })
        let (bos, eos) = tokenizer.templateSpecialTokens
        let text = try template.render(messages: msgs, tools: nil, addGenerationPrompt: true, bosToken: bos, eosToken: eos)
        let startsWithBOS = !bos.isEmpty && text.hasPrefix(bos)
        return tokenizer.encode(text, addBOS: startsWithBOS ? false : nil, parseSpecial: true)
    }

    /// Renders messages already in the template's shape (e.g. with `tool_calls`), and tools.
    public static func encode(_ template: ChatTemplate, tokenizer: Tokenizer, messages: TemplateValue, tools: TemplateValue?) throws -> [Int32] {
        let (bos, eos) = tokenizer.templateSpecialTokens
        let text = try template.render(messages: messages, tools: tools, addGenerationPrompt: true, bosToken: bos, eosToken: eos)
        let startsWithBOS = !bos.isEmpty && text.hasPrefix(bos)
        return tokenizer.encode(text, addBOS: startsWithBOS ? false : nil, parseSpecial: true)
    }
}

/// A decoder model being served: its engine, chat template and what the model lists show.
public final class ServedModel: @unchecked Sendable {
    public let id: String
    public let path: String
    public let engine: GenerationEngine
    public let chatTemplate: ChatTemplate?
    /// The template's Jinja source (for /api/show), or nil.
    public let templateSource: String?
    public let fileSize: Int
    public let modified: Date
    public let architecture: String
    public let parameterSize: String
    public let quantization: String
    /// Licence id for /v1/models and /api/show: from the file's `general.license` (normalised to
    /// the catalogue id), replaced by the model store's record when `steward serve` admits it.
    public var license: String?
    private let digestLock = NSLock()
    private var cachedDigest: String?
    private let adapterLock = NSLock()
    private var adapterTable: [String: LoRAUse] = [:]

    /// LoRA adapters loaded for this model, by name: a request picks one with
    /// `model: "ID+NAME"` or `adapter: "NAME"`. Sequences with different adapters share
    /// decode steps (each adds its own low-rank product to the shared base product).
    public var adapterNames: [String] { adapterLock.lock(); defer { adapterLock.unlock() }; return adapterTable.keys.sorted() }
    public func adapter(named name: String) -> LoRAUse? { adapterLock.lock(); defer { adapterLock.unlock() }; return adapterTable[name] }
    public func addAdapter(_ use: LoRAUse, name: String) { adapterLock.lock(); adapterTable[name] = use; adapterLock.unlock() }
    /// Unloads an adapter; sequences already running with it finish with it.
    @discardableResult
    public func removeAdapter(named name: String) -> Bool {
        adapterLock.lock(); defer { adapterLock.unlock() }
        return adapterTable.removeValue(forKey: name) != nil
    }

    public var tokenizer: Tokenizer { engine.tokenizer }
    public var contextLength: Int { engine.contextLength }

    public init(id: String, path: String, engine: GenerationEngine, chatTemplate: ChatTemplate?, templateSource: String?) {
        self.id = id
        self.path = path
        self.engine = engine
        self.chatTemplate = chatTemplate
        self.templateSource = templateSource
        let attrs = try? FileManager.default.attributesOfItem(atPath: path)
        fileSize = (attrs?[.size] as? NSNumber)?.intValue ?? 0
        modified = (attrs?[.modificationDate] as? Date) ?? Date()
        let file = engine.model.file
        architecture = file.string("general.architecture") ?? engine.model.config.architecture
        parameterSize = file.string("general.size_label") ?? ServedModel.parameterLabel(file)
        quantization = ServedModel.dominantType(file)
        license = file.string("general.license").map { LicenseCatalog.normalize($0) ?? $0 }
    }

    /// sha256 of the file, as Ollama lists it ("sha256:…"): from scripts/fetch-models' stamp
    /// when it matches the file's size, else computed once on first use.
    public var digest: String {
        digestLock.lock(); defer { digestLock.unlock() }
        if let d = cachedDigest { return d }
        var d = ""
        if let data = try? Data(contentsOf: URL(fileURLWithPath: path + ".sha256")),
           let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let s = o["sha256"] as? String, (o["size"] as? Int) == fileSize {
            d = s
        } else if let s = try? FileDigest.sha256(path: path) {
            d = s
        }
        cachedDigest = d
        return d
    }

    var ollamaDetails: Ollama.Details {
        Ollama.Details(parent_model: "", format: "gguf", family: architecture, families: [architecture],
                       parameter_size: parameterSize, quantization_level: quantization)
    }

    private static func parameterLabel(_ file: GGUFFile) -> String {
        let n = file.tensors.reduce(0) { $0 + $1.elementCount }
        if n >= 1_000_000_000 { return String(format: "%.1fB", Double(n) / 1e9) }
        return "\(Int((Double(n) / 1e6).rounded()))M"
    }

    /// The tensor type holding most of the weights' bytes (Ollama's quantization_level).
    private static func dominantType(_ file: GGUFFile) -> String {
        var bytes: [String: Int] = [:]
        for t in file.tensors { bytes[t.type.name.uppercased(), default: 0] += t.byteCount }
        return bytes.max { $0.value < $1.value }?.key ?? "unknown"
    }
}

/// A sentence-embedding model being served. The embedder is used by one request at a time.
public final class ServedEmbedder: @unchecked Sendable {
    public let id: String
    public let path: String
    public let embedder: Embedder
    /// Licence id (set by `steward serve` from the model store or the model card).
    public var license: String?
    private let lock = NSLock()

    public init(id: String, path: String, embedder: Embedder) {
        self.id = id; self.path = path; self.embedder = embedder
    }

    /// Embeddings of `texts` and how many tokens they took.
    public func embed(_ texts: [String]) throws -> (vectors: [[Float]], tokens: Int) {
        lock.lock(); defer { lock.unlock() }
        let tokens = try texts.reduce(0) { $0 + (try embedder.tokens($1).count) }
        return (try embedder.embed(texts), tokens)
    }
}

/// Everything the server serves. Filled while loading; `ready` once all models are in.
public final class ModelRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var decoders: [ServedModel] = []
    private var embedders: [ServedEmbedder] = []
    private var isReady = false

    public init() {}

    public func add(_ m: ServedModel) { lock.lock(); decoders.append(m); lock.unlock() }
    public func add(_ e: ServedEmbedder) { lock.lock(); embedders.append(e); lock.unlock() }
    public func markReady() { lock.lock(); isReady = true; lock.unlock() }

    public var ready: Bool { lock.lock(); defer { lock.unlock() }; return isReady }
    public var models: [ServedModel] { lock.lock(); defer { lock.unlock() }; return decoders }
    public var embeddingModels: [ServedEmbedder] { lock.lock(); defer { lock.unlock() }; return embedders }

    public func model(_ id: String) -> ServedModel? { models.first { $0.id == id } }
    public func embeddingModel(_ id: String) -> ServedEmbedder? { embeddingModels.first { $0.id == id } }
}

/// Loading a MODEL argument the way the CLI names models: a fetched model's name, or a path.
public enum ModelLoader {
    public enum Loaded {
        case decoder(ServedModel)
        case embedder(ServedEmbedder)
    }

    /// The API's id for a MODEL argument: the fetched name as given, else the file's stem.
    public static func modelID(for argument: String) -> String {
        if ModelLocator.path(forName: argument) != nil { return argument }
        let last = (argument.hasSuffix("/") ? String(argument.dropLast()) : argument) as NSString
        return (last.lastPathComponent as NSString).deletingPathExtension
    }

    /// Loads a decoder GGUF (served through a `BatchingEngine` with `parallel` sequences, or a
    /// `SerialEngine` when parallel is 1) or a sentence-transformers
    /// directory (an `Embedder`). `template` is a built-in template name or a .jinja file, for
    /// models whose file has none (or to replace theirs).
    public static func load(_ argument: String, threads: Int?, contextLength: Int?, template: String?, maxQueue: Int = 64, parallel: Int = 1) throws -> Loaded {
        let path = try ModelLocator.resolve(argument)
        let id = modelID(for: argument)
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            return .embedder(ServedEmbedder(id: id, path: path, embedder: try Embedder(directory: path, threads: threads)))
        }
        let file = try GGUFFile(path: path)
        let model = try DecoderModel(file: file, threads: threads)
        let tokenizer = try Tokenizer(gguf: file)
        var source = file.string("tokenizer.chat_template")
        if let t = template {
            if let builtin = BuiltinChatTemplates.source(named: t) {
                source = builtin
            } else if FileManager.default.fileExists(atPath: t) {
                source = try String(contentsOfFile: t, encoding: .utf8)
            } else {
                throw ServeError("template '\(t)' for \(id) is neither a built-in (\(BuiltinChatTemplates.names.joined(separator: ", "))) nor a file")
            }
        }
        let chat = try source.map { try ChatTemplate(source: $0) }
        let engine: GenerationEngine = parallel > 1
            ? try BatchingEngine(model: model, tokenizer: tokenizer, contextLength: contextLength, slots: parallel, maxQueue: maxQueue)
            : try SerialEngine(model: model, tokenizer: tokenizer, contextLength: contextLength, maxQueue: maxQueue)
        return .decoder(ServedModel(id: id, path: path, engine: engine, chatTemplate: chat, templateSource: source))
    }
}

public struct ServeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ s: String) { description = s }
}
