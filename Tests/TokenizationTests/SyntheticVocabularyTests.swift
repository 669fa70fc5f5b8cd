import Foundation
import ModelFiles
import Tokenization
import XCTest

/// Writes a tensor-free GGUF v3 file holding only metadata, for tokenizer edge cases.
struct MiniGGUF {
    enum Value {
        case string(String), bool(Bool), u32(UInt32), strings([String]), i32s([Int32]), f32s([Float])
    }
    var pairs: [(String, Value)] = []

    func write() throws -> String {
        var d = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); d.append(contentsOf: Array(s.utf8)) }
        d.append(contentsOf: Array("GGUF".utf8))
        u32(3); u64(0); u64(UInt64(pairs.count))
        for (k, v) in pairs {
            str(k)
            switch v {
            case let .string(s): u32(8); str(s)
            case let .bool(b): u32(7); d.append(b ? 1 : 0)
            case let .u32(x): u32(4); u32(x)
            case let .strings(a): u32(9); u32(8); u64(UInt64(a.count)); a.forEach(str)
            case let .i32s(a): u32(9); u32(5); u64(UInt64(a.count)); a.forEach { u32(UInt32(bitPattern: $0)) }
            case let .f32s(a): u32(9); u32(6); u64(UInt64(a.count)); a.forEach { u32($0.bitPattern) }
            }
        }
        let path = NSTemporaryDirectory() + "tok-\(UUID().uuidString).gguf"
        try d.write(to: URL(fileURLWithPath: path))
        return path
    }

    func tokenizer() throws -> Tokenizer {
        let path = try write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try Tokenizer(gguf: GGUFFile(path: path))
    }
}

final class SyntheticVocabularyTests: XCTestCase {
    /// All 256 byte-level characters as tokens 0…255.
    static let byteTokens = (0..<256).map { ByteLevel.encode(String(decoding: [UInt8($0)], as: UTF8.self)) }

    func expectError(_ g: MiniGGUF, _ check: (TokenizerError) -> Bool, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try g.tokenizer()
            XCTFail("expected an error", file: file, line: line)
        } catch let e as TokenizerError {
            XCTAssertTrue(check(e), "wrong error: \(e)", file: file, line: line)
            XCTAssertFalse(e.description.isEmpty)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    func testMissingTokenizerMetadataIsAClearError() {
        expectError(MiniGGUF(pairs: [("general.architecture", .string("llama"))])) {
            if case .missingMetadata(_, "tokenizer.ggml.model") = $0 { return true }
            return false
        }
        expectError(MiniGGUF(pairs: [("tokenizer.ggml.model", .string("gpt2"))])) {
            if case .missingMetadata(_, "tokenizer.ggml.tokens") = $0 { return true }
            return false
        }
    }

    func testUnsupportedModelAndPreTokenizer() {
        expectError(MiniGGUF(pairs: [("tokenizer.ggml.model", .string("rwkv")), ("tokenizer.ggml.tokens", .strings(["a"]))])) {
            if case .unsupportedModel(_, "rwkv") = $0 { return true }
            return false
        }
        expectError(MiniGGUF(pairs: [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("made-up")),
                                     ("tokenizer.ggml.tokens", .strings(Self.byteTokens)), ("tokenizer.ggml.merges", .strings([]))])) {
            if case .unsupportedPreTokenizer(_, "made-up") = $0 { return true }
            return false
        }
    }

    func testBPEWithoutMergesOrWithShortArraysIsRejected() {
        expectError(MiniGGUF(pairs: [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("gpt-2")),
                                     ("tokenizer.ggml.tokens", .strings(Self.byteTokens))])) {
            if case .missingMetadata(_, "tokenizer.ggml.merges") = $0 { return true }
            return false
        }
        expectError(MiniGGUF(pairs: [("tokenizer.ggml.model", .string("llama")), ("tokenizer.ggml.tokens", .strings(["<unk>", "a", "b"])),
                                     ("tokenizer.ggml.scores", .f32s([0, -1]))])) {
            if case .invalidMetadata(_, "tokenizer.ggml.scores", _) = $0 { return true }
            return false
        }
        expectError(MiniGGUF(pairs: [("tokenizer.ggml.model", .string("llama")), ("tokenizer.ggml.tokens", .strings(["<unk>"])),
                                     // The default BOS (1) and the file's (7) are both out of range.
                                     ("tokenizer.ggml.add_bos_token", .bool(true)), ("tokenizer.ggml.bos_token_id", .u32(7))])) {
            if case .invalidMetadata(_, "tokenizer.ggml.add_bos_token", _) = $0 { return true }
            return false
        }
    }

    /// A merge whose result is not a token still happens (merges go by rank); the symbol then
    /// falls back to its one-byte tokens, as llama.cpp's llm_tokenizer_bpe_session does.
    func testBPEMergeByRankAndFallback() throws {
        var tokens = Self.byteTokens
        tokens += ["ab", "Ġa"]
        let ab = Int32(256), spaceA = Int32(257)
        let g = MiniGGUF(pairs: [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("gpt-2")),
            ("tokenizer.ggml.tokens", .strings(tokens)),
            // "ab c" makes "abc", which is not a token; "Ġ a" makes "Ġa".
            ("tokenizer.ggml.merges", .strings(["a b", "ab c", "Ġ a"])),
        ])
        let tok = try g.tokenizer()
        func byteID(_ c: Character) -> Int32 { Int32(Self.byteTokens.firstIndex(of: ByteLevel.encode(String(c)))!) }
        XCTAssertEqual(tok.encode("ab", addBOS: false), [ab])
        XCTAssertEqual(tok.encode("abc", addBOS: false), [byteID("a"), byteID("b"), byteID("c")])
        // " ab": "a b" (rank 0) merges before "Ġ a" (rank 2), after which Ġ + ab has no merge.
        XCTAssertEqual(tok.encode("x ab", addBOS: false), [byteID("x"), byteID(" "), ab])
        XCTAssertEqual(tok.encode(" a", addBOS: false), [spaceA])
        XCTAssertEqual(tok.decode(tok.encode("abc ab a", addBOS: false)), "abc ab a")
    }

    /// SentencePiece: highest-score bigram first, space prefix, byte fallback, unknown.
    func testSentencePieceMergesByScoreWithByteFallback() throws {
        let tokens = ["<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "ab", "▁ab", "<0xC3>", "<0xA9>"]
        let types: [Int32] = [2, 3, 3, 1, 1, 1, 1, 1, 1, 6, 6]
        let scores: [Float] = [0, 0, 0, -5, -6, -6, -1, -2, -3, 0, 0]
        let tok = try MiniGGUF(pairs: [
            ("tokenizer.ggml.model", .string("llama")), ("tokenizer.ggml.tokens", .strings(tokens)),
            ("tokenizer.ggml.scores", .f32s(scores)), ("tokenizer.ggml.token_type", .i32s(types)),
        ]).tokenizer()
        XCTAssertTrue(tok.addsBOS)
        XCTAssertTrue(tok.addsSpacePrefix)
        XCTAssertEqual(tok.bosID, 1)
        XCTAssertEqual(tok.unknownID, 0)
        // "ab" → "▁ab": ▁a (-1) merges first, then ▁a + b = ▁ab (-3).
        XCTAssertEqual(tok.encode("ab"), [1, 8])
        XCTAssertEqual(tok.encode("ab", addBOS: false), [8])
        // "é" is no token: its UTF-8 bytes C3 A9 as <0xC3> <0xA9>; "z" has no byte token: <unk>.
        XCTAssertEqual(tok.encode("é", addBOS: false), [3, 9, 10])
        XCTAssertEqual(tok.encode("z", addBOS: false), [3, 0])
        // The prefix space comes off the first token when decoding (llama.cpp's detokenize)…
        XCTAssertEqual(tok.decode([8]), "ab")
        XCTAssertEqual(tok.decode([3, 9, 10]), "é")
        // …but not after a BOS, which takes the first-token slot.
        XCTAssertEqual(tok.decode([1, 8]), "<s> ab")
        XCTAssertEqual(tok.decode([1, 8], skipSpecial: true), " ab")
        XCTAssertEqual(tok.decode([0], skipSpecial: true), "")
        // Special tokens in text only with parseSpecial.
        XCTAssertEqual(tok.encode("</s>ab", addBOS: false, parseSpecial: true), [2, 8])
    }
}
