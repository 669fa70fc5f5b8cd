import Foundation

/// Two runs side by side, and the promotion gate.
public enum EvalCompare {
    public struct Row: Sendable, Equatable {
        public var task: String
        public var metric: String
        public var a: Double?
        public var b: Double?
        public var higherIsBetter: Bool
        /// b − a (nil when a metric is missing on one side).
        public var delta: Double? { a.flatMap { a in b.map { $0 - a } } }
        /// How much worse b is than a: an absolute drop for scores in [0, 1], a relative
        /// increase for perplexity (lower is better).
        public var drop: Double? {
            guard let a, let b else { return nil }
            return higherIsBetter ? a - b : (a > 0 ? (b - a) / a : 0)
        }
    }

    public static func rows(_ a: EvalRun, _ b: EvalRun) -> [Row] {
        var out: [Row] = []
        let tasks = (a.tasks.map(\.name) + b.tasks.map(\.name)).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        for t in tasks {
            let ta = a.tasks.first { $0.name == t }, tb = b.tasks.first { $0.name == t }
            let metrics = Set((ta?.metrics.keys).map(Array.init) ?? []).union((tb?.metrics.keys).map(Array.init) ?? []).sorted()
            for m in metrics {
                let hib = ta?.metrics[m]?.higherIsBetter ?? tb?.metrics[m]?.higherIsBetter ?? true
                out.append(Row(task: t, metric: m, a: ta?.metrics[m]?.value, b: tb?.metrics[m]?.value, higherIsBetter: hib))
            }
        }
        return out
    }

    public static func table(_ a: EvalRun, _ b: EvalRun, names: (String, String)) -> String {
        var s = "| task | metric | \(names.0) | \(names.1) | Δ |\n|---|---|---:|---:|---:|\n"
        for r in rows(a, b) {
            func f(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "–" }
            s += "| \(r.task) | \(r.metric) | \(f(r.a)) | \(f(r.b)) | \(r.delta.map { String(format: "%+.4f", $0) } ?? "–") |\n"
        }
        return s
    }

    /// The metrics of `candidate` that dropped more than `maxDrop` against `baseline` (or are
    /// missing from it): empty means the gate passes.
    public static func gate(baseline: EvalRun, candidate: EvalRun, maxDrop: Double) -> [String] {
        var failures: [String] = []
        for r in rows(baseline, candidate) where r.a != nil {
            guard let drop = r.drop else { failures.append("\(r.task)/\(r.metric): missing from the candidate run"); continue }
            if drop > maxDrop {
                failures.append(String(format: "%@/%@: %.4f → %.4f (%@ %.4f > %.4f)", r.task, r.metric, r.a!, r.b!,
                                       r.higherIsBetter ? "drop" : "relative increase", drop, maxDrop))
            }
        }
        return failures
    }
}
