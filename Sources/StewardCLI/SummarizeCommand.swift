import Documents
import Foundation
import Generation

/// `steward summarize`: a summary per document; long documents are summarised in parts that
/// fit the context and the part summaries combined (map-reduce, repeated while the combined
/// summaries are still too long for one prompt).
struct SummarizeCommand: Command {
    let spec = CommandSpec(
        name: "summarize",
        summary: "Summarise each document, in parts when it is long (JSON lines).",
        usage: "steward summarize --model MODEL [--max-words N] [--out FILE.jsonl [--resume]] [options] PATH...",
        options: [
            .value("--max-words", "-w", valueName: "N", help: "Longest summary in words (default 100)."),
        ] + DocumentOptions.specs + DocumentOptions.generationSpecs(maxTokensHelp: "Tokens per summary at most (default: about 1.5 per word of --max-words, plus 16)."),
        discussion: """
            Each line is {"source", "summary", "words", "chunks", "truncated"}. A document that does
            not fit the context with room for the summary is split at paragraph boundaries (then
            sentences, then words) into parts that do; each part is summarised and the part
            summaries are combined into one (again in parts if they are still too long).
            --max-words is asked for in the prompt and bounds generation (about 1.5 tokens per
            word, unless --max-tokens is given); a summary that still comes out longer is cut at a
            sentence boundary within the limit and marked "truncated": true, with a note on
            standard error. Decoding uses --repeat-penalty 1.1 unless it is given.
            """ + "\n\n" + DocumentOptions.discussion
    )

    static let defaultRepeatPenalty: Float = 1.1

    static func tokenEstimate(words: Int) -> Int { Int((Double(words) * 1.5).rounded(.up)) + 16 }

    /// Rounds of combining before giving up (each must shrink the text).
    static let maxLevels = 8

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        _ = try a.require("--model")
        let maxWords = try a.int("--max-words") ?? 100
        guard (1...4000).contains(maxWords) else { throw UsageError("--max-words must be between 1 and 4000") }
        var request = try DocumentOptions.request(a, defaultMaxTokens: Self.tokenEstimate(words: maxWords))
        // Greedy decoding of a small model loops on a line ("Report\n\nReport\n\n…") without a
        // mild repetition penalty; llama.cpp's classic default of 1.1 is enough.
        if a.value("--repeat-penalty") == nil { request.sampling.repeatPenalty = Self.defaultRepeatPenalty }
        guard request.maxTokens > 0 else { throw UsageError("--max-tokens must be at least 1 for a summary") }
        let batch = try DocumentRun(command: spec.name, a, console: console)
        if batch.pending.isEmpty { return batch.run { _, _ in [] } }
        let dm = try DocumentModel.load(a)
        let system = DocumentPrompts.summarizeSystem
        // Room for a part: the context less the longest prompt around it and the output.
        let overhead = max(
            try dm.chat(system: system, user: DocumentPrompts.summarizePartUser(words: maxWords, part: 9999, of: 9999, text: "")).count,
            try dm.chat(system: system, user: DocumentPrompts.combineUser(words: maxWords, summaries: "")).count
        ) + 8
        let partTokens = dm.contextLength - overhead - request.maxTokens
        guard partTokens >= 32 else {
            throw UsageError("the context (\(dm.contextLength) tokens) leaves no room for document text after the prompt (\(overhead)) and the summary (\(request.maxTokens)); raise --ctx or lower --max-words")
        }

        func generate(_ user: String) throws -> (text: String, cut: Bool) {
            let prompt = try dm.chat(system: system, user: user)
            let r = try dm.session.generate(prompt: prompt, request)
            var text = r.text.trimmingCharacters(in: .whitespacesAndNewlines)
            var cut = false
            if r.finishReason == .length {
                // Stopped by the token cap mid-sentence: keep the whole sentences.
                if let whole = Words.lastWholeSentences(text), Words.count(whole) * 2 >= Words.count(text) { text = whole }
                cut = true
            }
            return (text, cut)
        }
        func fits(_ user: String) throws -> Bool {
            try dm.chat(system: system, user: user).count + request.maxTokens <= dm.contextLength
        }

        return batch.run { doc, detail in
            var chunks = 1
            var final: (text: String, cut: Bool)
            if try fits(DocumentPrompts.summarizeUser(words: maxWords, document: doc.text)) {
                final = try generate(DocumentPrompts.summarizeUser(words: maxWords, document: doc.text))
            } else {
                var pieces = TextChunker.chunks(doc.text, maxTokens: partTokens, count: dm.tokenCount)
                chunks = pieces.count
                var previous = dm.tokenCount(doc.text)
                var level = 1
                while true {
                    var summaries: [String] = []
                    for (k, piece) in pieces.enumerated() {
                        detail(level == 1 ? "part \(k + 1)/\(pieces.count)" : "round \(level), part \(k + 1)/\(pieces.count)")
                        let s = try generate(DocumentPrompts.summarizePartUser(words: maxWords, part: k + 1, of: pieces.count, text: piece))
                        if !s.text.isEmpty { summaries.append(s.text) }
                    }
                    guard !summaries.isEmpty else { throw DocumentError("the model returned only empty summaries of the parts") }
                    let joined = summaries.joined(separator: "\n\n")
                    if try fits(DocumentPrompts.combineUser(words: maxWords, summaries: joined)) {
                        detail("combining \(summaries.count) summaries")
                        final = try generate(DocumentPrompts.combineUser(words: maxWords, summaries: joined))
                        break
                    }
                    let now = dm.tokenCount(joined)
                    guard now < previous, level < Self.maxLevels else {
                        throw DocumentError("the part summaries (\(now) tokens) do not get shorter than the text they summarise; raise --ctx or lower --max-words")
                    }
                    previous = now
                    level += 1
                    pieces = TextChunker.chunks(joined, maxTokens: partTokens, count: dm.tokenCount)
                }
            }
            var summary = final.text
            var truncated = final.cut
            if Words.count(summary) > maxWords {
                summary = Words.truncate(summary, max: maxWords)
                truncated = true
            }
            guard !summary.isEmpty else { throw DocumentError("the model returned an empty summary") }
            if truncated {
                console.err("steward summarize: \(doc.source): note: the summary was cut to stay within --max-words \(maxWords)\(final.cut ? " / --max-tokens \(request.maxTokens)" : "")\n")
            }
            let words = Words.count(summary)
            return [
                OrderedJSON.Member("summary", .string(summary)),
                OrderedJSON.Member("words", .number(Double(words), String(words))),
                OrderedJSON.Member("chunks", .number(Double(chunks), String(chunks))),
                OrderedJSON.Member("truncated", .bool(truncated)),
            ]
        }
    }
}
