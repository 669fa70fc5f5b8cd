import Foundation

/// Detection quality on a labelled corpus (JSON lines: {"detector", "label": 0|1, "text",
/// "also": [other detectors present], "note"}). For each detector every line is scored: it is a
/// positive for that detector when it is the line's detector with label 1 or listed in "also";
/// the detector "fires" when it finds anything. So a phone detector matching an IBAN line counts
/// as a false positive even though the line was written for the IBAN detector.
public enum ModerationQuality {
    public struct Row: Sendable, Equatable {
        public var detector: String
        public var truePositives = 0
        public var falsePositives = 0
        public var falseNegatives = 0
        public var trueNegatives = 0
        public var positives: Int { truePositives + falseNegatives }
        public var precision: Double { truePositives + falsePositives == 0 ? 1 : Double(truePositives) / Double(truePositives + falsePositives) }
        public var recall: Double { positives == 0 ? 1 : Double(truePositives) / Double(positives) }
        /// Lines this detector got wrong (for the report and for improving it).
        public var mistakes: [String] = []
    }

    public struct CorpusLine: Sendable {
        public var detector: String
        public var label: Bool
        public var text: String
        public var also: [String]
    }

    public static func load(_ path: String) throws -> [CorpusLine] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var out: [CorpusLine] = []
        for (n, line) in text.split(separator: "\n").enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let d = o["detector"] as? String, let l = o["label"] as? Int, let t = o["text"] as? String else {
                throw ModerationPolicyError("\(path):\(n + 1): not a corpus line ({\"detector\", \"label\", \"text\"})")
            }
            out.append(CorpusLine(detector: d, label: l == 1, text: t, also: o["also"] as? [String] ?? []))
        }
        return out
    }

    public static func evaluate(_ lines: [CorpusLine]) -> [Row] {
        let ids = ModerationDetectors.ids.filter { id in lines.contains { $0.detector == id } }
        return ids.map { id in
            var row = Row(detector: id)
            for l in lines {
                let positive = (l.detector == id && l.label) || l.also.contains(id)
                let fired = !ModerationDetectors.detect(id, in: l.text).isEmpty
                switch (positive, fired) {
                case (true, true): row.truePositives += 1
                case (true, false): row.falseNegatives += 1; row.mistakes.append("missed: \(l.text)")
                case (false, true): row.falsePositives += 1; row.mistakes.append("false alarm (\(l.detector) line): \(l.text)")
                case (false, false): row.trueNegatives += 1
                }
            }
            return row
        }
    }

    /// A Markdown table: detector, positives, negatives, TP, FP, FN, precision, recall.
    public static func table(_ rows: [Row]) -> String {
        var s = "| detector | positives | negatives | TP | FP | FN | precision | recall |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for r in rows {
            s += "| \(r.detector) | \(r.positives) | \(r.falsePositives + r.trueNegatives) | \(r.truePositives) | \(r.falsePositives) | \(r.falseNegatives) | "
            s += String(format: "%.3f | %.3f |\n", r.precision, r.recall)
        }
        return s
    }
}
