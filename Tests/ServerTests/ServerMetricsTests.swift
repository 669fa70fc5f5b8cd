import Foundation
import XCTest
import Server
import Generation
import Tokenization

/// One sample line of the Prometheus text format.
struct MetricSample: Equatable {
    var name: String
    var labels: [String: String]
    var value: Double
}

/// A strict reader of the text exposition format (0.0.4): `# HELP name text`, `# TYPE name
/// type`, and `name{label="value",...} number` with \\, \" and \n escapes in label values.
/// Anything else is an error, so a malformed line fails the test.
struct ParsedExposition {
    var samples: [MetricSample] = []
    var types: [String: String] = [:]
    var helps: [String: String] = [:]

    struct Malformed: Error, CustomStringConvertible { let line: String; let why: String; var description: String { "\(why): \(line)" } }

    init(_ text: String) throws {
        guard text.hasSuffix("\n") else { throw Malformed(line: String(text.suffix(40)), why: "the exposition must end with a line feed") }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            let l = String(line)
            if l.hasPrefix("# HELP ") || l.hasPrefix("# TYPE ") {
                let rest = l.dropFirst(7)
                guard let sp = rest.firstIndex(of: " ") else { throw Malformed(line: l, why: "HELP/TYPE without text") }
                let name = String(rest[..<sp]), value = String(rest[rest.index(after: sp)...])
                guard ParsedExposition.isName(name) else { throw Malformed(line: l, why: "bad metric name") }
                if l.hasPrefix("# TYPE ") {
                    guard ["counter", "gauge", "histogram", "summary", "untyped"].contains(value) else { throw Malformed(line: l, why: "unknown type") }
                    guard types[name] == nil else { throw Malformed(line: l, why: "TYPE given twice") }
                    guard !samples.contains(where: { ParsedExposition.family(of: $0.name, types: [name: value]) == name }) else {
                        throw Malformed(line: l, why: "TYPE after the family's samples")
                    }
                    types[name] = value
                } else {
                    helps[name] = value
                }
                continue
            }
            guard !l.hasPrefix("#"), !l.isEmpty else { throw Malformed(line: l, why: "unexpected comment or blank line") }
            samples.append(try ParsedExposition.sample(l))
        }
    }

    static func isName(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, f == "_" || f == ":" || CharacterSet.letters.contains(f), f.isASCII else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0 == ":" || CharacterSet.alphanumerics.contains($0)) }
    }

    /// The family a sample belongs to (a histogram's _bucket/_sum/_count belong to its name).
    static func family(of sample: String, types: [String: String]) -> String? {
        if types[sample] != nil { return sample }
        for suffix in ["_bucket", "_sum", "_count"] where sample.hasSuffix(suffix) {
            let base = String(sample.dropLast(suffix.count))
            if types[base] == "histogram" || types[base] == "summary" { return base }
        }
        return nil
    }

    static func sample(_ line: String) throws -> MetricSample {
        let s = Array(line.unicodeScalars)
        var i = 0
        var name = ""
        while i < s.count, s[i] != "{", s[i] != " " { name.unicodeScalars.append(s[i]); i += 1 }
        guard isName(name) else { throw Malformed(line: line, why: "bad metric name") }
        var labels: [String: String] = [:]
        if i < s.count, s[i] == "{" {
            i += 1
            while i < s.count, s[i] != "}" {
                var key = ""
                while i < s.count, s[i] != "=" { key.unicodeScalars.append(s[i]); i += 1 }
                guard isName(key), i + 1 < s.count, s[i + 1] == "\"" else { throw Malformed(line: line, why: "bad label") }
                i += 2
                var value = ""
                while i < s.count, s[i] != "\"" {
                    if s[i] == "\\" {
                        guard i + 1 < s.count else { throw Malformed(line: line, why: "dangling escape") }
                        switch s[i + 1] {
                        case "\\": value += "\\"
                        case "\"": value += "\""
                        case "n": value += "\n"
                        default: throw Malformed(line: line, why: "unknown escape")
                        }
                        i += 2
                    } else {
                        guard s[i] != "\n" else { throw Malformed(line: line, why: "raw line feed in a label") }
                        value.unicodeScalars.append(s[i]); i += 1
                    }
                }
                guard i < s.count else { throw Malformed(line: line, why: "unterminated label value") }
                i += 1
                guard labels[key] == nil else { throw Malformed(line: line, why: "label given twice") }
                labels[key] = value
                if i < s.count, s[i] == "," { i += 1 }
            }
            guard i < s.count else { throw Malformed(line: line, why: "unterminated label set") }
            i += 1
        }
        guard i < s.count, s[i] == " " else { throw Malformed(line: line, why: "no space before the value") }
        var text = ""
        for c in s[(i + 1)...] { text.unicodeScalars.append(c) }
        let value: Double
        switch text {
        case "+Inf": value = .infinity
        case "-Inf": value = -.infinity
        case "NaN": value = .nan
        default:
            guard let v = Double(text), !text.contains(" ") else { throw Malformed(line: line, why: "value is not a number") }
            value = v
        }
        return MetricSample(name: name, labels: labels, value: value)
    }

    func value(_ name: String, _ labels: [String: String]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }
}

final class ServerMetricsTests: XCTestCase {
    /// A fresh API (fresh counters) over the shared SmolLM2 engine, served under `id`.
    func freshAPI(id: String? = nil) throws -> (API, ServedModel) {
        let (_, shared) = try Shared.get()
        let m = id.map { ServedModel(id: $0, path: shared.path, engine: shared.engine, chatTemplate: shared.chatTemplate, templateSource: shared.templateSource) } ?? shared
        let registry = ModelRegistry()
        registry.add(m)
        registry.markReady()
        return (API(models: registry, version: "test"), m)
    }

    func metrics(_ api: API) throws -> ParsedExposition {
        let r = api.handle(HTTPRequest(method: "GET", path: "/metrics"))
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        return try ParsedExposition(String(decoding: r.collectBody(), as: UTF8.self))
    }

    func testCountersHistogramsAndGaugesAfterRequests() throws {
        let (api, m) = try freshAPI()
        let id = m.id
        func post(_ path: String, _ body: String) -> HTTPResponse { api.handle(HTTPRequest(method: "POST", path: path, json: body)) }

        XCTAssertEqual(api.handle(HTTPRequest(method: "GET", path: "/v1/models")).status, 200)
        XCTAssertEqual(api.handle(HTTPRequest(method: "GET", path: "/no/such/route")).status, 404)
        XCTAssertEqual(api.handle(HTTPRequest(method: "GET", path: "/v1/completions")).status, 405)
        XCTAssertEqual(post("/v1/chat/completions", #"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#).status, 404)

        var usages: [(prompt: Int, completion: Int)] = []
        let plain = post("/v1/chat/completions", #"{"model":"\#(id)","messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0}"#)
        XCTAssertEqual(plain.status, 200)
        let u1 = try XCTUnwrap(try object(plain.collectBody())["usage"] as? [String: Int])
        usages.append((u1["prompt_tokens"] ?? -1, u1["completion_tokens"] ?? -1))

        let streamed = post("/v1/chat/completions", #"{"model":"\#(id)","messages":[{"role":"user","content":"Name a color."}],"max_tokens":6,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"#)
        XCTAssertEqual(streamed.status, 200)
        let (events, done) = try sseEvents(streamed.collectBody())
        XCTAssertTrue(done)
        let u2 = try XCTUnwrap(events.last?["usage"] as? [String: Int])
        usages.append((u2["prompt_tokens"] ?? -1, u2["completion_tokens"] ?? -1))

        let ollama = post("/api/generate", #"{"model":"\#(id)","prompt":"Hello","stream":false,"options":{"num_predict":3,"temperature":0}}"#)
        XCTAssertEqual(ollama.status, 200)
        let o = try object(ollama.collectBody())
        usages.append((o["prompt_eval_count"] as? Int ?? -1, o["eval_count"] as? Int ?? -1))

        let e = try metrics(api)
        // Requests by route and status; the /metrics scrape itself is counted after it answers.
        XCTAssertEqual(e.value("steward_requests_total", ["route": "/v1/models", "status": "200"]), 1)
        XCTAssertEqual(e.value("steward_requests_total", ["route": "unknown", "status": "404"]), 1)
        XCTAssertEqual(e.value("steward_requests_total", ["route": "/v1/completions", "status": "405"]), 1)
        XCTAssertEqual(e.value("steward_requests_total", ["route": "/v1/chat/completions", "status": "404"]), 1)
        XCTAssertEqual(e.value("steward_requests_total", ["route": "/v1/chat/completions", "status": "200"]), 2)
        XCTAssertEqual(e.value("steward_requests_total", ["route": "/api/generate", "status": "200"]), 1)
        XCTAssertNil(e.value("steward_requests_total", ["route": "/metrics", "status": "200"]))
        XCTAssertEqual(e.samples.filter { $0.name == "steward_requests_total" }.count, 6)

        // Tokens as the responses reported them.
        XCTAssertEqual(e.value("steward_prompt_tokens_total", ["model": id]), Double(usages.map(\.prompt).reduce(0, +)))
        let generated = usages.map(\.completion)
        XCTAssertEqual(e.value("steward_completion_tokens_total", ["model": id]), Double(generated.reduce(0, +)))
        XCTAssertGreaterThan(generated.reduce(0, +), 0)

        // One first-token observation per sequence that generated something; one gap per
        // further token.
        let ttftCount = Double(generated.filter { $0 > 0 }.count)
        let gapCount = Double(generated.map { max($0 - 1, 0) }.reduce(0, +))
        try checkHistogram(e, "steward_time_to_first_token_seconds", model: id, count: ttftCount, bounds: ServerMetrics.firstTokenBounds)
        try checkHistogram(e, "steward_time_per_output_token_seconds", model: id, count: gapCount, bounds: ServerMetrics.perTokenBounds)

        // Gauges: nothing running now; the KV capacity is the engine's.
        let status = m.engine.status
        XCTAssertEqual(e.value("steward_queue_depth", ["model": id]), 0)
        XCTAssertEqual(e.value("steward_active_sequences", ["model": id]), 0)
        XCTAssertEqual(e.value("steward_kv_cache_used_tokens", ["model": id]), Double(status.kvUsed))
        XCTAssertEqual(e.value("steward_kv_cache_capacity_tokens", ["model": id]), Double(status.kvCapacity))
        XCTAssertGreaterThanOrEqual(status.kvCapacity, m.contextLength)

        // Every family is typed and described; every sample belongs to a typed family.
        let expected = ["steward_requests_total": "counter", "steward_prompt_tokens_total": "counter",
                        "steward_completion_tokens_total": "counter",
                        "steward_time_to_first_token_seconds": "histogram", "steward_time_per_output_token_seconds": "histogram",
                        "steward_queue_depth": "gauge", "steward_active_sequences": "gauge",
                        "steward_kv_cache_used_tokens": "gauge", "steward_kv_cache_capacity_tokens": "gauge"]
        XCTAssertEqual(e.types, expected)
        XCTAssertEqual(Set(e.helps.keys), Set(expected.keys))
        for s in e.samples { XCTAssertNotNil(ParsedExposition.family(of: s.name, types: e.types), s.name) }

        // The scrape was counted once it answered.
        XCTAssertEqual(try metrics(api).value("steward_requests_total", ["route": "/metrics", "status": "200"]), 1)
    }

    func checkHistogram(_ e: ParsedExposition, _ name: String, model: String, count: Double, bounds: [Double],
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let buckets = e.samples.filter { $0.name == name + "_bucket" && $0.labels["model"] == model }
        XCTAssertEqual(buckets.count, bounds.count + 1, file: file, line: line)
        let les = try buckets.map { b -> Double in
            let le = try XCTUnwrap(b.labels["le"], file: file, line: line)
            return le == "+Inf" ? .infinity : try XCTUnwrap(Double(le), file: file, line: line)
        }
        XCTAssertEqual(les, bounds + [.infinity], file: file, line: line)
        let counts = buckets.map(\.value)
        XCTAssertEqual(counts, counts.sorted(), "buckets are cumulative", file: file, line: line)
        XCTAssertEqual(buckets.last?.labels["le"], "+Inf", file: file, line: line)
        XCTAssertEqual(counts.last, count, file: file, line: line)
        XCTAssertEqual(e.value(name + "_count", ["model": model]), count, file: file, line: line)
        let sum = try XCTUnwrap(e.value(name + "_sum", ["model": model]), file: file, line: line)
        if count > 0 { XCTAssertGreaterThan(sum, 0, file: file, line: line) } else { XCTAssertEqual(sum, 0, file: file, line: line) }
    }

    /// A model id with a quote, a backslash and a line feed is escaped in label values and
    /// reads back as itself; before any request its series are present and zero.
    func testLabelValuesAreEscaped() throws {
        let odd = "we\"ird\\model\nid"
        let (api, _) = try freshAPI(id: odd)
        let r = api.handle(HTTPRequest(method: "GET", path: "/metrics"))
        let text = String(decoding: r.collectBody(), as: UTF8.self)
        XCTAssertTrue(text.contains(#"steward_prompt_tokens_total{model="we\"ird\\model\nid"} 0"#), text)
        let e = try ParsedExposition(text)
        XCTAssertEqual(e.value("steward_prompt_tokens_total", ["model": odd]), 0)
        XCTAssertEqual(e.value("steward_time_to_first_token_seconds_count", ["model": odd]), 0)
        XCTAssertEqual(e.value("steward_time_to_first_token_seconds_bucket", ["model": odd, "le": "+Inf"]), 0)

        let body = try JSONSerialization.data(withJSONObject: ["model": odd, "prompt": "Hi", "max_tokens": 2, "temperature": 0] as [String: Any])
        let c = api.handle(HTTPRequest(method: "POST", path: "/v1/completions", headers: ["Content-Type": "application/json"], body: body))
        XCTAssertEqual(c.status, 200)
        let usage = try XCTUnwrap(try object(c.collectBody())["usage"] as? [String: Int])
        let after = try metrics(api)
        XCTAssertEqual(after.value("steward_completion_tokens_total", ["model": odd]), usage["completion_tokens"].map(Double.init))
        XCTAssertEqual(after.value("steward_prompt_tokens_total", ["model": odd]), usage["prompt_tokens"].map(Double.init))
    }

    /// A scan of unknown paths shares one label, even with a body over the limit.
    func testUnknownPathsShareOneLabel() throws {
        let (api, _) = try freshAPI()
        for p in ["/a", "/b?x=1", "/c/d"] { _ = api.handle(HTTPRequest(method: "GET", path: p)) }
        var big = HTTPRequest(method: "POST", path: "/zzz", json: "{}")
        big.bodyLimit = 10
        XCTAssertEqual(api.handle(big).status, 413)
        let e = try metrics(api)
        XCTAssertEqual(e.value("steward_requests_total", ["route": "unknown", "status": "404"]), 3)
        XCTAssertEqual(e.value("steward_requests_total", ["route": "unknown", "status": "413"]), 1)
        XCTAssertEqual(e.samples.filter { $0.name == "steward_requests_total" }.count, 2)
    }

    /// While a stream runs, the gauges show it: one active sequence holding KV positions.
    func testGaugesWhileGenerating() throws {
        let (api, m) = try freshAPI()
        let story = "Write a long story about a brave dragon who learns to fly."
        let r = api.handle(HTTPRequest(method: "POST", path: "/v1/chat/completions",
                                       json: #"{"model":"\#(m.id)","messages":[{"role":"user","content":"\#(story)"}],"max_tokens":300,"temperature":0,"stream":true}"#))
        guard case let .stream(pipe) = r.body else { return XCTFail("expected a stream") }
        // Three frames in (the role, then text): the prompt is in the cache and generation is
        // under way, not finished.
        for _ in 0..<3 {
            let frame = String(decoding: try XCTUnwrap(pipe.next()), as: UTF8.self)
            XCTAssertTrue(frame.contains(#""finish_reason":null"#) || !frame.contains("finish_reason"), frame)
        }
        let during = try metrics(api)
        XCTAssertEqual(during.value("steward_active_sequences", ["model": m.id]), 1)
        XCTAssertEqual(during.value("steward_queue_depth", ["model": m.id]), 0)
        let used = try XCTUnwrap(during.value("steward_kv_cache_used_tokens", ["model": m.id]))
        let promptTokens = m.tokenizer.encode(story, addBOS: nil, parseSpecial: true).count
        XCTAssertGreaterThan(used, Double(promptTokens), "the prompt's positions (and the template's) at least")
        XCTAssertLessThanOrEqual(used, try XCTUnwrap(during.value("steward_kv_cache_capacity_tokens", ["model": m.id])))
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(during.value("steward_time_to_first_token_seconds_count", ["model": m.id])), 1)
        pipe.cancel()
        let t0 = Date()
        while m.engine.status.active != 0 && Date().timeIntervalSince(t0) < 5 { usleep(5000) }
        XCTAssertEqual(try metrics(api).value("steward_active_sequences", ["model": m.id]), 0)
    }

    func testHistogramBuckets() {
        var h = Histogram(bounds: [0.1, 1, 10])
        for v in [0.05, 0.1, 0.5, 2, 50, .nan] { h.observe(v) }
        XCTAssertEqual(h.cumulative.map(\.count), [2, 3, 4, 5])
        XCTAssertEqual(h.cumulative.last?.le, .infinity)
        XCTAssertEqual(h.count, 5)
        XCTAssertEqual(h.sum, 52.65, accuracy: 1e-9)
    }
}
