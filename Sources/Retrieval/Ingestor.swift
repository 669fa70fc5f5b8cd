import Documents
import Foundation
import Generation
import ModelFiles

/// What an ingestion run did.
public struct IngestReport: Sendable, Equatable {
    public var added: [String] = []
    public var replaced: [String] = []
    public var unchanged: [String] = []
    /// Documents deleted because their file is gone from a folder that was ingested again.
    public var removed: [String] = []
    /// Files that could not be read or embedded, with why; the rest of the run went on.
    public var failed: [Failure] = []
    public var chunks = 0

    public struct Failure: Sendable, Equatable {
        public let path: String
        public let message: String
    }
}

/// Progress of an ingestion: one event per file.
public enum IngestEvent: Sendable {
    case started(index: Int, total: Int, path: String)
    case finished(index: Int, total: Int, path: String, outcome: String)
}

/// Turns text into vectors for the store; `Embedder` (a sentence-transformers model) is one.
public protocol TextEmbedding: AnyObject, Sendable {
    var dimension: Int { get }
    /// Tokens of a text without special tokens (for chunk sizes).
    func countTokens(_ text: String) -> Int
    func embed(_ texts: [String]) throws -> [[Float]]
}

extension Embedder: TextEmbedding {
    public func countTokens(_ text: String) -> Int {
        max(0, tokenizer.encode(lowercase ? text.lowercased() : text).count - 2)
    }
}

/// Files and folders → documents (Documents' reader) → token chunks → embeddings (batched) → store.
///
/// A file's SHA-256 decides: unchanged content is skipped, changed content replaces the stored
/// document. When a folder is ingested again, documents under it whose file is gone are deleted.
/// A file that cannot be read or embedded is reported and skipped.
public final class Ingestor: @unchecked Sendable {
    public let store: RAGStore
    public let embedder: TextEmbedding
    public let embeddingModel: String
    public var chunker: TokenChunker
    public var reader = DocumentReader()
    /// Chunks per embedding call.
    public var batchSize = 32

    public init(store: RAGStore, embedder: TextEmbedding, embeddingModel: String, chunker: TokenChunker = TokenChunker()) {
        self.store = store
        self.embedder = embedder
        self.embeddingModel = embeddingModel
        self.chunker = chunker
    }

    /// The path stored for a file: absolute and standardised, so the same file is one document.
    public static func canonicalPath(_ p: String) -> String {
        URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path
    }

    public func ingest(collection name: String, paths: [String], progress: ((IngestEvent) -> Void)? = nil) throws -> IngestReport {
        let collection = try store.openCollection(name, embeddingModel: embeddingModel, dimension: embedder.dimension)
        var report = IngestReport()
        let files = DocumentReader.expand(paths)
        var seen = Set<String>()
        for (i, file) in files.enumerated() {
            let path = Self.canonicalPath(file)
            seen.insert(path)
            progress?(.started(index: i + 1, total: files.count, path: file))
            let outcome: String
            do {
                outcome = try ingestFile(file, path: path, collection: collection, report: &report)
            } catch {
                report.failed.append(.init(path: file, message: "\(error)"))
                outcome = "failed: \(error)"
            }
            progress?(.finished(index: i + 1, total: files.count, path: file, outcome: outcome))
        }
        // Files gone from folders that were ingested again.
        let folders = paths.filter { var d: ObjCBool = false; return FileManager.default.fileExists(atPath: $0, isDirectory: &d) && d.boolValue }
            .map { Self.canonicalPath($0) }
        if !folders.isEmpty {
            for doc in try store.documents(in: collection) where !seen.contains(doc.path) {
                guard folders.contains(where: { doc.path.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }) else { continue }
                try store.deleteDocument(id: doc.id, in: collection)
                report.removed.append(doc.path)
            }
        }
        return report
    }

    private func ingestFile(_ file: String, path: String, collection: CollectionInfo, report: inout IngestReport) throws -> String {
        let attrs = try? FileManager.default.attributesOfItem(atPath: file)
        let size = (attrs?[.size] as? NSNumber)?.int64Value ?? 0
        let mtime = (attrs?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        // Hash the bytes first: an unchanged file is not read, chunked or embedded again.
        var sha = ""
        if FileManager.default.isReadableFile(atPath: file), size > 0 {
            sha = try FileDigest.sha256(path: file)
        }
        let existing = try store.document(in: collection, path: path)
        if let existing, !sha.isEmpty, existing.sha256 == sha {
            report.unchanged.append(file)
            return "unchanged"
        }
        let doc = try reader.read(file)
        let chunks = chunker.chunks(doc.text, count: embedder.countTokens)
        var stored: [RAGStore.NewChunk] = []
        stored.reserveCapacity(chunks.count)
        var start = 0
        while start < chunks.count {
            let batch = Array(chunks[start..<min(chunks.count, start + batchSize)])
            let vectors = try embedder.embed(batch.map(\.text))
            for (c, v) in zip(batch, vectors) { stored.append(.init(chunk: c, embedding: v)) }
            start += batch.count
        }
        try store.putDocument(in: collection, path: path, sha256: sha, modified: mtime, size: size, kind: doc.kind.rawValue, chunks: stored)
        report.chunks += stored.count
        if existing != nil { report.replaced.append(file); return "replaced, \(stored.count) chunks" }
        report.added.append(file)
        return "added, \(stored.count) chunks"
    }
}
