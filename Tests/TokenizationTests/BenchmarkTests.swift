import Foundation
import ModelFiles
import TestSupport
import Tokenization
import XCTest

/// Prints encoding speed on ~1 MB of GPL-3 (a measurement, not a pass/fail benchmark). Run it in
/// release mode for meaningful numbers; set STEWARD_BENCH=1 to run it at all.
final class TokenizerBenchmarkTests: XCTestCase {
    func testEncodeSpeedOnOneMegabyte() throws {
        guard ProcessInfo.processInfo.environment["STEWARD_BENCH"] == "1" else {
            throw XCTSkip("set STEWARD_BENCH=1 to measure encoding speed")
        }
        let text = try TokenizerBenchmark.sampleText(repeating: "/usr/share/common-licenses/GPL-3")
        for (name, tok) in [("smollm2 (BPE)", try Models.smollm.get()), ("gemma-3 (SPM)", try Models.gemma.get())] {
            let r = TokenizerBenchmark.encode(tok, text: text, repeats: 3)
            print("bench-tokenize \(name): \(r)")
            // The encoding must still round-trip on this text.
            XCTAssertEqual(tok.decode(tok.encode(text, addBOS: false)), text)
        }
    }
}
