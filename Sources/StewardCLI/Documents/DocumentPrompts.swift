/// The prompts the document commands send (system and user messages, rendered with the
/// model's chat template). Kept together so they can be read and tuned in one place.
enum DocumentPrompts {
    static let extractSystem =
        "You extract information from documents. Reply with one JSON object that follows the JSON schema you are given. Use only facts stated in the document."

    static func extractUser(schema: String, document: String) -> String {
        "JSON schema:\n\(schema)\n\nDocument:\n\"\"\"\n\(document)\n\"\"\"\n\nReply with the JSON object for this document."
    }

    static let classifySystem = "You classify documents. Answer with one label from the list and nothing else."

    static func classifyUser(labels: [String], document: String) -> String {
        "Labels: \(labels.joined(separator: ", "))\n\nDocument:\n\"\"\"\n\(document)\n\"\"\"\n\nWhich label fits this document best? Answer with the label only."
    }

    static let summarizeSystem = "You write short, faithful summaries. Keep names, numbers and conclusions; add nothing that is not in the text."

    /// A document that fits in one prompt.
    static func summarizeUser(words: Int, document: String) -> String {
        "Summarize the following document in at most \(words) words.\n\nDocument:\n\"\"\"\n\(document)\n\"\"\""
    }

    /// One part of a long document (the map step).
    static func summarizePartUser(words: Int, part: Int, of parts: Int, text: String) -> String {
        "This is part \(part) of \(parts) of a long document. Summarize this part in at most \(words) words.\n\nPart \(part):\n\"\"\"\n\(text)\n\"\"\""
    }

    /// The summaries of consecutive parts, combined into one (the reduce step).
    static func combineUser(words: Int, summaries: String) -> String {
        "Below are summaries of consecutive parts of one document. Combine them into one summary of the whole document in at most \(words) words.\n\nSummaries:\n\"\"\"\n\(summaries)\n\"\"\""
    }
}
