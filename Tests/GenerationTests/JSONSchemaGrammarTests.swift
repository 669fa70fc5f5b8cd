import Foundation
import Generation
import XCTest

final class JSONSchemaGrammarTests: XCTestCase {
    func g(_ schema: String) throws -> Grammar { try JSONSchemaGrammar.grammar(schemaJSON: schema) }
    func ok(_ g: Grammar, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
        let m = GrammarMatcher(grammar: g)
        XCTAssertTrue(m.accept(text) && m.isComplete, "should accept: \(text)\n\(g.source)", file: file, line: line)
    }
    func no(_ g: Grammar, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
        let m = GrammarMatcher(grammar: g)
        XCTAssertFalse(m.accept(text) && m.isComplete, "should refuse: \(text)", file: file, line: line)
    }
    func unsupported(_ schema: String) -> String? {
        do { _ = try g(schema); return nil } catch let e as JSONSchemaError { return e.feature } catch { return nil }
    }

    func testPrimitives() throws {
        let s = try g(#"{"type": "string"}"#)
        ok(s, #""héllo \"x\" \u00e9""#); no(s, "\"a\nb\""); no(s, "1")
        let i = try g(#"{"type": "integer"}"#)
        ok(i, "-12"); ok(i, "0"); no(i, "01"); no(i, "1.5"); no(i, "-0x")
        let n = try g(#"{"type": "number"}"#)
        ok(n, "-1.5e+10"); ok(n, "3"); no(n, "1."); no(n, ".5")
        ok(try g(#"{"type": "boolean"}"#), "true"); no(try g(#"{"type": "boolean"}"#), "yes")
        ok(try g(#"{"type": "null"}"#), "null")
        let either = try g(#"{"type": ["string", "null"]}"#)
        ok(either, "null"); ok(either, #""x""#); no(either, "1")
        let any = try g("{}")
        ok(any, #"[1, {"a": null}, "x"]"#)
    }

    func testObjects() throws {
        let o = try g(#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}}},"required":["name"],"additionalProperties":false}"#)
        ok(o, #"{"name":"a"}"#)
        ok(o, #"{"name": "a", "age": 3, "tags": ["x"]}"#)
        ok(o, #"{"name":"a","tags":[]}"#)
        ok(o, "{\n  \"name\": \"a\",\n  \"age\": 3\n}")
        no(o, #"{"age":3}"#)                    // required missing
        no(o, #"{"age":3,"name":"a"}"#)         // schema order
        no(o, #"{"name":"a","extra":1}"#)
        no(o, #"{"name":"a",}"#)
        no(o, #"{"name":"a"}     "#)            // whitespace is bounded
        let allOptional = try g(#"{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}}}"#)
        ok(allOptional, "{}"); ok(allOptional, #"{"b":1}"#); ok(allOptional, #"{"a":1,"b":2}"#); no(allOptional, #"{,"b":1}"#)
        let extra = try g(#"{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"],"additionalProperties":{"type":"boolean"}}"#)
        ok(extra, #"{"id":1,"x":true,"ids":false}"#)
        no(extra, #"{"id":1,"id":true}"#)       // an extra key may not repeat a named one
        no(extra, #"{"id":1,"x":2}"#)
        let anyObject = try JSONSchemaGrammar.anyObject()
        ok(anyObject, #"{"a":[1,2],"b":{"c":null}}"#); no(anyObject, "[1]")
    }

    func testArraysEnumsConstAnyOf() throws {
        let a = try g(#"{"type":"array","items":{"enum":["red","green",3,null]},"minItems":2,"maxItems":3}"#)
        ok(a, #"["red",3]"#); ok(a, #"["red", null, "green"]"#); no(a, #"["red"]"#); no(a, #"["red",3,3,3]"#); no(a, #"["blue",3]"#)
        ok(try g(#"{"const":{"k":[1,"x"]}}"#), #"{"k":[1,"x"]}"#)
        let u = try g(#"{"anyOf":[{"type":"integer","minimum":0,"maximum":9},{"type":"string","maxLength":2}]}"#)
        ok(u, "7"); ok(u, #""ab""#); no(u, "10"); no(u, #""abc""#)
        let one = try g(#"{"oneOf":[{"type":"boolean"},{"type":"null"}]}"#)
        ok(one, "null"); ok(one, "false")
    }

    func testRefsAndRecursion() throws {
        let tree = try g(##"{"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}},"$ref":"#/$defs/node"}"##)
        ok(tree, #"{"v":1,"kids":[{"v":2},{"v":3,"kids":[]}]}"#)
        no(tree, #"{"v":1,"kids":[{"w":2}]}"#)
        let defs = try g(##"{"definitions":{"p":{"type":"string","format":"uuid"}},"type":"object","properties":{"id":{"$ref":"#/definitions/p"}},"required":["id"]}"##)
        ok(defs, #"{"id":"123e4567-e89b-12d3-a456-426614174000"}"#)
        no(defs, #"{"id":"123e4567"}"#)
    }

    func testAllOfMergesObjects() throws {
        let m = try g(##"{"$defs":{"base":{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}},"allOf":[{"$ref":"#/$defs/base"},{"properties":{"b":{"type":"string"}},"required":["b"]}]}"##)
        ok(m, #"{"a":1,"b":"x"}"#); no(m, #"{"a":1}"#)
        XCTAssertEqual(unsupported(#"{"allOf":[{"type":"string"},{"maxLength":3}]}"#), "allOf (only of objects)")
    }

    func testStringsLengthFormatsPatterns() throws {
        let l = try g(#"{"type":"string","minLength":2,"maxLength":3}"#)
        ok(l, #""ab""#); ok(l, #""a\nb""#); ok(l, #""éé""#); no(l, #""a""#); no(l, #""abcd""#)
        let d = try g(#"{"type":"string","format":"date"}"#)
        ok(d, #""2024-02-28""#); ok(d, #""2023-12-31""#); no(d, #""2024-13-01""#); no(d, #""2024-04-31""#); no(d, #""2024-1-1""#)
        let t = try g(#"{"type":"string","format":"time"}"#)
        ok(t, #""23:59:59Z""#); ok(t, #""08:00:00.123+02:00""#); no(t, #""24:00:00Z""#); no(t, #""12:00:00""#)
        ok(try g(#"{"format":"date-time"}"#), #""2024-01-05T10:20:30-05:00""#)
        let e = try g(#"{"type":"string","format":"email"}"#)
        ok(e, #""a.b+c@example.co.uk""#); no(e, #""nobody""#); no(e, #""a@b""#)
        let p = try g(#"{"type":"string","pattern":"^[A-Z]{2}-\\d{3}(x|yz)?$"}"#)
        ok(p, #""AB-123""#); ok(p, #""QQ-000yz""#); no(p, #""AB-12""#); no(p, #""ab-123""#); no(p, #""AB-123x ""#)
        let unanchored = try g(#"{"type":"string","pattern":"a.c"}"#)
        ok(unanchored, #""xxabcxx""#); ok(unanchored, #""a-c""#); no(unanchored, #""ac""#)
        let quote = try g(#"{"type":"string","pattern":"^\"[^a]$"}"#)
        ok(quote, #""\"b""#); no(quote, #""\"a""#)
    }

    func testIntegerRanges() throws {
        func check(_ schema: String, _ range: ClosedRange<Int>, probe: ClosedRange<Int>) throws {
            let gr = try g(schema)
            for v in probe {
                let m = GrammarMatcher(grammar: gr)
                let accepted = m.accept(String(v)) && m.isComplete
                XCTAssertEqual(accepted, range.contains(v), "\(schema) on \(v)")
            }
        }
        try check(#"{"type":"integer","minimum":7,"maximum":123}"#, 7...123, probe: -5...200)
        try check(#"{"type":"integer","minimum":-42,"maximum":-3}"#, -42...(-3), probe: -120...20)
        try check(#"{"type":"integer","minimum":-15,"maximum":1009}"#, -15...1009, probe: -30...1100)
        try check(#"{"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":50}"#, 1...49, probe: -10...60)
        let nonNeg = try g(#"{"type":"integer","minimum":0}"#)
        ok(nonNeg, "0"); ok(nonNeg, "987654321"); no(nonNeg, "-1"); no(nonNeg, "00")
        let atMost = try g(#"{"type":"integer","maximum":-100}"#)
        ok(atMost, "-100"); ok(atMost, "-123456"); no(atMost, "-99"); no(atMost, "5")
        let from = try g(#"{"type":"integer","minimum":95}"#)
        ok(from, "95"); ok(from, "100"); ok(from, "12345"); no(from, "94"); no(from, "9")
    }

    func testUnsupportedFeaturesAreNamed() {
        XCTAssertEqual(unsupported(#"{"type":"integer","multipleOf":3}"#), "multipleOf")
        XCTAssertEqual(unsupported(#"{"type":"object","patternProperties":{"^x":{}}}"#), "patternProperties")
        XCTAssertEqual(unsupported(#"{"type":"array","uniqueItems":true}"#), "uniqueItems")
        XCTAssertEqual(unsupported(#"{"not":{"type":"string"}}"#), "not")
        XCTAssertEqual(unsupported(#"{"if":{},"then":{}}"#), "if")
        XCTAssertEqual(unsupported(#"{"type":"object","dependentRequired":{}}"#), "dependentRequired")
        XCTAssertEqual(unsupported(#"{"type":"string","format":"hostname"}"#), "format \"hostname\"")
        XCTAssertEqual(unsupported(#"{"$ref":"https://example.com/s.json"}"#), "external $ref 'https://example.com/s.json'")
        XCTAssertEqual(unsupported(#"{"type":"number","minimum":0.5}"#), "minimum on type number (bounds are supported on integers only)")
        XCTAssertEqual(unsupported(#"{"type":"string","pattern":"(?=a)b"}"#), "pattern: lookaround or named group '(?'")
        XCTAssertEqual(unsupported(#"{"type":"string","pattern":"(a)\\1"}"#), "pattern: backreference '\\1'")
        // Annotations are ignored.
        XCTAssertNoThrow(try g(#"{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"T","description":"d","examples":[1],"default":1,"$comment":"c","type":"integer"}"#))
        XCTAssertThrowsError(try g(#"{"type":"object""#))
        XCTAssertThrowsError(try g(##"{"$ref":"#/$defs/missing"}"##))
    }
}
