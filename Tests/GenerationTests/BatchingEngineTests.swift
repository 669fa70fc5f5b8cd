import XCTest
import Foundation
import ModelFiles
import Models
import Tokenization
import Generation
import TestSupport

/// Continuous batching: concurrent requests share decode steps yet each gets exactly the output
/// it gets alone.
final class BatchingEngineTests: XCTestCase {
    static let loaded: (DecoderModel, Tokenizer)? = {
        guard let path = try? TestPaths.model("smollm2-135m-instruct"), let f = try? GGUFFile(path: path),
              let m = try? DecoderModel(file: f), let t = try? Tokenizer(gguf: f) else { return nil }
        return (m, t)
    }()

    func parts() throws -> (DecoderModel, Tokenizer) {
        try XCTUnwrap(Self.loaded, "SmolLM2 is not fetched: run make models")
    }

    func greedy(_ n: Int) -> GenerationRequest { Self.greedy(n) }

    static func greedy(_ n: Int) -> GenerationRequest {
        var r = GenerationRequest()
        r.maxTokens = n
        r.sampling = .greedy
        r.stopAtEOS = false
        return r
    }

    /// Prompts of different lengths: short ones (per-query attention), one over 64 tokens (tiled
    /// prefill attention) and one over the 128-token prompt slice (prefill in several steps).
    func prompts(_ t: Tokenizer) -> [[Int32]] {
        let long = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 9)
        let longer = String(repeating: "A journey of a thousand miles begins with a single step. ", count: 16)
        return ["The sky is", "My favourite food is", long + "Then", longer + "And so"].map {
            t.encode($0, addBOS: nil, parseSpecial: false)
        }
    }

    func testBatchedGreedyEqualsAlone() throws {
        let (m, t) = try parts()
        let ps = prompts(t)
        XCTAssertGreaterThan(ps[2].count, 64)
        XCTAssertGreaterThan(ps[3].count, 128)
        let alone = try ps.map { p -> [Int32] in
            let s = try Session(model: m, tokenizer: t, contextLength: 512)
            return try s.generate(prompt: p, greedy(24)).tokens
        }
        let engine = try BatchingEngine(model: m, tokenizer: t, contextLength: 512, slots: 4)
        let results = Results(count: ps.count)
        let peak = Counter()
        // One thread per request (not concurrentPerform, which runs no more at once than there
        // are cores), so all of them are in flight together.
        let group = DispatchGroup()
        for i in ps.indices {
            group.enter()
            Thread {
                let r = try? engine.generate(prompt: ps[i], Self.greedy(24)) { _ in
                    peak.max(engine.status.active)
                    return true
                }
                results.set(i, r?.tokens)
                group.leave()
            }.start()
        }
        group.wait()
        for i in ps.indices { XCTAssertEqual(results.get(i), alone[i], "prompt \(i): batched output differs from alone") }
        XCTAssertGreaterThan(peak.value, 1, "requests never ran side by side")
        XCTAssertEqual(engine.status.active, 0)
        engine.shutdown()
    }

    /// More requests than slots: the extra ones wait, then run, with the same answers.
    func testMoreRequestsThanSlotsQueue() throws {
        let (m, t) = try parts()
        let ps = prompts(t)
        let engine = try BatchingEngine(model: m, tokenizer: t, contextLength: 512, slots: 2)
        let alone = try ps.map { p -> [Int32] in
            let s = try Session(model: m, tokenizer: t, contextLength: 512)
            return try s.generate(prompt: p, greedy(8)).tokens
        }
        let results = Results(count: ps.count)
        DispatchQueue.concurrentPerform(iterations: ps.count) { i in
            results.set(i, (try? engine.generate(prompt: ps[i], Self.greedy(8)) { _ in true })?.tokens)
        }
        for i in ps.indices { XCTAssertEqual(results.get(i), alone[i], "prompt \(i)") }
        engine.shutdown()
    }

    /// A request that extends an earlier one reuses its KV entries and answers as a serial
    /// engine (which reuses the same way) does.
    func testPrefixReuse() throws {
        let (m, t) = try parts()
        let first = t.encode("You are a helpful assistant. Question: what is the capital of France?", addBOS: nil, parseSpecial: false)
        let second = first + t.encode(" Answer briefly.", addBOS: nil, parseSpecial: false)
        let engine = try BatchingEngine(model: m, tokenizer: t, contextLength: 256, slots: 2)
        let serial = try SerialEngine(model: m, tokenizer: t, contextLength: 256)
        _ = try engine.generate(prompt: first, greedy(4)) { _ in true }
        _ = try serial.generate(prompt: first, greedy(4)) { _ in true }
        let before = engine.reusedPromptTokens
        let b = try engine.generate(prompt: second, greedy(12)) { _ in true }
        let s = try serial.generate(prompt: second, greedy(12)) { _ in true }
        XCTAssertEqual(engine.reusedPromptTokens - before, first.count, "the shared prefix was not reused")
        XCTAssertEqual(b.tokens, s.tokens)
        engine.shutdown()
    }

    func testCancelFreesTheSlotAtOnce() throws {
        let (m, t) = try parts()
        let engine = try BatchingEngine(model: m, tokenizer: t, contextLength: 256, slots: 2)
        let p = t.encode("Once upon a time", addBOS: nil, parseSpecial: false)
        let counter = Counter()
        let r = try engine.generate(prompt: p, greedy(100)) { _ in counter.bump() < 3 }
        XCTAssertEqual(r.finishReason, .cancelled)
        XCTAssertEqual(r.tokens.count, 3)
        XCTAssertEqual(engine.status.active, 0)
        XCTAssertEqual(engine.status.queued, 0)
        engine.shutdown()
    }

    func testFullQueueIsBusyAndOverflowIsRejected() throws {
        let (m, t) = try parts()
        let engine = try BatchingEngine(model: m, tokenizer: t, contextLength: 64, slots: 1, maxQueue: 0)
        let p = t.encode("Count to a hundred:", addBOS: nil, parseSpecial: false)
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let flag = Counter()
        DispatchQueue.global().async {
            _ = try? engine.generate(prompt: p, Self.greedy(40)) { _ in
                if flag.bump() == 1 { started.signal(); release.wait() }
                return true
            }
        }
        started.wait()
        XCTAssertThrowsError(try engine.generate(prompt: p, greedy(4)) { _ in true }) { err in
            guard case GenerationError.busy? = err as? GenerationError else { return XCTFail("expected busy, got \(err)") }
        }
        release.signal()
        XCTAssertThrowsError(try engine.generate(prompt: p, greedy(64)) { _ in true }) { err in
            guard case GenerationError.contextOverflow? = err as? GenerationError else { return XCTFail("expected overflow, got \(err)") }
        }
        engine.shutdown()
    }

    /// Prompt scoring (echo) through the batching engine equals the serial engine's.
    func testPromptLogprobsMatchSerial() throws {
        let (m, t) = try parts()
        let p = prompts(t)[3]
        var req = greedy(2)
        req.promptLogprobs = 2
        let engine = try BatchingEngine(model: m, tokenizer: t, contextLength: 512, slots: 2, promptSlice: 48)
        let b = try engine.generate(prompt: p, req) { _ in true }
        let s = try SerialEngine(model: m, tokenizer: t, contextLength: 512).generate(prompt: p, req) { _ in true }
        XCTAssertEqual(b.promptLogprobs, s.promptLogprobs)
        XCTAssertEqual(b.promptLogprobs.count, p.count - 1)
        XCTAssertEqual(b.tokens, s.tokens)
        engine.shutdown()
    }
}
