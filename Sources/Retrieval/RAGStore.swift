import Foundation
import Governance

/// Errors of the retrieval store and ingestion. Messages say what is wrong and what to do.
public enum RetrievalError: Error, CustomStringConvertible, Equatable {
    case noSuchCollection(String)
    case noSuchDocument(String)
    case badCollectionName(String)
    case modelMismatch(collection: String, stored: String, given: String)
    case storage(String)

    public var description: String {
        switch self {
        case let .noSuchCollection(n): return "no collection named '\(n)' (steward rag collections lists them; steward rag ingest creates one)"
        case let .noSuchDocument(d): return "no document \(d) in the collection (steward rag search shows document ids)"
        case let .badCollectionName(n): return "'\(n)' is not a usable collection name: use 1-64 letters, digits, '.', '_' or '-'"
        case let .modelMismatch(c, s, g):
            return "collection '\(c)' was embedded with \(s), not \(g): use --embedding-model \(s), or drop and re-ingest the collection"
        case let .storage(m): return m
        }
    }
}

public struct CollectionInfo: Sendable, Equatable {
    public let id: Int64
    public let name: String
    public let embeddingModel: String
    public let dimension: Int
    /// Bumped on every change to the collection's chunks; a saved vector index with another tag is stale.
    public let generation: Int64
    public let documents: Int
    public let chunks: Int
}

public struct DocumentRecord: Sendable, Equatable {
    public let id: Int64
    public let path: String
    public let sha256: String
    public let modified: Double
    public let size: Int64
    public let kind: String
    public let chunks: Int
}

/// A chunk as the retriever returns it: text, where it comes from, and how it ranked.
public struct RetrievedChunk: Sendable, Equatable {
    public let chunkID: Int64
    public let documentID: Int64
    /// The document's path as ingested (absolute).
    public let path: String
    /// Chunk index within the document, UTF-8 byte range in its extracted text, first line (1-based).
    public let position: Int
    public let start: Int
    public let end: Int
    public let line: Int
    public let text: String
    /// The fused score (reciprocal rank fusion for hybrid, cosine for vector, −bm25 for keyword).
    public var score: Double
    /// 1-based ranks in the vector and keyword lists (nil: not in that list).
    public var vectorRank: Int?
    public var keywordRank: Int?
    /// Cosine similarity of the chunk's embedding to the query's (nil in keyword mode): what
    /// decides whether a chunk is relevant enough to answer from.
    public var similarity: Double?

    /// "path:line" for citations.
    public var location: String { "\(path):\(line)" }
}

/// The RAG store in the Steward database (component "rag"): collections, documents (path,
/// content SHA-256, mtime, size), chunks with their embeddings (Float32 little-endian BLOBs)
/// and an FTS5 table over chunk text for BM25 keyword search.
///
/// Erasure: deleting a document deletes its chunk rows (text and embedding) and FTS rows in one
/// transaction with `secure_delete` on (freed pages are zeroed), then merges the FTS index so
/// no deleted token is left in an old segment, truncates the write-ahead log, and bumps the collection's generation so a saved
/// HNSW file (which holds vectors) is deleted and rebuilt without it.
public final class RAGStore: @unchecked Sendable {
    public let storage: SQLiteStorage

    static let migrations = [
        """
        CREATE TABLE rag_collections (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, embedding_model TEXT NOT NULL,
            dimension INTEGER NOT NULL, generation INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL, metadata TEXT);
        CREATE TABLE rag_documents (
            id INTEGER PRIMARY KEY, collection_id INTEGER NOT NULL REFERENCES rag_collections(id) ON DELETE CASCADE,
            path TEXT NOT NULL, sha256 TEXT NOT NULL, mtime REAL NOT NULL, size INTEGER NOT NULL, kind TEXT NOT NULL,
            ingested_at TEXT NOT NULL, metadata TEXT, UNIQUE (collection_id, path));
        CREATE TABLE rag_chunks (
            id INTEGER PRIMARY KEY, document_id INTEGER NOT NULL REFERENCES rag_documents(id) ON DELETE CASCADE,
            collection_id INTEGER NOT NULL, position INTEGER NOT NULL, start_offset INTEGER NOT NULL,
            end_offset INTEGER NOT NULL, line INTEGER NOT NULL, token_count INTEGER NOT NULL,
            text TEXT NOT NULL, embedding BLOB NOT NULL);
        CREATE INDEX rag_chunks_document ON rag_chunks (document_id);
        CREATE INDEX rag_chunks_collection ON rag_chunks (collection_id);
        CREATE VIRTUAL TABLE rag_fts USING fts5 (text);
        """,
    ]

    public init(storage: SQLiteStorage) throws {
        self.storage = storage
        try storage.migrate(component: "rag", steps: Self.migrations)
        try storage.execute("PRAGMA secure_delete=ON")
    }

    /// Opens the store in the database at `path` (default $STEWARD_HOME/steward.db).
    public convenience init(path: String? = nil) throws {
        try self.init(storage: SQLiteStorage(path: path ?? SQLiteStorage.defaultPath))
    }

    /// Where a collection's HNSW file lives: beside the database (nil for an in-memory database).
    public func indexPath(collectionID: Int64) -> String? {
        storage.path == ":memory:" ? nil : storage.path + ".rag-\(collectionID).hnsw"
    }

    static func checkName(_ name: String) throws {
        let ok = !name.isEmpty && name.count <= 64
            && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "._-".unicodeScalars.contains($0) }
        guard ok else { throw RetrievalError.badCollectionName(name) }
    }

    // MARK: Collections

    public func collection(named name: String) throws -> CollectionInfo? {
        try collections().first { $0.name == name }
    }

    public func requireCollection(_ name: String) throws -> CollectionInfo {
        guard let c = try collection(named: name) else { throw RetrievalError.noSuchCollection(name) }
        return c
    }

    public func collections() throws -> [CollectionInfo] {
        let rows = try storage.query("""
            SELECT c.id, c.name, c.embedding_model, c.dimension, c.generation,
              (SELECT COUNT(*) FROM rag_documents d WHERE d.collection_id = c.id) AS documents,
              (SELECT COUNT(*) FROM rag_chunks k WHERE k.collection_id = c.id) AS chunks
            FROM rag_collections c ORDER BY c.name
            """)
        return rows.map {
            CollectionInfo(id: $0["id"]?.int ?? 0, name: $0["name"]?.string ?? "", embeddingModel: $0["embedding_model"]?.string ?? "",
                           dimension: Int($0["dimension"]?.int ?? 0), generation: $0["generation"]?.int ?? 0,
                           documents: Int($0["documents"]?.int ?? 0), chunks: Int($0["chunks"]?.int ?? 0))
        }
    }

    /// The collection, created for `embeddingModel` if new; an existing one must use the same model.
    public func openCollection(_ name: String, embeddingModel: String, dimension: Int) throws -> CollectionInfo {
        try Self.checkName(name)
        if let c = try collection(named: name) {
            guard c.embeddingModel == embeddingModel, c.dimension == dimension else {
                throw RetrievalError.modelMismatch(collection: name, stored: c.embeddingModel, given: embeddingModel)
            }
            return c
        }
        try storage.execute("INSERT INTO rag_collections (name, embedding_model, dimension, created_at) VALUES (?, ?, ?, ?)",
                            .text(name), .text(embeddingModel), .integer(Int64(dimension)), .text(ISO8601DateFormatter().string(from: Date())))
        return try requireCollection(name)
    }

    /// Deletes a collection with all its documents, chunks, FTS rows and its index file.
    public func dropCollection(_ name: String) throws {
        let c = try requireCollection(name)
        try storage.transaction {
            try storage.execute("DELETE FROM rag_fts WHERE rowid IN (SELECT id FROM rag_chunks WHERE collection_id = ?)", .integer(c.id))
            try storage.execute("DELETE FROM rag_chunks WHERE collection_id = ?", .integer(c.id))
            try storage.execute("DELETE FROM rag_documents WHERE collection_id = ?", .integer(c.id))
            try storage.execute("DELETE FROM rag_collections WHERE id = ?", .integer(c.id))
        }
        try purgeFTS()
        if let p = indexPath(collectionID: c.id) { try? FileManager.default.removeItem(atPath: p) }
    }

    // MARK: Documents

    public func documents(in collection: CollectionInfo) throws -> [DocumentRecord] {
        try storage.query("""
            SELECT d.*, (SELECT COUNT(*) FROM rag_chunks k WHERE k.document_id = d.id) AS chunks
            FROM rag_documents d WHERE d.collection_id = ? ORDER BY d.path
            """, .integer(collection.id)).map(Self.document)
    }

    public func document(in collection: CollectionInfo, path: String) throws -> DocumentRecord? {
        try storage.query("""
            SELECT d.*, (SELECT COUNT(*) FROM rag_chunks k WHERE k.document_id = d.id) AS chunks
            FROM rag_documents d WHERE d.collection_id = ? AND d.path = ?
            """, .integer(collection.id), .text(path)).first.map(Self.document)
    }

    static func document(_ r: SQLRow) -> DocumentRecord {
        DocumentRecord(id: r["id"]?.int ?? 0, path: r["path"]?.string ?? "", sha256: r["sha256"]?.string ?? "",
                       modified: r["mtime"]?.double ?? 0, size: r["size"]?.int ?? 0, kind: r["kind"]?.string ?? "",
                       chunks: Int(r["chunks"]?.int ?? 0))
    }

    /// One chunk to store: its place in the document and its embedding.
    public struct NewChunk: Sendable {
        public let chunk: TextChunk
        public let embedding: [Float]
        public init(chunk: TextChunk, embedding: [Float]) { self.chunk = chunk; self.embedding = embedding }
    }

    /// Stores a document with its chunks, replacing any earlier version at the same path, in one
    /// transaction. Returns the new document id.
    @discardableResult
    public func putDocument(in collection: CollectionInfo, path: String, sha256: String, modified: Double, size: Int64,
                            kind: String, chunks: [NewChunk]) throws -> Int64 {
        for c in chunks where c.embedding.count != collection.dimension {
            throw VectorIndexError.dimensionMismatch(expected: collection.dimension, got: c.embedding.count)
        }
        let id: Int64 = try storage.transaction {
            if let old = try document(in: collection, path: path) { try removeDocumentRows(old.id) }
            try storage.execute("""
                INSERT INTO rag_documents (collection_id, path, sha256, mtime, size, kind, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, .integer(collection.id), .text(path), .text(sha256), .real(modified), .integer(size), .text(kind),
                                .text(ISO8601DateFormatter().string(from: Date())))
            let doc = storage.lastInsertRowID
            for c in chunks {
                let blob = c.embedding.withUnsafeBytes { Data($0) }  // Float32, host order (little-endian on x86-64/arm64)
                try storage.execute("""
                    INSERT INTO rag_chunks (document_id, collection_id, position, start_offset, end_offset, line, token_count, text, embedding)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, .integer(doc), .integer(collection.id), .integer(Int64(c.chunk.position)), .integer(Int64(c.chunk.start)),
                                    .integer(Int64(c.chunk.end)), .integer(Int64(c.chunk.line)), .integer(Int64(c.chunk.tokens)),
                                    .text(c.chunk.text), .blob(blob))
                let chunkID = storage.lastInsertRowID
                try storage.execute("INSERT INTO rag_fts (rowid, text) VALUES (?, ?)", .integer(chunkID), .text(c.chunk.text))
            }
            try bump(collection.id)
            return doc
        }
        invalidateIndex(collection.id)
        return id
    }

    /// Deletes a document (right to erasure): its row, chunks, embeddings, FTS rows; the
    /// collection's saved vector index is removed so it is rebuilt without them.
    public func deleteDocument(id: Int64, in collection: CollectionInfo) throws {
        let rows = try storage.query("SELECT id FROM rag_documents WHERE id = ? AND collection_id = ?", .integer(id), .integer(collection.id))
        guard !rows.isEmpty else { throw RetrievalError.noSuchDocument("\(id)") }
        try storage.transaction {
            try removeDocumentRows(id)
            try bump(collection.id)
        }
        try purgeFTS()
        invalidateIndex(collection.id)
    }

    private func removeDocumentRows(_ id: Int64) throws {
        try storage.execute("DELETE FROM rag_fts WHERE rowid IN (SELECT id FROM rag_chunks WHERE document_id = ?)", .integer(id))
        try storage.execute("DELETE FROM rag_chunks WHERE document_id = ?", .integer(id))
        try storage.execute("DELETE FROM rag_documents WHERE id = ?", .integer(id))
    }

    private func bump(_ collectionID: Int64) throws {
        try storage.execute("UPDATE rag_collections SET generation = generation + 1 WHERE id = ?", .integer(collectionID))
    }

    /// Merges the FTS index into one segment, which drops deleted entries from it, then
    /// checkpoints and truncates the write-ahead log so earlier page images (which held the
    /// deleted text) do not linger in the -wal file.
    private func purgeFTS() throws {
        try storage.execute("INSERT INTO rag_fts (rag_fts) VALUES ('optimize')")
        if storage.path != ":memory:" { _ = try storage.query("PRAGMA wal_checkpoint(TRUNCATE)") }
    }

    private func invalidateIndex(_ collectionID: Int64) {
        if let p = indexPath(collectionID: collectionID) { try? FileManager.default.removeItem(atPath: p) }
    }

    // MARK: Reading for search

    /// All embeddings of a collection, with chunk ids.
    public func vectors(of collection: CollectionInfo) throws -> VectorSet {
        var set = VectorSet(dimension: collection.dimension)
        let rows = try storage.query("SELECT id, embedding FROM rag_chunks WHERE collection_id = ? ORDER BY id", .integer(collection.id))
        set.reserve(rows.count)
        for r in rows {
            guard let id = r["id"]?.int, let blob = r["embedding"]?.data, blob.count == collection.dimension * 4 else {
                throw RetrievalError.storage("a chunk of collection '\(collection.name)' has a damaged embedding; re-ingest the collection")
            }
            let v = blob.withUnsafeBytes { b in (0..<collection.dimension).map { b.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
            try set.append(id: id, vector: v)
        }
        return set
    }

    /// BM25 keyword search (FTS5's bm25(), lower is better) over a collection: chunk ids, best first,
    /// with the score negated so that higher is better. The query's words are matched with OR.
    public func keywordSearch(_ query: String, in collection: CollectionInfo, k: Int) throws -> [(id: Int64, score: Double)] {
        let words = query.lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init).filter { !$0.isEmpty }
        guard !words.isEmpty, k > 0 else { return [] }
        let match = Set(words).sorted().map { "\"\($0)\"" }.joined(separator: " OR ")
        let rows = try storage.query("""
            SELECT f.rowid AS id, bm25(rag_fts) AS score FROM rag_fts f JOIN rag_chunks c ON c.id = f.rowid
            WHERE rag_fts MATCH ? AND c.collection_id = ? ORDER BY score LIMIT ?
            """, .text(match), .integer(collection.id), .integer(Int64(k)))
        return rows.compactMap { r in r["id"]?.int.map { ($0, -(r["score"]?.double ?? 0)) } }
    }

    /// The chunks with these ids (in the order given), with their document paths.
    public func chunks(_ ids: [Int64]) throws -> [RetrievedChunk] {
        guard !ids.isEmpty else { return [] }
        let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
        let rows = try storage.query("""
            SELECT c.id, c.document_id, d.path, c.position, c.start_offset, c.end_offset, c.line, c.text
            FROM rag_chunks c JOIN rag_documents d ON d.id = c.document_id WHERE c.id IN (\(marks))
            """, ids.map { .integer($0) })
        var byID: [Int64: RetrievedChunk] = [:]
        for r in rows {
            guard let id = r["id"]?.int else { continue }
            byID[id] = RetrievedChunk(chunkID: id, documentID: r["document_id"]?.int ?? 0, path: r["path"]?.string ?? "",
                                      position: Int(r["position"]?.int ?? 0), start: Int(r["start_offset"]?.int ?? 0),
                                      end: Int(r["end_offset"]?.int ?? 0), line: Int(r["line"]?.int ?? 0),
                                      text: r["text"]?.string ?? "", score: 0)
        }
        return ids.compactMap { byID[$0] }
    }

    /// The stored embeddings of these chunks, by chunk id.
    public func embeddings(_ ids: [Int64], dimension: Int) throws -> [Int64: [Float]] {
        guard !ids.isEmpty else { return [:] }
        let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
        var out: [Int64: [Float]] = [:]
        for r in try storage.query("SELECT id, embedding FROM rag_chunks WHERE id IN (\(marks))", ids.map { .integer($0) }) {
            guard let id = r["id"]?.int, let blob = r["embedding"]?.data, blob.count == dimension * 4 else { continue }
            out[id] = blob.withUnsafeBytes { b in (0..<dimension).map { b.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
        }
        return out
    }

    /// Row counts for a document id across chunks and FTS (for erasure checks).
    public func remnants(documentID: Int64, chunkIDs: [Int64]) throws -> (documents: Int, chunks: Int, fts: Int) {
        let d = try storage.query("SELECT COUNT(*) AS n FROM rag_documents WHERE id = ?", .integer(documentID)).first?["n"]?.int ?? 0
        let c = try storage.query("SELECT COUNT(*) AS n FROM rag_chunks WHERE document_id = ?", .integer(documentID)).first?["n"]?.int ?? 0
        var f: Int64 = 0
        for id in chunkIDs {
            f += try storage.query("SELECT COUNT(*) AS n FROM rag_fts WHERE rowid = ?", .integer(id)).first?["n"]?.int ?? 0
        }
        return (Int(d), Int(c), Int(f))
    }
}
