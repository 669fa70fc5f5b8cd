import Foundation
import Generation
import Moderation
import Tokenization

/// Method + path → handler. Unknown paths are 404, known paths with another method 405.
public struct Router: Sendable {
    public typealias Handler = @Sendable (HTTPRequest) throws -> HTTPResponse
    struct Route: Sendable {
        let method: String
        let path: String
        let flavor: APIFlavor
        let handler: Handler
    }
    private var routes: [Route] = []

    public init() {}

    public mutating func add(_ method: String, _ path: String, _ flavor: APIFlavor, _ handler: @escaping Handler) {
        routes.append(Route(method: method, path: path, flavor: flavor, handler: handler))
    }

    /// The flavor of errors for a path: Ollama's under /api/, OpenAI's elsewhere.
    public static func flavor(for path: String) -> APIFlavor { path.hasPrefix("/api/") ? .ollama : .openAI }

    public func route(_ r: HTTPRequest) -> (label: String, response: HTTPResponse) {
        // A route path ending in "/{id}" matches any one further path segment.
        let candidates = routes.filter { route in
            if route.path == r.path { return true }
            guard route.path.hasSuffix("/{id}") else { return false }
            let prefix = route.path.dropLast(4)
            return r.path.hasPrefix(prefix) && r.path.count > prefix.count && !r.path.dropFirst(prefix.count).contains("/")
        }
        let label = candidates.first?.path ?? r.path
        let flavor = candidates.first?.flavor ?? Router.flavor(for: r.path)
        if let limit = r.bodyLimit {
            // Unknown paths share one label so a scan cannot grow /metrics without bound.
            return (candidates.isEmpty ? "unknown" : label, APIError(status: 413, message: "the request body is over the server's limit of \(limit) bytes (steward serve --max-body)",
                                     type: "invalid_request_error", code: "request_too_large").response(flavor))
        }
        guard !candidates.isEmpty else {
            return ("unknown", APIError(status: 404, message: "no route for \(r.method) \(r.path)", type: "invalid_request_error",
                                        code: "unknown_route").response(flavor))
        }
        let method = r.method == "HEAD" ? "GET" : r.method
        guard let route = candidates.first(where: { $0.method == method }) else {
            var resp = APIError(status: 405, message: "\(r.path) does not accept \(r.method) (use \(candidates.map(\.method).joined(separator: ", ")))",
                                type: "invalid_request_error", code: "method_not_allowed").response(flavor)
            resp.headers.append(("Allow", candidates.map(\.method).joined(separator: ", ")))
            return (label, resp)
        }
        do {
            return (label, try route.handler(r))
        } catch {
            return (label, APIError.from(error).response(route.flavor))
        }
    }
}

/// The HTTP API (OpenAI- and Ollama-compatible) over a model registry. `handle` is the whole
/// server minus the socket: tests call it directly.
public final class API: @unchecked Sendable {
    public let models: ModelRegistry
    public let metrics = ServerMetrics()
    public let version: String
    /// Largest `n` (choices per request) accepted.
    public var maxChoices = 16
    private var router = Router()
    private let stateLock = NSLock()
    private let moderationState = LockedValue<ModerationService?>(nil)
    /// Input/output moderation for the generation and embedding routes (nil: off). Set it
    /// before the registry is marked ready.
    public var moderation: ModerationService? { get { moderationState.get() } set { moderationState.set(newValue) } }
    private var stopping = false

    public init(models: ModelRegistry, version: String) {
        self.models = models
        self.version = version
        router.add("GET", "/health", .plain) { [unowned self] _ in self.health() }
        router.add("GET", "/v1/models", .openAI) { [unowned self] _ in self.listModels() }
        router.add("GET", "/v1/models/{id}", .openAI) { [unowned self] r in try self.retrieveModel(String(r.path.dropFirst("/v1/models/".count))) }
        router.add("POST", "/v1/chat/completions", .openAI) { [unowned self] in try self.chatCompletions($0) }
        router.add("POST", "/v1/completions", .openAI) { [unowned self] in try self.completions($0) }
        router.add("POST", "/v1/embeddings", .openAI) { [unowned self] in try self.embeddings($0) }
        router.add("POST", "/v1/moderations", .openAI) { [unowned self] in try self.moderations($0) }
        router.add("GET", "/api/tags", .ollama) { [unowned self] _ in self.ollamaTags() }
        router.add("POST", "/api/show", .ollama) { [unowned self] in try self.ollamaShow($0) }
        router.add("POST", "/api/generate", .ollama) { [unowned self] in try self.ollamaGenerate($0) }
        router.add("POST", "/api/chat", .ollama) { [unowned self] in try self.ollamaChat($0) }
        router.add("POST", "/api/embed", .ollama) { [unowned self] in try self.ollamaEmbed($0) }
        router.add("GET", "/api/ps", .ollama) { [unowned self] _ in self.ollamaPs() }
        router.add("GET", "/api/version", .ollama) { [unowned self] _ in .json(Ollama.Version(version: self.version)) }
        router.add("GET", "/metrics", .plain) { [unowned self] _ in
            HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                         body: .bytes(Data(self.metrics.exposition(models: self.models.models).utf8)))
        }
        router.add("GET", "/", .plain) { _ in WebPage.response() }
    }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let (label, response) = router.route(request)
        metrics.record(route: label, status: response.status)
        return response
    }

    /// Cancels in-flight generations (each stops at its next token) and refuses new ones.
    public func shutdown() { stateLock.lock(); stopping = true; stateLock.unlock() }
    public var isShuttingDown: Bool { stateLock.lock(); defer { stateLock.unlock() }; return stopping }

    // MARK: - Shared pieces

    func decode<T: Decodable>(_ type: T.Type, _ r: HTTPRequest) throws -> T {
        guard !r.body.isEmpty else { throw APIError.invalid("the request body is empty; send a JSON object", param: nil, code: "invalid_json") }
        guard (try? JSONSerialization.jsonObject(with: r.body)) is [String: Any] else {
            throw APIError.invalid("the request body is not a JSON object", param: nil, code: "invalid_json")
        }
        do { return try JSONCoding.decoder.decode(T.self, from: r.body) } catch let e as DecodingError { throw APIError.decoding(e) }
    }

    func requireReady() throws {
        guard models.ready else { throw APIError(status: 503, message: "models are still loading; retry shortly", type: "server_error", code: "loading") }
        guard !isShuttingDown else { throw APIError(status: 503, message: "the server is shutting down", type: "server_error", code: "shutting_down") }
    }

    func decoder(_ id: String?) throws -> ServedModel {
        try requireReady()
        guard let id, !id.isEmpty else { throw APIError.missing("model") }
        if let m = models.model(id) { return m }
        if models.embeddingModel(id) != nil {
            throw APIError.invalid("'\(id)' is an embedding model; it cannot generate text (use /v1/embeddings or /api/embed)", param: "model", code: "model_not_supported")
        }
        throw APIError.modelNotFound(id, available: models.models.map(\.id) + models.embeddingModels.map(\.id))
    }

    func embedder(_ id: String?) throws -> ServedEmbedder {
        try requireReady()
        guard let id, !id.isEmpty else { throw APIError.missing("model") }
        if let e = models.embeddingModel(id) { return e }
        if models.embeddingModels.isEmpty {
            throw APIError.invalid("no embedding model is loaded; start steward serve with one as well, e.g. --model all-minilm-l6-v2",
                                   param: "model", code: "model_not_supported")
        }
        if models.model(id) != nil {
            throw APIError.invalid("'\(id)' is not an embedding model (embedding models: \(models.embeddingModels.map(\.id).joined(separator: ", ")))",
                                   param: "model", code: "model_not_supported")
        }
        throw APIError.modelNotFound(id, available: models.embeddingModels.map(\.id))
    }

    func chatPrompt(_ m: ServedModel, _ messages: [(role: String, content: String)], param: String) throws -> [Int32] {
        guard let t = m.chatTemplate else {
            throw APIError.invalid("\(m.id) has no chat template: use the completions endpoint (/v1/completions, or /api/generate with raw), or restart steward serve with --template \(m.id)=NAME (built-ins: \(BuiltinChatTemplates.names.joined(separator: ", ")))",
                                   param: param, code: "no_chat_template")
        }
        do {
            return try ChatPrompt.encode(t, tokenizer: m.tokenizer, messages: messages)
        } catch {
            throw APIError.invalid("the chat template could not render these messages: \(error)", param: param)
        }
    }

    /// Sampling and limits common to every generation route, with the API's parameter names.
    struct Knobs {
        var maxTokens: Int?
        var maxTokensName = "max_tokens"
        var temperature: Double?
        var topP: Double?
        var topK: Int?
        var minP: Double?
        var typicalP: Double?
        var repeatPenalty: Double?
        var repeatLastN: Int?
        var frequencyPenalty: Double?
        var presencePenalty: Double?
        var seed: Int64?
        var stop: [String] = []
        var logitBias: [String: Double]?
    }

    /// Builds the engine request. Without a max-tokens value, generation may run to the end of
    /// the context (as llama-server does); with one, prompt plus max tokens must fit or the
    /// request is refused (400, nothing truncated).
    func generationRequest(_ k: Knobs, model m: ServedModel, promptTokens: Int) throws -> GenerationRequest {
        var s = SamplingParameters()
        func finite(_ v: Double?, _ name: String) throws -> Float? {
            guard let v else { return nil }
            guard v.isFinite else { throw APIError.invalid("'\(name)' must be a finite number", param: name, code: "invalid_value") }
            return Float(v)
        }
        if let v = try finite(k.temperature, "temperature") {
            guard v >= 0, v <= 2 else { throw APIError.invalid("'temperature' must be between 0 and 2, got \(v)", param: "temperature", code: "invalid_value") }
            s.temperature = v
        }
        if let v = try finite(k.topP, "top_p") { s.topP = v }
        if let v = k.topK { s.topK = v }
        if let v = try finite(k.minP, "min_p") { s.minP = v }
        if let v = try finite(k.typicalP, "typical_p") { s.typicalP = v }
        if let v = try finite(k.repeatPenalty, "repeat_penalty") { s.repeatPenalty = v }
        if let v = k.repeatLastN {
            guard v >= -1 else { throw APIError.invalid("'repeat_last_n' must be ≥ -1, got \(v)", param: "repeat_last_n", code: "invalid_value") }
            s.penaltyWindow = v
        }
        if let v = try finite(k.frequencyPenalty, "frequency_penalty") { s.frequencyPenalty = v }
        if let v = try finite(k.presencePenalty, "presence_penalty") { s.presencePenalty = v }
        if let v = k.seed { s.seed = UInt64(bitPattern: v) }
        if let bias = k.logitBias {
            let vocab = m.tokenizer.vocabSize
            for (key, value) in bias {
                guard let id = Int32(key), id >= 0, Int(id) < vocab else {
                    throw APIError.invalid("'logit_bias' key '\(key)' is not a token id of \(m.id) (0..<\(vocab))", param: "logit_bias", code: "invalid_value")
                }
                guard value.isFinite, abs(value) <= 100 else {
                    throw APIError.invalid("'logit_bias' for token \(key) must be between -100 and 100", param: "logit_bias", code: "invalid_value")
                }
                s.logitBias[id] = Float(value)
            }
        }
        do { try s.validate() } catch { throw APIError.from(error) }
        var r = GenerationRequest()
        r.sampling = s
        if k.stop.contains(where: \.isEmpty) {
            throw APIError.invalid("'stop' strings must not be empty", param: "stop", code: "invalid_value")
        }
        guard k.stop.count <= 16 else { throw APIError.invalid("'stop' takes at most 16 strings", param: "stop", code: "invalid_value") }
        r.stops = k.stop
        let room = m.contextLength - promptTokens
        if let n = k.maxTokens {
            guard n >= 0 else { throw APIError.invalid("'\(k.maxTokensName)' must be ≥ 0, got \(n)", param: k.maxTokensName, code: "invalid_value") }
            guard n <= room else {
                throw APIError.invalid(GenerationError.contextOverflow(promptTokens: promptTokens, maxTokens: n, contextLength: m.contextLength).description,
                                       param: k.maxTokensName, code: "context_length_exceeded")
            }
            r.maxTokens = n
        } else {
            guard room >= 0 else {
                throw APIError.invalid("the prompt (\(promptTokens) tokens) is longer than the context length (\(m.contextLength)); shorten it or raise --ctx (nothing was truncated)",
                                       param: "prompt", code: "context_length_exceeded")
            }
            r.maxTokens = room
        }
        return r
    }

    /// The `onChunk` wrapper every generation uses: stops on shutdown or when `body` says so.
    func chunkHandler(_ body: @escaping @Sendable (GeneratedChunk) -> Bool) -> @Sendable (GeneratedChunk) -> Bool {
        { [weak self] chunk in
            guard let self, !self.isShuttingDown else { return false }
            return body(chunk)
        }
    }

    /// A streamed response: `work` runs on its own thread writing frames to the pipe. The
    /// status is decided by how it starts: an error before the first frame (busy, bad input)
    /// becomes an ordinary error response; after that, `errorFrame` reports it in-stream.
    func streamed(contentType: String, flavor: APIFlavor, errorFrame: @escaping @Sendable (APIError) -> String,
                  work: @escaping @Sendable (ChunkPipe) throws -> Void) -> HTTPResponse {
        let pipe = ChunkPipe()
        let failure = LockedValue<APIError?>(nil)
        let thread = Thread {
            do { try work(pipe) } catch {
                let e = APIError.from(error)
                if pipe.hasWritten { pipe.write(errorFrame(e)) } else { failure.set(e) }
            }
            pipe.close()
        }
        thread.stackSize = 8 << 20
        thread.start()
        // An error before any frame is set before the pipe closes.
        if !pipe.waitForFirstWrite(), let e = failure.get() {
            return e.response(flavor)
        }
        return HTTPResponse(status: 200, headers: [("Content-Type", contentType), ("Cache-Control", "no-cache")], body: .stream(pipe))
    }

    static func createdNow() -> Int { Int(Date().timeIntervalSince1970) }

    static func randomID(_ prefix: String) -> String {
        prefix + String((0..<24).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement() ?? "x" })
    }

    static func finishReason(_ f: FinishReason) -> String {
        switch f {
        case .stop: return "stop"
        case .length: return "length"
        case .cancelled: return "cancelled"
        }
    }
}

final class LockedValue<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
    func update(_ f: (inout T) -> Void) { lock.lock(); f(&value); lock.unlock() }
}
