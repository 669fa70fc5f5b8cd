import Foundation
import Templates
import TestSupport
import XCTest

/// Hand-checked behaviour: limits, error reporting, JSON input, the clock, the public API.
final class TemplateLanguageTests: XCTestCase {
    func render(_ source: String, _ context: [String: TemplateValue] = [:]) throws -> String {
        try Template(source: source).render(context: context)
    }

    func assertThrows(_ source: String, _ context: [String: TemplateValue] = [:], file: StaticString = #filePath,
                      line: UInt = #line, _ check: (TemplateError) -> Bool) {
        do {
            let out = try render(source, context)
            XCTFail("expected an error, rendered \(out.debugDescription)", file: file, line: line)
        } catch let e as TemplateError {
            XCTAssertTrue(check(e), "unexpected error \(e)", file: file, line: line)
        } catch {
            XCTFail("non-template error \(error)", file: file, line: line)
        }
    }

    // MARK: JSON input

    func testJSONParserKeepsKeyOrderAndNumberKinds() throws {
        let v = try TemplateValue.parseJSON(#"{"z": 1, "a": [1.0, 2, -3e2, true, null], "m": {"é\n": "\u00e9\ud83d\ude00"}}"#)
        guard case .object(let o) = v else { return XCTFail("not an object") }
        XCTAssertEqual(o.keys, ["z", "a", "m"])
        XCTAssertEqual(o["a"], .array([.double(1.0), .int(2), .double(-300), .bool(true), .none]))
        XCTAssertEqual(o["m"]?["é\n"], .string("é😀"))
        // Python prints it back in the same order, with Python reprs.
        XCTAssertEqual(try render("{{ v }}|{{ v | tojson }}", ["v": v]),
                       #"{'z': 1, 'a': [1.0, 2, -300.0, True, None], 'm': {'é\n': 'é😀'}}|{"z": 1, "a": [1.0, 2, -300.0, true, null], "m": {"é\n": "é😀"}}"#)
    }

    func testJSONParserRejectsMalformedInputWithPosition() {
        for bad in ["{\"a\": }", "[1, 2", "{\"a\" 1}", "01", "\"\\q\"", "[1,]", "nul", "1 2"] {
            XCTAssertThrowsError(try TemplateValue.parseJSON(bad), bad) { e in
                guard case .syntax(let m, let l, _) = e as? TemplateError else { return XCTFail("wrong error \(e)") }
                XCTAssertTrue(m.hasPrefix("invalid JSON"), m)
                XCTAssertEqual(l, 1)
            }
        }
    }

    func testFoundationJSONObjectConversion() throws {
        let any = try JSONSerialization.jsonObject(with: Data(#"{"b": [1, 2.5, true, null, "s"], "a": false}"#.utf8))
        let v = try TemplateValue(jsonObject: any)
        // Key order is lost by JSONSerialization, so keys come back sorted.
        XCTAssertEqual(v, .object(TemplateObject([("a", .bool(false)), ("b", .array([.int(1), .double(2.5), .bool(true), .none, .string("s")]))])))
        XCTAssertEqual(try render("{{ v.a }} {{ v.b[0] + 1 }} {{ v.b[1] }}", ["v": v]), "False 2 2.5")
    }

    // MARK: clock

    func testStrftimeNowUsesInjectedClock() throws {
        var c = DateComponents()
        (c.year, c.month, c.day, c.hour, c.minute) = (2024, 7, 26, 9, 5)
        let date = try XCTUnwrap(Calendar(identifier: .gregorian).date(from: c))
        let t = try Template(source: "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%B %d, %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M %a %j %I%p') }}")
        XCTAssertEqual(try t.render(context: [:], now: date), "26 Jul 2024|July 26, 2024|2024-07-26 09:05 Fri 208 09AM")
        XCTAssertEqual(try t.render(context: [:], strftimeNow: { "<\($0)>" }), "<%d %b %Y>|<%B %d, %Y>|<%Y-%m-%d %H:%M %a %j %I%p>")
    }

    // MARK: errors

    func testRaiseExceptionBecomesRaised() {
        assertThrows("{% if x %}{{ raise_exception('bad role: ' ~ x) }}{% endif %}", ["x": "tool"]) { $0 == .raised("bad role: tool") }
    }

    func testErrorsCarryLineAndColumn() {
        assertThrows("line one\n  {{ 1 + }}") { e in
            if case .syntax(_, 2, let col) = e { return col > 1 }
            return false
        }
        assertThrows("a\nb\n{{ x.y.z }}") { e in
            if case .runtime(let m, 3, _) = e { return m.contains("'x' is undefined") }
            return false
        }
        assertThrows("{% for x in 3 %}{% endfor %}") { e in
            if case .runtime(let m, 1, _) = e { return m.contains("not iterable") }
            return false
        }
        assertThrows("{% endif %}") { if case .syntax = $0 { return true }; return false }
        assertThrows("{{ 'unterminated }}") { if case .syntax = $0 { return true }; return false }
        assertThrows("{# no end") { if case .syntax = $0 { return true }; return false }
        assertThrows("{% break %}") { if case .syntax = $0 { return true }; return false }
        assertThrows("{% include 'x' %}") { if case .syntax(let m, _, _) = $0 { return m.contains("include") }; return false }
    }

    func testImmutableSandboxRefusesMutation() {
        assertThrows("{% set xs = [1] %}{{ xs.append(2) }}") { e in
            if case .runtime(let m, _, _) = e { return m.contains("unsafe") }
            return false
        }
        assertThrows("{{ d.pop('a') }}", ["d": ["a": 1]]) { if case .runtime = $0 { return true }; return false }
    }

    // MARK: limits: a hostile template fails cleanly instead of hanging or crashing

    func testRunawayRecursionIsStopped() {
        assertThrows("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}") { e in
            if case .runtime(let m, _, _) = e { return m.contains("nest deeper") }
            return false
        }
    }

    /// The depth limits must trip before the stack runs out even when the caller is on a 512 KiB
    /// secondary-thread stack (Dispatch and Foundation threads default to that).
    func testRecursionLimitFitsSecondaryThreadStack() throws {
        let source = "{% macro f(n) %}{% for i in [n] %}{% if true %}{{ f(n + 1) | trim }}{% endif %}{% endfor %}{% endmacro %}{{ f(0) }}"
        let deep = "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}"
        let done = expectation(description: "rendered on a small stack")
        nonisolated(unsafe) var outcome: Error? = nil
        nonisolated(unsafe) var parseOutcome: Error? = nil
        let thread = Thread {
            do { _ = try Template(source: deep) } catch { parseOutcome = error }
            do { _ = try Template(source: source).render(context: [:]) } catch { outcome = error }
            done.fulfill()
        }
        thread.stackSize = 512 << 10
        thread.start()
        wait(for: [done], timeout: 30)
        guard case .runtime(let m, _, _)? = outcome as? TemplateError else { return XCTFail("expected a depth error, got \(String(describing: outcome))") }
        XCTAssertTrue(m.contains("nest deeper"), m)
        guard case .syntax? = parseOutcome as? TemplateError else { return XCTFail("expected a nesting error, got \(String(describing: parseOutcome))") }
    }

    func testLoopAndRangeLimits() throws {
        var t = try Template(source: "{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}")
        t.limits.maxLoopIterations = 5000
        XCTAssertThrowsError(try t.render(context: [:])) { e in
            guard case .runtime(let m, _, _) = e as? TemplateError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("loop iterations"), m)
        }
        assertThrows("{{ range(10000000) | length }}") { if case .runtime(let m, _, _) = $0 { return m.contains("range") }; return false }
    }

    func testOutputLimit() throws {
        var t = try Template(source: "{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}")
        t.limits.maxOutputBytes = 100_000
        XCTAssertThrowsError(try t.render(context: [:]))
        assertThrows("{{ 'x' * 1000000000 }}") { if case .runtime = $0 { return true }; return false }
        assertThrows("{{ 9223372036854775807 + 1 }}") { if case .runtime(let m, _, _) = $0 { return m.contains("overflow") }; return false }
    }

    func testDeepNestingIsRejectedNotCrashing() {
        let deep = "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}"
        assertThrows(deep) { if case .syntax = $0 { return true }; return false }
        let deepIf = String(repeating: "{% if true %}", count: 2000) + String(repeating: "{% endif %}", count: 2000)
        assertThrows(deepIf) { if case .syntax = $0 { return true }; return false }
    }

    /// Arbitrary fragments of template syntax must only ever produce a result or a TemplateError.
    func testGarbageNeverCrashes() {
        let pieces = ["{{", "}}", "{%", "%}", "{#", "#}", "-", "+", "if", "for", "x", "in", "endif", "endfor", "(", ")", "[", "]",
                      "{", "}", "'", "\"", "|", "trim", ".", ",", ":", "=", "set", "macro", "endmacro", "1", "2.5", "not", "is",
                      "defined", " ", "\n", "loop", "raw", "endraw", "~", "**", "//", "call", "caller", "none", "\\"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            let n = Int.random(in: 1...25, using: &rng)
            let src = (0..<n).map { _ in pieces.randomElement(using: &rng)! }.joined()
            do {
                _ = try render(src, ["x": [1, 2], "loop": "l"])
            } catch is TemplateError {
            } catch {
                XCTFail("non-template error \(error) for \(src.debugDescription)")
            }
        }
    }

    // MARK: chat API

    func testChatTemplateExtraVariablesAndToolsUndefinedWhenNil() throws {
        let source = "{% if tools is defined %}T{% endif %}{% if enable_thinking is defined and enable_thinking is false %}<nothink>{% endif %}"
            + "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{{ bos_token }}{{ eos_token }}{{ add_generation_prompt }}"
        let t = try ChatTemplate(source: source)
        let messages: TemplateValue = [["role": "user", "content": "hi"]]
        XCTAssertEqual(try t.render(messages: messages, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>"),
                       "[user:hi]<s></s>True")
        XCTAssertEqual(try t.render(messages: messages, tools: [], addGenerationPrompt: false, bosToken: "", eosToken: "",
                                    extra: ["enable_thinking": false]),
                       "T<nothink>[user:hi]False")
        XCTAssertThrowsError(try t.render(messages: "not a list", addGenerationPrompt: false, bosToken: "", eosToken: ""))
    }

    func testNumberFormattingLikePython() throws {
        XCTAssertEqual(try render("{{ a }} {{ b }} {{ c }} {{ d }} {{ e }} {{ f }}",
                                  ["a": 1.0, "b": 1e22, "c": 0.0001, "d": 123456789012345.6, "e": -2.5e-7, "f": .int(-42)]),
                       "1.0 1e+22 0.0001 123456789012345.6 -2.5e-07 -42")
    }
}
