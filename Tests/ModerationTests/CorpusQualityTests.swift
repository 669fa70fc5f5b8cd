import Foundation
import XCTest
import Moderation
import TestSupport

/// Precision and recall per detector on the hand-written corpus
/// (Tests/Fixtures/moderation/corpus.jsonl). Set STEWARD_PRINT_QUALITY=1 to print the table
/// (`steward moderate --corpus FILE` prints the same).
final class CorpusQualityTests: XCTestCase {
    func testPrecisionAndRecallFloors() throws {
        let lines = try ModerationQuality.load(TestPaths.fixture("moderation/corpus.jsonl"))
        let rows = ModerationQuality.evaluate(lines)
        XCTAssertEqual(Set(rows.map(\.detector)), Set(ModerationDetectors.ids), "every detector has corpus lines")
        if ProcessInfo.processInfo.environment["STEWARD_PRINT_QUALITY"] != nil {
            print(ModerationQuality.table(rows))
            for r in rows { for m in r.mistakes { print("  \(r.detector): \(m)") } }
        }
        for r in rows {
            XCTAssertGreaterThanOrEqual(r.positives, 15, r.detector)
            XCTAssertGreaterThanOrEqual(r.falsePositives + r.trueNegatives, 15, r.detector)
            let (p, rc) = CorpusQualityTests.floors(r.detector)
            XCTAssertGreaterThanOrEqual(r.precision, p, "\(r.detector) precision; mistakes: \(r.mistakes)")
            XCTAssertGreaterThanOrEqual(r.recall, rc, "\(r.detector) recall; mistakes: \(r.mistakes)")
        }
    }

    /// Floors. Checksum- or structure-validated detectors (card, IBAN, SSN, IP, prefixed keys,
    /// PEM) must be near perfect: 0.95. Phone numbers have no checksum and many national
    /// shapes: 0.85 / 0.80. The injection heuristic is a keyword scorer: 0.85 / 0.80.
    static func floors(_ id: String) -> (precision: Double, recall: Double) {
        switch id {
        case "pii.phone": return (0.85, 0.80)
        case "injection": return (0.85, 0.80)
        case "pii.email", "secret.bearer_token", "secret.aws_secret_key", "secret.openai_key": return (0.95, 0.90)
        default: return (0.95, 0.95)
        }
    }
}
