import Foundation
import Generation
import Templates

/// What a task needs from a model: log-likelihoods of continuations and greedy generations.
/// A local model (`LocalBackend`) or an OpenAI-compatible endpoint (in the CLI).
public protocol EvalBackend: AnyObject {
    /// log P(continuation | context), summed over the continuation's tokens, and whether each
    /// of its tokens was the greedy choice.
    func loglikelihood(context: String, continuation: String) throws -> (logprob: Double, greedy: Bool)
    func generate(prompt: String, maxTokens: Int, stop: [String], temperature: Double, seed: UInt64) throws -> String
    /// Perplexity of a text (local models only).
    func perplexity(text: String, context: Int) throws -> Double
    /// What is evaluated: for the results file.
    var describe: [String: Any] { get }
}

/// One metric's value over a task's samples: the mean and its standard error (sample standard
/// deviation / √n, lm-evaluation-harness's `mean_stderr`).
public struct MetricValue: Codable, Sendable, Equatable {
    public var value: Double
    public var stderr: Double?
    /// Whether a higher value is better (false for perplexity).
    public var higherIsBetter: Bool

    public init(value: Double, stderr: Double?, higherIsBetter: Bool) {
        self.value = value; self.stderr = stderr; self.higherIsBetter = higherIsBetter
    }

    public static func mean(_ xs: [Double]) -> MetricValue {
        let n = Double(xs.count)
        let m = xs.reduce(0, +) / max(n, 1)
        let sd = xs.count > 1 ? (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)).squareRoot() : 0
        return MetricValue(value: m, stderr: xs.count > 1 ? sd / n.squareRoot() : nil, higherIsBetter: true)
    }
}

public struct TaskResult: Codable, Sendable {
    public var name: String
    public var type: String
    public var samples: Int
    public var metrics: [String: MetricValue]
    /// Per sample: what was asked, answered and scored.
    public var outputs: [[String: String]]
    public var seconds: Double

    public init(name: String, type: String, samples: Int, metrics: [String: MetricValue], outputs: [[String: String]], seconds: Double) {
        self.name = name; self.type = type; self.samples = samples; self.metrics = metrics; self.outputs = outputs; self.seconds = seconds
    }
}

/// A run: everything needed to read and reproduce it.
public struct EvalRun: Codable, Sendable {
    public var steward_version: String
    public var created: String
    public var model: [String: String]
    public var settings: [String: String]
    public var tasks: [TaskResult]

    public init(steward_version: String, created: String, model: [String: String], settings: [String: String], tasks: [TaskResult]) {
        self.steward_version = steward_version; self.created = created; self.model = model; self.settings = settings; self.tasks = tasks
    }

    public static func load(_ path: String) throws -> EvalRun {
        guard let d = FileManager.default.contents(atPath: path) else { throw EvalError.invalid("cannot read run \(path)") }
        do { return try JSONDecoder().decode(EvalRun.self, from: d) } catch {
            throw EvalError.invalid("\(path) is not a steward eval run (results.json): \(error)")
        }
    }

    public func write(_ path: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        try e.encode(self).write(to: URL(fileURLWithPath: path))
    }
}

public struct EvalSettings: Sendable {
    public var seed: UInt64 = 1234
    public var limit: Int?
    public var temperature: Double = 0
    public var fewshot: Int?
    public init() {}
}

/// Runs tasks against a backend.
public enum EvalRunner {
    public static func run(_ task: TaskSpec, backend: EvalBackend, settings: EvalSettings, progress: ((Int, Int) -> Void)? = nil) throws -> TaskResult {
        let t0 = Date()
        if task.type == "perplexity" {
            let path = task.resolve(task.text ?? "")
            guard let d = FileManager.default.contents(atPath: path) else { throw EvalError.invalid("cannot read \(path) (task \(task.name))") }
            let ppl = try backend.perplexity(text: String(decoding: d, as: UTF8.self), context: task.context ?? 256)
            return TaskResult(name: task.name, type: task.type, samples: 1,
                              metrics: ["perplexity": MetricValue(value: ppl, stderr: nil, higherIsBetter: false)],
                              outputs: [["text": path, "perplexity": String(ppl)]], seconds: Date().timeIntervalSince(t0))
        }
        var rows = try task.rows()
        let all = rows
        if let l = settings.limit { rows = Array(rows.prefix(l)) }
        let k = settings.fewshot ?? task.fewshot ?? 0
        var acc: [Double] = [], accNorm: [Double] = [], scores: [Double] = []
        var outputs: [[String: String]] = []
        for (i, row) in rows.enumerated() {
            let context = try fewshotPrefix(task, all: all, excluding: i, k: k, seed: settings.seed) + (try TaskSpec.fill(task.prompt ?? "", row))
            if task.type == "multiple_choice" {
                guard let choices = row[task.choices ?? ""] as? [Any], !choices.isEmpty else {
                    throw EvalError.invalid("task \(task.name), row \(i + 1): '\(task.choices ?? "")' is not a list of choices")
                }
                guard let gold = (row[task.gold ?? ""] as? NSNumber)?.intValue, choices.indices.contains(gold) else {
                    throw EvalError.invalid("task \(task.name), row \(i + 1): '\(task.gold ?? "")' is not an index into the choices")
                }
                let prefix = task.choice_prefix ?? " "
                var ll: [Double] = [], norm: [Double] = []
                for c in choices {
                    let choice = TaskSpec.text(c)
                    let r = try backend.loglikelihood(context: context, continuation: prefix + choice)
                    ll.append(r.logprob)
                    // lm-evaluation-harness's acc_norm: divided by the choice's length in characters
                    // (code points of the choice itself, without the delimiter before it).
                    norm.append(r.logprob / Double(max(1, choice.unicodeScalars.count)))
                }
                let pick = ll.indices.max { ll[$0] < ll[$1] }!, pickN = norm.indices.max { norm[$0] < norm[$1] }!
                acc.append(pick == gold ? 1 : 0)
                accNorm.append(pickN == gold ? 1 : 0)
                outputs.append(["context": context, "gold": String(gold), "pred": String(pick), "pred_norm": String(pickN),
                                "loglikelihoods": ll.map { String(format: "%.4f", $0) }.joined(separator: ",")])
            } else {
                let out = try backend.generate(prompt: context, maxTokens: task.max_tokens ?? 32, stop: task.stop ?? [],
                                               temperature: settings.temperature, seed: settings.seed &+ UInt64(i))
                let target = try task.target.map { try TaskSpec.fill($0, row) }
                let ok = try score(task, output: out, target: target, row: row)
                scores.append(ok ? 1 : 0)
                var o = ["prompt": context, "output": out, "correct": ok ? "1" : "0"]
                if let target { o["target"] = target }
                outputs.append(o)
            }
            progress?(i + 1, rows.count)
        }
        var metrics: [String: MetricValue] = [:]
        if task.type == "multiple_choice" {
            metrics["acc"] = .mean(acc)
            metrics["acc_norm"] = .mean(accNorm)
        } else {
            metrics[task.metric ?? "exact_match"] = .mean(scores)
        }
        return TaskResult(name: task.name, type: task.type, samples: rows.count, metrics: metrics, outputs: outputs,
                          seconds: Date().timeIntervalSince(t0))
    }

    /// k other rows as prompt + target, seeded, joined by the separator.
    static func fewshotPrefix(_ task: TaskSpec, all: [[String: Any]], excluding i: Int, k: Int, seed: UInt64) throws -> String {
        guard k > 0 else { return "" }
        var pool = all.indices.filter { $0 != i }
        var rng = SeededGenerator(seed: seed &+ UInt64(i) &* 31)
        for j in stride(from: pool.count - 1, to: 0, by: -1) { pool.swapAt(j, Int(rng.next() % UInt64(j + 1))) }
        let sep = task.fewshot_separator ?? "\n\n"
        var parts: [String] = []
        for idx in pool.prefix(k) {
            let row = all[idx]
            var target = ""
            if task.type == "multiple_choice", let ch = row[task.choices ?? ""] as? [Any], let g = (row[task.gold ?? ""] as? NSNumber)?.intValue, ch.indices.contains(g) {
                target = (task.choice_prefix ?? " ") + TaskSpec.text(ch[g])
            } else if let t = task.target {
                target = " " + (try TaskSpec.fill(t, row)).trimmingCharacters(in: .whitespaces)
            }
            parts.append(try TaskSpec.fill(task.prompt ?? "", row) + target)
        }
        return parts.joined(separator: sep) + sep
    }

    static func score(_ task: TaskSpec, output: String, target: String?, row: [String: Any]) throws -> Bool {
        let out = output.trimmingCharacters(in: .whitespacesAndNewlines)
        switch task.metric ?? "exact_match" {
        case "exact_match": return out == (target ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        case "contains": return out.range(of: (target ?? "").trimmingCharacters(in: .whitespacesAndNewlines), options: [.caseInsensitive]) != nil
        case "tests":
            return CodeTests.passes(output, tests: row["tests"] as? [[String: Any]] ?? [])
        case "regex":
            let pattern = try TaskSpec.fill(task.pattern ?? "", row)
            guard let re = try? NSRegularExpression(pattern: pattern) else { throw EvalError.invalid("task \(task.name): bad pattern \(pattern)") }
            return re.firstMatch(in: out, range: NSRange(out.startIndex..., in: out)) != nil
        default:
            return JSONSchemaCheck.valid(out, schema: task.schema?.object ?? [:])
        }
    }
}

/// The tests metric: the completion (its first line, a Python expression after `return`) is
/// evaluated for each test's arguments in the Templates module's sandboxed expression
/// interpreter (Jinja's Python-like expressions: arithmetic, comparisons, conditionals,
/// indexing and slicing, string methods; no I/O, no imports, bounded work) and must equal each
/// test's expected value. Anything outside that subset fails the test — nothing is executed
/// as a program.
enum CodeTests {
    static func passes(_ output: String, tests: [[String: Any]]) -> Bool {
        guard !tests.isEmpty else { return false }
        var expr = output.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        expr = expr.trimmingCharacters(in: .whitespaces)
        if expr.hasPrefix("return ") { expr = String(expr.dropFirst(7)) }
        expr = pythonBuiltins(expr)
        guard !expr.isEmpty, !expr.contains("}}"), !expr.contains("{%"), let t = try? Template(source: "{{ (" + expr + ") }}"),
              let show = try? Template(source: "{{ expect }}") else { return false }
        for test in tests {
            var args: [String: TemplateValue] = [:]
            for (k, v) in test["args"] as? [String: Any] ?? [:] { guard let tv = try? TemplateValue(jsonObject: v) else { return false }; args[k] = tv }
            guard let expect = try? TemplateValue(jsonObject: test["expect"] ?? NSNull()), let got = try? t.render(context: args),
                  let want = try? show.render(context: ["expect": expect]), got == want else { return false }
        }
        return true
    }

    /// Python builtins the expression language spells as filters: len(x) → (x)|length,
    /// max(a, b) → [a, b]|max, max(xs) → (xs)|max, and min, abs, sum, sorted, str, int, float.
    static func pythonBuiltins(_ e: String) -> String {
        let filters = ["len": "length", "max": "max", "min": "min", "abs": "abs", "sum": "sum", "sorted": "sort",
                       "str": "string", "int": "int", "float": "float"]
        let c = Array(e)
        var out = "", i = 0
        while i < c.count {
            var matched = false
            for (name, filter) in filters where i + name.count < c.count && String(c[i..<(i + name.count)]) == name && c[i + name.count] == "(" {
                if i > 0, c[i - 1].isLetter || c[i - 1].isNumber || c[i - 1] == "_" || c[i - 1] == "." { continue }
                // The matching parenthesis and the top-level commas.
                var depth = 0, j = i + name.count, args: [String] = [], cur = ""
                var closed = false
                while j < c.count {
                    let ch = c[j]
                    if ch == "(" || ch == "[" { depth += 1; if depth > 1 { cur.append(ch) } }
                    else if ch == ")" || ch == "]" {
                        depth -= 1
                        if depth == 0 { args.append(cur); closed = true; break }
                        cur.append(ch)
                    } else if ch == ",", depth == 1 { args.append(cur); cur = "" } else { cur.append(ch) }
                    j += 1
                }
                guard closed else { continue }
                let inner = args.map { pythonBuiltins($0.trimmingCharacters(in: .whitespaces)) }
                out += inner.count == 1 ? "((\(inner[0]))|\(filter))" : "([\(inner.joined(separator: ", "))]|\(filter))"
                i = j + 1
                matched = true
                break
            }
            if !matched { out.append(c[i]); i += 1 }
        }
        return out
    }
}

/// The json_schema metric: the output (or its first {...} object) parses as JSON and matches
/// the schema's type, required keys and property types (a subset of JSON Schema: type, required,
/// properties, items, enum).
enum JSONSchemaCheck {
    static func valid(_ text: String, schema: Any) -> Bool {
        var candidates = [text]
        if let s = text.firstIndex(of: "{"), let e = text.lastIndex(of: "}"), s < e { candidates.append(String(text[s...e])) }
        for c in candidates {
            if let v = try? JSONSerialization.jsonObject(with: Data(c.utf8), options: [.fragmentsAllowed]), matches(v, schema) { return true }
        }
        return false
    }

    /// JSON true/false (Foundation hands them over as NSNumber of type char/bool).
    static func isBool(_ v: Any) -> Bool {
        guard let n = v as? NSNumber else { return false }
        let t = String(cString: n.objCType)
        return t == "c" || t == "B"
    }

    static func matches(_ v: Any, _ schema: Any) -> Bool {
        guard let s = schema as? [String: Any] else { return true }
        if let e = s["enum"] as? [Any], !e.contains(where: { "\($0)" == "\(v)" }) { return false }
        if let t = s["type"] as? String {
            switch t {
            case "object": guard v is [String: Any] else { return false }
            case "array": guard v is [Any] else { return false }
            case "string": guard v is String else { return false }
            case "integer": guard let n = v as? NSNumber, !isBool(v), n.doubleValue == n.doubleValue.rounded() else { return false }
            case "number": guard v is NSNumber, !isBool(v) else { return false }
            case "boolean": guard isBool(v) else { return false }
            default: break
            }
        }
        if let o = v as? [String: Any] {
            for r in (s["required"] as? [String]) ?? [] where o[r] == nil { return false }
            for (k, sub) in (s["properties"] as? [String: Any]) ?? [:] { if let x = o[k], !matches(x, sub) { return false } }
        }
        if let a = v as? [Any], let items = s["items"] { return a.allSatisfy { matches($0, items) } }
        return true
    }
}
