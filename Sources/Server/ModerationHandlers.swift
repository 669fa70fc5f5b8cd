import Foundation
import Generation
import Moderation

/// Moderation on the generation routes: the request's policy (per key, else the default) is
/// applied to the input texts before the prompt is built and to the output, streamed or not.
/// Verdicts go to `request.context` for the audit log.
struct ModerationRun {
    let input: Moderator
    let output: Moderator
    let context: RequestContext
    let flavor: APIFlavor

    /// Moderates input texts: returns them redacted, or throws 400 content_blocked naming the
    /// detector or rule (never the matched text).
    func checkInput(_ texts: [String], tokenCounter: ((String) -> Int)? = nil) throws -> [String] {
        guard !input.isEmpty else { return texts }
        var out: [String] = []
        for text in texts {
            let r = input.moderate(text, tokenCounter: tokenCounter)
            for f in r.findings { context.addModeration(f.verdict(.input)) }
            if let b = r.blockingFinding {
                throw APIError(status: 400,
                               message: "the input was blocked by the moderation policy '\(input.policyName)': it contains \(ModerationRun.describe(b)) (\(b.label)); remove it and retry",
                               type: "invalid_request_error", param: nil, code: "content_blocked")
            }
            out.append(r.text)
        }
        return out
    }

    /// Moderates a whole output: the text to send and whether it was blocked.
    func checkOutput(_ text: String) -> (text: String, blocked: Bool, redacted: Bool) {
        guard !output.isEmpty else { return (text, false, false) }
        let r = output.moderate(text)
        for f in r.findings { context.addModeration(f.verdict(.output)) }
        return (r.blocked ? "" : r.text, r.blocked, r.findings.contains { $0.action == .redact })
    }

    /// A stream filter per choice, or nil when the output policy has no rules.
    func streamFilter() -> StreamFilter? { output.isEmpty ? nil : StreamFilter(StreamModerator(moderator: output), context) }

    static func describe(_ f: ModerationFinding) -> String {
        switch f.category {
        case "pii": return "personal data"
        case "secret": return "a secret"
        case "injection": return "a prompt-injection attempt"
        case "length": return "too much text"
        case "classifier": return "content the classifier judged unsafe"
        default: return "text a policy rule forbids"
        }
    }
}

/// A StreamModerator behind a lock (engines call onChunk from their own thread), recording
/// verdicts when the stream ends.
final class StreamFilter: @unchecked Sendable {
    private let lock = NSLock()
    private let moderator: StreamModerator
    private let context: RequestContext
    private var recorded = false
    private(set) var blocked = false

    init(_ m: StreamModerator, _ c: RequestContext) { moderator = m; context = c }

    /// Text to send now; nil when the stream must stop (blocked) — `text` is then what may
    /// still be sent before the final event.
    func feed(_ chunk: String) -> (text: String, stop: Bool) {
        lock.lock(); defer { lock.unlock() }
        return map(moderator.feed(chunk))
    }

    func finish() -> (text: String, stop: Bool) {
        lock.lock(); defer { lock.unlock() }
        let r = map(moderator.finish())
        record()
        return r
    }

    private func map(_ s: StreamModerator.Step) -> (text: String, stop: Bool) {
        switch s {
        case let .emit(t): return (t, false)
        case let .blocked(t, _):
            blocked = true
            record()
            return (t, true)
        }
    }

    private func record() {
        guard !recorded else { return }
        recorded = true
        for f in moderator.findings { context.addModeration(f.verdict(.output)) }
    }
}

extension API {
    /// The moderation for a request, or nil when moderation is off.
    func moderationRun(_ r: HTTPRequest, flavor: APIFlavor) throws -> ModerationRun? {
        guard let service = moderation else { return nil }
        let m: (input: Moderator, output: Moderator)
        do { m = try service.moderators(forKey: r.context.keyID) } catch {
            throw APIError(status: 500, message: "\(error)", type: "server_error", code: "moderation_policy")
        }
        if m.input.isEmpty && m.output.isEmpty { return nil }
        return ModerationRun(input: m.input, output: m.output, context: r.context, flavor: flavor)
    }

    // MARK: POST /v1/moderations

    /// OpenAI's moderation endpoint: categories and scores per input, plus a "steward" object
    /// with the policy's findings (spans in Unicode scalars), actions and the redacted text.
    /// Extensions in the body: "policy" (a policy name) and "direction" ("input"/"output").
    func moderations(_ r: HTTPRequest) throws -> HTTPResponse {
        guard !r.body.isEmpty, let body = try? JSONSerialization.jsonObject(with: r.body) as? [String: Any] else {
            throw APIError.invalid("the request body is not a JSON object", param: nil, code: "invalid_json")
        }
        for k in body.keys where !["input", "model", "policy", "direction"].contains(k) {
            throw APIError.invalid("unknown parameter '\(k)' (accepted: input, model, policy, direction)", param: k, code: "unknown_parameter")
        }
        var texts: [String] = []
        switch body["input"] {
        case let s as String: texts = [s]
        case let list as [Any]:
            for (i, item) in list.enumerated() {
                if let s = item as? String { texts.append(s); continue }
                if let o = item as? [String: Any], o["type"] as? String == "text", let t = o["text"] as? String { texts.append(t); continue }
                throw APIError.invalid("'input[\(i)]' must be a string or a {\"type\": \"text\", \"text\": …} part (images are not supported)",
                                       param: "input[\(i)]", code: "invalid_value")
            }
        case nil: throw APIError.missing("input")
        default: throw APIError.invalid("'input' must be a string or an array of strings", param: "input", code: "invalid_type")
        }
        guard !texts.isEmpty else { throw APIError.invalid("'input' must hold at least one text", param: "input", code: "invalid_value") }
        let direction: ModerationDirection
        if let d = body["direction"] {
            guard let ds = d as? String, let dir = ModerationDirection(rawValue: ds) else {
                throw APIError.invalid("'direction' must be 'input' or 'output'", param: "direction", code: "invalid_value")
            }
            direction = dir
        } else { direction = .input }
        let service = moderation ?? API.presetService
        let pair: (input: Moderator, output: Moderator)
        do {
            if let name = body["policy"] {
                guard let n = name as? String else { throw APIError.invalid("'policy' must be a policy name", param: "policy", code: "invalid_type") }
                pair = try service.moderators(named: n)
            } else {
                pair = try service.moderators(forKey: r.context.keyID)
            }
        } catch let e as ModerationPolicyError {
            throw APIError.invalid(e.message, param: "policy", code: "policy_not_found")
        }
        let m = direction == .input ? pair.input : pair.output
        let results = texts.map { API.moderationResult(m.moderate($0), policy: m.policyName, direction: direction) }
        let out: [String: Any] = ["id": API.randomID("modr-"), "model": "steward-moderation/\(m.policyName)", "results": results]
        let data = (try? JSONSerialization.data(withJSONObject: out, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: .bytes(data))
    }

    static let presetService = ModerationService(config: .presets())

    /// OpenAI's category names (all present, as clients expect) plus Steward's own.
    static let openAICategories = ["harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
                                   "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
                                   "violence/graphic"]

    static func moderationResult(_ r: ModerationResult, policy: String, direction: ModerationDirection) -> [String: Any] {
        var categories: [String: Bool] = [:]
        var scores: [String: Double] = [:]
        for c in openAICategories + ["pii", "secrets", "prompt_injection", "policy_rules"] { categories[c] = false; scores[c] = 0 }
        for f in r.findings {
            let key: String
            switch f.category {
            case "pii": key = "pii"
            case "secret": key = "secrets"
            case "injection": key = "prompt_injection"
            case "classifier":
                let c = String(f.detector.dropFirst("classifier.".count))
                key = openAICategories.contains(c) ? c : "policy_rules"
            default: key = "policy_rules"
            }
            categories[key] = true
            scores[key] = max(scores[key] ?? 0, f.score)
        }
        let findings: [[String: Any]] = r.findings.map { f in
            var o: [String: Any] = ["detector": f.detector, "category": f.category, "start": f.start, "end": f.end,
                                    "score": f.score, "action": f.action.rawValue]
            if let rule = f.rule { o["rule"] = rule }
            return o
        }
        return ["flagged": !r.findings.isEmpty, "categories": categories, "category_scores": scores,
                "steward": ["policy": policy, "direction": direction.rawValue, "action": r.action.rawValue,
                            "text": r.blocked ? NSNull() : r.text as Any, "findings": findings] as [String: Any]]
    }
}

/// The model-based classifier: a guard prompt run greedily on a served model, answer parsed
/// as "safe" or "unsafe <category>". Small models are unreliable judges (see
/// docs/governance.md); use it to flag, not as the only block.
public final class GuardPromptClassifier: ModerationClassifier, @unchecked Sendable {
    public let model: ServedModel
    public let maxTokens: Int
    public static let categories = ["violence", "sexual", "hate", "harassment", "self-harm", "illicit"]

    public init(model: ServedModel, maxTokens: Int = 12) { self.model = model; self.maxTokens = maxTokens }

    public static let instruction = """
    You are a content safety classifier. Read the user's text and answer with one line: \
    "safe" if it is harmless, or "unsafe: <category>" where category is one of \
    violence, sexual, hate, harassment, self-harm, illicit. Answer with nothing else.
    """

    /// The raw answer the model gives (for tests and the report).
    public func answer(_ text: String) throws -> String {
        let messages: [(role: String, content: String)] = [("system", GuardPromptClassifier.instruction),
                                                           ("user", "Text to classify:\n\"\"\"\n\(text)\n\"\"\"")]
        guard let t = model.chatTemplate else { throw ServeError("the classifier model \(model.id) has no chat template") }
        let prompt = try ChatPrompt.encode(t, tokenizer: model.tokenizer, messages: messages)
        var req = GenerationRequest()
        req.sampling = .greedy
        req.maxTokens = min(maxTokens, max(0, model.contextLength - prompt.count))
        return try model.engine.generate(prompt: prompt, req, onChunk: { _ in true }).text
    }

    public func classify(_ text: String) throws -> [ClassifierScore] {
        GuardPromptClassifier.parse(try answer(text))
    }

    /// "unsafe: violence" → [violence: 1]; "unsafe" → [unsafe: 1]; "safe…" → []; anything
    /// else → [unparsed: 0] (below any threshold: an unreadable answer does not block).
    public static func parse(_ answer: String) -> [ClassifierScore] {
        let a = answer.lowercased().trimmingCharacters(in: .whitespacesAndNewlines)
        if a.range(of: "unsafe") != nil {
            let cat = categories.first { a.contains($0) } ?? "unsafe"
            return [ClassifierScore(category: cat, score: 1)]
        }
        if a.hasPrefix("safe") || a.range(of: "\\bsafe\\b", options: .regularExpression) != nil { return [] }
        return [ClassifierScore(category: "unparsed", score: 0)]
    }
}
