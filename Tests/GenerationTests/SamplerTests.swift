import XCTest
import Generation

final class SamplerTests: XCTestCase {
    func cands(_ logits: [Float]) -> [Candidate] {
        logits.enumerated().map { Candidate(id: Int32($0.offset), logit: $0.element) }
    }

    func testGreedyPicksArgmaxLowestIdOnTie() throws {
        var s = try Sampler(.greedy)
        let l: [Float] = [0.5, 2.0, 2.0, -1]
        XCTAssertEqual(l.withUnsafeBufferPointer { s.sample(logits: $0, history: []) }, 1)
    }

    func testSoftmaxHandTable() {
        // softmax([0, ln 2, ln 3]) = [1/6, 2/6, 3/6]
        var c = cands([0, log(2), log(3)])
        Sampler.softmax(&c)
        XCTAssertEqual(c[0].p, 1.0 / 6, accuracy: 1e-6)
        XCTAssertEqual(c[1].p, 2.0 / 6, accuracy: 1e-6)
        XCTAssertEqual(c[2].p, 3.0 / 6, accuracy: 1e-6)
    }

    func testTopK() {
        var c = cands([1, 5, 3, 4, 2])
        Sampler.topK(&c, 2)
        XCTAssertEqual(c.map(\.id), [1, 3])
        var all = cands([1, 5, 3])
        Sampler.topK(&all, 0)
        XCTAssertEqual(all.map(\.id), [1, 2, 0])
    }

    func testTopPKeepsSmallestPrefixReachingMass() {
        // probabilities 0.5, 0.3, 0.2 (logits ln of them)
        var c = cands([log(0.5), log(0.3), log(0.2)])
        Sampler.topP(&c, 0.79)     // 0.5 < 0.79, 0.8 ≥ 0.79 → keep 2 (away from float ties at the boundary)
        XCTAssertEqual(c.map(\.id), [0, 1])
        var d = cands([log(0.5), log(0.3), log(0.2)])
        Sampler.topP(&d, 0.49)     // 0.5 ≥ 0.49 → keep 1
        XCTAssertEqual(d.map(\.id), [0])
        var e = cands([log(0.5), log(0.3), log(0.2)])
        Sampler.topP(&e, 0.81)
        XCTAssertEqual(e.map(\.id), [0, 1, 2])
    }

    func testMinP() {
        // p = 0.5, 0.3, 0.2; min_p 0.5 → threshold 0.25 → keep 0.5 and 0.3
        var c = cands([log(0.5), log(0.3), log(0.2)])
        Sampler.minP(&c, 0.5)
        XCTAssertEqual(Set(c.map(\.id)), [0, 1])
    }

    func testTypicalHandTable() {
        // p = 0.5, 0.25, 0.25: H = 1.5 ln2 ≈ 1.0397. -ln p: 0.693, 1.386, 1.386 →
        // |shift|: 0.3466, 0.3466, 0.3466 (all equal) → order by id; cum 0.5 > 0.4 → keep 1.
        var c = cands([log(0.5), log(0.25), log(0.25)])
        Sampler.typical(&c, 0.4)
        XCTAssertEqual(c.map(\.id), [0])
        // p = 0.7, 0.2, 0.1: H = 0.8018; shifts: |0.3567-0.8018|=0.445, |1.609-0.8018|=0.808, |2.303-0.8018|=1.501
        var d = cands([log(0.7), log(0.2), log(0.1)])
        Sampler.typical(&d, 0.75)   // 0.7 ≤ 0.75, 0.9 > 0.75 → keep 2
        XCTAssertEqual(d.map(\.id), [0, 1])
    }

    func testPenaltiesHandTable() {
        var p = SamplingParameters()
        p.repeatPenalty = 2
        p.frequencyPenalty = 0.5
        p.presencePenalty = 0.25
        p.penaltyWindow = 3
        let logits: [Float] = [4, -4, 1, 3]
        // window = last 3 of [3, 0, 1, 0] = [0, 1, 0]: token 0 twice, token 1 once, token 3 outside.
        let c = logits.withUnsafeBufferPointer { Sampler.applyBiasAndPenalties(logits: $0, history: [3, 0, 1, 0], p) }
        XCTAssertEqual(c[0].logit, 4 / 2 - 2 * 0.5 - 0.25, accuracy: 1e-6)   // 0.75
        XCTAssertEqual(c[1].logit, -4 * 2 - 1 * 0.5 - 0.25, accuracy: 1e-6)  // -8.75
        XCTAssertEqual(c[2].logit, 1)
        XCTAssertEqual(c[3].logit, 3)
    }

    func testLogitBiasCanBanToken() throws {
        var p = SamplingParameters.greedy
        p.logitBias = [1: -.infinity]
        var s = try Sampler(p)
        let l: [Float] = [0, 9, 1]
        XCTAssertEqual(l.withUnsafeBufferPointer { s.sample(logits: $0, history: []) }, 2)
    }

    func testTemperatureAndDraw() {
        var c = cands([log(0.5), log(0.3), log(0.2)])
        // u just below the first mass → token 0; between 0.5 and 0.8 → token 1; above → 2
        var c1 = c
        XCTAssertEqual(Sampler.draw(&c1, u: 0.49), 0)
        var c2 = c
        XCTAssertEqual(Sampler.draw(&c2, u: 0.79), 1)
        var c3 = c
        XCTAssertEqual(Sampler.draw(&c3, u: 0.81), 2)
        // temperature 0.5 squares the odds: p ∝ 0.25, 0.09, 0.04
        Sampler.temperature(&c, 0.5)
        Sampler.softmax(&c)
        XCTAssertEqual(c[0].p, 0.25 / 0.38, accuracy: 1e-5)
    }

    func testSameSeedSameOutput() throws {
        var p = SamplingParameters()
        p.seed = 42
        p.topK = 0
        p.topP = 1
        p.minP = 0
        p.temperature = 1
        let logits = (0..<100).map { Float(sin(Double($0))) }
        func sequence() throws -> [Int32] {
            var s = try Sampler(p)
            return (0..<50).map { _ in logits.withUnsafeBufferPointer { s.sample(logits: $0, history: []) } }
        }
        let a = try sequence(), b = try sequence()
        XCTAssertEqual(a, b)
        XCTAssertGreaterThan(Set(a).count, 5, "temperature 1 over 100 tokens should vary")
    }

    func testInvalidParametersAreRejected() {
        var p = SamplingParameters()
        p.topP = 0
        XCTAssertThrowsError(try Sampler(p))
        p = SamplingParameters()
        p.temperature = -1
        XCTAssertThrowsError(try Sampler(p))
        p = SamplingParameters()
        p.temperature = .nan
        XCTAssertThrowsError(try Sampler(p))
    }

    func testLogprobs() {
        let l: [Float] = [log(0.5), log(0.3), log(0.2)]
        let lp = l.withUnsafeBufferPointer { TokenLogprob(id: 1, logits: $0, topN: 2) }
        XCTAssertEqual(lp.logprob, log(0.3), accuracy: 1e-5)
        XCTAssertEqual(lp.top.map(\.id), [0, 1])
        XCTAssertEqual(lp.top[0].logprob, log(0.5), accuracy: 1e-5)
    }
}

final class StopMatcherTests: XCTestCase {
    func testStopStraddlingTokens() {
        var m = StopMatcher(stops: ["</end>"])
        XCTAssertEqual(m.feed("Hello </"), .text("Hello "))
        XCTAssertEqual(m.feed("en"), .text(""))
        XCTAssertEqual(m.feed("d> tail"), .stop("", matched: "</end>"))
    }

    func testFalseAlarmIsReleased() {
        var m = StopMatcher(stops: ["STOP"])
        XCTAssertEqual(m.feed("ST"), .text(""))
        XCTAssertEqual(m.feed("AR"), .text("STAR"))
        XCTAssertEqual(m.feed("S"), .text(""))
        XCTAssertEqual(m.flush(), "S")
    }

    func testEarliestOfSeveralStops() {
        var m = StopMatcher(stops: ["bb", "a"])
        XCTAssertEqual(m.feed("xxbba"), .stop("xx", matched: "bb"))
    }

    func testNoStops() {
        var m = StopMatcher(stops: [])
        XCTAssertEqual(m.feed("abc"), .text("abc"))
    }
}
