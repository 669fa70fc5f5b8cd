import Foundation
import XCTest
import ModelFiles
import Models
import TestSupport

/// BERT encoder against PyTorch references (scripts/make-bert-reference) and its error paths.
final class BertTests: XCTestCase {
    // MARK: Configuration

    func testMiniLMConfig() throws {
        let c = try BertConfig(contentsOf: try TestPaths.model("all-minilm-l6-v2") + "/config.json")
        XCTAssertEqual(c.hiddenSize, 384)
        XCTAssertEqual(c.layers, 6)
        XCTAssertEqual(c.heads, 12)
        XCTAssertEqual(c.headDim, 32)
        XCTAssertEqual(c.intermediateSize, 1536)
        XCTAssertEqual(c.maxPositions, 512)
        XCTAssertEqual(c.typeVocabSize, 2)
        XCTAssertEqual(c.vocabSize, 30522)
        XCTAssertEqual(c.layerNormEps, 1e-12)
        XCTAssertEqual(c.activation, .gelu)
    }

    nonisolated(unsafe) private static let baseConfig: [String: Any] = [
        "model_type": "bert", "vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 8, "max_position_embeddings": 8,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "position_embedding_type": "absolute",
    ]

    private func config(_ changes: [String: Any?]) throws -> BertConfig {
        var d = Self.baseConfig
        for (k, v) in changes { d[k] = v }
        return try BertConfig(json: try JSONSerialization.data(withJSONObject: d))
    }

    private func assertConfigError(_ changes: [String: Any?], _ check: (BertError) -> Bool,
                                   file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try config(changes)
            XCTFail("accepted \(changes)", file: file, line: line)
        } catch let e as BertError {
            XCTAssertTrue(check(e), "unexpected error \(e)", file: file, line: line)
            XCTAssertFalse(e.description.isEmpty)
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
        }
    }

    func testUnsupportedConfigValuesAreClearErrors() throws {
        XCTAssertEqual(try config([:]).activation, .gelu)
        XCTAssertEqual(try config(["hidden_act": "gelu_new"]).activation, .geluTanh)
        XCTAssertEqual(try config(["layer_norm_eps": nil]).layerNormEps, 1e-12)
        assertConfigError(["hidden_act": "relu"]) {
            if case let .unsupported(_, field, value, _) = $0 { return field == "hidden_act" && value == "relu" }
            return false
        }
        assertConfigError(["position_embedding_type": "relative_key"]) {
            if case let .unsupported(_, field, _, _) = $0 { return field == "position_embedding_type" }
            return false
        }
        assertConfigError(["model_type": "roberta"]) {
            if case let .unsupported(_, field, _, _) = $0 { return field == "model_type" }
            return false
        }
        assertConfigError(["is_decoder": true]) {
            if case let .unsupported(_, field, _, _) = $0 { return field == "is_decoder" }
            return false
        }
        assertConfigError(["num_attention_heads": 3]) {
            if case let .badConfig(_, field, _) = $0 { return field == "num_attention_heads" }
            return false
        }
        assertConfigError(["hidden_size": nil]) { $0 == .missingField(path: "config.json", field: "hidden_size") }
        assertConfigError(["hidden_size": 4.5]) {
            if case let .badConfig(_, field, _) = $0 { return field == "hidden_size" }
            return false
        }
        assertConfigError(["num_hidden_layers": 0]) {
            if case let .badConfig(_, field, _) = $0 { return field == "num_hidden_layers" }
            return false
        }
        assertConfigError(["layer_norm_eps": -1]) {
            if case let .badConfig(_, field, _) = $0 { return field == "layer_norm_eps" }
            return false
        }
        XCTAssertThrowsError(try BertConfig(json: Data("{".utf8))) { e in
            guard case .invalidJSON = e as? BertError else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try BertConfig(contentsOf: "/nonexistent/config.json")) { e in
            guard case .cannotRead = e as? BertError else { return XCTFail("\(e)") }
        }
    }

    // MARK: Weights binding

    /// Every tensor a 1-layer encoder of `baseConfig`'s shape needs, with small deterministic values.
    private func syntheticTensors() -> [(String, [Int])] {
        let h = 4, ff = 8
        var t: [(String, [Int])] = [
            ("embeddings.word_embeddings.weight", [10, h]), ("embeddings.position_embeddings.weight", [8, h]),
            ("embeddings.token_type_embeddings.weight", [2, h]),
            ("embeddings.LayerNorm.weight", [h]), ("embeddings.LayerNorm.bias", [h]),
        ]
        let p = "encoder.layer.0."
        for m in ["query", "key", "value"] {
            t += [(p + "attention.self.\(m).weight", [h, h]), (p + "attention.self.\(m).bias", [h])]
        }
        t += [(p + "attention.output.dense.weight", [h, h]), (p + "attention.output.dense.bias", [h]),
              (p + "attention.output.LayerNorm.weight", [h]), (p + "attention.output.LayerNorm.bias", [h]),
              (p + "intermediate.dense.weight", [ff, h]), (p + "intermediate.dense.bias", [ff]),
              (p + "output.dense.weight", [h, ff]), (p + "output.dense.bias", [h]),
              (p + "output.LayerNorm.weight", [h]), (p + "output.LayerNorm.bias", [h])]
        return t
    }

    private func load(_ tensors: [(String, [Int])]) throws -> BertModel {
        var w = SafetensorsWriter()
        for (i, (name, shape)) in tensors.enumerated() {
            let n = shape.reduce(1, *)
            let values = (0..<n).map { Float(($0 * 7 + i * 3) % 11) / 11 - 0.5 }
            w.addTensor(name: name, dtype: .f32, shape: shape, bytes: TensorBytes(elements: values))
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bert-\(UUID()).safetensors").path
        try w.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try BertModel(file: try SafetensorsFile(path: path), config: try config([:]), threads: 1)
    }

    func testWeightBindingErrors() throws {
        let all = syntheticTensors()
        // Complete, and with the known-unused pooler and position_ids: loads, and runs.
        let m = try load(all + [("pooler.dense.weight", [4, 4]), ("pooler.dense.bias", [4]),
                                ("embeddings.position_ids", [1, 8])])
        XCTAssertEqual(m.weights.ignoredTensors, ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"])
        let out = try m.forward(ids: [1, 2, 3])
        XCTAssertEqual(out.count, 3 * 4)
        XCTAssertTrue(out.allSatisfy(\.isFinite))

        // A "bert." prefix (task checkpoints) binds the same way.
        XCTAssertEqual(try load(all.map { ("bert." + $0.0, $0.1) }).weights.prefix, "bert.")

        XCTAssertThrowsError(try load(all.filter { $0.0 != "encoder.layer.0.intermediate.dense.bias" })) { e in
            guard case let .missingTensor(_, name)? = e as? BertError else { return XCTFail("\(e)") }
            XCTAssertEqual(name, "encoder.layer.0.intermediate.dense.bias")
        }
        XCTAssertThrowsError(try load(all.map { $0.0 == "encoder.layer.0.output.dense.weight" ? ($0.0, [8, 4]) : $0 })) { e in
            guard case let .badTensorShape(_, name, expected, found)? = e as? BertError else { return XCTFail("\(e)") }
            XCTAssertEqual(name, "encoder.layer.0.output.dense.weight")
            XCTAssertEqual(expected, [4, 8])
            XCTAssertEqual(found, [8, 4])
        }
        XCTAssertThrowsError(try load(all + [("cls.predictions.bias", [10])])) { e in
            guard case let .unusedTensors(_, names)? = e as? BertError else { return XCTFail("\(e)") }
            XCTAssertEqual(names, ["cls.predictions.bias"])
        }
    }

    func testBadInputsAreErrors() throws {
        let m = try load(syntheticTensors())
        XCTAssertThrowsError(try m.forward(ids: [1, 10])) { XCTAssertTrue("\($0)".contains("vocabulary"), "\($0)") }
        XCTAssertThrowsError(try m.forward(ids: Array(repeating: 1, count: 9))) { XCTAssertTrue("\($0)".contains("positions"), "\($0)") }
        XCTAssertThrowsError(try m.forward(ids: [])) { XCTAssertTrue("\($0)".contains("empty"), "\($0)") }
        XCTAssertThrowsError(try m.forward(ids: [1, 2], tokenTypes: [0, 2])) { XCTAssertTrue("\($0)".contains("type"), "\($0)") }
        XCTAssertThrowsError(try m.forward([BertSequence(ids: [1, 2], attentionMask: [0, 0])])) { XCTAssertTrue("\($0)".contains("mask"), "\($0)") }
        XCTAssertEqual(try m.forward([]), [])
    }

    // MARK: Against PyTorch

    /// Tiny random transformers BertModels (fixtures by scripts/make-bert-reference): a padded
    /// batch with token types and an attention mask. Every row, padding rows included, must
    /// match transformers' last_hidden_state within 1e-4 (values are O(1) after LayerNorm; the
    /// fixture rounds to 6 decimals).
    func testTinyModelsMatchTransformers() throws {
        for name in ["tiny-gelu", "tiny-tanh-f16"] {
            let dir = TestPaths.fixture("bert/" + name)
            let model = try BertModel(directory: dir, threads: 2)
            let ref = try XCTUnwrap(try TestPaths.loadJSON(dir + "/reference.json") as? [String: Any])
            let ids = try XCTUnwrap(ref["ids"] as? [[Int]])
            let types = try XCTUnwrap(ref["token_types"] as? [[Int]])
            let mask = try XCTUnwrap(ref["attention_mask"] as? [[Int]])
            let expected = try XCTUnwrap(ref["last_hidden_state"] as? [[[Double]]])
            let batch = (0..<ids.count).map {
                BertSequence(ids: ids[$0].map(Int32.init), tokenTypes: types[$0].map(Int32.init),
                             attentionMask: mask[$0].map(Int32.init))
            }
            let out = try model.forward(batch)
            var worst: Float = 0
            for b in 0..<ids.count {
                let flat = expected[b].flatMap { $0 }.map(Float.init)
                XCTAssertEqual(out[b].count, flat.count)
                for (x, y) in zip(out[b], flat) { worst = max(worst, abs(x - y)) }
            }
            print("\(name): max |swift - torch| over all hidden states = \(worst)")
            XCTAssertLessThanOrEqual(worst, 1e-4, name)
        }
        XCTAssertEqual(try BertModel(directory: TestPaths.fixture("bert/tiny-gelu")).weights.ignoredTensors,
                       ["pooler.dense.bias", "pooler.dense.weight"])
        XCTAssertEqual(try BertConfig(contentsOf: TestPaths.fixture("bert/tiny-tanh-f16/config.json")).activation, .geluTanh)
    }

    /// The first tokens of MiniLM's last hidden state for one text, from transformers.
    func testMiniLMHiddenStateMatchesTransformers() throws {
        let ref = try XCTUnwrap(try TestPaths.loadJSON(TestPaths.fixture("bert/minilm-embeddings.json")) as? [String: Any])
        let debug = try XCTUnwrap(ref["debug"] as? [String: Any])
        let index = try XCTUnwrap(debug["text_index"] as? Int)
        let ids = try XCTUnwrap((ref["ids"] as? [[Int]])?[index]).map(Int32.init)
        let expected = try XCTUnwrap(debug["last_hidden_state"] as? [[Double]])
        let model = try BertModel(directory: try TestPaths.model("all-minilm-l6-v2"))
        XCTAssertEqual(model.weights.ignoredTensors, ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"])
        let out = try model.forward(ids: ids)
        let h = model.config.hiddenSize
        var worst: Float = 0
        for (t, row) in expected.enumerated() {
            for (j, e) in row.enumerated() { worst = max(worst, abs(out[t * h + j] - Float(e))) }
        }
        print("MiniLM last_hidden_state, first \(expected.count) tokens: max |swift - torch| = \(worst)")
        XCTAssertLessThanOrEqual(worst, 1e-4)
    }
}
