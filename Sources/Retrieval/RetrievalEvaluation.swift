import Documents
import Foundation

/// Retrieval quality on a question set whose answering passages are known: recall@k and mean
/// reciprocal rank per search mode.
///
/// Questions are JSON Lines, `{"question": "...", "document": "GPL-3.txt", "answer": "..."}`,
/// where `answer` is a verbatim passage of that document (its file name in the collection). A
/// retrieved chunk is relevant when it comes from that document and holds at least half of the
/// passage's bytes (a passage split between two overlapping chunks counts in either half).
public struct RetrievalEvaluation: Sendable {
    public struct Question: Sendable, Codable, Equatable {
        public var question: String
        public var document: String
        public var answer: String
    }

    public struct ModeResult: Sendable, Equatable {
        public let mode: SearchMode
        public let k: Int
        /// Fraction of questions with a relevant chunk in the top k.
        public let recall: Double
        /// Mean over questions of 1/rank of the first relevant chunk (0 when none in the top k).
        public let mrr: Double
        /// 1-based rank of the first relevant chunk per question (nil: not in the top k).
        public let ranks: [Int?]
    }

    public static func loadQuestions(_ path: String) throws -> [Question] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var out: [Question] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            do { out.append(try JSONDecoder().decode(Question.self, from: Data(line.utf8))) } catch {
                throw RetrievalError.storage("\(path):\(i + 1): not a question line ({\"question\", \"document\", \"answer\"}): \(error)")
            }
        }
        guard !out.isEmpty else { throw RetrievalError.storage("\(path) holds no questions") }
        return out
    }

    /// The answer's UTF-8 byte range in the document's extracted text (as chunk offsets count).
    static func answerRange(_ q: Question, documentPath: String, reader: DocumentReader, cache: inout [String: String]) throws -> Range<Int> {
        let text: String
        if let t = cache[documentPath] { text = t } else {
            text = try reader.read(documentPath).text
            cache[documentPath] = text
        }
        let bytes = Data(text.utf8), needle = Data(DocumentReader.normalizeNewlines(q.answer).utf8)
        guard !needle.isEmpty, needle.count <= bytes.count else { throw RetrievalError.storage("the answer to '\(q.question)' is empty or too long") }
        if let r = bytes.range(of: needle) { return r }
        throw RetrievalError.storage("the answer to '\(q.question)' is not in \(documentPath); check the question file")
    }

    /// Runs every question in every mode against `collection`.
    public static func run(_ questions: [Question], collection: String, retriever: Retriever, modes: [SearchMode] = SearchMode.allCases,
                           k: Int = 5, progress: ((Int, Int) -> Void)? = nil) throws -> [ModeResult] {
        let info = try retriever.store.requireCollection(collection)
        let docs = try retriever.store.documents(in: info)
        let reader = DocumentReader()
        var cache: [String: String] = [:]
        var targets: [(path: String, range: Range<Int>)] = []
        for q in questions {
            guard let d = docs.first(where: { ($0.path as NSString).lastPathComponent == q.document }) else {
                throw RetrievalError.storage("no document named \(q.document) in '\(collection)' (the question set expects it ingested)")
            }
            targets.append((d.path, try answerRange(q, documentPath: d.path, reader: reader, cache: &cache)))
        }
        var results: [ModeResult] = []
        for (mi, mode) in modes.enumerated() {
            var ranks: [Int?] = []
            for (qi, q) in questions.enumerated() {
                let hits = try retriever.search(q.question, collection: collection, mode: mode, k: k)
                let t = targets[qi]
                let rank = hits.firstIndex { h in
                    guard h.path == t.path else { return false }
                    let overlap = max(0, min(h.end, t.range.upperBound) - max(h.start, t.range.lowerBound))
                    return 2 * overlap >= t.range.count
                }
                ranks.append(rank.map { $0 + 1 })
                progress?(mi * questions.count + qi + 1, modes.count * questions.count)
            }
            let n = Double(questions.count)
            results.append(ModeResult(mode: mode, k: k, recall: Double(ranks.compactMap { $0 }.count) / n,
                                      mrr: ranks.reduce(0.0) { $0 + ($1.map { 1 / Double($0) } ?? 0) } / n, ranks: ranks))
        }
        return results
    }
}
