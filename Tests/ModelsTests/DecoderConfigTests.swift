import XCTest
import ModelFiles
import Models
import TestSupport

final class DecoderConfigTests: XCTestCase {
    func testSmolLM2Config() throws {
        let f = try GGUFFile(path: try TestPaths.model("smollm2-135m-instruct"))
        let c = try DecoderConfig(gguf: f)
        XCTAssertEqual(c.hiddenSize, 576)
        XCTAssertEqual(c.layers, 30)
        XCTAssertEqual(c.heads, 9)
        XCTAssertEqual(c.kvHeads, 3)
        XCTAssertEqual(c.headDim, 64)
        XCTAssertEqual(c.ropeStyle, .interleaved)
        XCTAssertEqual(c.activation, .silu)
        XCTAssertNil(c.slidingWindow)
        // Tied output: no output.weight, so the token embedding serves.
        let w = try DecoderWeights(file: f, config: c)
        XCTAssertEqual(w.output.name, "token_embd.weight")
    }

    func testGemma3Config() throws {
        let f = try GGUFFile(path: try TestPaths.model("gemma-3-270m"))
        let c = try DecoderConfig(gguf: f)
        XCTAssertEqual(c.ropeStyle, .neox)
        XCTAssertEqual(c.activation, .geluTanh)
        XCTAssertEqual(c.headDim, 256)
        XCTAssertEqual(c.embeddingScale, Float(640).squareRoot())
        XCTAssertEqual(c.slidingWindow, 512)
        // Every sixth layer is global (5, 11, 17); the rest slide.
        XCTAssertEqual((0..<18).filter { !c.isSliding(layer: $0) }, [5, 11, 17])
        XCTAssertEqual(c.ropeBase, 1_000_000)
        XCTAssertEqual(c.ropeBaseLocal, 10_000)
    }

    func testUnknownArchitectureIsClearError() throws {
        var w = GGUFWriter()
        w.addMetadata("general.architecture", .string("mamba9"))
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("arch-\(UUID()).gguf").path
        try w.write(to: tmp)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        XCTAssertThrowsError(try DecoderModel(file: GGUFFile(path: tmp))) { e in
            XCTAssertTrue("\(e)".contains("mamba9"), "\(e)")
        }
    }
}

final class BatchStepsTests: XCTestCase {
    /// Steps cover the batch, all but the last are multiples of 4 (llama.cpp's Q4_K groups of
    /// 4 stay aligned), and the last has at least 8 tokens when the batch has (Q6_K's batch
    /// arithmetic).
    func testStepsKeepTheBatchArithmetic() {
        XCTAssertEqual(DecoderModel.steps(ofBatch: 5), [5])
        XCTAssertEqual(DecoderModel.steps(ofBatch: 128), [128])
        XCTAssertEqual(DecoderModel.steps(ofBatch: 130), [120, 10])
        XCTAssertEqual(DecoderModel.steps(ofBatch: 140), [128, 12])
        XCTAssertEqual(DecoderModel.steps(ofBatch: 260), [128, 120, 12])
        XCTAssertEqual(DecoderModel.steps(ofBatch: 50, step: 48), [40, 10])
        for batch in 1...600 {
            for step in [16, 48, 128] {
                let s = DecoderModel.steps(ofBatch: batch, step: step)
                XCTAssertEqual(s.reduce(0, +), batch)
                XCTAssertTrue(s.dropLast().allSatisfy { $0 % 4 == 0 && $0 <= step }, "\(batch)/\(step): \(s)")
                if batch >= 8 { XCTAssertGreaterThanOrEqual(s.last!, 8, "\(batch)/\(step): \(s)") }
            }
        }
    }
}
