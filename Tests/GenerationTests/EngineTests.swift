import XCTest
import Foundation
import ModelFiles
import Models
import Tokenization
import Generation
import TestSupport

/// The engine seam the server uses: serial execution, prompt scoring, cancellation, overflow.
final class EngineTests: XCTestCase {
    static let loaded: (DecoderModel, Tokenizer)? = {
        guard let path = try? TestPaths.model("smollm2-135m-instruct"), let f = try? GGUFFile(path: path),
              let m = try? DecoderModel(file: f), let t = try? Tokenizer(gguf: f) else { return nil }
        return (m, t)
    }()

    func engine(ctx: Int = 128) throws -> SerialEngine {
        let (m, t) = try XCTUnwrap(Self.loaded, "SmolLM2 is not fetched: run make models")
        return try SerialEngine(model: m, tokenizer: t, contextLength: ctx)
    }

    func greedy(_ n: Int) -> GenerationRequest {
        var r = GenerationRequest()
        r.maxTokens = n
        r.sampling = .greedy
        return r
    }

    /// Each prompt token's log-probability equals the one the model gives when the prompt is
    /// evaluated up to the token before it (the prompt's tokens are scored, not generated ones).
    func testPromptLogprobsMatchStepwiseEvaluation() throws {
        let e = try engine()
        let prompt = e.tokenizer.encode("The capital of France is Paris.", addBOS: nil, parseSpecial: false)
        var req = greedy(4)
        req.promptLogprobs = 3
        let r = try e.generate(prompt: prompt, req) { _ in true }
        XCTAssertEqual(r.promptLogprobs.count, prompt.count - 1)
        let s = try Session(model: e.model, tokenizer: e.tokenizer, contextLength: 64)
        var logits = try s.evaluate([prompt[0]])
        for i in 1..<prompt.count {
            let lp = logits.withUnsafeBufferPointer { TokenLogprob(id: prompt[i], logits: $0, topN: 3) }
            XCTAssertEqual(r.promptLogprobs[i - 1].id, prompt[i])
            XCTAssertEqual(r.promptLogprobs[i - 1].logprob, lp.logprob, accuracy: 1e-4, "token \(i)")
            XCTAssertEqual(r.promptLogprobs[i - 1].top.map(\.id), lp.top.map(\.id), "token \(i)")
            XCTAssertEqual(r.promptLogprobs[i - 1].top.count, 3)
            logits = try s.evaluate([prompt[i]])
        }
        // Scoring the prompt does not change what is generated.
        let plain = try e.generate(prompt: prompt, greedy(4)) { _ in true }
        XCTAssertEqual(plain.tokens, r.tokens)
        XCTAssertTrue(plain.promptLogprobs.isEmpty)
    }

    func testCancelStopsAtOnceAndFreesTheEngine() throws {
        let e = try engine()
        let prompt = e.tokenizer.encode("Once upon a time", addBOS: nil, parseSpecial: false)
        var req = greedy(40)
        req.stopAtEOS = false
        let counter = Counter()
        let r = try e.generate(prompt: prompt, req) { _ in counter.bump() < 3 }
        XCTAssertEqual(r.finishReason, .cancelled)
        XCTAssertEqual(r.tokens.count, 3)
        XCTAssertEqual(e.status, EngineStatus(queued: 0, active: 0, kvUsed: 0, kvCapacity: 128))
        // The next request runs normally.
        let full = try e.generate(prompt: prompt, req) { _ in true }
        XCTAssertEqual(full.tokens.count, 40)
        XCTAssertEqual(Array(full.tokens.prefix(3)), r.tokens)
    }

    func testOverflowIsRejectedBeforeWork() throws {
        let e = try engine(ctx: 16)
        let prompt = e.tokenizer.encode("one two three four five six seven eight", addBOS: nil, parseSpecial: false)
        XCTAssertThrowsError(try e.generate(prompt: prompt, greedy(16)) { _ in true }) { err in
            guard case GenerationError.contextOverflow(let p, 16, 16)? = err as? GenerationError else {
                return XCTFail("expected contextOverflow, got \(err)")
            }
            XCTAssertEqual(p, prompt.count)
        }
    }

    /// Concurrent callers are served one at a time and each gets the answer it would get alone.
    func testConcurrentRequestsGetTheirOwnAnswers() throws {
        let e = try engine()
        let prompts = ["The sky is", "My favourite food is", "Water boils at"].map {
            e.tokenizer.encode($0, addBOS: nil, parseSpecial: false)
        }
        let alone = try prompts.map { try e.generate(prompt: $0, greedy(8)) { _ in true }.tokens }
        let results = Results(count: prompts.count)
        let req = greedy(8)
        DispatchQueue.concurrentPerform(iterations: prompts.count * 2) { i in
            let k = i % prompts.count
            let r = try? e.generate(prompt: prompts[k], req) { _ in true }
            results.set(k, r?.tokens)
        }
        for k in prompts.indices { XCTAssertEqual(results.get(k), alone[k], "prompt \(k)") }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func bump() -> Int { lock.lock(); defer { lock.unlock() }; n += 1; return n }
    func max(_ v: Int) { lock.lock(); n = Swift.max(n, v); lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var v: [[Int32]?]
    init(count: Int) { v = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ t: [Int32]?) { lock.lock(); if v[i] == nil || t != nil && v[i] != t { v[i] = t }; lock.unlock() }
    func get(_ i: Int) -> [Int32]? { lock.lock(); defer { lock.unlock() }; return v[i] }
}
