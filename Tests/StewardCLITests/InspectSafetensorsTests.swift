import Foundation
import XCTest
import StewardCLI
import TestSupport

/// `steward inspect` on a Hugging Face safetensors model (all-MiniLM-L6-v2).
final class InspectSafetensorsTests: XCTestCase {
    func json(_ args: [String]) throws -> [String: Any] {
        let r = steward(["inspect"] + args + ["--json"])
        XCTAssertEqual(r.code, 0, r.err)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
    }

    func testMiniLMDirectory() throws {
        let dir = try TestPaths.model("all-minilm-l6-v2")
        let obj = try json(["all-minilm-l6-v2"])
        XCTAssertEqual(obj["format"] as? String, "safetensors")
        XCTAssertEqual(obj["architecture"] as? String, "BertModel")
        XCTAssertEqual(obj["model_type"] as? String, "bert")
        // 22,713,216 parameters (the model card's 22.7M): the F32 tensors; the I64 position_ids
        // buffer (512 values) is not a parameter.
        XCTAssertEqual(obj["parameters"] as? Int, 22_713_216)
        XCTAssertEqual(obj["tensor_count"] as? Int, 104)
        let types = try XCTUnwrap(obj["tensor_types"] as? [String: [String: Int]])
        XCTAssertEqual(types["F32"]?["count"], 103)
        XCTAssertEqual(types["F32"]?["bytes"], 22_713_216 * 4)
        XCTAssertEqual(types["I64"]?["count"], 1)
        XCTAssertEqual(types["I64"]?["bytes"], 512 * 8)
        XCTAssertEqual(obj["hidden_size"] as? Int, 384)
        XCTAssertEqual(obj["num_hidden_layers"] as? Int, 6)
        XCTAssertEqual(obj["num_attention_heads"] as? Int, 12)
        XCTAssertEqual(obj["intermediate_size"] as? Int, 1536)
        XCTAssertEqual(obj["max_position_embeddings"] as? Int, 512)
        let tok = try XCTUnwrap(obj["tokenizer"] as? [String: Any])
        XCTAssertEqual(tok["model"] as? String, "WordPiece")
        XCTAssertEqual(tok["vocab_size"] as? Int, 30522)
        XCTAssertEqual(tok["cls"] as? Int, 101)
        XCTAssertEqual(tok["sep"] as? Int, 102)
        // The fetched directory carries no model card.
        XCTAssertTrue(obj["license"] is NSNull)
        // The digest pinned in shared/MODELS.md.
        XCTAssertEqual(obj["sha256"] as? String, "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db")
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: dir + "/model.safetensors")[.size] as? Int)
        XCTAssertEqual(obj["size_bytes"] as? Int, size)
        let mem = try XCTUnwrap(obj["memory"] as? [String: Any])
        XCTAssertEqual(mem["weights_bytes"] as? Int, 22_713_216 * 4 + 512 * 8)
        XCTAssertEqual(mem["sequence_length"] as? Int, 512)
        // One 512-token sequence in f32: 512 × (5 × 384 + 1536) × 4 + 12 heads × 512² × 4.
        XCTAssertEqual(mem["activation_bytes"] as? Int, 512 * (5 * 384 + 1536) * 4 + 12 * 512 * 512 * 4)
    }

    func testTextOutputAndLicenceFromModelCard() throws {
        let dir = try TestPaths.model("all-minilm-l6-v2")
        // A copy of the directory (links) with the Hub's model card front matter.
        let tmp = try makeTemporaryDirectory("card")
        defer { try? FileManager.default.removeItem(at: tmp) }
        for f in ["model.safetensors", "config.json", "tokenizer.json"] {
            try FileManager.default.createSymbolicLink(atPath: tmp.path + "/" + f, withDestinationPath: dir + "/" + f)
        }
        try Data("---\nlanguage: en\nlicense: apache-2.0\nlibrary_name: sentence-transformers\n---\n\n# all-MiniLM-L6-v2\n".utf8)
            .write(to: tmp.appendingPathComponent("README.md"))
        let r = steward(["inspect", tmp.path, "--no-digest", "--ctx", "128"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("architecture   BertModel (bert)"), r.out)
        XCTAssertTrue(r.out.contains("licence        apache-2.0"), r.out)
        XCTAssertTrue(r.out.contains("parameters     22.7 M (22713216)"), r.out)
        XCTAssertTrue(r.out.contains("tokenizer      WordPiece (uncased), 30522 tokens"), r.out)
        XCTAssertTrue(r.out.contains("shape          hidden 384, layers 6, heads 12, ffn 1536"), r.out)
        XCTAssertTrue(r.out.contains("128-token sequence"), r.out)
        XCTAssertFalse(r.out.contains("sha256"))

        // A list-valued licence is read too.
        try Data("---\nlicense:\n  - mit\n---\n".utf8).write(to: tmp.appendingPathComponent("README.md"))
        XCTAssertEqual(try json([tmp.path, "--no-digest"])["license"] as? String, "mit")
    }

    func testSafetensorsFileDirectly() throws {
        let dir = try TestPaths.model("all-minilm-l6-v2")
        let obj = try json([dir + "/model.safetensors", "--no-digest"])
        XCTAssertEqual(obj["parameters"] as? Int, 22_713_216)
        // config.json beside the file is still read.
        XCTAssertEqual(obj["architecture"] as? String, "BertModel")
        XCTAssertNil(obj["sha256"])
    }

    func testBadDirectoriesAreRuntimeErrors() throws {
        let tmp = try makeTemporaryDirectory("empty")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let empty = steward(["inspect", tmp.path])
        XCTAssertEqual(empty.code, 1)
        XCTAssertTrue(empty.err.contains("model.safetensors"), empty.err)

        // A truncated safetensors file is reported, not a crash.
        let dir = try TestPaths.model("all-minilm-l6-v2")
        let src = try Data(contentsOf: URL(fileURLWithPath: dir + "/model.safetensors"))
        try src.prefix(50_000).write(to: tmp.appendingPathComponent("model.safetensors"))
        let truncated = steward(["inspect", tmp.path])
        XCTAssertEqual(truncated.code, 1)
        XCTAssertTrue(truncated.err.contains("truncated") || truncated.err.contains("past the end"), truncated.err)

        // A malformed config.json beside good weights is reported by name.
        try FileManager.default.removeItem(at: tmp.appendingPathComponent("model.safetensors"))
        try FileManager.default.createSymbolicLink(atPath: tmp.path + "/model.safetensors", withDestinationPath: dir + "/model.safetensors")
        try Data("{not json".utf8).write(to: tmp.appendingPathComponent("config.json"))
        let badConfig = steward(["inspect", tmp.path, "--no-digest"])
        XCTAssertEqual(badConfig.code, 1)
        XCTAssertTrue(badConfig.err.contains("config.json"), badConfig.err)
    }
}
