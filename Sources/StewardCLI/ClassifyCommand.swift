import Documents
import Foundation
import Generation
import Models

/// `steward classify`: one label per document from a fixed set, with its probability.
///
/// Every label is scored exactly: log P(label tokens, end of turn | prompt) from the model,
/// then the scores are normalised over the set (a softmax). The answer is the most probable
/// label, so it is always one of the set (the same constraint a grammar alternation
/// `root ::= "a" | "b" | "c"` gives, but over whole labels rather than committing greedily to
/// the first token; the end-of-turn token tells "sport" from "sports").
struct ClassifyCommand: Command {
    let spec = CommandSpec(
        name: "classify",
        summary: "Label each document with one of a fixed set of labels, with probabilities (JSON lines).",
        usage: "steward classify --model MODEL --labels a,b,c [--out FILE.jsonl [--resume]] [options] PATH...",
        options: [
            .value("--labels", "-l", valueName: "A,B,...", help: "The labels, comma-separated (at least two)."),
        ] + DocumentOptions.specs + DocumentOptions.computeSpecs,
        discussion: """
            Each line is {"source", "label", "probability", "scores": {label: probability}, "logprobs": {label: log P}}:
            every label's full token sequence is scored by the model and the probabilities are
            normalised over the labels (they sum to 1). A document too long for the context is
            refused, never cut. There are no sampling options: labels are scored, not sampled.
            """ + "\n\n" + DocumentOptions.discussion.replacingOccurrences(of: "\nDecoding is greedy (--temperature 0) unless --temperature is given.", with: "")
    )

    static func parseLabels(_ s: String) throws -> [String] {
        let labels = s.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        if labels.contains(where: \.isEmpty) { throw UsageError("--labels has an empty label in '\(s)'") }
        guard labels.count >= 2 else { throw UsageError("--labels needs at least two labels, comma-separated") }
        guard Set(labels).count == labels.count else { throw UsageError("--labels lists a label twice: '\(s)'") }
        return labels
    }

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        _ = try a.require("--model")
        let labels = try Self.parseLabels(try a.require("--labels"))
        let batch = try DocumentRun(command: spec.name, a, console: console)
        if batch.pending.isEmpty { return batch.run { _, _ in [] } }
        let dm = try DocumentModel.load(a)
        let tok = dm.lm.tokenizer
        // The token that ends the assistant's turn (<|im_end|>, <end_of_turn>, …): part of each
        // label's sequence. Without one, labels are scored on their own tokens.
        let endOfTurn = tok.eotID ?? tok.eosID
        let labelTokens = labels.map { tok.encode($0, addBOS: false, parseSpecial: false) }
        if let i = labelTokens.firstIndex(where: \.isEmpty) { throw UsageError("label '\(labels[i])' has no tokens") }
        let longest = labelTokens.map(\.count).max() ?? 0
        let model = dm.lm.model
        let cache = model.makeCache(capacity: dm.contextLength)
        let vocab = model.config.vocabSize
        return batch.run { doc, _ in
            let prompt = try dm.chat(system: DocumentPrompts.classifySystem,
                                     user: DocumentPrompts.classifyUser(labels: labels, document: doc.text))
            if prompt.count + longest > dm.contextLength {
                throw dm.tooLong(promptTokens: prompt.count, outputTokens: longest,
                                 what: "classify does not cut documents (a label for part of a document is not a label for the document).")
            }
            cache.reset()
            let last = try model.forward(tokens: prompt, cache: cache)
            var logprobs: [Double] = []
            for seq in labelTokens {
                // The first label token is scored by the prompt's last logits; each next token
                // (and the end of turn) by the logits after the label tokens before it.
                cache.truncate(to: prompt.count)
                var lp = Self.logSoftmax(last[...], at: Int(seq[0]))
                let rows = try model.forward(tokens: seq, cache: cache, allLogits: true)
                let targets = Array(seq.dropFirst()) + (endOfTurn.map { [$0] } ?? [])
                for (i, t) in targets.enumerated() {
                    lp += Self.logSoftmax(rows[(i * vocab)..<((i + 1) * vocab)], at: Int(t))
                }
                guard lp.isFinite else { throw DocumentError("the model gave a non-finite score to a label") }
                logprobs.append(lp)
            }
            let top = logprobs.max() ?? 0
            let weights = logprobs.map { Foundation.exp($0 - top) }
            let sum = weights.reduce(0, +)
            let probs = weights.map { $0 / sum }
            let best = probs.indices.max(by: { probs[$0] < probs[$1] }) ?? 0
            func number(_ x: Double) -> OrderedJSON { .number(x, String(format: "%.6g", x)) }
            return [
                OrderedJSON.Member("label", .string(labels[best])),
                OrderedJSON.Member("probability", number(probs[best])),
                OrderedJSON.Member("scores", .object(labels.indices.map { OrderedJSON.Member(labels[$0], number(probs[$0])) })),
                OrderedJSON.Member("logprobs", .object(labels.indices.map { OrderedJSON.Member(labels[$0], number(logprobs[$0])) })),
            ]
        }
    }

    /// log softmax(row)[target], in double precision.
    static func logSoftmax(_ row: ArraySlice<Float>, at target: Int) -> Double {
        var mx = -Float.infinity
        for v in row where v > mx { mx = v }
        var sum: Double = 0
        for v in row { sum += Foundation.exp(Double(v - mx)) }
        return Double(row[row.startIndex + target] - mx) - Foundation.log(sum)
    }
}
