import Foundation
import Governance
import Moderation

/// `steward moderate`: runs a moderation policy on a text offline (to try a policy before
/// serving it), prints the findings and the resulting text. Exit code 0 when the text is
/// allowed (possibly redacted or flagged), 2 when the policy blocks it.
struct ModerateCommand: Command {
    let spec = CommandSpec(
        name: "moderate",
        summary: "Apply a moderation policy to a text (findings, actions, redacted text).",
        usage: "steward moderate [--policy FILE] [--name POLICY] [--output] (TEXT | -)",
        options: [
            .value("--policy", valueName: "FILE", help: "Policy file whose \"moderation\" section to use (default: $STEWARD_HOME/policy.json if it exists, else the built-in presets)."),
            .value("--name", valueName: "POLICY", help: "Policy to apply (default: the file's default; presets: off, standard, strict)."),
            .flag("--output", help: "Apply the policy's output rules (what the model writes) instead of its input rules."),
            .flag("--json", help: "Print the result as JSON (findings with spans, action, text)."),
            .flag("--list", help: "List the detectors and the policies defined."),
            .value("--corpus", valueName: "FILE", help: "Print precision and recall per detector on a labelled JSONL corpus (Tests/Fixtures/moderation/corpus.jsonl)."),
            .flag("--bench", help: "Time moderation of a typical 1.5 KB chat request with the chosen policy (both directions)."),
        ],
        discussion: """
        Exit codes: 0 allowed (possibly redacted or flagged), 2 blocked, 1 error (bad policy file).
        Spans are in Unicode scalars, end exclusive. The classifier (a model) is not run offline.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        if let corpus = a.value("--corpus") {
            let rows = ModerationQuality.evaluate(try ModerationQuality.load(corpus))
            console.out(ModerationQuality.table(rows))
            for r in rows { for m in r.mistakes { console.out("  \(r.detector): \(m)\n") } }
            return ExitCode.ok
        }
        let config: ModerationConfig
        if let f = a.value("--policy") {
            config = try ModerationConfig.load(policyFile: f)
        } else if let p = StewardPaths.policyFile(nil) {
            config = try ModerationConfig.load(policyFile: p)
        } else {
            config = .presets()
        }
        if a.flag("--list") {
            console.out("detectors:\n")
            for d in ModerationDetectors.catalogue { console.out("  \(d.id.padding(toLength: 24, withPad: " ", startingAt: 0))\(d.summary)\n") }
            console.out("policies: \(config.policyNames.joined(separator: ", ")) (default: \(config.defaultPolicy))\n")
            return ExitCode.ok
        }
        let name = a.value("--name") ?? config.defaultPolicy
        guard let policy = config.policy(named: name) else {
            throw UsageError("no moderation policy '\(name)' (defined: \(config.policyNames.joined(separator: ", ")))")
        }
        let direction: ModerationDirection = a.flag("--output") ? .output : .input
        let moderator = Moderator(policy: policy, direction: direction)
        if a.flag("--bench") { return bench(policy, console: console) }
        guard a.positionals.count == 1 else { throw UsageError("give one TEXT argument, or - to read standard input") }
        let text = a.positionals[0] == "-" ? console.readAllInput() : a.positionals[0]
        let r = moderator.moderate(text)
        if a.flag("--json") {
            let o: [String: Any] = ["policy": policy.name, "direction": direction.rawValue, "action": r.action.rawValue,
                                    "text": r.blocked ? NSNull() : r.text as Any,
                                    "findings": r.findings.map { f -> [String: Any] in
                                        var d: [String: Any] = ["detector": f.detector, "category": f.category, "start": f.start, "end": f.end,
                                                                "action": f.action.rawValue, "score": f.score]
                                        if let rule = f.rule { d["rule"] = rule }
                                        return d
                                    }]
            let data = try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes])
            console.out(String(decoding: data, as: UTF8.self) + "\n")
        } else {
            console.out("policy \(policy.name) (\(direction.rawValue)): \(r.findings.isEmpty ? "no findings" : "\(r.findings.count) finding(s)")\n")
            for f in r.findings {
                let score = f.category == "injection" ? String(format: " score %.2f", f.score) : ""
                console.out("  \(f.label)  [\(f.start), \(f.end))  \(f.action.rawValue)\(score)\n")
            }
            switch r.action {
            case .block: console.out("result: blocked\n")
            default: console.out("result: \(r.action == .allow ? "allowed" : r.action.rawValue == "flag" ? "allowed (flagged)" : "redacted")\n\(r.text)\n")
            }
        }
        return r.blocked ? ExitCode.usage : ExitCode.ok
    }

    /// A typical chat request: ~1.5 KB of prose with a few personal details.
    static let benchText: String = {
        let para = "Hi, I am preparing the quarterly report for the operations team and need help restructuring it. "
            + "The draft has sections on incident response, capacity planning and the migration to the new cluster; "
            + "please suggest a clearer order and point out anything that reads as jargon. "
        return String(repeating: para, count: 5) + "You can reach me at jane.doe@example.com or +44 20 7946 0958 if needed. Thanks!"
    }()

    func bench(_ policy: ModerationPolicy, console: Console) -> Int32 {
        let input = Moderator(policy: policy, direction: .input)
        let output = Moderator(policy: policy, direction: .output)
        let text = ModerateCommand.benchText
        for _ in 0..<50 { _ = input.moderate(text); _ = output.moderate(text) }
        var times: [Double] = []
        for _ in 0..<1000 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = input.moderate(text)
            _ = output.moderate(text)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000)
        }
        times.sort()
        console.out(String(format: "moderation of a %d-byte request, policy %@, input + output: median %.1f µs, p99 %.1f µs (1000 runs)\n",
                           text.utf8.count, policy.name, times[500], times[990]))
        for id in ModerationDetectors.ids {
            var d: [Double] = []
            for _ in 0..<200 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = ModerationDetectors.detect(id, in: text)
                d.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000)
            }
            d.sort()
            console.out(String(format: "  %@ %.1f µs\n", id.padding(toLength: 24, withPad: " ", startingAt: 0), d[100]))
        }
        return ExitCode.ok
    }
}
