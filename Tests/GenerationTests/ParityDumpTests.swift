import XCTest
import Foundation
import ModelFiles
import Models
import Tokenization
import Generation
import TestSupport

/// Tooling for greedy parity work, skipped unless STEWARD_PARITY_DUMP=DIR is set: runs a golden
/// prompt greedily, then re-evaluates it as the golden did (prompt as one batch, then one token
/// at a time) up to step STEWARD_PARITY_STEP (default: the last; 0: the prompt batch) and writes
/// our intermediates of that last evaluation to DIR/<name>-<layer>.f32, and DIR/ids.txt ("N_PROMPT ID,ID,...") for
/// scripts/llamacpp-dump. STEWARD_PARITY_MODEL picks the model, STEWARD_PARITY_PROMPT the golden
/// prompt's index.
final class ParityDumpTests: XCTestCase {
    func testDumpIntermediates() throws {
        let env = ProcessInfo.processInfo.environment
        guard let dir = env["STEWARD_PARITY_DUMP"] else { throw XCTSkip("set STEWARD_PARITY_DUMP=DIR to dump intermediates") }
        let name = env["STEWARD_PARITY_MODEL"] ?? "smollm2-135m-instruct"
        let index = Int(env["STEWARD_PARITY_PROMPT"] ?? "0") ?? 0
        let f = try GGUFFile(path: try TestPaths.model(name))
        let model = try DecoderModel(file: f)
        let tok = try Tokenizer(gguf: f)
        let root = try XCTUnwrap(try TestPaths.loadJSON(TestPaths.golden + "/llamacpp-reference.json") as? [String: Any])
        let key = ReferenceTests.goldenKeys[name]!
        let cases = try XCTUnwrap(((root["models"] as? [String: Any])?[key] as? [String: Any])?["greedy"] as? [[String: Any]])
        let prompt = try XCTUnwrap(cases[index]["prompt"] as? String)
        let ids = tok.encode(prompt, addBOS: nil, parseSpecial: true)
        let session = try Session(model: model, tokenizer: tok, contextLength: 256)
        var req = GenerationRequest()
        req.maxTokens = 48
        req.sampling = .greedy
        let r = try session.generate(prompt: ids, req)
        let step = min(Int(env["STEWARD_PARITY_STEP"] ?? "") ?? r.tokens.count, r.tokens.count)
        let all = ids + r.tokens.prefix(step)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "\(ids.count) \(all.map(String.init).joined(separator: ","))\n".write(toFile: dir + "/ids.txt", atomically: true, encoding: .utf8)
        let cache = model.makeCache(capacity: 256)
        let tap: (String, Int, UnsafePointer<Float>, Int) -> Void = { tname, layer, p, count in
            let data = Data(bytes: p, count: count * 4)
            try? data.write(to: URL(fileURLWithPath: "\(dir)/\(tname)-\(layer).f32"))
        }
        // step 0: the prompt batch itself (every token's values, as llama-dump writes them)
        if step == 0 { model.debugTap = tap }
        _ = try model.forward(tokens: ids, cache: cache)
        for (i, t) in r.tokens.prefix(step).enumerated() {
            if i == step - 1 { model.debugTap = tap }
            _ = try model.forward(tokens: [t], cache: cache)
        }
        model.debugTap = nil
        print("parity dump: \(name) prompt \(index) step \(step): ours \(r.text.debugDescription)")
    }
}
