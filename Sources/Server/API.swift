import Foundation
import Generation
import Governance
import Moderation
import Tokenization
import Templates

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

    /// A "{id}" segment in a route path (last or in the middle, e.g. "/admin/keys/{id}/revoke")
    /// matches any one non-empty path segment.
    static func matches(_ pattern: String, _ path: String) -> Bool {
        if pattern == path { return true }
        guard pattern.contains("{id}") else { return false }
        let p = pattern.split(separator: "/", omittingEmptySubsequences: false)
        let s = path.split(separator: "/", omittingEmptySubsequences: false)
        guard p.count == s.count else { return false }
        for (a, b) in zip(p, s) where a != b {
            if a != "{id}" || b.isEmpty { return false }
        }
        return true
    }

    /// The path segment a route's "{id}" matched, percent-decoded.
    public static func parameter(_ pattern: String, _ path: String) -> String? {
        let p = pattern.split(separator: "/", omittingEmptySubsequences: false)
        let s = path.split(separator: "/", omittingEmptySubsequences: false)
        guard p.count == s.count, let i = p.firstIndex(of: "{id}") else { return nil }
        let raw = String(s[i])
        return raw.removingPercentEncoding ?? raw
    }

    /// The metrics label of a request: its route's path, or "unknown".
    public func label(_ r: HTTPRequest) -> String {
        routes.first { Router.matches($0.path, r.path) }?.path ?? "unknown"
    }

    public func route(_ r: HTTPRequest) -> (label: String, response: HTTPResponse) {
        let candidates = routes.filter { Router.matches($0.path, r.path) }
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
    /// Keys, scopes, limits and the kill switch (see `AccessGate`); nil: every route open.
    public var access: AccessGate?
    /// Document collections for /v1/rag/* and the `collections` field of chat (nil: none).
    public var rag: RAGService?

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
        addAdminRoutes(&router)
        addRAGRoutes(&router)
    }

    /// The audit log: every request handled here is recorded in it, with its usage (nil: none).
    /// Set before serving.
    public var audit: AuditLog?

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let context = request.context
        if let audit, audit.policy.prompts != .none { context.captureText = true }
        // Access first: a refusal (401/403/429) is answered, and audited, without routing.
        var key: KeyRecord?
        var refusal: HTTPResponse?
        if let gate = access { (refusal, key) = gate.admit(request) }
        let (label, routed) = refusal.map { (router.label(request), $0) }
            ?? RequestScope.with(RequestScope(context: context, key: key)) { router.route(request) }
        var response = routed
        response.headers.append(("X-Request-Id", context.id))
        if let audit {
            // Recorded before the transport has the response (durable once answered); a stream
            // when it ends, before its last frame is queued.
            switch response.body {
            case .bytes:
                do {
                    try audit.recordRequest(auditInfo(request, status: response.status))
                } catch {
                    // Fail closed: an answer that cannot be audited is not given.
                    auditFailed(error)
                    response = APIError(status: 503, message: "the audit log could not be written, so the request was not answered; the operator should check the disk and $STEWARD_HOME",
                                        type: "server_error", code: "audit_unavailable").response(Router.flavor(for: request.path))
                    response.headers.append(("X-Request-Id", context.id))
                }
            case let .stream(pipe):
                let status = response.status
                pipe.onFinish { [weak self] in
                    guard let self else { return }
                    if let f = pipe.failure { context.error = f } else if pipe.isCancelled { context.error = "cancelled" }
                    do { try audit.recordRequest(self.auditInfo(request, status: status)) } catch { self.auditFailed(error) }
                }
            }
        }
        metrics.record(route: label, status: response.status)
        return response
    }

    func auditInfo(_ r: HTTPRequest, status: Int) -> AuditRequestInfo {
        let c = r.context
        return AuditRequestInfo(requestID: c.id, keyID: c.keyID, route: String(r.path.prefix(256)), method: r.method, model: c.model,
                                adapter: c.adapter, status: status, tokensIn: c.promptTokens, tokensOut: c.completionTokens,
                                latencySeconds: Date().timeIntervalSince(c.started), moderation: c.moderation, overrides: c.overrides,
                                prompt: c.prompt, completion: c.completion, error: c.error)
    }

    private func auditFailed(_ error: Error) {
        FileHandle.standardError.write(Data("steward serve: audit log write failed: \(error)\n".utf8))
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

    /// The chat model a request names, with its adapter: `model: "BASE+ADAPTER"` or the
    /// `adapter` field (an adapter loaded with `serve --adapter` or the admin API).
    func decoder(_ id: String?, adapter: String? = nil) throws -> ServedModel {
        try requireReady()
        guard var id, !id.isEmpty else { throw APIError.missing("model") }
        var adapterName = adapter
        if models.model(id) == nil, let plus = id.firstIndex(of: "+") {
            if adapterName != nil { throw APIError.invalid("name the adapter either in 'model' (BASE+ADAPTER) or in 'adapter', not both", param: "adapter", code: "invalid_value") }
            adapterName = String(id[id.index(after: plus)...])
            id = String(id[..<plus])
        }
        if let m = models.model(id) {
            if let name = adapterName, !name.isEmpty {
                guard let use = m.adapter(named: name) else {
                    let have = m.adapterNames
                    throw APIError(status: 404, message: "model '\(id)' has no adapter '\(name)' (\(have.isEmpty ? "none is loaded; load one with steward serve --adapter or POST /admin/adapters" : "loaded: " + have.joined(separator: ", ")))",
                                   type: "invalid_request_error", param: "adapter", code: "adapter_not_found")
                }
                RequestScope.current?.context.adapter = name
                RequestScope.current?.context.adapterUses = [use]
            }
            return m
        }
        if models.embeddingModel(id) != nil {
            throw APIError.invalid("'\(id)' is an embedding model; it cannot generate text (use /v1/embeddings or /api/embed)", param: "model", code: "model_not_supported")
        }
        throw APIError.modelNotFound(id, available: models.models.map(\.id) + models.embeddingModels.map(\.id))
    }

    /// What an embeddings request runs: a served sentence-embedding model, or a served chat
    /// model through `LLMEmbedder` (`pooling` "mean", the default, or "last"; an extension field).
    struct EmbeddingTarget {
        let id: String
        let dimension: Int
        let embed: ([String]) throws -> (vectors: [[Float]], tokens: Int)
    }

    func embedder(_ id: String?, pooling: String?) throws -> EmbeddingTarget {
        try requireReady()
        guard let id, !id.isEmpty else { throw APIError.missing("model") }
        if let e = models.embeddingModel(id) {
            // An encoder pools as its sentence-transformers config says; a request may only restate it.
            if let p = pooling, p != e.embedder.pooling.rawValue {
                throw APIError.invalid("'pooling' is fixed by \(id)'s configuration (\(e.embedder.pooling.rawValue)); it can be chosen (mean or last) only for chat models",
                                       param: "pooling", code: "invalid_value")
            }
            return EmbeddingTarget(id: e.id, dimension: e.embedder.dimension, embed: e.embed)
        }
        if let m = models.model(id) {
            let choice: LLMEmbedder.Pooling
            if let p = pooling {
                guard let c = LLMEmbedder.Pooling(rawValue: p) else {
                    throw APIError.invalid("'pooling' must be 'mean' or 'last', got '\(p)'", param: "pooling", code: "invalid_value")
                }
                choice = c
            } else {
                choice = .mean
            }
            // Each text runs in a KV cache of its own; the model's lock interleaves these
            // forwards with the generation engine's steps, so generations are not disturbed.
            let e = LLMEmbedder(model: m.engine.model, tokenizer: m.tokenizer, pooling: choice, maxTokens: m.contextLength)
            return EmbeddingTarget(id: m.id, dimension: e.dimension) { texts in
                let ids = try texts.map { try e.tokens($0) }
                if let i = ids.firstIndex(where: \.isEmpty) { throw EmbedderError.emptyText(index: i) }
                return (try ids.map { try e.embed(tokens: $0) }, ids.reduce(0) { $0 + $1.count })
            }
        }
        if models.embeddingModels.isEmpty {
            throw APIError.invalid("'\(id)' is not served and no embedding model is loaded; name a served chat model (\(models.models.map(\.id).joined(separator: ", "))) or start steward serve with an embedding model as well, e.g. --model all-minilm-l6-v2",
                                   param: "model", code: "model_not_supported")
        }
        throw APIError.modelNotFound(id, available: models.embeddingModels.map(\.id) + models.models.map(\.id))
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

    /// A chat prompt with tools and tool turns (ToolCalling.swift); plain conversations take
    /// the path above unchanged.
    func chatPrompt(_ m: ServedModel, _ turns: [ChatTurn], _ tools: ToolSetup, param: String) throws -> [Int32] {
        if !tools.active && turns.allSatisfy(\.isPlain) {
            return try chatPrompt(m, turns.map { ($0.role, $0.content ?? "") }, param: param)
        }
        guard let t = m.chatTemplate else { return try chatPrompt(m, [], param: param) }  // throws the no-template error
        let (messages, toolList) = ToolPrompt.render(turns, tools)
        do {
            return try ChatPrompt.encode(t, tokenizer: m.tokenizer, messages: messages, tools: toolList)
        } catch {
            throw APIError.invalid("the chat template could not render these messages: \(error)", param: param)
        }
    }

    /// The request body with object key order kept (tools' schemas and call arguments are shown
    /// to the model in the order the client wrote them).
    func orderedRequest(_ r: HTTPRequest) throws -> TemplateValue {
        do { return try TemplateValue.parseJSON(r.body) } catch {
            throw APIError.invalid("the request body is not valid JSON: \(error)", param: nil, code: "invalid_json")
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
        let adapters = RequestScope.current?.context.adapterUses ?? []
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
        r.adapters = adapters
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
        let scope = RequestScope.current
        let thread = Thread {
            do { try RequestScope.with(scope) { try work(pipe) } } catch {
                let e = APIError.from(error)
                if pipe.hasWritten {
                    if GenerationWatch.stopCodes.contains(e.code ?? "") { pipe.dropPending() }
                    pipe.failure = e.code ?? e.type; pipe.write(errorFrame(e))
                } else { failure.set(e) }
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
        case .grammarDeadEnd: return "grammar_dead_end"
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
