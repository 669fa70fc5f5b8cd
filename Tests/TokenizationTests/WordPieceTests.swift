import Foundation
import ModelFiles
import TestSupport
import Tokenization
import XCTest

/// Compares the WordPiece tokenizer with Hugging Face `tokenizers` through the fixtures that
/// scripts/make-wordpiece-reference writes from all-MiniLM-L6-v2's tokenizer.json.
final class WordPieceTests: XCTestCase {
    private func tokenizerPath() throws -> String {
        try TestPaths.model("all-minilm-l6-v2") + "/tokenizer.json"
    }

    private func reference() throws -> [String: Any] {
        let object = try TestPaths.loadJSON(TestPaths.fixture("tokenization/wordpiece-reference.json"))
        return try XCTUnwrap(object as? [String: Any])
    }

    private func ids(_ value: Any?) throws -> [Int32] {
        try XCTUnwrap(value as? [Int]).map { Int32($0) }
    }

    func testFixtureWasMadeFromThisTokenizerFile() throws {
        let ref = try reference()
        XCTAssertEqual(try FileDigest.sha256(path: try tokenizerPath()), ref["tokenizer_json_sha256"] as? String,
                       "tokenizer.json changed: rerun scripts/make-wordpiece-reference")
    }

    func testEncodingsMatchTokenizers() throws {
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: try tokenizerPath())
        let cases = try XCTUnwrap(try reference()["cases"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(cases.count, 60)
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            for (key, special) in [("with_special", true), ("without_special", false)] {
                let expected = try XCTUnwrap(c[key] as? [String: Any])
                let got = tokenizer.encode(text, addSpecialTokens: special)
                XCTAssertEqual(got, try ids(expected["ids"]), "\(key) ids of \(text.debugDescription)")
                XCTAssertEqual(got.map { tokenizer.token(forID: $0) ?? "<none>" },
                               try XCTUnwrap(expected["tokens"] as? [String]), "\(key) tokens of \(text.debugDescription)")
                XCTAssertEqual(try ids(expected["type_ids"]), [Int32](repeating: 0, count: got.count))
            }
            let withSpecial = tokenizer.encode(text)
            XCTAssertEqual(tokenizer.decode(withSpecial, skipSpecial: true), c["decoded_skip_special"] as? String,
                           "decode of \(text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(withSpecial, skipSpecial: false), c["decoded_keep_special"] as? String,
                           "decode keeping special tokens of \(text.debugDescription)")
        }
    }

    func testPairsMatchTokenizers() throws {
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: try tokenizerPath())
        let pairs = try XCTUnwrap(try reference()["pairs"] as? [[String: Any]])
        XCTAssertFalse(pairs.isEmpty)
        for p in pairs {
            let a = try XCTUnwrap(p["a"] as? String), b = try XCTUnwrap(p["b"] as? String)
            for (key, special) in [("with_special", true), ("without_special", false)] {
                let expected = try XCTUnwrap(p[key] as? [String: Any])
                let got = tokenizer.encodePair(a, b, addSpecialTokens: special)
                XCTAssertEqual(got.ids, try ids(expected["ids"]), "\(key) ids of \(a.debugDescription) / \(b.debugDescription)")
                XCTAssertEqual(got.typeIDs, try ids(expected["type_ids"]), "\(key) type ids of \(a.debugDescription) / \(b.debugDescription)")
            }
        }
    }

    func testDecodesMatchTokenizers() throws {
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: try tokenizerPath())
        let decodes = try XCTUnwrap(try reference()["decodes"] as? [[String: Any]])
        XCTAssertFalse(decodes.isEmpty)
        for d in decodes {
            let input = try ids(d["ids"])
            XCTAssertEqual(tokenizer.decode(input, skipSpecial: true), d["skip_special"] as? String, "\(input)")
            XCTAssertEqual(tokenizer.decode(input, skipSpecial: false), d["keep_special"] as? String, "\(input)")
        }
        // Ids no token has (negative ones cannot reach `tokenizers`) are dropped, like unknown ones.
        XCTAssertEqual(tokenizer.decode([-1, 7592, Int32.min, 2088, Int32.max]), tokenizer.decode([7592, 2088]))
    }

    /// lstrip / rstrip / single_word / normalized added tokens, which MiniLM's file does not use:
    /// the same tokens are appended here as the script appended them before asking `tokenizers`.
    func testAddedTokenOptionsMatchTokenizers() throws {
        let ref = try reference()
        var config = try XCTUnwrap(try TestPaths.loadJSON(try tokenizerPath()) as? [String: Any])
        let extra = try XCTUnwrap(ref["extra_added_tokens"] as? [[String: Any]])
        config["added_tokens"] = try XCTUnwrap(config["added_tokens"] as? [[String: Any]]) + extra
        let tokenizer = try WordPieceTokenizer(data: try JSONSerialization.data(withJSONObject: config))
        let cases = try XCTUnwrap(ref["extra_cases"] as? [[String: Any]])
        XCTAssertFalse(cases.isEmpty)
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            let expected = try XCTUnwrap(c["without_special"] as? [String: Any])
            let got = tokenizer.encode(text, addSpecialTokens: false)
            XCTAssertEqual(got, try ids(expected["ids"]), "ids of \(text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(got), c["decoded_skip_special"] as? String, "decode of \(text.debugDescription)")
        }
    }

    func testVocabularyAndSpecialIDs() throws {
        let path = try tokenizerPath()
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: path)
        let ref = try reference()
        XCTAssertEqual(tokenizer.vocabSize, ref["vocab_size"] as? Int)
        // [CLS] and [SEP] as `tokenizers` placed them around a reference encoding.
        let hello = try XCTUnwrap((try XCTUnwrap(ref["cases"] as? [[String: Any]])).first { $0["text"] as? String == "Hello, world!" })
        let helloIDs = try ids((hello["with_special"] as? [String: Any])?["ids"])
        XCTAssertEqual(tokenizer.clsID, helloIDs.first)
        XCTAssertEqual(tokenizer.sepID, helloIDs.last)
        // [PAD] and [UNK] as the file itself declares them.
        let config = try XCTUnwrap(try TestPaths.loadJSON(path) as? [String: Any])
        let padding = try XCTUnwrap(config["padding"] as? [String: Any])
        XCTAssertEqual(tokenizer.padID, Int32(try XCTUnwrap(padding["pad_id"] as? Int)))
        let vocab = try XCTUnwrap((config["model"] as? [String: Any])?["vocab"] as? [String: Int])
        XCTAssertEqual(tokenizer.unkID, Int32(try XCTUnwrap(vocab["[UNK]"])))
        XCTAssertEqual(tokenizer.token(forID: tokenizer.unkID), "[UNK]")
        XCTAssertEqual(tokenizer.id(forToken: "[MASK]"), vocab["[MASK]"].map(Int32.init))
        XCTAssertNil(tokenizer.token(forID: Int32(tokenizer.vocabSize)))
        XCTAssertEqual(tokenizer.modelMaxLength, 512)
    }

    func testLengthIsCheckedNotTruncated() throws {
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: try tokenizerPath())
        // "hello" is one token, so 510 words plus [CLS] and [SEP] is exactly the limit.
        let fits = tokenizer.encode(Array(repeating: "hello", count: 510).joined(separator: " "))
        XCTAssertEqual(fits.count, 512)
        XCTAssertNoThrow(try tokenizer.checkLength(fits))
        let long = Array(repeating: "hello", count: 600).joined(separator: " ")
        let ids = tokenizer.encode(long)
        XCTAssertEqual(ids.count, 602, "encode must not truncate")
        XCTAssertThrowsError(try tokenizer.checkLength(ids)) { error in
            XCTAssertEqual(error as? WordPieceError, .tooLong(count: 602, maxLength: 512))
            XCTAssertTrue("\(error)".contains("602"))
        }
        XCTAssertThrowsError(try tokenizer.encodeChecked(long))
        XCTAssertThrowsError(try tokenizer.checkLength(fits, maxLength: 128)) { error in
            XCTAssertEqual(error as? WordPieceError, .tooLong(count: 512, maxLength: 128))
        }
    }

    // MARK: Unsupported or broken files throw instead of crashing

    /// A tiny BERT-style tokenizer.json, so variants can be built without the real vocabulary.
    private func miniConfig() -> [String: Any] {
        [
            "added_tokens": [["id": 0, "content": "[PAD]", "special": true], ["id": 1, "content": "[UNK]", "special": true],
                             ["id": 2, "content": "[CLS]", "special": true], ["id": 3, "content": "[SEP]", "special": true]],
            "normalizer": ["type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                           "strip_accents": NSNull(), "lowercase": true],
            "pre_tokenizer": ["type": "BertPreTokenizer"],
            "post_processor": ["type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]],
            "decoder": ["type": "WordPiece", "prefix": "##", "cleanup": true],
            "model": ["type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100,
                      "vocab": ["[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "un": 4, "##able": 5, "able": 6, "!": 7]],
        ]
    }

    private func load(_ config: [String: Any]) throws -> WordPieceTokenizer {
        try WordPieceTokenizer(data: try JSONSerialization.data(withJSONObject: config))
    }

    func testMiniConfigWorks() throws {
        let tokenizer = try load(miniConfig())
        XCTAssertEqual(tokenizer.encode("Unable able!"), [2, 4, 5, 6, 7, 3])
        XCTAssertEqual(tokenizer.encode("unknown"), [2, 1, 3])
        XCTAssertEqual(tokenizer.encodePair("un", "able").typeIDs, [0, 0, 0, 1, 1])
        XCTAssertEqual(tokenizer.decode([2, 4, 5, 6, 7, 3]), "unable able!")
    }

    func testUnsupportedComponentsThrow() throws {
        let variants: [(String, String, [String: Any])] = [
            ("normalizer", "NFKC", ["type": "NFKC"]),
            ("pre_tokenizer", "ByteLevel", ["type": "ByteLevel", "add_prefix_space": false]),
            ("decoder", "ByteLevel", ["type": "ByteLevel"]),
            ("post_processor", "RobertaProcessing", ["type": "RobertaProcessing"]),
        ]
        for (key, type, value) in variants {
            var config = miniConfig()
            config[key] = value
            XCTAssertThrowsError(try load(config), key) { error in
                XCTAssertEqual(error as? WordPieceError, .unsupported(component: key, type: type))
                XCTAssertTrue("\(error)".contains(type))
            }
        }
        var config = miniConfig()
        var model = config["model"] as? [String: Any] ?? [:]
        model["type"] = "BPE"
        config["model"] = model
        XCTAssertThrowsError(try load(config)) { error in
            XCTAssertEqual(error as? WordPieceError, .unsupported(component: "model", type: "BPE"))
        }
    }

    func testBrokenFilesThrow() throws {
        XCTAssertThrowsError(try WordPieceTokenizer(data: Data("not json".utf8))) { error in
            guard case .invalidJSON = error as? WordPieceError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try WordPieceTokenizer(data: Data("[1, 2]".utf8)))
        XCTAssertThrowsError(try WordPieceTokenizer(tokenizerJSON: "/nonexistent/tokenizer.json")) { error in
            guard case .cannotRead = error as? WordPieceError else { return XCTFail("\(error)") }
        }
        var config = miniConfig()
        config.removeValue(forKey: "model")
        XCTAssertThrowsError(try load(config)) { XCTAssertEqual($0 as? WordPieceError, .missingField("model")) }

        config = miniConfig()
        var model = config["model"] as? [String: Any] ?? [:]
        model["unk_token"] = "<unk>"
        config["model"] = model
        XCTAssertThrowsError(try load(config)) { error in
            guard case .invalidValue(field: "model.unk_token", _) = error as? WordPieceError else { return XCTFail("\(error)") }
        }

        config = miniConfig()
        model = config["model"] as? [String: Any] ?? [:]
        model["vocab"] = ["[UNK]": 1, "bad": -5]
        config["model"] = model
        XCTAssertThrowsError(try load(config))

        config = miniConfig()
        model = config["model"] as? [String: Any] ?? [:]
        model["vocab"] = ["[UNK]": 1, "big": 2_000_000_000]
        config["model"] = model
        XCTAssertThrowsError(try load(config))

        config = miniConfig()
        config["normalizer"] = ["type": "BertNormalizer", "lowercase": "yes"]
        XCTAssertThrowsError(try load(config)) { error in
            XCTAssertEqual(error as? WordPieceError, .invalidValue(field: "normalizer.lowercase", reason: "should be true or false"))
        }

        config = miniConfig()
        config["post_processor"] = ["type": "TemplateProcessing", "single": [["SpecialToken": ["id": "[BOS]", "type_id": 0]]],
                                    "pair": [], "special_tokens": [:]]
        XCTAssertThrowsError(try load(config))

        // A pair template without $B would drop the second text silently.
        config = miniConfig()
        let cls: [String: Any] = ["SpecialToken": ["id": "[CLS]", "type_id": 0]]
        let a: [String: Any] = ["Sequence": ["id": "A", "type_id": 0]]
        config["post_processor"] = ["type": "TemplateProcessing", "single": [cls, a], "pair": [cls, a],
                                    "special_tokens": ["[CLS]": ["id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]]]]
        XCTAssertThrowsError(try load(config)) { error in
            XCTAssertEqual(error as? WordPieceError, .invalidValue(field: "post_processor.pair", reason: "has no $B sequence"))
        }
    }

    // MARK: Every Unicode scalar, classified as `tokenizers` classifies it

    private func classes() throws -> [String: Any] {
        let object = try TestPaths.loadJSON(TestPaths.fixture("tokenization/wordpiece-charclasses.json"))
        return try XCTUnwrap(object as? [String: Any])
    }

    private func rangeSet(_ value: Any?) throws -> Set<UInt32> {
        var set = Set<UInt32>()
        for pair in try XCTUnwrap(value as? [[Int]]) {
            for v in pair[0]...pair[1] { set.insert(UInt32(v)) }
        }
        return set
    }

    private func scalarMap(_ value: Any?) throws -> [UInt32: [Unicode.Scalar]] {
        var map = [UInt32: [Unicode.Scalar]]()
        for (key, list) in try XCTUnwrap(value as? [String: [Int]]) {
            map[try XCTUnwrap(UInt32(key))] = list.compactMap { Unicode.Scalar(UInt32($0)) }
        }
        return map
    }

    private var allScalars: [Unicode.Scalar] {
        (0...0x10FFFF).compactMap { Unicode.Scalar(UInt32($0)) }
    }

    private func string(_ scalars: [Unicode.Scalar]) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    /// Index of the first difference, for a readable failure instead of a 1M-element dump.
    private func assertSameScalars(_ got: String, _ expected: [Unicode.Scalar], _ what: String) {
        let g = Array(got.unicodeScalars)
        guard g != expected else { return }
        let i = (0..<min(g.count, expected.count)).first { g[$0] != expected[$0] } ?? min(g.count, expected.count)
        let show = { (a: [Unicode.Scalar]) in a[max(0, i - 3)..<min(a.count, i + 4)].map { String($0.value, radix: 16) } }
        XCTFail("\(what): first difference at \(i): got \(show(g)), expected \(show(expected))")
    }

    func testCleanTextAndChineseCharsOnEveryScalar() throws {
        let c = try classes()
        let removed = try rangeSet(c["clean_text_removes"]), toSpace = try rangeSet(c["clean_text_to_space"])
        let chinese = try rangeSet(c["chinese_chars"])
        let scalars = allScalars
        var expected = [Unicode.Scalar]()
        for s in scalars where !removed.contains(s.value) {
            expected.append(toSpace.contains(s.value) ? " " : s)
        }
        let clean = BertNormalizer(cleanText: true, handleChineseChars: false, stripAccents: false, lowercase: false)
        assertSameScalars(clean.normalize(string(scalars)), expected, "clean_text")

        expected = []
        for s in scalars {
            if chinese.contains(s.value) { expected += [" ", s, " "] } else { expected.append(s) }
        }
        let pad = BertNormalizer(cleanText: false, handleChineseChars: true, stripAccents: false, lowercase: false)
        assertSameScalars(pad.normalize(string(scalars)), expected, "handle_chinese_chars")
    }

    func testStripAccentsAndLowercaseOnEveryScalar() throws {
        let c = try classes()
        let strips = try scalarMap(c["strip_accents"]), hangul = try scalarMap(c["strip_accents_hangul_samples"])
        let lowers = try scalarMap(c["lowercase"])
        // A Hiragana letter between scalars: a non-ASCII starter that never decomposes, so NFD
        // cannot reorder across it and the whole input is decomposed as one run.
        let separator: Unicode.Scalar = "\u{3042}"
        var input = [Unicode.Scalar](), expected = [Unicode.Scalar]()
        for s in allScalars where !(0xAC00...0xD7A3).contains(s.value) || hangul[s.value] != nil {
            input += [separator, s]
            expected.append(separator)
            expected += strips[s.value] ?? hangul[s.value] ?? [s]
        }
        let strip = BertNormalizer(cleanText: false, handleChineseChars: false, stripAccents: true, lowercase: false)
        assertSameScalars(strip.normalize(string(input)), expected, "strip_accents")

        expected = []
        for s in allScalars { expected += lowers[s.value] ?? [s] }
        let lower = BertNormalizer(cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: true)
        assertSameScalars(lower.normalize(string(allScalars)), expected, "lowercase")
    }

    func testPreTokenizerOnEveryScalar() throws {
        let c = try classes()
        let whitespace = try rangeSet(c["pretokenizer_whitespace"]), punctuation = try rangeSet(c["pretokenizer_punctuation"])
        // "a" + scalar, repeated: a whitespace scalar ends the word, punctuation stands alone.
        var input = [Unicode.Scalar](), expected = [String](), word = ""
        for s in allScalars where s != "a" {
            input += ["a", s]
            word.unicodeScalars.append("a")
            if s == " " || whitespace.contains(s.value) {
                expected.append(word)
                word = ""
            } else if punctuation.contains(s.value) {
                expected += [word, String(Character(s))]
                word = ""
            } else {
                word.unicodeScalars.append(s)
            }
        }
        if !word.isEmpty { expected.append(word) }
        let got = BertPreTokenizer().split(string(input))
        if got != expected {
            let i = (0..<min(got.count, expected.count)).first { got[$0] != expected[$0] } ?? min(got.count, expected.count)
            let tail = { (words: [String]) in words[i..<min(words.count, i + 3)].map { String($0.suffix(12)).debugDescription } }
            XCTFail("pre-tokenizer differs at word \(i): got (word ends) \(tail(got)), expected \(tail(expected))")
        }
    }
}
