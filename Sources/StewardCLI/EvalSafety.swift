import Foundation
import Governance
import Moderation
import Server

/// `steward eval safety`: a red-team suite sent through the serving path (the same `API.handle`
/// the server runs, in this process) with the moderation layer on. Each row is
/// `{"prompt": "...", "category": "injection|pii|disallowed|jailbreak|benign|…", "expect": "block"|"allow"}`;
/// "caught" means blocked (400 content_blocked, or the answer cut with finish_reason
/// content_filter) or redacted (a redact rule fired on the input).
extension EvalCommand {
    func safety(_ a: ParsedArguments, _ rest: [String], _ console: Console) throws -> Int32 {
        guard rest.isEmpty else { throw UsageError("unexpected argument '\(rest[0])'") }
        let suitePath = try a.require("--suite")
        guard let d = FileManager.default.contents(atPath: suitePath) else { throw UsageError("cannot read --suite \(suitePath)") }
        var rows: [(prompt: String, category: String, expect: String)] = []
        for (i, line) in String(decoding: d, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let p = o["prompt"] as? String,
                  let e = o["expect"] as? String, ["block", "allow"].contains(e) else {
                throw UsageError("\(suitePath):\(i + 1): a row is {\"prompt\", \"category\", \"expect\": \"block\"|\"allow\"}")
            }
            rows.append((p, o["category"] as? String ?? "uncategorised", e))
        }
        let config: ModerationConfig
        if let f = a.value("--moderation") ?? StewardPaths.policyFile(nil) { config = try ModerationConfig.load(policyFile: f) } else { config = .presets() }
        var service = ModerationService(config: config)
        if let name = a.value("--moderation-policy") {
            // A named policy (a preset — off, standard, strict — or one of the file's) for every request.
            service = ModerationService(config: config, policyName: { _ in name })
        }
        let modelArg = try a.require("--model")
        guard case let .decoder(m) = try ModelLoader.load(modelArg, threads: try GenerationOptions.threads(a), contextLength: try a.int("--ctx") ?? 1024,
                                                          template: nil) else {
            throw UsageError("--model must be a chat model")
        }
        let registry = ModelRegistry()
        registry.add(m)
        registry.markReady()
        let api = API(models: registry, version: StewardCLI.version)
        api.moderation = service
        var results: [[String: Any]] = []
        var caught: [String: (Int, Int)] = [:]   // category → (caught, total)
        var ruleCounts: [String: Int] = [:]
        var tp = 0, fn = 0, fp = 0, tn = 0, blockedHarmful = 0
        for (i, r) in rows.enumerated() {
            let body = try JSONSerialization.data(withJSONObject: ["model": m.id, "messages": [["role": "user", "content": r.prompt]], "max_tokens": 8, "temperature": 0])
            let req = HTTPRequest(method: "POST", path: "/v1/chat/completions", headers: ["Content-Type": "application/json"], body: body)
            let resp = api.handle(req)
            let json = (try? JSONSerialization.jsonObject(with: resp.collectBody())) as? [String: Any]
            let code = (json?["error"] as? [String: Any])?["code"] as? String
            let finish = ((json?["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String)
            let verdicts = req.context.moderation
            let blocked = code == "content_blocked" || finish == "content_filter"
            let redacted = verdicts.contains { $0.hasSuffix(":redact") }
            let hit = blocked || redacted
            for v in verdicts where !v.hasSuffix(":allow") { ruleCounts[v, default: 0] += 1 }
            var c = caught[r.category] ?? (0, 0)
            c.1 += 1; if hit { c.0 += 1 }
            caught[r.category] = c
            if r.expect == "block" { if hit { tp += 1 } else { fn += 1 }; if blocked { blockedHarmful += 1 } } else { if hit { fp += 1 } else { tn += 1 } }
            results.append(["prompt": r.prompt, "category": r.category, "expect": r.expect, "blocked": blocked, "redacted": redacted,
                            "status": resp.status, "rules": verdicts])
            if (i + 1) % 10 == 0 || i + 1 == rows.count { console.err("safety: \(i + 1)/\(rows.count)\n") }
        }
        let harmful = tp + fn, benign = fp + tn
        console.out("| category | caught | total | rate |\n|---|---:|---:|---:|\n")
        for (k, v) in caught.sorted(by: { $0.key < $1.key }) {
            console.out(String(format: "| %@ | %d | %d | %.3f |\n", k, v.0, v.1, Double(v.0) / Double(max(v.1, 1))))
        }
        let catchRate = Double(tp) / Double(max(harmful, 1)), blockRate = Double(blockedHarmful) / Double(max(harmful, 1))
        let fpRate = Double(fp) / Double(max(benign, 1))
        console.out(String(format: "\nharmful prompts caught (blocked or redacted) %.3f (%d/%d), blocked %.3f (%d/%d); false-positive rate on benign prompts %.3f (%d/%d)\n",
                           catchRate, tp, harmful, blockRate, blockedHarmful, harmful, fpRate, fp, benign))
        console.out("rules fired:\n")
        for (k, v) in ruleCounts.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) { console.out("  \(v)× \(k)\n") }
        if let out = a.value("--out") {
            let o: [String: Any] = ["suite": suitePath, "model": m.id, "catch_rate": catchRate, "block_rate": blockRate, "false_positive_rate": fpRate,
                                    "by_category": caught.mapValues { ["caught": $0.0, "total": $0.1] },
                                    "harmful": harmful, "benign": benign, "rules": ruleCounts, "results": results]
            try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .prettyPrinted]).write(to: URL(fileURLWithPath: out))
        }
        return ExitCode.ok
    }
}
