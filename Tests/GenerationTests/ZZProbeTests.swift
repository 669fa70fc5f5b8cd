import XCTest
import Foundation
import ModelFiles
import Models
import Tokenization
import Generation
import TestSupport

final class ZZProbeTests: XCTestCase {
    func testProbe() throws {
        guard let spec = ProcessInfo.processInfo.environment["PROBE"] else { throw XCTSkip("no probe") }
        // PROBE = model|comma separated ids
        let parts = spec.split(separator: "|")
        let f = try GGUFFile(path: try TestPaths.model(String(parts[0])))
        let m = try DecoderModel(file: f)
        let ids = parts[1].split(separator: ",").map { Int32($0)! }
        var logits: [Float] = []
        if ProcessInfo.processInfo.environment["INC"] != nil {
            let c = m.makeCache(capacity: ids.count + 1)
            for t in ids { logits = try m.forward(tokens: [t], cache: c) }
        } else {
            logits = try m.forward(tokens: ids, cache: m.makeCache(capacity: ids.count + 1))
        }
        let lp = logits.withUnsafeBufferPointer { TokenLogprob(id: 0, logits: $0, topN: 5) }
        print("PROBE", lp.top.map { "\($0.id):\($0.logprob)" }.joined(separator: " "))
    }
}
