import Foundation
import Governance
import Moderation
import Server

/// `steward bench-governance`: what the governance path (auth + moderation + audit) adds to one
/// request, measured in process (no sockets, no model).
///
/// Two measurements:
/// 1. A typical chat request's governance path, piece by piece, with everything on: the same
///    public calls the server makes, in the server's order, on the same request object —
///    `AccessGate.admit` (key lookup, scope, model allow-list, rpm), input moderation of every
///    message (what `ModerationRun.checkInput` does), output moderation of a whole answer (what
///    `checkOutput` does for a non-streamed answer) and `AuditLog.recordRequest` (record + usage,
///    one SQLite transaction). The model call is left out on purpose: a chat route cannot reach
///    moderation without a loaded model, and generation would dwarf the rest. JSON decoding of
///    the body is left out too: the handler does it with governance off as well.
/// 2. Whole requests through `API.handle` with governance on and off, for routes that need no
///    model (the model list; a chat completion for a model that is not served, which auth admits
///    and the router refuses, so moderation is not reached there).
struct BenchGovernanceCommand: Command {
    let spec = CommandSpec(
        name: "bench-governance",
        summary: "Measure the per-request cost of the governance path (auth + moderation + audit).",
        usage: "steward bench-governance [--requests N] [--prompts none|hash|full] [--policy off|standard|strict]",
        options: [
            .value("--requests", valueName: "N", help: "Requests per measurement (default 3000)."),
            .value("--prompts", valueName: "MODE", help: "Audit prompt logging for the run: none (default), hash or full."),
            .value("--policy", valueName: "NAME", help: "Moderation preset for the run: standard (default), strict or off."),
        ],
        discussion: "Uses a temporary database; the target is under 1 ms per request. Times are µs."
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard a.positionals.isEmpty else { throw UsageError("unexpected argument '\(a.positionals[0])'") }
        let n = try a.int("--requests") ?? 3000
        guard n >= 10 else { throw UsageError("--requests must be ≥ 10") }
        let modeName = a.value("--prompts") ?? "none"
        guard let mode = PromptLogging(rawValue: modeName), mode != .redacted else { throw UsageError("--prompts is none, hash or full") }
        let policy = a.value("--policy") ?? "standard"
        guard ModerationPolicy.presets[policy] != nil else { throw UsageError("--policy is off, standard or strict") }

        let chat = try GovernanceBench.runChatPath(requests: n, prompts: mode, moderation: policy)
        console.out("Chat request governance path, everything on (\(chat.bodyBytes)-byte body, \(chat.answerChars)-char answer, "
                    + "moderation \(policy), audit prompts \(mode.rawValue)), \(n) requests, µs:\n")
        console.out("  piece                                   median      p99     mean\n")
        for p in chat.pieces + [chat.total] {
            console.out("  " + p.name.padding(toLength: 38, withPad: " ", startingAt: 0) + String(format: " %7.1f  %7.1f  %7.1f\n", p.median, p.p99, p.mean))
        }
        console.out(String(format: "  everything off: %.2f µs (no gate, no moderation service, no audit log: the nil checks the server makes)\n", chat.off.median))

        let results = try GovernanceBench.run(requests: n, prompts: mode, moderation: policy)
        console.out("Whole requests through API.handle, governance off → on (auth + moderation + audit), µs:\n")
        for r in results {
            console.out("  " + r.name.padding(toLength: 32, withPad: " ", startingAt: 0) + String(format: " off: mean %7.1f median %7.1f   on: mean %7.1f median %7.1f p99 %7.1f   overhead: %7.1f (mean)\n",
                               r.baseline, r.baselineMedian, r.governed, r.governedMedian, r.governedP99, r.governed - r.baseline))
        }
        let worst = max(chat.total.mean, results.map { $0.governed - $0.baseline }.max() ?? 0)
        console.out(String(format: "governance overhead: %.1f µs per request (target < 1000 µs): %@\n", worst, worst < 1000 ? "OK" : "OVER TARGET"))
        return ExitCode.ok
    }
}

public enum GovernanceBench {
    public struct Result: Sendable {
        public var name: String
        /// Mean µs per request through API.handle.
        public var baseline: Double
        public var governed: Double
        public var governedP99: Double
        public var baselineMedian: Double
        public var governedMedian: Double
    }

    /// Median, 99th percentile and mean of one piece, in µs.
    public struct Stats: Sendable {
        public var name: String
        public var median: Double
        public var p99: Double
        public var mean: Double

        init(_ name: String, _ samples: [Double]) {
            self.name = name
            let s = samples.sorted()
            median = s.isEmpty ? 0 : s[s.count / 2]
            p99 = s.isEmpty ? 0 : s[min(s.count - 1, s.count * 99 / 100)]
            mean = s.isEmpty ? 0 : s.reduce(0, +) / Double(s.count)
        }
    }

    public struct ChatPath: Sendable {
        public var bodyBytes: Int
        public var answerChars: Int
        /// auth, moderation input, moderation output, audit — in the server's order.
        public var pieces: [Stats]
        /// The sum per request (the distribution of totals, not the sum of medians).
        public var total: Stats
        /// The same sequence with every piece switched off.
        public var off: Stats
    }

    /// A typical chat request (~1.5 KB): a system prompt and a user message of prose with a few
    /// personal details, as clients send it.
    public static let chatMessages: [(role: String, content: String)] = [
        ("system", "You are a helpful assistant for the operations team. Answer concisely, in plain English, and say when you are unsure."),
        ("user", {
            let para = "Hi, I am preparing the quarterly report for the operations team and need help restructuring it. "
                + "The draft has sections on incident response, capacity planning and the migration to the new cluster; "
                + "please suggest a clearer order and point out anything that reads as jargon. "
            return String(repeating: para, count: 4) + "You can reach me at jane.doe@example.com or +44 20 7946 0958 if needed. Please keep the tone neutral, avoid marketing language, and keep every section under one page. Thanks!"
        }()),
    ]

    /// A ~500-character answer with one e-mail address (so output moderation has something to redact).
    public static let answer = "Here is a clearer order for the report. 1. Start with a one-paragraph summary of the quarter. "
        + "2. Follow with incident response: the two outages, their causes and what changed. 3. Then capacity planning, "
        + "with the forecast table moved to an appendix. 4. End with the cluster migration: status, risks and next steps. "
        + "Replace 'blast radius' with 'impact' and 'toil' with 'manual work'. If the leadership team has questions, "
        + "they can write to ops-reports@example.com. Want me to draft the summary paragraph?"

    public static func chatBody(model: String = "bench-model") throws -> Data {
        let obj: [String: Any] = ["model": model, "messages": chatMessages.map { ["role": $0.role, "content": $0.content] },
                                  "max_tokens": 256, "temperature": 0.7]
        return try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
    }

    /// Everything on, as `steward serve` sets it up: a key store holding the caller's key (chat
    /// scope, a model allow-list and an rpm limit high enough never to refuse, so every check
    /// runs), the access gate, the moderation service with `moderation` as default, and the
    /// audit log with usage. Returns the bearer key.
    @discardableResult
    public static func configure(_ api: API, storagePath: String, prompts: PromptLogging, moderation: String = "standard") throws -> String {
        let storage = try SQLiteStorage(path: storagePath)
        let keys = try KeyStore(storage: storage)
        var k = NewKey(name: "bench-\(UUID().uuidString.prefix(8))")
        k.scopes = [.chat, .completions]
        k.models = ["bench-model"]
        k.rpm = 100_000_000
        let key = try keys.create(k).key
        api.access = AccessGate(keys: keys, limiter: try RateLimiter(storage: storage))
        api.moderation = ModerationService(config: .presets(default: moderation))
        let log = try AuditLog(storage: storage, policy: AuditPolicy(prompts: prompts), usage: try UsageLedger(storage: storage))
        try log.startBackgroundCheckpoints()
        api.audit = log
        return key
    }

    /// Requests a typical client sends, answerable without a model: the model list, and a chat
    /// completion for a model that is not served (decoded, routed, refused: the handler's own
    /// work stays small so the governance cost shows).
    static func requests(key: String) throws -> [(String, () -> HTTPRequest)] {
        let body = try chatBody()
        return [
            ("GET /v1/models", { HTTPRequest(method: "GET", path: "/v1/models", headers: ["Authorization": "Bearer \(key)"]) }),
            ("POST /v1/chat/completions (404)", { HTTPRequest(method: "POST", path: "/v1/chat/completions",
                                                              headers: ["Content-Type": "application/json", "Authorization": "Bearer \(key)"],
                                                              body: body) }),
        ]
    }

    static func temporaryDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("steward-gov-bench-\(UUID().uuidString)").path
    }

    static func micros(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 }

    /// Whole requests through API.handle, governance off and on.
    public static func run(requests n: Int, prompts: PromptLogging, moderation: String = "standard") throws -> [Result] {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = ModelRegistry()
        registry.markReady()
        let plain = API(models: registry, version: "bench")
        let governed = API(models: registry, version: "bench")
        let key = try configure(governed, storagePath: dir + "/steward.db", prompts: prompts, moderation: moderation)
        defer { governed.audit?.stopBackgroundCheckpoints() }
        var out: [Result] = []
        for (name, make) in try requests(key: key) {
            func measure(_ api: API) -> Stats {
                for _ in 0..<min(200, n) { _ = api.handle(make()).collectBody() }
                var samples: [Double] = []
                samples.reserveCapacity(n)
                for _ in 0..<n {
                    let r = make()
                    let s = DispatchTime.now().uptimeNanoseconds
                    _ = api.handle(r)
                    samples.append(micros(since: s))
                }
                return Stats(name, samples)
            }
            let b = measure(plain)
            let g = measure(governed)
            out.append(Result(name: name, baseline: b.mean, governed: g.mean, governedP99: g.p99, baselineMedian: b.median, governedMedian: g.median))
        }
        return out
    }

    /// The chat request's governance path, piece by piece (see the command's discussion).
    public static func runChatPath(requests n: Int, prompts: PromptLogging, moderation: String = "standard") throws -> ChatPath {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let api = API(models: ModelRegistry(), version: "bench")
        let key = try configure(api, storagePath: dir + "/steward.db", prompts: prompts, moderation: moderation)
        guard let gate = api.access, let service = api.moderation, let log = api.audit else {
            throw UsageError("bench setup did not install the governance pieces")
        }
        defer { log.stopBackgroundCheckpoints() }
        let body = try chatBody()
        let texts = chatMessages.map(\.content)
        let promptText = chatMessages.map { "\($0.role): \($0.content)" }.joined(separator: "\n")
        let headers = ["Content-Type": "application/json", "Authorization": "Bearer \(key)"]

        var auth: [Double] = [], input: [Double] = [], output: [Double] = [], audit: [Double] = [], total: [Double] = [], off: [Double] = []
        auth.reserveCapacity(n); input.reserveCapacity(n); output.reserveCapacity(n); audit.reserveCapacity(n); total.reserveCapacity(n)

        func one(record: Bool) throws {
            let r = HTTPRequest(method: "POST", path: "/v1/chat/completions", headers: headers, body: body)
            let c = r.context
            if log.policy.prompts != .none { c.captureText = true }
            var t = DispatchTime.now().uptimeNanoseconds
            let (refusal, _) = gate.admit(r)
            let tAuth = micros(since: t)
            guard refusal == nil else { throw UsageError("the bench key was refused (status \(refusal?.status ?? 0))") }

            t = DispatchTime.now().uptimeNanoseconds
            let m = try service.moderators(forKey: c.keyID)
            var checked: [String] = []
            for text in texts {
                let res = m.input.moderate(text)
                for f in res.findings { c.addModeration(f.verdict(.input)) }
                if res.blocked { throw UsageError("the bench input was blocked by \(moderation)") }
                checked.append(res.text)
            }
            let tIn = micros(since: t)
            c.model = "bench-model"
            c.capturePrompt(promptText)

            // (the model would run here)

            t = DispatchTime.now().uptimeNanoseconds
            let res = m.output.moderate(answer)
            for f in res.findings { c.addModeration(f.verdict(.output)) }
            let tOut = micros(since: t)
            c.captureCompletion(res.text)
            c.addTokens(prompt: 380, completion: 110)

            t = DispatchTime.now().uptimeNanoseconds
            try log.recordRequest(AuditRequestInfo(requestID: c.id, keyID: c.keyID, route: r.path, method: r.method, model: c.model,
                                                   adapter: c.adapter, status: 200, tokensIn: c.promptTokens, tokensOut: c.completionTokens,
                                                   latencySeconds: Date().timeIntervalSince(c.started), moderation: c.moderation,
                                                   overrides: c.overrides, prompt: c.prompt, completion: c.completion, error: c.error))
            let tAudit = micros(since: t)
            guard record else { return }
            auth.append(tAuth); input.append(tIn); output.append(tOut); audit.append(tAudit)
            total.append(tAuth + tIn + tOut + tAudit)
        }
        for _ in 0..<min(200, n) { try one(record: false) }
        for _ in 0..<n { try one(record: true) }

        // Everything off: what the server does instead — the same nil checks on optionals.
        let noGate: AccessGate? = nil, noService: ModerationService? = nil, noLog: AuditLog? = nil
        for _ in 0..<n {
            let r = HTTPRequest(method: "POST", path: "/v1/chat/completions", headers: headers, body: body)
            let t = DispatchTime.now().uptimeNanoseconds
            if let g = noGate { _ = g.admit(r) }
            if let s = noService { _ = try s.moderators(forKey: nil) }
            if let l = noLog { _ = l.policy }
            off.append(micros(since: t))
        }
        return ChatPath(bodyBytes: body.count, answerChars: answer.count,
                        pieces: [Stats("auth (AccessGate.admit)", auth), Stats("moderation, input (\(texts.count) messages)", input),
                                 Stats("moderation, output (whole answer)", output), Stats("audit record + usage", audit)],
                        total: Stats("total", total), off: Stats("off", off))
    }
}
