import Documents
import Foundation
import Generation
import Governance
import ModelFiles
import Moderation
import Retrieval
import Server

/// `steward rag ingest|search|ask|eval|collections|delete|drop|bench-index`: document
/// collections for retrieval-augmented generation, kept in the Steward database.
struct RagCommand: Command {
    let spec = CommandSpec(
        name: "rag",
        summary: "Ingest documents into collections, search them, and answer questions from them with citations.",
        usage: "steward rag ingest --collection NAME [--embedding-model MODEL] PATH... | rag search --collection NAME [--mode vector|keyword|hybrid] [-k N] QUERY | rag ask --collection NAME[,NAME] [--model MODEL] QUESTION | rag eval --collection NAME --questions FILE.jsonl [-k N] | rag collections | rag delete --collection NAME (PATH | --document ID) | rag drop --collection NAME | rag bench-index [--vectors N]",
        options: [
            .value("--collection", "-c", valueName: "NAME", help: "The collection (letters, digits, '.', '_', '-')."),
            .value("--embedding-model", valueName: "MODEL", help: "ingest: sentence-embedding model, a fetched name or a directory (default all-minilm-l6-v2; a collection keeps the one it was made with)."),
            .value("--mode", valueName: "MODE", help: "search: vector, keyword or hybrid (default hybrid: both fused by reciprocal rank)."),
            .value("-k", valueName: "N", help: "search, eval: how many chunks (default 5); ask: sources given to the model (default 4)."),
            .value("--model", "-m", valueName: "MODEL", help: "ask: the chat model that answers (default smollm2-135m-instruct)."),
            .value("--min-similarity", valueName: "S", help: "ask: passages below this cosine similarity to the question are not used; none left means \"I don't know\" (default 0.35)."),
            .value("--questions", valueName: "FILE", help: "eval: JSON Lines of {question, document, answer} (answer: the verbatim passage)."),
            .value("--max-tokens", "-n", valueName: "N", help: "ask: tokens to generate at most (default 256)."),
            .value("--temperature", valueName: "T", help: "ask: sampling temperature (default 0: greedy)."),
            .value("--seed", valueName: "S", help: "ask: random seed for sampling."),
            .value("--repeat-penalty", valueName: "R", help: "ask: repetition penalty (default 1.1; 1 = off)."),
            .value("--template", valueName: "NAME|FILE", help: "ask: chat template override (a built-in or a .jinja file)."),
            .value("--threads", "-t", valueName: "N", help: "ask: threads (default: all cores)."),
            .value("--document", valueName: "ID", help: "delete: the document id (as search prints it) instead of its path."),
            .value("--chunk-tokens", valueName: "N", help: "ingest: tokens per chunk (default 200; the model takes at most 254)."),
            .value("--overlap", valueName: "N", help: "ingest: tokens repeated between neighbouring chunks (default 40)."),
            .value("--vectors", valueName: "N", help: "bench-index: random clustered 384-d vectors (default 100000)."),
            .value("--queries", valueName: "N", help: "bench-index: queries (default 200)."),
            .value("--m", valueName: "N", help: "bench-index: HNSW links per node (default 16)."),
            .value("--ef-construction", valueName: "N", help: "bench-index: HNSW build beam (default 100)."),
            .value("--ef-search", valueName: "N", help: "bench-index: HNSW search beam (default 64)."),
            .flag("--json", help: "search, ask, eval, collections: JSON output."),
            GovernanceCLI.policyOption,
            GovernanceCLI.dbOption,
        ],
        discussion: """
        ingest       reads text, Markdown, HTML, PDF (pdftotext) and source files; folders recursively. Unchanged files
                     (same SHA-256) are skipped, changed ones replaced, and files gone from an ingested folder deleted.
                     A file that cannot be read is reported and skipped (exit 1 at the end if any failed).
        search       prints the ranked chunks with file:line, document id and scores.
        ask          retrieves (hybrid by default), gives the passages that pass --min-similarity to the model as numbered
                     sources, and prints its answer and the sources it cites ([n] markers, else attributed by word overlap).
                     When no passage is relevant it says it does not know, without running the model. Every retrieval
                     is recorded in the audit log with the document ids it returned.
        eval         recall@k and MRR of vector, keyword and hybrid search on a question set with known passages.
        delete       removes one document (right to erasure): its chunks, embeddings and keyword-index rows.
        drop         removes a whole collection.
        bench-index  HNSW against exact search on random clustered vectors: recall@10, queries/s, build time, memory.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard let sub = a.positionals.first else { throw UsageError("give a subcommand: ingest, search, collections, delete, drop or bench-index") }
        let rest = Array(a.positionals.dropFirst())
        switch sub {
        case "ingest": return try ingest(a, rest, console)
        case "search": return try search(a, rest, console)
        case "ask": return try ask(a, rest, console)
        case "eval": return try evaluate(a, rest, console)
        case "collections": return try collections(a, rest, console)
        case "delete": return try delete(a, rest, console)
        case "drop":
            guard rest.isEmpty else { throw UsageError("unexpected argument '\(rest[0])' (the collection goes in --collection)") }
            let name = try a.require("--collection")
            try store(a).dropCollection(name)
            console.out("dropped collection '\(name)'\n")
            return ExitCode.ok
        case "bench-index": return try bench(a, console)
        default: throw UsageError("unknown subcommand '\(sub)' (ingest, search, ask, eval, collections, delete, drop, bench-index)")
        }
    }

    private func store(_ a: ParsedArguments) throws -> RAGStore { try RAGStore(path: a.value("--db")) }

    static func embedder(_ model: String) throws -> Embedder {
        let path = try ModelLocator.resolve(model)
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        return try Embedder(directory: isDir.boolValue ? path : (path as NSString).deletingLastPathComponent)
    }

    func ingest(_ a: ParsedArguments, _ paths: [String], _ console: Console) throws -> Int32 {
        guard !paths.isEmpty else { throw UsageError("give files or folders to ingest: steward rag ingest --collection NAME PATH...") }
        let name = try a.require("--collection")
        let store = try store(a)
        let model = try a.value("--embedding-model") ?? store.collection(named: name)?.embeddingModel ?? "all-minilm-l6-v2"
        let tokens = try a.int("--chunk-tokens") ?? 200
        let overlap = try a.int("--overlap") ?? 40
        let embedder = try Self.embedder(model)
        guard tokens >= 16, tokens <= embedder.maxTokens - 2 else {
            throw UsageError("--chunk-tokens must be between 16 and \(embedder.maxTokens - 2) for \(model)")
        }
        guard overlap >= 0, overlap < tokens / 2 else { throw UsageError("--overlap must be at least 0 and under half of --chunk-tokens") }
        let ingestor = Ingestor(store: store, embedder: embedder, embeddingModel: model, chunker: TokenChunker(maxTokens: tokens, overlap: overlap))
        let t0 = Date()
        let report = try ingestor.ingest(collection: name, paths: paths) { event in
            if case let .finished(i, total, path, outcome) = event { console.err("[\(i)/\(total)] \(path): \(outcome)\n") }
        }
        for r in report.removed { console.err("removed \(r) (no longer in its folder)\n") }
        console.out(String(format: "collection '%@': %d added, %d replaced, %d unchanged, %d removed, %d failed; %d chunks embedded in %.1f s\n",
                           name, report.added.count, report.replaced.count, report.unchanged.count, report.removed.count,
                           report.failed.count, report.chunks, Date().timeIntervalSince(t0)))
        for f in report.failed { console.err("failed: \(f.path): \(f.message)\n") }
        return report.failed.isEmpty ? ExitCode.ok : ExitCode.failure
    }

    func search(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        guard !rest.isEmpty else { throw UsageError("give a query: steward rag search --collection NAME QUERY") }
        let query = rest.joined(separator: " ")
        let name = try a.require("--collection")
        let modeName = a.value("--mode") ?? "hybrid"
        guard let mode = SearchMode(rawValue: modeName) else { throw UsageError("--mode is vector, keyword or hybrid, not '\(modeName)'") }
        let k = try a.int("-k") ?? 5
        guard k > 0, k <= 1000 else { throw UsageError("-k must be between 1 and 1000") }
        let store = try store(a)
        let collection = try store.requireCollection(name)
        let embedder = mode == .keyword ? nil : try Self.embedder(collection.embeddingModel)
        let hits = try Retriever(store: store, embedder: embedder).search(query, collection: name, mode: mode, k: k)
        if a.flag("--json") {
            let rows: [[String: Any]] = hits.enumerated().map { i, h in
                var r: [String: Any] = ["rank": i + 1, "path": h.path, "line": h.line, "document_id": h.documentID, "chunk_id": h.chunkID,
                                        "position": h.position, "start": h.start, "end": h.end, "score": h.score, "text": h.text]
                if let v = h.vectorRank { r["vector_rank"] = v }
                if let kw = h.keywordRank { r["keyword_rank"] = kw }
                return r
            }
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.sortedKeys])
            console.out(String(decoding: data, as: UTF8.self) + "\n")
            return ExitCode.ok
        }
        if hits.isEmpty { console.err("no matching chunks in '\(name)'\n") }
        for (i, h) in hits.enumerated() {
            var ranks: [String] = []
            if let v = h.vectorRank { ranks.append("vector #\(v)") }
            if let kw = h.keywordRank { ranks.append("keyword #\(kw)") }
            console.out(String(format: "[%d] %@ (document %lld, chunk %d, score %.4f%@)\n", i + 1, h.location, h.documentID, h.position, h.score,
                               ranks.isEmpty ? "" : "; " + ranks.joined(separator: ", ")))
            let text = h.text.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
            console.out(text + "\n\n")
        }
        return ExitCode.ok
    }

    func ask(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        guard !rest.isEmpty else { throw UsageError("give a question: steward rag ask --collection NAME QUESTION") }
        let question = rest.joined(separator: " ")
        let names = try a.require("--collection").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var options = GroundingOptions()
        if let k = try a.int("-k") {
            guard (1...50).contains(k) else { throw UsageError("-k must be between 1 and 50") }
            options.k = k
        }
        if let m = a.value("--mode") {
            guard let mode = SearchMode(rawValue: m) else { throw UsageError("--mode is vector, keyword or hybrid, not '\(m)'") }
            options.mode = mode
        }
        if let s = try a.double("--min-similarity") {
            guard (-1...1).contains(s) else { throw UsageError("--min-similarity must be between -1 and 1") }
            options.minSimilarity = s
        }
        let maxTokens = try a.int("--max-tokens") ?? 256
        guard maxTokens >= 1 else { throw UsageError("--max-tokens must be ≥ 1") }
        let store = try store(a)
        var embedders: [String: Retriever] = [:]
        let g = try Grounding.retrieve(question, collections: names, options: options, store: store) { c in
            if let r = embedders[c.embeddingModel] { return r }
            let r = Retriever(store: store, embedder: options.mode == .keyword ? nil : try Self.embedder(c.embeddingModel))
            embedders[c.embeddingModel] = r
            return r
        }
        try Self.auditRetrieval(g, a, store)
        var answer = g.unanswered
        var modelPath: String?
        if g.found {
            let modelArg = a.value("--model") ?? "smollm2-135m-instruct"
            let lm = try LoadedModel.load(modelArg, threads: try GenerationOptions.threads(a))
            modelPath = lm.path
            let template = try lm.chatTemplate(override: a.value("--template"), modelName: modelArg)
            let ids = try lm.encodeChat(template, messages: [["role": "system", "content": g.systemPrompt], ["role": "user", "content": g.question]])
            var request = GenerationRequest()
            request.maxTokens = maxTokens
            var sampling = SamplingParameters()
            sampling.temperature = Float(try a.double("--temperature") ?? 0)
            // Small models loop on greedy decoding; a mild penalty keeps answers short.
            sampling.repeatPenalty = Float(try a.double("--repeat-penalty") ?? 1.1)
            if let v = a.value("--seed") {
                guard let seed = UInt64(v) else { throw UsageError("--seed expects a non-negative integer, got '\(v)'") }
                sampling.seed = seed
            }
            do { try sampling.validate() } catch { throw UsageError(error.description) }
            request.sampling = sampling
            let session = try Session(model: lm.model, tokenizer: lm.tokenizer, contextLength: nil)
            let json = a.flag("--json")
            let result = try session.generate(prompt: ids, request) { chunk in
                if !json { console.out(chunk.text) }
                return true
            }
            answer = g.answer(result.text)
            if !json {
                // The streamed text is on screen: the sources follow it.
                console.out("\n" + String(answer.formatted.dropFirst(answer.text.trimmingCharacters(in: .whitespacesAndNewlines).count)) + "\n")
                return ExitCode.ok
            }
        }
        if a.flag("--json") {
            let records = Grounding.records(g.sources, cited: answer.cited, includeText: true)
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            var o: [String: Any] = ["question": g.question, "collections": names, "found": answer.found, "answer": answer.text,
                                    "citation_method": answer.method.rawValue, "mode": options.mode.rawValue,
                                    "citations": try JSONSerialization.jsonObject(with: enc.encode(records))]
            if let b = g.bestSimilarity { o["best_similarity"] = b }
            if let modelPath { o["model"] = modelPath }
            console.out(String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self) + "\n")
        } else {
            console.out(answer.formatted + "\n")
        }
        return ExitCode.ok
    }

    /// Every retrieval goes in the audit log of the database (its prompt policy decides whether
    /// the question is kept).
    static func auditRetrieval(_ g: Grounding, _ a: ParsedArguments, _ store: RAGStore) throws {
        let policyPath = StewardPaths.policyFile(a.value("--policy"))
        let policy = try policyPath.map { p throws -> AuditPolicy in try AuditPolicy.load(policyFile: p) } ?? AuditPolicy()
        guard policy.enabled else { return }
        let log = try AuditLog(storage: store.storage, policy: policy, redactor: ModerationService.redactor)
        try g.audit(log, requestID: "cli-" + UUID().uuidString.lowercased(), keyID: nil, route: "steward rag ask")
    }

    func evaluate(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        guard rest.isEmpty else { throw UsageError("unexpected argument '\(rest[0])' (the questions go in --questions FILE)") }
        let name = try a.require("--collection")
        let questions = try RetrievalEvaluation.loadQuestions(try a.require("--questions"))
        let k = try a.int("-k") ?? 5
        guard (1...100).contains(k) else { throw UsageError("-k must be between 1 and 100") }
        let store = try store(a)
        let c = try store.requireCollection(name)
        let retriever = Retriever(store: store, embedder: try Self.embedder(c.embeddingModel))
        let results = try RetrievalEvaluation.run(questions, collection: name, retriever: retriever, k: k) { done, total in
            if done % 25 == 0 || done == total { console.err("eval: \(done)/\(total) searches\n") }
        }
        if a.flag("--json") {
            let rows: [[String: Any]] = results.map { ["mode": $0.mode.rawValue, "k": $0.k, "recall": $0.recall, "mrr": $0.mrr,
                                                       "questions": questions.count, "ranks": $0.ranks.map { $0 ?? 0 }] }
            console.out(String(decoding: try JSONSerialization.data(withJSONObject: rows, options: [.sortedKeys]), as: UTF8.self) + "\n")
            return ExitCode.ok
        }
        console.out("\(questions.count) questions, collection '\(name)' (\(c.chunks) chunks)\n")
        console.out("| mode | recall@\(k) | MRR@\(k) |\n|---|---:|---:|\n")
        for r in results { console.out(String(format: "| %@ | %.3f | %.3f |\n", r.mode.rawValue, r.recall, r.mrr)) }
        return ExitCode.ok
    }

    func collections(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        guard rest.isEmpty else { throw UsageError("unexpected argument '\(rest[0])'") }
        let list = try store(a).collections()
        if a.flag("--json") {
            let rows: [[String: Any]] = list.map { ["name": $0.name, "embedding_model": $0.embeddingModel, "dimension": $0.dimension,
                                                   "documents": $0.documents, "chunks": $0.chunks] }
            console.out(String(decoding: try JSONSerialization.data(withJSONObject: rows, options: [.sortedKeys]), as: UTF8.self) + "\n")
            return ExitCode.ok
        }
        if list.isEmpty { console.err("no collections yet (steward rag ingest --collection NAME PATH...)\n") }
        for c in list {
            console.out("\(c.name)\t\(c.documents) documents\t\(c.chunks) chunks\t\(c.embeddingModel) (\(c.dimension)-d)\n")
        }
        return ExitCode.ok
    }

    func delete(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        let name = try a.require("--collection")
        let store = try store(a)
        let c = try store.requireCollection(name)
        let doc: DocumentRecord
        if let idText = a.value("--document") {
            guard rest.isEmpty else { throw UsageError("give either a path or --document ID, not both") }
            guard let id = Int64(idText), let d = try store.documents(in: c).first(where: { $0.id == id }) else {
                throw RetrievalError.noSuchDocument(idText)
            }
            doc = d
        } else {
            guard rest.count == 1 else { throw UsageError("give one document path, or --document ID") }
            guard let d = try store.document(in: c, path: Ingestor.canonicalPath(rest[0])) ?? store.document(in: c, path: rest[0]) else {
                throw RetrievalError.noSuchDocument(rest[0])
            }
            doc = d
        }
        try store.deleteDocument(id: doc.id, in: c)
        console.out("deleted document \(doc.id) (\(doc.path)) and its \(doc.chunks) chunks from '\(name)'\n")
        return ExitCode.ok
    }

    func bench(_ a: ParsedArguments, _ console: Console) throws -> Int32 {
        let n = try a.int("--vectors") ?? 100_000
        let q = try a.int("--queries") ?? 200
        guard n > 0, q > 0 else { throw UsageError("--vectors and --queries must be positive") }
        let p = HNSWIndex.Parameters(m: try a.int("--m") ?? 16, efConstruction: try a.int("--ef-construction") ?? 100,
                                     efSearch: try a.int("--ef-search") ?? 64)
        let r = try IndexBenchmark.run(vectors: n, queries: q, parameters: p) { console.err($0 + "\n") }
        console.out(r.summary + "\n")
        return ExitCode.ok
    }
}
