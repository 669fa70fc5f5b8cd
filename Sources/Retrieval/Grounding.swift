import Foundation
import Governance

/// How a grounded answer finds its sources.
public struct GroundingOptions: Sendable, Equatable {
    /// Sources given to the model at most (over all collections).
    public var k = 4
    public var mode: SearchMode = .hybrid
    /// A chunk whose embedding's cosine similarity to the question is below this is not used;
    /// when no chunk reaches it the answer is "I don't know" and the model is not asked.
    /// With all-MiniLM-L6-v2 the licence evaluation set's 50 answerable questions reach 0.45 or
    /// more and its 12 unanswerable ones at most 0.27 (docs/rag.md): 0.35 sits between. Keyword
    /// mode has no similarity and no gate.
    public var minSimilarity = 0.35
    public init() {}
}

/// A retrieved chunk as the grounded prompt numbers it.
public struct GroundingSource: Sendable, Equatable {
    /// 1-based: the [n] the answer cites.
    public let number: Int
    public let collection: String
    public let chunk: RetrievedChunk
    /// "GPL-3.txt:120": the file name and first line of the chunk.
    public var label: String { "\((chunk.path as NSString).lastPathComponent):\(chunk.line)" }
}

/// Where an answer's citations came from.
public enum CitationMethod: String, Sendable, Codable {
    /// The model wrote [n] markers (only numbers of given sources count).
    case model
    /// The model wrote none: sources that hold most of the answer's content words are cited.
    case overlap
    /// Nothing cited (no sources, or an answer with nothing in common with them).
    case none
}

/// One source as answers, the API and the audit log report it.
public struct CitationRecord: Codable, Sendable, Equatable {
    public var index: Int
    public var collection: String
    public var path: String
    public var file: String
    public var line: Int
    public var start: Int
    public var end: Int
    public var document_id: Int64
    public var chunk_id: Int64
    public var similarity: Double?
    public var score: Double
    /// True when the answer cites this source.
    public var cited: Bool
    public var text: String?
}

/// The retrieval half of a grounded answer: the question, the sources that passed the
/// similarity gate, and the prompt that gives them to a model.
///
///     let g = try Grounding.retrieve("How long is the cure period?", collections: ["licences"], store: store) { c in retriever }
///     guard g.found else { print(g.noAnswer); return }
///     let text = try generate(system: g.systemPrompt, user: g.question)
///     let answer = g.answer(text)      // citations parsed from [n], or attributed by overlap
public struct Grounding: Sendable {
    public let question: String
    public let collections: [String]
    public let options: GroundingOptions
    public let sources: [GroundingSource]
    /// Everything retrieved before the similarity gate (for audit and debugging).
    public let retrieved: [GroundingSource]
    /// The best similarity seen (nil in keyword mode or when nothing was retrieved).
    public let bestSimilarity: Double?

    /// False when no source passed the gate: then the answer is `noAnswer` and no model runs.
    public var found: Bool { !sources.isEmpty }

    /// Retrieves from each collection (`retriever` gives the one for a collection: its
    /// embedding model), keeps chunks at or above `minSimilarity`, and takes the best `k`
    /// over all collections, interleaved by rank so that each collection's first hit comes
    /// before any collection's second.
    public static func retrieve(_ question: String, collections: [String], options: GroundingOptions = GroundingOptions(),
                                store: RAGStore, retriever: (CollectionInfo) throws -> Retriever) throws -> Grounding {
        let q = question.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !q.isEmpty else { throw RetrievalError.storage("the question is empty") }
        guard !collections.isEmpty else { throw RetrievalError.storage("name at least one collection to answer from") }
        guard options.k >= 1, options.k <= 50 else { throw RetrievalError.storage("k must be between 1 and 50") }
        var ranked: [(rank: Int, collection: String, chunk: RetrievedChunk)] = []
        for name in collections {
            let info = try store.requireCollection(name)
            let hits = try retriever(info).search(q, in: info, mode: options.mode, k: options.k)
            ranked += hits.enumerated().map { ($0.offset, name, $0.element) }
        }
        // Stable: rank first, then similarity, then collection order.
        let order = ranked.enumerated().sorted {
            let a = $0.element, b = $1.element
            if a.rank != b.rank { return a.rank < b.rank }
            let sa = a.chunk.similarity ?? 0, sb = b.chunk.similarity ?? 0
            if sa != sb { return sa > sb }
            return $0.offset < $1.offset
        }.map(\.element)
        let retrieved = order.enumerated().map { GroundingSource(number: $0.offset + 1, collection: $0.element.collection, chunk: $0.element.chunk) }
        let passing = order.filter { ($0.chunk.similarity ?? 1) >= options.minSimilarity }.prefix(options.k)
        let sources = passing.enumerated().map { GroundingSource(number: $0.offset + 1, collection: $0.element.collection, chunk: $0.element.chunk) }
        let best = ranked.compactMap(\.chunk.similarity).max()
        return Grounding(question: q, collections: collections, options: options, sources: sources, retrieved: retrieved, bestSimilarity: best)
    }

    /// The system message: instructions, then the numbered sources with file and line.
    public var systemPrompt: String {
        var s = """
            Answer the question using only the sources below. Cite the sources you use by their numbers in square \
            brackets, like [1]. If the sources do not contain the answer, say that you don't know.

            Sources:
            """
        for src in sources {
            s += "\n\n[\(src.number)] \(src.label)\n\(src.chunk.text.trimmingCharacters(in: .whitespacesAndNewlines))"
        }
        return s
    }

    /// What is answered when nothing relevant was found.
    public var noAnswer: String {
        let names = collections.map { "'\($0)'" }.joined(separator: ", ")
        let why = bestSimilarity.map { String(format: " (the closest passage's similarity is %.2f, under %.2f)", $0, options.minSimilarity) } ?? ""
        return "I don't know: nothing in \(names) answers this question\(why)."
    }

    /// The model's text with its citations: the [n] markers it wrote, else attribution by overlap.
    public func answer(_ text: String) -> GroundedAnswer {
        guard found else { return GroundedAnswer(text: noAnswer, found: false, cited: [], method: .none, sources: []) }
        let marked = Grounding.markers(in: text, count: sources.count)
        if !marked.isEmpty { return GroundedAnswer(text: text, found: true, cited: marked, method: .model, sources: sources) }
        let attributed = Grounding.attribute(text, to: sources.map(\.chunk.text))
        return GroundedAnswer(text: text, found: true, cited: attributed, method: attributed.isEmpty ? .none : .overlap, sources: sources)
    }

    /// The answer when nothing relevant was found (no model call).
    public var unanswered: GroundedAnswer { answer("") }

    /// Source numbers cited as [n], [n, m] or [n][m], in first-cited order; numbers outside
    /// 1...count are ignored.
    public static func markers(in text: String, count: Int) -> [Int] {
        var out: [Int] = []
        let scalars = Array(text.unicodeScalars)
        var i = 0
        while i < scalars.count {
            guard scalars[i] == "[" else { i += 1; continue }
            var j = i + 1
            var numbers: [Int] = []
            var current = ""
            var ok = true
            while j < scalars.count, scalars[j] != "]" {
                let c = scalars[j]
                if ("0"..."9").contains(c) { current.unicodeScalars.append(c) }
                else if c == "," || c == ";" || c == " " {
                    if !current.isEmpty { numbers.append(Int(current) ?? 0); current = "" }
                } else { ok = false; break }
                j += 1
                if j - i > 40 { ok = false; break }
            }
            if ok, j < scalars.count, scalars[j] == "]" {
                if !current.isEmpty { numbers.append(Int(current) ?? 0) }
                for n in numbers where n >= 1 && n <= count && !out.contains(n) { out.append(n) }
                i = j + 1
            } else {
                i += 1
            }
        }
        return out
    }

    static let stopwords: Set<String> = [
        "the", "and", "for", "are", "but", "not", "you", "your", "with", "that", "this", "from", "they", "will", "have", "has",
        "was", "were", "been", "any", "all", "can", "may", "its", "their", "them", "there", "which", "who", "what", "when",
        "where", "how", "why", "than", "then", "also", "such", "into", "onto", "upon", "under", "over", "about", "other",
        "does", "did", "don", "doesn", "would", "could", "should", "shall", "must", "these", "those", "each", "only", "one",
        "out", "our", "his", "her", "she", "him", "says", "said", "source", "sources",
    ]

    /// Lower-cased words of three or more letters or digits, without stop words.
    static func contentWords(_ text: String) -> Set<String> {
        Set(text.lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init).filter { $0.count >= 3 && !stopwords.contains($0) })
    }

    /// Sources that hold at least half of the answer's content words (or the best one, if it
    /// holds at least 30%); none for answers of fewer than three content words.
    public static func attribute(_ answer: String, to sources: [String]) -> [Int] {
        let words = contentWords(answer)
        guard words.count >= 3 else { return [] }
        let coverage = sources.map { Double(words.intersection(contentWords($0)).count) / Double(words.count) }
        var cited = coverage.indices.filter { coverage[$0] >= 0.5 }.map { $0 + 1 }
        if cited.isEmpty, let best = coverage.indices.max(by: { coverage[$0] < coverage[$1] }), coverage[best] >= 0.3 { cited = [best + 1] }
        return cited
    }

    /// The sources as reported (every source given to the model, `cited` set from `cited`).
    public static func records(_ sources: [GroundingSource], cited: [Int], includeText: Bool) -> [CitationRecord] {
        sources.map { s in
            CitationRecord(index: s.number, collection: s.collection, path: s.chunk.path, file: (s.chunk.path as NSString).lastPathComponent,
                           line: s.chunk.line, start: s.chunk.start, end: s.chunk.end, document_id: s.chunk.documentID, chunk_id: s.chunk.chunkID,
                           similarity: s.chunk.similarity, score: s.chunk.score, cited: cited.contains(s.number),
                           text: includeText ? s.chunk.text : nil)
        }
    }

    /// Records this retrieval in the audit log: collections, mode, the document and chunk ids
    /// it returned (all retrieved, and those given to the model), the question as the log's
    /// prompt policy allows.
    public func audit(_ log: AuditLog, requestID: String?, keyID: String?, route: String?) throws {
        func ids(_ s: [GroundingSource], _ f: (GroundingSource) -> Int64) -> String {
            var seen: [Int64] = []
            for x in s.map(f) where !seen.contains(x) { seen.append(x) }
            return seen.map(String.init).joined(separator: ",")
        }
        var details = ["collections": collections.joined(separator: ","), "mode": options.mode.rawValue,
                       "documents": ids(retrieved) { $0.chunk.documentID }, "chunks": ids(retrieved) { $0.chunk.chunkID },
                       "used_documents": ids(sources) { $0.chunk.documentID }, "found": found ? "true" : "false"]
        if let b = bestSimilarity { details["best_similarity"] = String(format: "%.4f", b) }
        try log.recordRetrieval(requestID: requestID, keyID: keyID, route: route, query: question, details: details)
    }
}

/// A grounded answer: the text, whether anything relevant was found, and what it cites.
public struct GroundedAnswer: Sendable, Equatable {
    public let text: String
    public let found: Bool
    /// Source numbers cited, in citation order.
    public let cited: [Int]
    public let method: CitationMethod
    public let sources: [GroundingSource]

    /// The text followed by a "Sources:" list of the cited sources (file:line, collection).
    public var formatted: String {
        guard found else { return text }
        var s = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let citedSources = cited.compactMap { n in sources.first { $0.number == n } }
        if citedSources.isEmpty {
            s += "\n\n(The answer cites none of the \(sources.count) sources it was given.)"
        } else {
            s += "\n\nSources\(method == .overlap ? " (attributed by word overlap; the model wrote no [n] markers)" : ""):"
            for c in citedSources { s += "\n[\(c.number)] \(c.chunk.path):\(c.chunk.line) (\(c.collection))" }
        }
        return s
    }
}
