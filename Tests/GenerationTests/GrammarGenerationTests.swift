import Foundation
import Generation
import ModelFiles
import Models
import TestSupport
import Tokenization
import XCTest

/// Constrained generation with the real SmolLM2: sampled outputs at temperature 1 parse as JSON
/// and satisfy the schema (checked by hand-written checks, not by our grammar), greedy stays
/// deterministic, and both engines agree.
final class GrammarGenerationTests: XCTestCase {
    static let loaded: (DecoderModel, Tokenizer)? = {
        guard let path = try? TestPaths.model("smollm2-135m-instruct"), let f = try? GGUFFile(path: path),
              let m = try? DecoderModel(file: f), let t = try? Tokenizer(gguf: f) else { return nil }
        return (m, t)
    }()

    func prompt(_ t: Tokenizer, _ text: String) -> [Int32] {
        t.encode("<|im_start|>user\n\(text)<|im_end|>\n<|im_start|>assistant\n", addBOS: nil, parseSpecial: true)
    }

    func parse(_ s: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(s.utf8), options: [.fragmentsAllowed]) }

    struct Case: Sendable {
        let schema: String
        let ask: String
        let check: @Sendable (Any) -> String?   // nil when valid, else what is wrong
    }

    static let cases: [Case] = [
        Case(schema: #"{"type":"object","properties":{"name":{"type":"string","maxLength":20},"age":{"type":"integer","minimum":0,"maximum":120},"pet":{"enum":["cat","dog",null]}},"required":["name","age","pet"],"additionalProperties":false}"#,
             ask: "Invent a person.") { v in
            guard let o = v as? [String: Any], Set(o.keys) == ["name", "age", "pet"] else { return "keys" }
            guard let n = o["name"] as? String, n.count <= 20 else { return "name" }
            guard let a = o["age"] as? Int, (0...120).contains(a), !(o["age"] is Bool) else { return "age" }
            if !(o["pet"] is NSNull), !["cat", "dog"].contains(o["pet"] as? String ?? "") { return "pet" }
            return nil
        },
        Case(schema: ##"{"$defs":{"pt":{"type":"object","properties":{"x":{"type":"integer","minimum":-5,"maximum":5},"y":{"type":"integer","minimum":-5,"maximum":5}},"required":["x","y"]}},"type":"array","items":{"$ref":"#/$defs/pt"},"minItems":1,"maxItems":3}"##,
             ask: "List some points.") { v in
            guard let a = v as? [Any], (1...3).contains(a.count) else { return "count" }
            for p in a {
                guard let o = p as? [String: Any], let x = o["x"] as? Int, let y = o["y"] as? Int,
                      (-5...5).contains(x), (-5...5).contains(y), Set(o.keys) == ["x", "y"] else { return "point \(p)" }
            }
            return nil
        },
        Case(schema: #"{"anyOf":[{"type":"object","properties":{"ok":{"const":true},"code":{"type":"string","pattern":"^[A-Z]{3}-[0-9]{2}$"}},"required":["ok","code"]},{"type":"object","properties":{"ok":{"const":false},"when":{"type":"string","format":"date"}},"required":["ok","when"]}]}"#,
             ask: "Give a status.") { v in
            guard let o = v as? [String: Any], let ok = o["ok"] as? Bool else { return "ok" }
            if ok {
                guard let c = o["code"] as? String, c.range(of: "^[A-Z]{3}-[0-9]{2}$", options: .regularExpression) != nil else { return "code" }
            } else {
                guard let d = o["when"] as? String else { return "when" }
                let f = DateFormatter(); f.dateFormat = "yyyy-MM-dd"; f.locale = Locale(identifier: "en_US_POSIX"); f.isLenient = false
                f.timeZone = TimeZone(identifier: "UTC")
                guard let date = f.date(from: d), f.string(from: date) == d else { return "date \(d)" }
            }
            return nil
        },
    ]

    func testSampledOutputsAreValid() throws {
        let (m, t) = try XCTUnwrap(Self.loaded, "SmolLM2 is not fetched: run make models")
        let engine = try SerialEngine(model: m, tokenizer: t, contextLength: 256)
        var complete = 0, total = 0
        for c in Self.cases {
            let g = try JSONSchemaGrammar.grammar(schemaJSON: c.schema)
            for seed in 1...6 {
                var r = GenerationRequest()
                r.maxTokens = 96
                r.sampling.temperature = 1
                r.sampling.seed = UInt64(seed)
                r.grammar = g
                let res = try engine.generate(prompt: prompt(t, c.ask + " Answer in JSON."), r) { _ in true }
                total += 1
                XCTAssertNotEqual(res.finishReason, .grammarDeadEnd)
                guard res.finishReason == .stop else {
                    XCTAssertEqual(res.finishReason, .length)
                    continue
                }
                complete += 1
                guard let v = parse(res.text) else { XCTFail("not JSON: \(res.text.debugDescription)"); continue }
                if let problem = c.check(v) { XCTFail("\(problem): \(res.text.debugDescription)") }
            }
        }
        XCTAssertGreaterThanOrEqual(complete * 10, total * 7, "most outputs should finish within 96 tokens")
    }

    func testGreedyIsDeterministicAndEnginesAgree() throws {
        let (m, t) = try XCTUnwrap(Self.loaded, "SmolLM2 is not fetched: run make models")
        let g = try JSONSchemaGrammar.grammar(schemaJSON: Self.cases[0].schema)
        var r = GenerationRequest()
        r.maxTokens = 64
        r.sampling = .greedy
        r.grammar = g
        let p = prompt(t, "Invent a person. Answer in JSON.")
        let serial = try SerialEngine(model: m, tokenizer: t, contextLength: 256)
        let a = try serial.generate(prompt: p, r) { _ in true }
        let b = try serial.generate(prompt: p, r) { _ in true }
        XCTAssertEqual(a.tokens, b.tokens)
        XCTAssertEqual(a.finishReason, .stop)
        XCTAssertNil(Self.cases[0].check(try XCTUnwrap(parse(a.text), a.text)))
        let batching = try BatchingEngine(model: m, tokenizer: t, contextLength: 256, slots: 2)
        defer { batching.shutdown() }
        let c = try batching.generate(prompt: p, r) { _ in true }
        XCTAssertEqual(c.tokens, a.tokens)
        XCTAssertEqual(c.text, a.text)
    }

    func testMaskAllowsExactlyTheTokensTheGrammarAccepts() throws {
        let (_, t) = try XCTUnwrap(Self.loaded, "SmolLM2 is not fetched: run make models")
        let g = try Grammar(gbnf: #"root ::= "{\"k\": " [0-9]+ "}""#)
        let m = GrammarMatcher(grammar: g, tokenizer: t)
        XCTAssertTrue(m.accept("{\"k"))
        let bits = m.allowedTokens()
        var allowed = 0
        // Reference: a text matcher in the same place, asked about each token's bytes.
        let ref = GrammarMatcher(grammar: g)
        ref.accept("{\"k")
        for id in 0..<Int32(t.vocabSize) {
            let inMask = bits[Int(id) >> 6] & (1 << UInt64(id & 63)) != 0
            let bytes = t.tokenBytes(id)
            let expected = !bytes.isEmpty && !t.isControl(id) && !t.isEOG(id) && ref.canAccept(bytes)
            if inMask != expected { XCTFail("token \(id) \(t.piece(id).debugDescription): mask \(inMask), expected \(expected)") }
            if inMask { allowed += 1 }
        }
        XCTAssertGreaterThan(allowed, 1)    // e.g. "\":" and "\": " and "\"" at least
        XCTAssertFalse(t.eogIDs.contains { bits[Int($0) >> 6] & (1 << UInt64($0 & 63)) != 0 })
    }
}
