import Foundation
import Kernels

/// How chunks are found.
public enum SearchMode: String, Sendable, CaseIterable {
    /// Embedding similarity (exact, or HNSW for large collections).
    case vector
    /// BM25 over the FTS5 index.
    case keyword
    /// Both lists fused by reciprocal rank (k = 60).
    case hybrid
}

/// Top-k chunks of a collection for a query: the seam the answering part (rag ask,
/// /v1/rag/query) calls.
///
///     let store = try RAGStore(path: dbPath)
///     let retriever = Retriever(store: store, embedder: try Embedder(directory: minilmDir))
///     let hits = try retriever.search("how do I rotate a key?", collection: "handbook", mode: .hybrid, k: 5)
///     for h in hits { print(h.location, h.text) }   // path:line, chunk text
///
/// Vector search is exact (a dot product with every embedding) below `hnswThreshold` chunks and
/// HNSW above it; the HNSW graph is built on first use, saved beside the database (0600) tagged
/// with the collection's generation, and reloaded while the collection is unchanged.
public final class Retriever: @unchecked Sendable {
    public let store: RAGStore
    public let embedder: TextEmbedding?
    public var hnswThreshold = 20_000
    public var hnswParameters = HNSWIndex.Parameters()
    /// Reciprocal rank fusion constant (Cormack, Clarke & Büttcher 2009).
    public var rrfK = 60.0
    /// Each list contributes this many candidates per requested result to fusion.
    public var candidatesPerResult = 4

    private let lock = NSLock()
    private var exactCache: [Int64: (generation: Int64, index: ExactIndex)] = [:]
    private var hnswCache: [Int64: HNSWIndex] = [:]

    /// `embedder` may be nil for keyword-only use.
    public init(store: RAGStore, embedder: TextEmbedding?) {
        self.store = store
        self.embedder = embedder
    }

    public func search(_ query: String, collection name: String, mode: SearchMode = .hybrid, k: Int = 5) throws -> [RetrievedChunk] {
        try search(query, in: try store.requireCollection(name), mode: mode, k: k)
    }

    /// The same for a collection already looked up.
    public func search(_ query: String, in collection: CollectionInfo, mode: SearchMode = .hybrid, k: Int = 5) throws -> [RetrievedChunk] {
        guard k > 0 else { return [] }
        switch mode {
        case .keyword:
            let hits = try store.keywordSearch(query, in: collection, k: k)
            return try rows(hits.map(\.id)) { i, c in c.score = hits[i].score; c.keywordRank = i + 1 }
        case .vector:
            let q = try embedQuery(query, collection: collection)
            let hits = try vectorSearch(q, collection: collection, k: k)
            return try rows(hits.map(\.id)) { i, c in
                c.score = Double(hits[i].score); c.vectorRank = i + 1; c.similarity = Double(hits[i].score)
            }
        case .hybrid:
            let n = max(k * candidatesPerResult, 20)
            let q = try embedQuery(query, collection: collection)
            let v = try vectorSearch(q, collection: collection, k: n)
            let kw = try store.keywordSearch(query, in: collection, k: n)
            var score: [Int64: Double] = [:]
            var vRank: [Int64: Int] = [:], kRank: [Int64: Int] = [:]
            for (i, h) in v.enumerated() { score[h.id, default: 0] += 1 / (rrfK + Double(i + 1)); vRank[h.id] = i + 1 }
            for (i, h) in kw.enumerated() { score[h.id, default: 0] += 1 / (rrfK + Double(i + 1)); kRank[h.id] = i + 1 }
            let top = score.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(k)
            let ids = top.map(\.key)
            // Similarity for every result, also those only the keyword list found.
            let vectors = try store.embeddings(ids, dimension: collection.dimension)
            return try rows(ids) { _, c in
                c.score = score[c.chunkID] ?? 0
                c.vectorRank = vRank[c.chunkID]
                c.keywordRank = kRank[c.chunkID]
                c.similarity = vectors[c.chunkID].map { e in
                    Double(e.withUnsafeBufferPointer { ep in q.withUnsafeBufferPointer { FloatOps.dot(ep.baseAddress!, $0.baseAddress!, count: e.count) } })
                }
            }
        }
    }

    private func rows(_ ids: [Int64], _ annotate: (Int, inout RetrievedChunk) -> Void) throws -> [RetrievedChunk] {
        var out = try store.chunks(ids)
        for i in out.indices { annotate(i, &out[i]) }
        return out
    }

    /// The query's embedding, by the collection's model.
    public func embedQuery(_ query: String, collection: CollectionInfo) throws -> [Float] {
        guard let embedder else {
            throw RetrievalError.storage("vector search needs the collection's embedding model (\(collection.embeddingModel)); use --mode keyword without it")
        }
        guard embedder.dimension == collection.dimension else {
            throw VectorIndexError.dimensionMismatch(expected: collection.dimension, got: embedder.dimension)
        }
        return try embedder.embed([query])[0]
    }

    /// Nearest chunks to the query's embedding.
    public func vectorSearch(_ query: String, collection: CollectionInfo, k: Int) throws -> [VectorHit] {
        try vectorSearch(try embedQuery(query, collection: collection), collection: collection, k: k)
    }

    public func vectorSearch(_ q: [Float], collection: CollectionInfo, k: Int) throws -> [VectorHit] {
        if collection.chunks >= hnswThreshold {
            return try hnsw(collection).search(q, k: k)
        }
        return try exact(collection).search(q, k: k)
    }

    func exact(_ c: CollectionInfo) throws -> ExactIndex {
        lock.lock(); defer { lock.unlock() }
        if let e = exactCache[c.id], e.generation == c.generation { return e.index }
        let index = ExactIndex(try store.vectors(of: c))
        exactCache[c.id] = (c.generation, index)
        return index
    }

    /// The collection's HNSW index: cached, else loaded from its file when the file's tag is the
    /// collection's generation, else built from the stored vectors and saved.
    public func hnsw(_ c: CollectionInfo) throws -> HNSWIndex {
        lock.lock(); defer { lock.unlock() }
        if let h = hnswCache[c.id], h.tag == UInt64(c.generation) { return h }
        let path = store.indexPath(collectionID: c.id)
        if let path, FileManager.default.fileExists(atPath: path),
           let loaded = try? HNSWIndex(contentsOf: path), loaded.tag == UInt64(c.generation), loaded.dimension == c.dimension {
            hnswCache[c.id] = loaded
            return loaded
        }
        var index = HNSWIndex(try store.vectors(of: c), parameters: hnswParameters)
        index.tag = UInt64(c.generation)
        if let path { try index.save(to: path) }
        hnswCache[c.id] = index
        return index
    }
}
