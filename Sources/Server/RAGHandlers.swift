import Foundation
import Generation
import Governance
import Retrieval

/// Retrieval-augmented generation on the server: the document store (the Steward database's
/// RAG tables) and a retriever per embedding model, embedding queries with the served
/// sentence-embedding model the collection was ingested with.
public final class RAGService: @unchecked Sendable {
    public let store: RAGStore
    private let lock = NSLock()
    private var retrievers: [String: Retriever] = [:]

    public init(store: RAGStore) { self.store = store }

    /// The retriever for a collection: its embedding model must be served.
    func retriever(for c: CollectionInfo, models: ModelRegistry) throws -> Retriever {
        lock.lock(); defer { lock.unlock() }
        if let r = retrievers[c.embeddingModel] { return r }
        guard let e = models.embeddingModel(c.embeddingModel) else {
            throw APIError(status: 400, message: "collection '\(c.name)' was embedded with \(c.embeddingModel), which this server does not serve; restart steward serve with --model \(c.embeddingModel) as well",
                           type: "invalid_request_error", param: "collections", code: "embedding_model_not_served")
        }
        let r = Retriever(store: store, embedder: ServedTextEmbedding(e))
        retrievers[c.embeddingModel] = r
        return r
    }
}

/// A served embedding model as the retriever's `TextEmbedding` (through its lock).
final class ServedTextEmbedding: TextEmbedding, @unchecked Sendable {
    let served: ServedEmbedder
    init(_ s: ServedEmbedder) { served = s }
    var dimension: Int { served.embedder.dimension }
    func countTokens(_ text: String) -> Int { served.embedder.countTokens(text) }
    func embed(_ texts: [String]) throws -> [[Float]] { try served.embed(texts).vectors }
}

enum RAG {
    /// POST /v1/rag/query.
    struct QueryRequest: Decodable {
        var query: String?
        var question: String?
        var collection: String?
        var collections: StringOrList?
        var model: String?
        var k: Int?
        var mode: String?
        var min_similarity: Double?
        var max_tokens: Int?
        var temperature: Double?
        var repeat_penalty: Double?
        var seed: Int64?
        var include_text: Bool?
    }

    struct Usage: Codable { var prompt_tokens: Int; var completion_tokens: Int; var total_tokens: Int }

    struct QueryResponse: Codable {
        var id: String
        var object = "rag.query"
        var query: String
        var collections: [String]
        var mode: String
        /// False when no passage reached the similarity gate (then `answer` says so and no model ran).
        var found: Bool
        var best_similarity: Double?
        var model: String?
        var answer: String?
        var citation_method: String?
        var citations: [CitationRecord]
        var usage: Usage?
    }

    struct CollectionEntry: Codable {
        var name: String
        var embedding_model: String
        var dimension: Int
        var documents: Int
        var chunks: Int
    }

    struct CollectionList: Codable { var object = "list"; var data: [CollectionEntry] }
}

extension API {
    func addRAGRoutes(_ router: inout Router) {
        router.add("GET", "/v1/rag/collections", .openAI) { [unowned self] _ in try self.ragCollections() }
        router.add("POST", "/v1/rag/query", .openAI) { [unowned self] in try self.ragQuery($0) }
    }

    func ragService() throws -> RAGService {
        guard let rag else {
            throw APIError(status: 404, message: "retrieval is not configured on this server (steward serve opens the collections in its database)",
                           type: "invalid_request_error", code: "rag_unavailable")
        }
        return rag
    }

    /// The collections the caller may retrieve from: all of them without keys (an open server),
    /// else those granted to the key (`steward keys grant`), with the rag scope.
    func visible(_ name: String) -> Bool {
        guard let key = RequestScope.current?.key else { return true }
        return key.allows(collection: name)
    }

    /// Checks the caller may read every named collection; an unknown name and a withheld one get
    /// the same 404, so a key cannot probe which collections exist.
    func authorize(_ names: [String], _ rag: RAGService, param: String) throws {
        guard !names.isEmpty else { throw APIError.missing(param) }
        if let key = RequestScope.current?.key, !key.allows(scope: .rag) {
            throw APIError(status: 403, message: "key \(key.id) (\(key.name)) lacks the 'rag' scope needed to answer from collections; create a key with --scopes rag",
                           type: "permission_error", param: param, code: "insufficient_scope")
        }
        let existing = Set(try rag.store.collections().map(\.name))
        for n in names {
            guard existing.contains(n), visible(n) else {
                throw APIError(status: 404, message: "no collection named '\(n)' that this key may read (GET /v1/rag/collections lists them; an admin grants one with steward keys grant KEY --collections \(n))",
                               type: "invalid_request_error", param: param, code: "collection_not_found")
            }
        }
    }

    func ragCollections() throws -> HTTPResponse {
        let rag = try ragService()
        let list = try rag.store.collections().filter { visible($0.name) }
        return .json(RAG.CollectionList(data: list.map {
            RAG.CollectionEntry(name: $0.name, embedding_model: $0.embeddingModel, dimension: $0.dimension, documents: $0.documents, chunks: $0.chunks)
        }))
    }

    /// Retrieves for `question` from `names` (authorised), and audits the retrieval with the
    /// document ids it returned. An audit failure refuses the request (fail closed).
    func ground(_ r: HTTPRequest, question: String, collections names: [String], options: GroundingOptions, param: String) throws -> Grounding {
        try requireReady()
        let rag = try ragService()
        try authorize(names, rag, param: param)
        let g = try Grounding.retrieve(question, collections: names, options: options, store: rag.store) { c in
            try rag.retriever(for: c, models: self.models)
        }
        if let audit {
            do { try g.audit(audit, requestID: r.context.id, keyID: r.context.keyID, route: String(r.path.prefix(256))) } catch {
                throw APIError(status: 503, message: "the audit log could not record the retrieval, so the request was not answered; the operator should check the disk and $STEWARD_HOME",
                               type: "server_error", code: "audit_unavailable")
            }
        }
        return g
    }

    static func groundingOptions(k: Int?, mode: String?, minSimilarity: Double?) throws -> GroundingOptions {
        var o = GroundingOptions()
        if let k {
            guard (1...50).contains(k) else { throw APIError.invalid("'k' must be between 1 and 50, got \(k)", param: "k", code: "invalid_value") }
            o.k = k
        }
        if let m = mode {
            guard let sm = SearchMode(rawValue: m) else {
                throw APIError.invalid("'mode' must be vector, keyword or hybrid, got '\(m)'", param: "mode", code: "invalid_value")
            }
            o.mode = sm
        }
        if let s = minSimilarity {
            guard s.isFinite, (-1...1).contains(s) else { throw APIError.invalid("'min_similarity' must be between -1 and 1", param: "min_similarity", code: "invalid_value") }
            o.minSimilarity = s
        }
        return o
    }

    /// POST /v1/rag/query: retrieval, and with `model` a grounded answer with citations.
    func ragQuery(_ r: HTTPRequest) throws -> HTTPResponse {
        let req = try decode(RAG.QueryRequest.self, r)
        guard let question = (req.query ?? req.question)?.trimmingCharacters(in: .whitespacesAndNewlines), !question.isEmpty else {
            throw APIError.missing("query")
        }
        var names = req.collections?.values ?? []
        if let c = req.collection { names.insert(c, at: 0) }
        let options = try API.groundingOptions(k: req.k, mode: req.mode, minSimilarity: req.min_similarity)
        let m = try req.model.map { try decoder($0) }
        if let m { r.context.model = m.id }
        let mod = try m == nil ? nil : moderationRun(r, flavor: .openAI)
        let checkedQuestion = try mod?.checkInput([question], tokenCounter: { t in m?.tokenizer.encode(t, addBOS: false, parseSpecial: false).count ?? 0 })[0] ?? question
        r.context.capturePrompt(checkedQuestion)
        let g = try ground(r, question: checkedQuestion, collections: names, options: options, param: req.collections == nil ? "collection" : "collections")
        let withText = req.include_text ?? true
        var response = RAG.QueryResponse(id: API.randomID("ragq-"), query: question, collections: names, mode: options.mode.rawValue,
                                         found: g.found, best_similarity: g.bestSimilarity, model: m?.id, answer: nil, citation_method: nil,
                                         citations: Grounding.records(g.sources, cited: [], includeText: withText), usage: nil)
        guard let m else { return .json(response) }
        guard g.found else {
            response.answer = g.noAnswer
            response.citation_method = CitationMethod.none.rawValue
            response.usage = RAG.Usage(prompt_tokens: 0, completion_tokens: 0, total_tokens: 0)
            r.context.captureCompletion(g.noAnswer)
            return .json(response)
        }
        let prompt = try chatPrompt(m, [("system", g.systemPrompt), ("user", checkedQuestion)], param: "query")
        var knobs = Knobs()
        knobs.maxTokens = req.max_tokens ?? 256
        knobs.temperature = req.temperature ?? 0
        knobs.repeatPenalty = req.repeat_penalty ?? 1.1
        knobs.seed = req.seed
        let gr = try generationRequest(knobs, model: m, promptTokens: prompt.count)
        let result = try run(m, prompt, gr, choice: 0, context: r.context) { _ in true }
        var text = result.text
        var blocked = false
        if let mod {
            let o = mod.checkOutput(text)
            text = o.text
            blocked = o.blocked
        }
        let a = g.answer(text)
        response.answer = text
        response.citation_method = blocked ? CitationMethod.none.rawValue : a.method.rawValue
        response.citations = Grounding.records(g.sources, cited: blocked ? [] : a.cited, includeText: withText)
        response.usage = RAG.Usage(prompt_tokens: prompt.count, completion_tokens: result.tokens.count, total_tokens: prompt.count + result.tokens.count)
        return .json(response)
    }

    /// The `collections` extension of /v1/chat/completions: grounds the last user message, puts
    /// the sources in the system message (before any system text of the caller's). Returns nil
    /// without `collections`.
    func groundChat(_ r: HTTPRequest, collections: StringOrList?, turns: inout [ChatTurn]) throws -> Grounding? {
        guard let collections else { return nil }
        guard let question = turns.last(where: { $0.role == "user" })?.content?.trimmingCharacters(in: .whitespacesAndNewlines), !question.isEmpty else {
            throw APIError.invalid("'collections' needs a user message to answer", param: "messages", code: "invalid_value")
        }
        let g = try ground(r, question: question, collections: collections.values, options: GroundingOptions(), param: "collections")
        guard g.found else { return g }
        if let i = turns.firstIndex(where: { $0.role == "system" }) {
            turns[i].content = g.systemPrompt + "\n\n" + (turns[i].content ?? "")
        } else {
            turns.insert(ChatTurn(role: "system", content: g.systemPrompt, toolCalls: [], toolCallID: nil, name: nil), at: 0)
        }
        return g
    }
}
