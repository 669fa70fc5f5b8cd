import Foundation
import ModelFiles
import Models
import StewardCLI
import Templates
import TestSupport
import Tokenization
import XCTest

/// `steward convert` on Tests/Fixtures/convert/tiny-llama: a tiny random LlamaForCausalLM with
/// SmolLM2's tokenizer in two safetensors shards (F16 embeddings, BF16 matrices, F32 norms).
/// The reference (tiny-llama-reference.json) is transformers' float32 run of the same folder,
/// made by scripts/make-convert-fixture: token ids, the chat render, last-position logits and a
/// greedy continuation. The logits are what checks the q/k row permutation: with HF's row order
/// left in place, RoPE rotates the wrong pairs and the logits move by whole units.
final class ConvertCommandTests: XCTestCase {
    static let folder = TestPaths.fixture("convert/tiny-llama")

    struct Reference {
        let prompts: [(text: String, ids: [Int32])]
        let chatMessages: Any
        let chatText: String
        let chatIDs: [Int32]
        let logitIDs: [Int32]
        let first32: [Float]
        let argmax: Int
        let std: Float
        let greedy: [Int32]
        let greedyGap: Float
    }

    func reference() throws -> Reference {
        let o = try XCTUnwrap(TestPaths.loadJSON(TestPaths.fixture("convert/tiny-llama-reference.json")) as? [String: Any])
        let prompts = try XCTUnwrap(o["prompts"] as? [[String: Any]]).map {
            (text: try XCTUnwrap($0["text"] as? String), ids: try XCTUnwrap($0["ids"] as? [Int]).map(Int32.init))
        }
        let chat = try XCTUnwrap(o["chat"] as? [String: Any])
        let logits = try XCTUnwrap(o["logits"] as? [String: Any])
        let greedy = try XCTUnwrap(o["greedy"] as? [String: Any])
        return Reference(prompts: prompts, chatMessages: try XCTUnwrap(chat["messages"]),
                         chatText: try XCTUnwrap(chat["text"] as? String),
                         chatIDs: try XCTUnwrap(chat["ids"] as? [Int]).map(Int32.init),
                         logitIDs: try XCTUnwrap(logits["ids"] as? [Int]).map(Int32.init),
                         first32: try XCTUnwrap(logits["first32"] as? [Double]).map(Float.init),
                         argmax: try XCTUnwrap(logits["argmax"] as? Int),
                         std: Float(try XCTUnwrap(logits["std"] as? Double)),
                         greedy: try XCTUnwrap(greedy["tokens"] as? [Int]).map(Int32.init),
                         greedyGap: Float(try XCTUnwrap(greedy["min_top2_gap"] as? Double)))
    }

    /// Converts the fixture (or `folder`) in a fresh STEWARD_HOME; returns the CLI result.
    func convert(_ folder: String = folder, to out: String, _ extra: [String] = []) -> (code: Int32, out: String, err: String) {
        steward(["convert", folder, out] + extra)
    }

    /// A copy of the fixture folder to break.
    func copyOfFixture(in home: URL) throws -> String {
        let dir = home.path + "/hf"
        try FileManager.default.copyItem(atPath: Self.folder, toPath: dir)
        return dir
    }

    func editJSON(_ path: String, _ edit: (inout [String: Any]) -> Void) throws {
        var o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        edit(&o)
        try JSONSerialization.data(withJSONObject: o).write(to: URL(fileURLWithPath: path))
    }

    /// |our logit − HF float32 logit| on the F32 conversion. As in TinyModelTests: F32 weights,
    /// and what remains is attention's f16 roundings (K/V cached in f16, f16 query and V sum).
    static let f32Tolerance: Float = 2e-2

    func lastLogits(_ model: DecoderModel, _ ids: [Int32]) throws -> [Float] {
        try model.forward(tokens: ids, cache: model.makeCache(capacity: ids.count + 16))
    }

    func testConvertedModelMatchesTransformers() throws {
        let ref = try reference()
        try withStewardHome("convert") { home in
            let out = home.path + "/tiny-f32.gguf"
            let r = convert(to: out, ["--type", "f32"])
            XCTAssertEqual(r.code, 0, r.err)
            XCTAssertTrue(r.out.contains("20 tensors (4 q/k permuted)"), r.out)
            XCTAssertTrue(r.out.contains("pre-tokenizer smollm"), r.out)
            XCTAssertTrue(r.err.contains("[20/20] output_norm.weight"), "progress: \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".partial"))

            // Metadata as llama.cpp's converter writes it for this config.
            let f = try GGUFFile(path: out)
            XCTAssertEqual(f.string("general.architecture"), "llama")
            XCTAssertEqual(f.string("general.name"), "tiny-llama")
            XCTAssertEqual(f.string("tokenizer.ggml.model"), "gpt2")
            XCTAssertEqual(f.string("tokenizer.ggml.pre"), "smollm")
            XCTAssertEqual(f.string("general.size_label"), "3.2M")
            XCTAssertEqual(f.int("general.quantization_version"), 2)
            XCTAssertEqual(f.int("llama.attention.key_length"), 16)
            XCTAssertEqual(f.bool("tokenizer.ggml.add_space_prefix"), false, "tokenizer_config's add_prefix_space")
            let config = try DecoderConfig(gguf: f)
            XCTAssertEqual(config.layers, 2)
            XCTAssertEqual(config.hiddenSize, 64)
            XCTAssertEqual(config.heads, 4)
            XCTAssertEqual(config.kvHeads, 2)
            XCTAssertEqual(config.headDim, 16)
            XCTAssertEqual(config.vocabSize, 49152)
            XCTAssertEqual(config.ropeStyle, .interleaved)
            XCTAssertNil(f.tensors.first { $0.name == "output.weight" }, "tied embeddings write no output.weight")
            XCTAssertTrue(f.tensors.filter { $0.dims.count == 2 }.allSatisfy { $0.type == .f32 })
            let tc = try XCTUnwrap(TestPaths.loadJSON(Self.folder + "/tokenizer_config.json") as? [String: Any])
            XCTAssertEqual(f.string("tokenizer.chat_template"), tc["chat_template"] as? String)

            // The tokenizer gives transformers' ids; the chat template renders transformers' text.
            let tok = try Tokenizer(gguf: f)
            XCTAssertEqual(tok.bosID, 1)
            XCTAssertEqual(tok.eosID, 2)
            for p in ref.prompts {
                XCTAssertEqual(tok.encode(p.text, addBOS: false), p.ids, "ids of \(p.text.debugDescription)")
            }
            // This tokenizer.json's post-processor adds nothing, so no BOS by default (as
            // transformers encodes, and as llama.cpp reads a BPE file without add_bos_token).
            XCTAssertNil(f.bool("tokenizer.ggml.add_bos_token"))
            XCTAssertEqual(tok.encode(ref.prompts[1].text), ref.prompts[1].ids)
            let (bos, eos) = tok.templateSpecialTokens
            let messages = try TemplateValue.parseJSON(JSONSerialization.data(withJSONObject: ref.chatMessages))
            let text = try ChatTemplate(source: try XCTUnwrap(f.string("tokenizer.chat_template")))
                .render(messages: messages, addGenerationPrompt: true, bosToken: bos, eosToken: eos)
            XCTAssertEqual(text, ref.chatText)
            XCTAssertEqual(tok.encode(text, addBOS: false, parseSpecial: true), ref.chatIDs)

            // Logits: the first 32 of the last position, its argmax and spread.
            let model = try DecoderModel(file: f, threads: 2)
            let logits = try lastLogits(model, ref.logitIDs)
            XCTAssertEqual(logits.count, 49152)
            let worst = zip(logits.prefix(32), ref.first32).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, Self.f32Tolerance, "max |Δlogit| over the first 32")
            XCTAssertEqual(logits.indices.max { logits[$0] < logits[$1] }, ref.argmax)
            let mean = logits.reduce(0, +) / Float(logits.count)
            let std = (logits.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(logits.count - 1)).squareRoot()
            XCTAssertEqual(std, ref.std, accuracy: ref.std * 1e-3)

            // Greedy continuation through the KV cache (the reference's top two are ≥ 14 apart).
            XCTAssertGreaterThan(ref.greedyGap, 10 * Self.f32Tolerance)
            let cache = model.makeCache(capacity: ref.logitIDs.count + ref.greedy.count)
            var row = try model.forward(tokens: ref.logitIDs, cache: cache)
            var greedy: [Int32] = []
            for _ in ref.greedy {
                let next = Int32(row.indices.max { row[$0] < row[$1] } ?? 0)
                greedy.append(next)
                row = try model.forward(tokens: [next], cache: cache)
            }
            XCTAssertEqual(greedy, ref.greedy)
            print("convert tiny-llama F32: max |Δlogit| vs transformers \(worst) (first 32), std \(std) vs \(ref.std)")

            // The other weight types. F16 holds this checkpoint's F16 and BF16 weights exactly
            // (measured: the F32 result to the bit), so it has F32's bar. BF16 rounds the F16
            // embeddings to 8 mantissa bits (measured 0.044) and Q8_0 rounds every matrix
            // (measured 0.27); their bars are 0.1 and 0.5 against logits of spread 7.6.
            for (type, ggml, bar) in [("f16", GGMLType.f16, Self.f32Tolerance), ("bf16", .bf16, Float(0.1)), ("q8_0", .q8_0, Float(0.5))] {
                let path = home.path + "/tiny-\(type).gguf"
                let rt = convert(to: path, ["--type", type])
                XCTAssertEqual(rt.code, 0, rt.err)
                let g = try GGUFFile(path: path)
                XCTAssertEqual(g.tensors.first { $0.name == "blk.0.attn_q.weight" }?.type, ggml, type)
                XCTAssertEqual(g.tensors.first { $0.name == "blk.0.attn_norm.weight" }?.type, .f32, "norms stay F32")
                let l = try lastLogits(try DecoderModel(file: g, threads: 2), ref.logitIDs)
                let d = zip(l.prefix(32), ref.first32).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(d, bar, "\(type): max |Δlogit| over the first 32")
                XCTAssertEqual(l.indices.max { l[$0] < l[$1] }, ref.argmax, type)
                print("convert tiny-llama \(type): max |Δlogit| vs transformers \(d)")
            }
        }
    }

    /// Each type against what llama.cpp's convert_hf_to_gguf.py writes for the same folder
    /// (Tests/Fixtures/convert/llamacpp-convert.json, scripts/make-convert-reference): every
    /// tensor's type, shape and bytes are identical (so the q/k permutation, BF16 rounding and
    /// Q8_0 blocks are llama.cpp's), and every metadata key is equal but two: general.name (we
    /// keep the folder name; llama.cpp title-cases it) and tokenizer.ggml.add_bos_token (llama.cpp
    /// writes false for every 49152-token vocabulary, a Granite rule; we write it only from the
    /// tokenizer files, and llama.cpp reads it absent as false for this pre-tokenizer too).
    func testSameFileAsLlamaCppsConverter() throws {
        let ref = try XCTUnwrap(TestPaths.loadJSON(TestPaths.fixture("convert/llamacpp-convert.json")) as? [String: Any])
        let types = try XCTUnwrap(ref["types"] as? [String: [String: Any]])
        XCTAssertEqual(Set(types.keys), ["f32", "f16", "bf16", "q8_0"])
        try withStewardHome("convert-llamacpp") { home in
            for (type, want) in types.sorted(by: { $0.key < $1.key }) {
                let out = home.path + "/\(type).gguf"
                let r = convert(to: out, ["--type", type])
                XCTAssertEqual(r.code, 0, r.err)
                let f = try GGUFFile(path: out)

                let tensors = try XCTUnwrap(want["tensors"] as? [String: [String: Any]])
                XCTAssertEqual(Set(f.tensors.map(\.name)), Set(tensors.keys), type)
                for t in f.tensors {
                    guard let w = tensors[t.name] else { continue }
                    XCTAssertEqual(t.type.name, w["type"] as? String, "\(type) \(t.name)")
                    XCTAssertEqual(t.dims, w["dims"] as? [Int], "\(type) \(t.name)")
                    XCTAssertEqual(FileDigest.sha256(f.data(of: t)), w["sha256"] as? String, "\(type) \(t.name): bytes differ from llama.cpp's")
                }

                let metadata = try XCTUnwrap(want["metadata"] as? [String: Any])
                var differing: Set<String> = []
                for key in Set(metadata.keys).union(f.metadata.keys) {
                    guard let mine = f.metadata[key], let theirs = metadata[key] else { differing.insert(key); continue }
                    let same: Bool
                    switch mine {
                    case let .array(_, items):
                        let o = theirs as? [String: Any]
                        let joined = items.map { v -> String in v.stringValue ?? v.intValue.map(String.init) ?? "\(v)" }.map { $0 + "\0" }.joined()
                        same = o?["count"] as? Int == items.count && o?["sha256"] as? String == Data(joined.utf8).withUnsafeBytes { FileDigest.sha256($0) }
                    case let .bool(b): same = (theirs as? Bool) == b
                    case let .string(v): same = (theirs as? String) == v
                    case .float32, .float64: same = (theirs as? Double) == mine.doubleValue
                    default: same = (theirs as? Int) == mine.intValue
                    }
                    if !same { differing.insert(key) }
                }
                XCTAssertEqual(differing, ["general.name", "tokenizer.ggml.add_bos_token"], type)
                XCTAssertEqual(metadata["tokenizer.ggml.add_bos_token"] as? Bool, false)
                XCTAssertNil(f.metadata["tokenizer.ggml.add_bos_token"])
            }
        }
    }

    /// An adapter `steward tune` trained on the converted model (Tests/Fixtures/convert/tiny-tuned,
    /// PEFT format) means the same to PEFT itself and, after llama.cpp's convert_lora_to_gguf.py
    /// (tiny-tuned-lora.gguf), to Steward's GGUF LoRA reader: logits against PEFT on transformers
    /// (scripts/make-adapter-interop-reference), and the trained greedy continuation.
    func testTunedAdapterMatchesPEFTAndLlamaCppsConversion() throws {
        let ref = try XCTUnwrap(TestPaths.loadJSON(TestPaths.fixture("convert/tiny-tuned-reference.json")) as? [String: Any])
        let ids = try XCTUnwrap(ref["ids"] as? [Int]).map(Int32.init)
        let want = try XCTUnwrap(ref["first32"] as? [Double]).map(Float.init)
        let baseWant = try XCTUnwrap(ref["base_first32"] as? [Double]).map(Float.init)
        let prompt = try XCTUnwrap(ref["prompt"] as? [Int]).map(Int32.init)
        let greedyWant = try XCTUnwrap(ref["greedy"] as? [Int]).map(Int32.init)
        let effect = zip(want, baseWant).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(effect, 1, "the adapter moves the logits by whole units")
        try withStewardHome("convert-adapter") { home in
            let out = home.path + "/tiny.gguf"
            XCTAssertEqual(convert(to: out, ["--type", "f32"]).code, 0)
            let model = try DecoderModel(file: try GGUFFile(path: out), threads: 2)
            for path in ["convert/tiny-tuned", "convert/tiny-tuned-lora.gguf"] {
                let adapter = try LoRAAdapter.load(TestPaths.fixture(path), for: model.config)
                XCTAssertEqual(adapter.targets.count, 7, path)
                let cache = model.makeCache(capacity: 32)
                cache.adapters = [LoRAUse(adapter)]
                let logits = try model.forward(tokens: ids, cache: cache)
                let d = zip(logits.prefix(32), want).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(d, Self.f32Tolerance, "\(path): max |Δlogit| vs PEFT")
                XCTAssertEqual(logits.indices.max { logits[$0] < logits[$1] }, ref["argmax"] as? Int, path)
                print("tuned adapter \(path): max |Δlogit| vs PEFT \(d) (adapter effect \(effect))")

                let g = model.makeCache(capacity: 32)
                g.adapters = [LoRAUse(adapter)]
                var row = try model.forward(tokens: prompt, cache: g)
                var greedy: [Int32] = []
                for _ in greedyWant {
                    let next = Int32(row.indices.max { row[$0] < row[$1] } ?? 0)
                    greedy.append(next)
                    row = try model.forward(tokens: [next], cache: g)
                }
                XCTAssertEqual(greedy, greedyWant, "\(path): PEFT's greedy continuation (\(ref["greedy_text"] ?? ""))")
            }
        }
    }

    /// A "<bos> $A" post-processor (Llama 3's tokenizer.json) sets add_bos_token, as gguf-py
    /// reads it; tokenizer_config's add_bos_token overrides it.
    func testPostProcessorDecidesBOS() throws {
        try withStewardHome("convert-bos") { home in
            let dir = try copyOfFixture(in: home)
            try editJSON(dir + "/tokenizer.json") {
                $0["post_processor"] = ["type": "TemplateProcessing",
                                        "single": [["SpecialToken": ["id": "<|im_start|>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                                        "pair": [], "special_tokens": [:]]
            }
            var r = convert(dir, to: home.path + "/bos.gguf")
            XCTAssertEqual(r.code, 0, r.err)
            let f = try GGUFFile(path: home.path + "/bos.gguf")
            XCTAssertEqual(f.bool("tokenizer.ggml.add_bos_token"), true)
            XCTAssertEqual(try Tokenizer(gguf: f).encode("Hello world"), [1, 19556, 905])
            try editJSON(dir + "/tokenizer_config.json") { $0["add_bos_token"] = false }
            r = convert(dir, to: home.path + "/nobos.gguf")
            XCTAssertEqual(r.code, 0, r.err)
            XCTAssertEqual(try GGUFFile(path: home.path + "/nobos.gguf").bool("tokenizer.ggml.add_bos_token"), false)
        }
    }

    func testBadFoldersAreRefusedAndWriteNothing() throws {
        try withStewardHome("convert-bad") { home in
            func refused(_ dir: String, _ expect: String, code: Int32 = 1, line: UInt = #line) {
                let out = home.path + "/out.gguf"
                let r = convert(dir, to: out)
                XCTAssertEqual(r.code, code, r.out + r.err, line: line)
                XCTAssertTrue(r.err.contains(expect), "expected '\(expect)' in: \(r.err)", line: line)
                XCTAssertFalse(FileManager.default.fileExists(atPath: out), line: line)
                XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".partial"), line: line)
            }
            refused(home.path + "/nowhere", "is not a folder")

            var dir = try copyOfFixture(in: home)
            try FileManager.default.removeItem(atPath: dir + "/tokenizer.json")
            refused(dir, "tokenizer.json is missing")
            try FileManager.default.removeItem(atPath: dir)

            dir = try copyOfFixture(in: home)
            try editJSON(dir + "/config.json") { $0["architectures"] = ["GPT2LMHeadModel"] }
            refused(dir, "architecture 'GPT2LMHeadModel' is not supported")
            try FileManager.default.removeItem(atPath: dir)

            dir = try copyOfFixture(in: home)
            try editJSON(dir + "/config.json") { $0["intermediate_size"] = 96 }
            refused(dir, "has shape [128, 64], expected [96, 64]")
            try FileManager.default.removeItem(atPath: dir)

            dir = try copyOfFixture(in: home)
            try editJSON(dir + "/config.json") { $0["rope_scaling"] = ["rope_type": "yarn", "factor": 4.0] }
            refused(dir, "rope_scaling type 'yarn' is not supported")
            try FileManager.default.removeItem(atPath: dir)

            dir = try copyOfFixture(in: home)
            try editJSON(dir + "/tokenizer.json") { $0["pre_tokenizer"] = ["type": "Whitespace"] }
            refused(dir, "is not one Steward recognises")
            try FileManager.default.removeItem(atPath: dir)

            // A shard cut short: the safetensors reader names the file.
            dir = try copyOfFixture(in: home)
            let shard = dir + "/model-00002-of-00002.safetensors"
            let bytes = try Data(contentsOf: URL(fileURLWithPath: shard))
            try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: shard))
            refused(dir, "model-00002-of-00002.safetensors")
            try FileManager.default.removeItem(atPath: dir)

            // A missing shard.
            dir = try copyOfFixture(in: home)
            try FileManager.default.removeItem(atPath: dir + "/model-00001-of-00002.safetensors")
            refused(dir, "names shard model-00001-of-00002.safetensors, which is missing")
            try FileManager.default.removeItem(atPath: dir)

            // A tensor the architecture does not use is not silently dropped.
            dir = try copyOfFixture(in: home)
            try editJSON(dir + "/config.json") { $0["num_hidden_layers"] = 1 }
            refused(dir, "tensor(s) a LlamaForCausalLM does not use")
            try FileManager.default.removeItem(atPath: dir)

            // Usage errors: an unknown type, an existing output.
            let r = convert(to: home.path + "/x.gguf", ["--type", "q4_k"])
            XCTAssertEqual(r.code, 2)
            XCTAssertTrue(r.err.contains("--type q4_k is not written by convert"), r.err)
            let existing = home.path + "/exists.gguf"
            try Data("keep".utf8).write(to: URL(fileURLWithPath: existing))
            XCTAssertEqual(convert(to: existing).code, 2)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: existing)), Data("keep".utf8), "an existing file is left alone")
        }
    }
}
