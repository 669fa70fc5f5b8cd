import Foundation
import Governance
import Server

/// `steward bench-governance`: what the governance path adds to one request, measured through
/// API.handle in process (no sockets, no model): the same requests with and without it.
/// Today that path is the audit record + usage update; auth and moderation join it when merged
/// (add their setup in `GovernanceBench.configure`).
struct BenchGovernanceCommand: Command {
    let spec = CommandSpec(
        name: "bench-governance",
        summary: "Measure the per-request cost of the governance path (audit + usage; auth and moderation when enabled).",
        usage: "steward bench-governance [--requests N] [--prompts none|hash|full]",
        options: [
            .value("--requests", valueName: "N", help: "Requests per measurement (default 3000)."),
            .value("--prompts", valueName: "MODE", help: "Audit prompt logging for the run: none (default), hash or full."),
        ],
        discussion: "Uses a temporary database; the target is under 1 ms per request."
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard a.positionals.isEmpty else { throw UsageError("unexpected argument '\(a.positionals[0])'") }
        let n = try a.int("--requests") ?? 3000
        guard n >= 10 else { throw UsageError("--requests must be ≥ 10") }
        let modeName = a.value("--prompts") ?? "none"
        guard let mode = PromptLogging(rawValue: modeName), mode != .redacted else { throw UsageError("--prompts is none, hash or full") }
        let results = try GovernanceBench.run(requests: n, prompts: mode)
        for r in results {
            console.out(String(format: "%-34@ without: %7.1f µs   with governance: %7.1f µs   overhead: %7.1f µs per request (p99 %.1f µs)\n",
                               r.name as NSString, r.baseline, r.governed, r.governed - r.baseline, r.governedP99))
        }
        let worst = results.map { $0.governed - $0.baseline }.max() ?? 0
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
    }

    /// The governance pieces on an API (today: the audit log with usage). The lead adds auth
    /// (a key store with one key, the request carrying its bearer token) and moderation here.
    public static func configure(_ api: API, storagePath: String, prompts: PromptLogging) throws {
        let storage = try SQLiteStorage(path: storagePath)
        let log = try AuditLog(storage: storage, policy: AuditPolicy(prompts: prompts), usage: try UsageLedger(storage: storage))
        try log.startBackgroundCheckpoints()
        api.audit = log
    }

    /// Requests a typical client sends, answerable without a model: the model list, and a chat
    /// completion for a model that is not served (decoded, routed, refused: the handler's own
    /// work stays small so the governance cost shows).
    static func requests() -> [(String, () -> HTTPRequest)] {
        let chat = #"{"model":"bench-model","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarize the attached quarterly report in three bullet points for the leadership team."}],"max_tokens":128,"temperature":0.7}"#
        return [
            ("GET /v1/models", { HTTPRequest(method: "GET", path: "/v1/models", headers: ["Authorization": "Bearer bench"]) }),
            ("POST /v1/chat/completions (404)", { HTTPRequest(method: "POST", path: "/v1/chat/completions",
                                                              headers: ["Content-Type": "application/json", "Authorization": "Bearer bench"],
                                                              body: Data(chat.utf8)) }),
        ]
    }

    public static func run(requests n: Int, prompts: PromptLogging) throws -> [Result] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("steward-gov-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = ModelRegistry()
        registry.markReady()
        let plain = API(models: registry, version: "bench")
        let governed = API(models: registry, version: "bench")
        try configure(governed, storagePath: dir + "/steward.db", prompts: prompts)
        var out: [Result] = []
        for (name, make) in requests() {
            func measure(_ api: API) -> (mean: Double, p99: Double) {
                for _ in 0..<min(200, n) { _ = api.handle(make()).collectBody() }
                var samples: [Double] = []
                samples.reserveCapacity(n)
                for _ in 0..<n {
                    let r = make()
                    let s = DispatchTime.now().uptimeNanoseconds
                    _ = api.handle(r)
                    samples.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1000)
                }
                let mean = samples.reduce(0, +) / Double(n)
                samples.sort()
                return (mean, samples[min(n - 1, n * 99 / 100)])
            }
            let b = measure(plain)
            let g = measure(governed)
            out.append(Result(name: name, baseline: b.mean, governed: g.mean, governedP99: g.p99))
        }
        governed.audit?.stopBackgroundCheckpoints()
        return out
    }
}
