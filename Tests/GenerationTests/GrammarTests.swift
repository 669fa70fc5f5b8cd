import Foundation
import Generation
import XCTest

final class GrammarTests: XCTestCase {
    func matches(_ g: Grammar, _ text: String) -> Bool {
        let m = GrammarMatcher(grammar: g)
        return m.accept(text) && m.isComplete
    }

    func grammar(_ s: String) throws -> Grammar { try Grammar(gbnf: s) }

    func testLiteralsClassesAndAlternation() throws {
        let g = try grammar(#"""
        # a comment
        root ::= greeting " " name   # trailing comment
        greeting ::= "hi" | "hello"
        name ::= [A-Z] [a-z]*
        """#)
        XCTAssertTrue(matches(g, "hi Bob"))
        XCTAssertTrue(matches(g, "hello X"))
        XCTAssertFalse(matches(g, "hello x"))
        XCTAssertFalse(matches(g, "hey Bob"))
        XCTAssertFalse(matches(g, "hi "))
    }

    func testRepetitionBounds() throws {
        let g = try grammar(#"root ::= "a"{2,4} "b"{3} "c"{1,} "d"?"#)
        XCTAssertFalse(matches(g, "abbbc"))
        XCTAssertTrue(matches(g, "aabbbc"))
        XCTAssertTrue(matches(g, "aaaabbbccccd"))
        XCTAssertFalse(matches(g, "aaaaabbbc"))
        XCTAssertFalse(matches(g, "aabbc"))
        XCTAssertFalse(matches(g, "aabbbcdd"))
        let plus = try grammar(#"root ::= ("ab" | "c")+"#)
        XCTAssertTrue(matches(plus, "abcab"))
        XCTAssertFalse(matches(plus, ""))
        XCTAssertFalse(matches(plus, "abb"))
    }

    func testEmptyAlternativesAndNullableLoops() throws {
        let g = try grammar(#"""
        root ::= x "!"
        x ::= | "a" x
        """#)
        XCTAssertTrue(matches(g, "!"))
        XCTAssertTrue(matches(g, "aaa!"))
        // A star over something that can match nothing must not hang.
        let h = try grammar(#"root ::= ("a"?)* "b""#)
        XCTAssertTrue(matches(h, "b"))
        XCTAssertTrue(matches(h, "aab"))
        let e = try grammar(#"root ::= "" | "x""#)
        XCTAssertTrue(matches(e, ""))
        XCTAssertTrue(matches(e, "x"))
    }

    func testEscapesAndUnicode() throws {
        let g = try grammar(#"root ::= "\x41\u00e9\U0001F600\n\t\\\"" [\u4e00-\u9fff]+"#)
        XCTAssertTrue(matches(g, "Aé😀\n\t\\\"中文"))
        XCTAssertFalse(matches(g, "Aé😀\n\t\\\"a"))
        let any = try grammar(#"root ::= . . [^a-c]"#)
        XCTAssertTrue(matches(any, "é😀d"))
        XCTAssertFalse(matches(any, "xyb"))
    }

    func testMultiByteCharacterSplitAcrossChunks() throws {
        let g = try grammar(#"root ::= "é" [😀-😂] "x""#)
        let m = GrammarMatcher(grammar: g)
        let bytes = Array("é😁x".utf8)   // 2 + 4 + 1 bytes
        // Feed one byte at a time: each prefix of a character is accepted while it can still
        // become an allowed character.
        for b in bytes.dropLast() { XCTAssertTrue(m.accept([b])); XCTAssertFalse(m.isComplete) }
        XCTAssertTrue(m.accept([bytes.last!]))
        XCTAssertTrue(m.isComplete)
        // A lead byte that can only start characters outside the class is refused at once.
        let m2 = GrammarMatcher(grammar: g)
        XCTAssertTrue(m2.accept(Array("é".utf8)))
        XCTAssertFalse(m2.canAccept([0xE4]))            // 3-byte lead: no emoji there
        XCTAssertTrue(m2.canAccept([0xF0, 0x9F]))
        XCTAssertFalse(m2.canAccept(Array("😃".utf8)))   // U+1F603 is past the range
        XCTAssertFalse(m2.canAccept([0xFF]))             // never valid UTF-8
    }

    func testTokensSpanningSymbols() throws {
        // "{\"a" crosses a literal, a rule boundary and a class in one chunk.
        let g = try grammar(#"""
        root ::= "{" key ":" [0-9]+ "}"
        key ::= "\"" [a-z]+ "\""
        """#)
        let m = GrammarMatcher(grammar: g)
        XCTAssertTrue(m.accept("{\"a"))
        XCTAssertTrue(m.accept("b\":1"))
        XCTAssertFalse(m.isComplete)
        XCTAssertFalse(m.canAccept("}x"))
        XCTAssertTrue(m.accept("2}"))
        XCTAssertTrue(m.isComplete)
    }

    func testMultiLineRulesAndContinuations() throws {
        let g = try grammar("""
        root ::= (
            "a"
            | "b"
        ) tail
        tail ::= "x"
          | "y"
        """)
        XCTAssertTrue(matches(g, "ax"))
        XCTAssertTrue(matches(g, "by"))
        XCTAssertFalse(matches(g, "ab"))
    }

    func testParseErrors() {
        func error(_ s: String) -> GrammarError? {
            do { _ = try Grammar(gbnf: s); return nil } catch { return error }
        }
        let undefined = error("root ::= foo")
        XCTAssertEqual(undefined?.line, 1)
        XCTAssertEqual(undefined?.column, 10)
        XCTAssertTrue(undefined?.message.contains("'foo'") ?? false)
        XCTAssertTrue(error("rule ::= \"a\"")?.message.contains("'root'") ?? false)
        let unterminated = error("root ::= \"abc\nx ::= \"y\"")
        XCTAssertEqual(unterminated?.line, 1)
        XCTAssertTrue(unterminated?.message.contains("unterminated") ?? false)
        XCTAssertEqual(error("root ::= \"a\"\nx ::= [a-")?.line, 2)
        XCTAssertNotNil(error("root ::= (\"a\""))
        XCTAssertNotNil(error("root ::= \"a\"{3,1}"))
        XCTAssertNotNil(error("root ::= \"\\q\""))
        XCTAssertNotNil(error("root ::= \"a\"\nroot ::= \"b\""))
        XCTAssertNotNil(error("root = \"a\""))
        XCTAssertNotNil(error(""))
        XCTAssertTrue(error("root ::= expr\nexpr ::= expr \"+\" term | term\nterm ::= [0-9]")?.message.contains("left recursion") ?? false)
        XCTAssertTrue(error("root ::= a\na ::= b? a \"x\" | \"y\"\nb ::= \"b\"")?.message.contains("left recursion") ?? false)
        XCTAssertNotNil(error("root ::= \"a\"{2000000}"))
    }

    func testRightRecursionIsFine() throws {
        let g = try grammar(#"""
        root ::= value
        value ::= "[" (value ("," value)*)? "]" | "1"
        """#)
        XCTAssertTrue(matches(g, "[[1,[1]],[],1]"))
        XCTAssertFalse(matches(g, "[[1]"))
    }

    func testLlamaCppJSONGrammarParses() throws {
        // llama.cpp's grammars/json.gbnf, written out.
        let g = try grammar(#"""
        root   ::= object
        value  ::= object | array | string | number | ("true" | "false" | "null") ws

        object ::=
          "{" ws (
                    string ":" ws value
            ("," ws string ":" ws value)*
          )? "}" ws

        array  ::=
          "[" ws (
                    value
            ("," ws value)*
          )? "]" ws

        string ::=
          "\"" (
            [^"\\\x7F\x00-\x1F] |
            "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
          )* "\"" ws

        number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

        # Optional space: by convention, applied in this grammar after literal chars when allowed
        ws ::= | " " | "\n" [ \t]{0,20}
        """#)
        XCTAssertTrue(matches(g, #"{"a": [1, 2.5, {"b": "c\n\u00e9"}], "d": true}"#))
        XCTAssertFalse(matches(g, #"{"a": }"#))
    }
}
