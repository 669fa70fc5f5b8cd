import Foundation

/// The policy file's "usage" section: optional prices so a team sees what self-hosting costs.
/// `{"currency": "USD", "cost_per_1k_tokens": {"default": {"input": 0.0, "output": 0.0},
///   "smollm2-135m-instruct": {"input": 0.01, "output": 0.02}}}`
public struct UsagePolicy: Sendable, Equatable {
    public struct Price: Sendable, Equatable {
        public var input: Double
        public var output: Double
        public init(input: Double, output: Double) { self.input = input; self.output = output }
    }
    public var currency = "USD"
    /// Per model id; "default" applies to models without their own price.
    public var costPer1kTokens: [String: Price] = [:]

    public init(currency: String = "USD", costPer1kTokens: [String: Price] = [:]) {
        self.currency = currency; self.costPer1kTokens = costPer1kTokens
    }

    public var hasPrices: Bool { !costPer1kTokens.isEmpty }

    public func price(model: String) -> Price? { costPer1kTokens[model] ?? costPer1kTokens["default"] }

    public init(section: [String: Any]) throws(AuditError) {
        let known = ["currency", "cost_per_1k_tokens"]
        for k in section.keys where !known.contains(k) && k != "$comment" {
            throw .policy("unknown key '\(k)' in the \"usage\" section (known: \(known.joined(separator: ", ")))")
        }
        if let c = section["currency"] {
            guard let s = c as? String, !s.isEmpty else { throw .policy("\"usage.currency\" must be a non-empty string such as \"USD\"") }
            currency = s
        }
        if let c = section["cost_per_1k_tokens"] {
            guard let models = c as? [String: Any] else {
                throw .policy("\"usage.cost_per_1k_tokens\" must be an object of model → {\"input\": …, \"output\": …}")
            }
            for (model, v) in models {
                guard let o = v as? [String: Any] else {
                    throw .policy("\"usage.cost_per_1k_tokens.\(model)\" must be an object {\"input\": …, \"output\": …}")
                }
                for k in o.keys where k != "input" && k != "output" {
                    throw .policy("unknown key '\(k)' in \"usage.cost_per_1k_tokens.\(model)\" (known: input, output)")
                }
                var p = Price(input: 0, output: 0)
                for (k, dst) in [("input", \Price.input), ("output", \Price.output)] {
                    if let x = o[k] {
                        guard let d = PolicyFile.number(x), d >= 0 else {
                            throw .policy("\"usage.cost_per_1k_tokens.\(model).\(k)\" must be a number ≥ 0 (got \(x))")
                        }
                        p[keyPath: dst] = d
                    }
                }
                costPer1kTokens[model] = p
            }
        }
    }

    public static func load(policyFile path: String) throws(AuditError) -> UsagePolicy {
        guard let section = try PolicyFile.section("usage", in: path) else { return UsagePolicy() }
        return try UsagePolicy(section: section)
    }
}

/// Usage per key, model and UTC day (component "usage"): tokens in/out, requests, errors.
/// The audit log updates it in the same transaction as each request record.
public final class UsageLedger: @unchecked Sendable {
    public let storage: SQLStorage

    static let migrations: [String] = [
        """
        CREATE TABLE usage_daily (
            day TEXT NOT NULL, key_id TEXT NOT NULL, model TEXT NOT NULL,
            tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,
            requests INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (day, key_id, model));
        """,
    ]

    public init(storage: SQLStorage) throws(AuditError) {
        self.storage = storage
        do { try storage.migrate(component: "usage", steps: UsageLedger.migrations) } catch { throw .storage(error.description) }
    }

    /// Adds one request. `day` is YYYY-MM-DD (UTC); a request without a key counts under "".
    public func add(day: String, keyID: String?, model: String, tokensIn: Int, tokensOut: Int, error: Bool) throws(StorageError) {
        try storage.execute("""
            INSERT INTO usage_daily (day, key_id, model, tokens_in, tokens_out, requests, errors) VALUES (?, ?, ?, ?, ?, 1, ?)
            ON CONFLICT (day, key_id, model) DO UPDATE SET tokens_in = tokens_in + excluded.tokens_in,
                tokens_out = tokens_out + excluded.tokens_out, requests = requests + 1, errors = errors + excluded.errors
            """, .text(day), .text(keyID ?? ""), .text(model), .integer(Int64(tokensIn)), .integer(Int64(tokensOut)),
                             .integer(error ? 1 : 0))
    }

    public enum Grouping: String, Sendable, CaseIterable { case key, model, day }

    public struct Row: Sendable, Equatable {
        /// The group's value: a key id ("" = no key), a model id or a day.
        public var group: String
        public var tokensIn: Int64
        public var tokensOut: Int64
        public var requests: Int64
        public var errors: Int64
        /// Cost under the policy's prices (nil when no prices are configured).
        public var cost: Double?
    }

    /// Totals grouped by key, model or day, from `since` (a YYYY-MM-DD day, inclusive) on.
    /// Cost is computed per model from the current prices, then summed into the group.
    public func report(by grouping: Grouping, since: String? = nil, prices: UsagePolicy = UsagePolicy()) throws(AuditError) -> [Row] {
        let column: String
        switch grouping {
        case .key: column = "key_id"
        case .model: column = "model"
        case .day: column = "day"
        }
        var sql = "SELECT \(column) AS grp, model, SUM(tokens_in) AS ti, SUM(tokens_out) AS tout, SUM(requests) AS rq, SUM(errors) AS er FROM usage_daily"
        var params: [SQLValue] = []
        if let since { sql += " WHERE day >= ?"; params.append(.text(since)) }
        sql += " GROUP BY \(column), model ORDER BY \(column)"
        let rows: [SQLRow]
        do { rows = try storage.query(sql, params) } catch { throw .storage(error.description) }
        var out: [Row] = []
        var index: [String: Int] = [:]
        for r in rows {
            let g = r["grp"]?.string ?? ""
            let model = r["model"]?.string ?? ""
            let ti = r["ti"]?.int ?? 0, to = r["tout"]?.int ?? 0
            var cost: Double?
            if prices.hasPrices {
                let p = prices.price(model: model) ?? UsagePolicy.Price(input: 0, output: 0)
                cost = Double(ti) / 1000 * p.input + Double(to) / 1000 * p.output
            }
            if let k = index[g] {
                out[k].tokensIn += ti; out[k].tokensOut += to
                out[k].requests += r["rq"]?.int ?? 0; out[k].errors += r["er"]?.int ?? 0
                if let cost { out[k].cost = (out[k].cost ?? 0) + cost }
            } else {
                index[g] = out.count
                out.append(Row(group: g, tokensIn: ti, tokensOut: to, requests: r["rq"]?.int ?? 0, errors: r["er"]?.int ?? 0, cost: cost))
            }
        }
        return out
    }
}
