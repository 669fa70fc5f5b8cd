import Foundation
import ModelFiles
import TestSupport
import Tokenization
import XCTest

/// Our tokenizers against llama.cpp's (llama-tokenize, special tokens parsed) on the real models.
final class GoldenTokenizationTests: XCTestCase {
    func testEncodeMatchesLlamaCppGoldens() throws {
        let all = try Models.goldenCases()
        XCTAssertEqual(all.count, 2, "expected both models in the golden file")
        for (key, cases) in all {
            let tok = try Models.named(key)
            XCTAssertGreaterThan(cases.count, 20)
            for c in cases {
                XCTAssertEqual(tok.encode(c.text, parseSpecial: true), c.withBOS,
                               "\(key) default BOS: \(c.text.debugDescription)")
                XCTAssertEqual(tok.encode(c.text, addBOS: false, parseSpecial: true), c.noBOS,
                               "\(key) no BOS: \(c.text.debugDescription)")
            }
        }
    }

    func testSmolLMMetadata() throws {
        let tok = try Models.smollm.get()
        XCTAssertEqual(tok.model, .bytePairEncoding)
        XCTAssertEqual(tok.preTokenizer?.kind, .smollm)
        XCTAssertEqual(tok.vocabSize, 49152)
        XCTAssertEqual(tok.bosID, 1)
        XCTAssertEqual(tok.eosID, 2)
        XCTAssertFalse(tok.addsBOS)
        XCTAssertFalse(tok.addsEOS)
        XCTAssertEqual(tok.tokenText(2), "<|im_end|>")
        XCTAssertEqual(tok.eotID, 2)
        XCTAssertTrue(tok.isEOG(2))   // <|im_end|>
        XCTAssertTrue(tok.isEOG(0))   // <|endoftext|>
        XCTAssertFalse(tok.isEOG(1))  // <|im_start|>
        XCTAssertTrue(tok.isControl(1))
        XCTAssertEqual(tok.tokenType(1), .control)
        XCTAssertFalse(tok.isControl(504))
        // Byte-level vocabulary text vs decoded piece.
        XCTAssertEqual(tok.tokenText(216), "Ġ")
        XCTAssertEqual(tok.piece(216), " ")
        XCTAssertEqual(tok.piece(198), "\n")
    }

    func testGemmaMetadata() throws {
        let tok = try Models.gemma.get()
        XCTAssertEqual(tok.model, .sentencePiece)
        XCTAssertNil(tok.preTokenizer)
        XCTAssertEqual(tok.vocabSize, 262144)
        XCTAssertEqual(tok.bosID, 2)
        XCTAssertEqual(tok.eosID, 1)
        XCTAssertEqual(tok.unknownID, 3)
        XCTAssertTrue(tok.addsBOS)
        XCTAssertFalse(tok.addsEOS)
        XCTAssertFalse(tok.addsSpacePrefix)
        XCTAssertEqual(tok.tokenText(106), "<end_of_turn>")
        XCTAssertEqual(tok.eotID, 106)
        XCTAssertTrue(tok.isEOG(1))
        XCTAssertTrue(tok.isEOG(106))
        XCTAssertFalse(tok.isEOG(105))  // <start_of_turn>
        XCTAssertEqual(tok.tokenType(238), .byte)  // <0x00>
        XCTAssertEqual(tok.tokenBytes(248), [0x0A])  // <0x0A>
        XCTAssertEqual(tok.tokenType(138), .userDefined)  // two spaces
        XCTAssertEqual(tok.piece(236743), " ")  // ▁
        XCTAssertLessThan(tok.score(818), 0)
    }

    /// decode(encode(x)) == x for texts without special-token markup.
    func testDecodeRoundTrip() throws {
        for (key, cases) in try Models.goldenCases() {
            let tok = try Models.named(key)
            for c in cases where !c.text.contains("<|") {
                let ids = tok.encode(c.text, addBOS: false)
                XCTAssertEqual(tok.decode(ids), c.text, "\(key): \(c.text.debugDescription)")
                // With the model's BOS, skipping special tokens gives the text back.
                XCTAssertEqual(tok.decode(tok.encode(c.text), skipSpecial: true), c.text, "\(key) BOS: \(c.text.debugDescription)")
            }
        }
    }

    func testSpecialTokensOnlyParsedWhenAsked() throws {
        let smol = try Models.smollm.get()
        let text = "<|im_start|>user\nhi<|im_end|>"
        let parsed = smol.encode(text, addBOS: false, parseSpecial: true)
        XCTAssertEqual(parsed.first, 1)
        XCTAssertEqual(parsed.last, 2)
        let plain = smol.encode(text, addBOS: false, parseSpecial: false)
        XCTAssertFalse(plain.contains(1))
        XCTAssertFalse(plain.contains(2))
        XCTAssertEqual(smol.decode(plain), text)
        XCTAssertEqual(smol.decode(parsed), text)
        XCTAssertEqual(smol.decode(parsed, skipSpecial: true), "user\nhi")

        // Gemma's user-defined whitespace tokens are split out even without special parsing.
        let gemma = try Models.gemma.get()
        XCTAssertEqual(gemma.encode("a  b", addBOS: false).contains(138), true)
        XCTAssertFalse(gemma.encode("<start_of_turn>", addBOS: false).contains(105))
        XCTAssertEqual(gemma.encode("<start_of_turn>", addBOS: false, parseSpecial: true), [105])
    }

    /// Characters split over byte tokens come out of the streaming decoder whole.
    func testStreamingDecoderHoldsPartialCharacters() throws {
        // SmolLM: byte-level BPE splits the rocket emoji over several tokens (see the goldens).
        // Gemma: a rare CJK Extension B ideograph and a hieroglyph fall back to <0xXX> tokens.
        let cases: [(Tokenizer, String)] = [
            (try Models.smollm.get(), "emoji 🚀 and 中文 and 👨‍👩‍👧‍👦 family 𠀋 end"),
            (try Models.gemma.get(), "rare 𠀋𓀀 and emoji 🚀 and 中文 end"),
        ]
        for (tok, text) in cases {
            let ids = tok.encode(text, addBOS: false)
            let pieces = ids.map { tok.tokenBytes($0) }
            let partial = pieces.filter { String(validatingUTF8Bytes: $0) == nil }
            XCTAssertFalse(partial.isEmpty, "\(tok.path): the test text should split a character across tokens")
            var stream = StreamingDecoder(tokenizer: tok)
            var chunks: [String] = []
            for id in ids { chunks.append(stream.feed(id)) }
            chunks.append(stream.flush())
            for c in chunks { XCTAssertFalse(c.contains("\u{FFFD}"), "half a character was emitted: \(chunks)") }
            XCTAssertEqual(chunks.joined(), text)
            XCTAssertEqual(chunks.joined(), tok.decode(ids))
        }
    }

    func testStreamingFlushEmitsIncompleteTail() throws {
        let tok = try Models.smollm.get()
        let ids = tok.encode("🚀", addBOS: false)
        XCTAssertGreaterThan(ids.count, 1)
        var stream = StreamingDecoder(tokenizer: tok)
        XCTAssertEqual(stream.feed(ids[0]), "")
        XCTAssertEqual(stream.flush(), "\u{FFFD}")
    }

    func testOutOfRangeIdsDecodeToNothing() throws {
        let tok = try Models.smollm.get()
        XCTAssertEqual(tok.decode([-1, 99_999_999, 504]), "The")
        XCTAssertEqual(tok.piece(-5), "")
        XCTAssertEqual(tok.tokenType(Int32(tok.vocabSize)), .undefined)
        XCTAssertFalse(tok.isControl(-1))
    }

    func testGemmaLoadTime() throws {
        let path = try TestPaths.model("gemma-3-270m")
        let t0 = Date()
        let file = try GGUFFile(path: path)
        let t1 = Date()
        _ = try Tokenizer(gguf: file)
        let t2 = Date()
        print(String(format: "gemma-3 (262144 tokens): GGUF metadata %.3f s, tokenizer build %.3f s",
                     t1.timeIntervalSince(t0), t2.timeIntervalSince(t1)))
    }
}

extension String {
    init?(validatingUTF8Bytes bytes: [UInt8]) {
        var it = bytes.makeIterator()
        var utf8 = UTF8()
        var s = ""
        loop: while true {
            switch utf8.decode(&it) {
            case let .scalarValue(v): s.unicodeScalars.append(v)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = s
    }
}
