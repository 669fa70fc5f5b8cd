import Foundation
import Generation

/// A cumulative histogram in Prometheus's shape: counts per upper bound (`le`), plus the sum
/// and count of all observations.
public struct Histogram: Sendable, Equatable {
    public let bounds: [Double]
    /// Observations ≤ bounds[i] fall in counts[i] (non-cumulative here; rendering accumulates).
    public private(set) var counts: [Int]
    public private(set) var sum: Double = 0
    public private(set) var count: Int = 0

    public init(bounds: [Double]) {
        self.bounds = bounds.sorted()
        counts = Array(repeating: 0, count: bounds.count)
    }

    public mutating func observe(_ v: Double) {
        guard v.isFinite else { return }
        sum += v
        count += 1
        if let i = bounds.firstIndex(where: { v <= $0 }) { counts[i] += 1 }
    }

    /// (le, cumulative count) pairs ending with +Inf, as the exposition lists them.
    public var cumulative: [(le: Double, count: Int)] {
        var running = 0
        var out: [(Double, Int)] = []
        for (b, c) in zip(bounds, counts) { running += c; out.append((b, running)) }
        out.append((.infinity, count))
        return out
    }
}

/// What the server counts for /metrics: requests by route and status, tokens per model, and
/// time to first token and between tokens per model. Gauges (queue, active sequences, KV
/// cache) are read from the engines when scraped, not kept here.
public final class ServerMetrics: @unchecked Sendable {
    /// Time to first token: from the moment a sequence is handed to the engine (so it includes
    /// waiting in the queue and the prompt) to its first generated token.
    public static let firstTokenBounds: [Double] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
    /// Time between successive generated tokens of one sequence.
    public static let perTokenBounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5]

    private let lock = NSLock()
    private var requests: [String: Int] = [:]
    private var requestLabels: [String: (route: String, status: Int)] = [:]
    private var promptTokens: [String: Int] = [:]
    private var completionTokens: [String: Int] = [:]
    private var firstToken: [String: Histogram] = [:]
    private var perToken: [String: Histogram] = [:]

    public init() {}

    func record(route: String, status: Int) {
        let key = "\(route) \(status)"
        lock.lock()
        requests[key, default: 0] += 1
        requestLabels[key] = (route, status)
        lock.unlock()
    }

    func tokens(model: String, prompt: Int, generated: Int) {
        lock.lock()
        promptTokens[model, default: 0] += prompt
        completionTokens[model, default: 0] += generated
        lock.unlock()
    }

    func observeFirstToken(model: String, seconds: Double) {
        lock.lock()
        firstToken[model, default: Histogram(bounds: ServerMetrics.firstTokenBounds)].observe(seconds)
        lock.unlock()
    }

    func observeTokenGap(model: String, seconds: Double) {
        lock.lock()
        perToken[model, default: Histogram(bounds: ServerMetrics.perTokenBounds)].observe(seconds)
        lock.unlock()
    }

    /// Requests so far, keyed "ROUTE STATUS".
    public var requestCounts: [String: Int] { lock.lock(); defer { lock.unlock() }; return requests }
    /// Tokens over all models.
    public var tokenCounts: (prompt: Int, generated: Int) {
        lock.lock(); defer { lock.unlock() }
        return (promptTokens.values.reduce(0, +), completionTokens.values.reduce(0, +))
    }
    public func tokenCounts(model: String) -> (prompt: Int, generated: Int) {
        lock.lock(); defer { lock.unlock() }
        return (promptTokens[model] ?? 0, completionTokens[model] ?? 0)
    }
    public func firstTokenHistogram(model: String) -> Histogram {
        lock.lock(); defer { lock.unlock() }
        return firstToken[model] ?? Histogram(bounds: ServerMetrics.firstTokenBounds)
    }
    public func perTokenHistogram(model: String) -> Histogram {
        lock.lock(); defer { lock.unlock() }
        return perToken[model] ?? Histogram(bounds: ServerMetrics.perTokenBounds)
    }

    /// Wraps a sequence's chunk callback to time its tokens: the first generated token against
    /// `start`, then each next one against the one before. Chunks without a token (text
    /// released at the end) are not tokens.
    func timing(model: String, start: Date, _ body: @escaping @Sendable (GeneratedChunk) -> Bool) -> @Sendable (GeneratedChunk) -> Bool {
        let last = LockedValue<Date?>(nil)
        return { [weak self] chunk in
            if chunk.token != nil, let self {
                let now = Date()
                if let previous = last.get() {
                    self.observeTokenGap(model: model, seconds: now.timeIntervalSince(previous))
                } else {
                    self.observeFirstToken(model: model, seconds: now.timeIntervalSince(start))
                }
                last.set(now)
            }
            return body(chunk)
        }
    }

    // MARK: - Exposition

    /// The Prometheus text exposition (format 0.0.4) of everything counted, with the engines'
    /// gauges read now. Every served model gets its series, zero until it is used.
    public func exposition(models: [ServedModel]) -> String {
        lock.lock()
        let requests = self.requests, labels = requestLabels
        let promptTokens = self.promptTokens, completionTokens = self.completionTokens
        let firstToken = self.firstToken, perToken = self.perToken
        lock.unlock()
        let ids = Array(Set(models.map(\.id)).union(promptTokens.keys).union(firstToken.keys).union(perToken.keys)).sorted()
        var out = Exposition()

        out.family("steward_requests_total", "counter", "HTTP requests answered, by route (the path, or \"unknown\" for no route) and status code.")
        for key in requests.keys.sorted() {
            guard let l = labels[key], let n = requests[key] else { continue }
            out.sample("steward_requests_total", [("route", l.route), ("status", String(l.status))], Double(n))
        }
        out.family("steward_prompt_tokens_total", "counter", "Prompt tokens processed, by model.")
        for id in ids { out.sample("steward_prompt_tokens_total", [("model", id)], Double(promptTokens[id] ?? 0)) }
        out.family("steward_completion_tokens_total", "counter", "Tokens generated, by model.")
        for id in ids { out.sample("steward_completion_tokens_total", [("model", id)], Double(completionTokens[id] ?? 0)) }

        out.family("steward_time_to_first_token_seconds", "histogram",
                   "Seconds from a sequence reaching the engine (queue wait and prompt included) to its first generated token.")
        for id in ids { out.histogram("steward_time_to_first_token_seconds", model: id, firstToken[id] ?? Histogram(bounds: ServerMetrics.firstTokenBounds)) }
        out.family("steward_time_per_output_token_seconds", "histogram", "Seconds between successive generated tokens of a sequence.")
        for id in ids { out.histogram("steward_time_per_output_token_seconds", model: id, perToken[id] ?? Histogram(bounds: ServerMetrics.perTokenBounds)) }

        let status = models.map { ($0.id, $0.engine.status) }
        out.family("steward_queue_depth", "gauge", "Requests waiting for a free sequence slot.")
        for (id, s) in status { out.sample("steward_queue_depth", [("model", id)], Double(s.queued)) }
        out.family("steward_active_sequences", "gauge", "Sequences being processed now.")
        for (id, s) in status { out.sample("steward_active_sequences", [("model", id)], Double(s.active)) }
        out.family("steward_kv_cache_used_tokens", "gauge", "KV cache positions in use over all sequences.")
        for (id, s) in status { out.sample("steward_kv_cache_used_tokens", [("model", id)], Double(s.kvUsed)) }
        out.family("steward_kv_cache_capacity_tokens", "gauge", "KV cache positions the engine holds over all sequence slots.")
        for (id, s) in status { out.sample("steward_kv_cache_capacity_tokens", [("model", id)], Double(s.kvCapacity)) }
        return out.text
    }
}

/// Builds Prometheus text exposition lines (https://prometheus.io/docs/instrumenting/exposition_formats/).
struct Exposition {
    var text = ""

    mutating func family(_ name: String, _ type: String, _ help: String) {
        text += "# HELP \(name) \(Exposition.escapeHelp(help))\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Exposition.escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + Exposition.number(value) + "\n"
    }

    mutating func histogram(_ name: String, model: String, _ h: Histogram) {
        for (le, n) in h.cumulative {
            sample(name + "_bucket", [("model", model), ("le", Exposition.number(le))], Double(n))
        }
        sample(name + "_sum", [("model", model)], h.sum)
        sample(name + "_count", [("model", model)], Double(h.count))
    }

    /// Label values escape backslash, double quote and line feed.
    static func escapeLabel(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// HELP text escapes backslash and line feed.
    static func escapeHelp(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Integers without a fraction, infinities as +Inf/-Inf, other values as Swift prints them
    /// (shortest round-trip form, which Prometheus's float parser reads).
    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }
}
