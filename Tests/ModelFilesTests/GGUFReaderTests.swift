import XCTest
import ModelFiles
import TestSupport

final class GGUFReaderTests: XCTestCase {
    func testReadsSmolLM2() throws {
        let f = try GGUFFile(path: try TestPaths.model("smollm2-135m-instruct"))
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.architecture, "llama")
        XCTAssertEqual(f.string("tokenizer.ggml.model"), "gpt2")
        XCTAssertEqual(f.string("tokenizer.ggml.pre"), "smollm")
        XCTAssertEqual(try f.stringArray("tokenizer.ggml.tokens")?.count, 49152)
        XCTAssertEqual(f.int("llama.block_count"), 30)
        XCTAssertNotNil(f.string("tokenizer.chat_template"))
        let types = Set(f.tensors.map(\.type))
        XCTAssertEqual(types, [.q4_1, .q8_0, .f32])
        let embd = try XCTUnwrap(f.tensor(named: "token_embd.weight"))
        XCTAssertEqual(embd.dims, [576, 49152])
        XCTAssertEqual(embd.type, .q8_0)
        XCTAssertEqual(f.data(of: embd).count, 576 / 32 * 34 * 49152)
        // The last tensor ends within the file.
        let end = f.tensors.map { $0.fileOffset + $0.byteCount }.max()!
        XCTAssertLessThanOrEqual(end, f.mapped.count)
    }

    func testReadsGemma3() throws {
        let f = try GGUFFile(path: try TestPaths.model("gemma-3-270m"))
        XCTAssertEqual(f.architecture, "gemma3")
        XCTAssertEqual(f.string("tokenizer.ggml.model"), "llama")
        XCTAssertEqual(try f.stringArray("tokenizer.ggml.tokens")?.count, 262144)
        XCTAssertEqual(try f.floatArray("tokenizer.ggml.scores")?.count, 262144)
        XCTAssertNil(f.string("tokenizer.chat_template"))
        let types = Set(f.tensors.map(\.type))
        XCTAssertEqual(types, [.q4_K, .q5_0, .q6_K, .q8_0, .f32])
    }

    func testRejectsNonGGUF() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("not-gguf-\(UUID()).bin")
        try Data("hello world, not a model".utf8).write(to: tmp)
        defer { try? FileManager.default.removeItem(at: tmp) }
        XCTAssertThrowsError(try GGUFFile(path: tmp.path)) { e in
            guard case ModelFileError.badMagic = e else { return XCTFail("expected badMagic, got \(e)") }
        }
    }

    func testMissingFileIsClearError() {
        XCTAssertThrowsError(try GGUFFile(path: "/nonexistent/model.gguf")) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/model.gguf"))
        }
    }
}
