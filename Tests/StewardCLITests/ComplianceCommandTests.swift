import Foundation
import Governance
import StewardCLI
import TestSupport
import XCTest

final class ComplianceCommandTests: XCTestCase {
    static let policyJSON = #"""
    {
      "$comment": "Deployment policy <script>alert('policy')</script> & friends",
      "licenses": {"use": "commercial", "distribution": "external", "deny": ["cc-by-nc-4.0"], "allow_override": true},
      "models": {"require_registered": false},
      "audit": {"prompts": "hash", "retention_days": 90},
      "usage": {"currency": "EUR", "cost_per_1k_tokens": {"default": {"input": 0.5, "output": 1.0}}},
      "moderation": {
        "default": "standard",
        "policies": {
          "support-bot": {"extends": "standard",
                          "input": [{"keywords": ["project falcon"], "action": "block", "name": "codename"}]}
        }
      }
    }
    """#

    private func mode(_ path: String) -> Int {
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0, "stat \(path)")
        return Int(st.st_mode) & 0o777
    }

    private func read(_ path: String) throws -> String {
        String(decoding: try XCTUnwrap(FileManager.default.contents(atPath: path)), as: UTF8.self)
    }

    func testReportContentsSecretsEscapingModesAndTampering() throws {
        try withStewardHome("compliance") { home in
            let scratch = try GovernanceScratch("compliance-models")
            try Data(Self.policyJSON.utf8).write(to: home.appendingPathComponent("policy.json"))

            // Models: one allowed with Llama duties, one denied but admitted with a recorded override.
            let llama = try scratch.gguf("tiny-llama", license: "llama3.2")
            var r = steward(["models", "add", llama, "--name", "tiny-llama", "--source", "<b>hf</b> & co"])
            XCTAssertEqual(r.code, 0, r.err)
            let nc = try scratch.gguf("tiny-nc", license: "cc-by-nc-4.0", seed: 2)
            r = steward(["models", "add", nc, "--name", "tiny-nc", "--parent", "tiny-llama", "--relation", "finetuned", "--override-license"])
            XCTAssertEqual(r.code, 0, r.err)

            // Keys: the secrets are printed once and must never reach the report.
            r = steward(["keys", "create", "--name", "<script>alert(1)</script>", "--scopes", "chat", "--rpm", "60", "--moderation-policy", "support-bot"])
            XCTAssertEqual(r.code, 0, r.err)
            let chatKey = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertTrue(chatKey.hasPrefix("sk-stw-"), chatKey)
            let chatID = String(chatKey.dropFirst("sk-stw-".count).prefix(12))
            r = steward(["keys", "create", "--name", "ops", "--scopes", "admin", "--expires", "2099-12-31"])
            XCTAssertEqual(r.code, 0, r.err)
            let adminKey = r.out.trimmingCharacters(in: .whitespacesAndNewlines)

            // A request record with usage, as the server writes it.
            let storage = try SQLiteStorage(path: home.path + "/steward.db")
            let log = try AuditLog(storage: storage, policy: AuditPolicy(prompts: .hash), usage: try UsageLedger(storage: storage))
            try log.recordRequest(AuditRequestInfo(requestID: "req_1", keyID: chatID, route: "/v1/chat/completions", method: "POST",
                                                   model: "tiny-llama", status: 200, tokensIn: 1200, tokensOut: 300, latencySeconds: 0.5))
            let digest = try XCTUnwrap(try ModelStore(storage: storage).record(named: "tiny-llama")).sha256
            let storedHashes = try storage.query("SELECT secret_sha256 FROM api_keys").compactMap { $0["secret_sha256"]?.data }
            XCTAssertEqual(storedHashes.count, 2)

            let out = home.path + "/reports/2026"   // two levels that do not exist yet
            r = steward(["compliance", "report", "--out", out])
            XCTAssertEqual(r.code, 0, r.err)
            XCTAssertTrue(r.out.contains("wrote \(out)/compliance-report.md"), r.out)
            let md = try read(out + "/compliance-report.md"), html = try read(out + "/compliance-report.html")
            XCTAssertEqual(mode(out), 0o700)
            XCTAssertEqual(mode(out + "/compliance-report.md"), 0o600)
            XCTAssertEqual(mode(out + "/compliance-report.html"), 0o600)

            for (name, doc) in [("markdown", md), ("html", html)] {
                for heading in ["Steward compliance report", "Summary", "Models and licences", "Active deployment policy", "API keys",
                                "Audit log", "Moderation", "Usage (last 30 days, by model)", "Evaluation results"] {
                    XCTAssertTrue(doc.contains(heading), "\(name): heading \(heading)")
                }
                XCTAssertTrue(doc.contains("Steward version") && doc.contains(StewardCLITestsVersion.current), name)
                XCTAssertTrue(doc.contains(ProcessInfo.processInfo.hostName), "\(name): host")
                // Models: digest, size, quantization, licence, obligations, lineage, signature, verification, decision.
                XCTAssertTrue(doc.contains(digest), "\(name): digest")
                XCTAssertTrue(doc.contains("F32"), "\(name): quantization")
                XCTAssertTrue(doc.contains("llama3.2") && doc.contains("Built with Llama"), "\(name): Llama attribution duty")
                XCTAssertTrue(doc.contains("700,000,000 monthly active users"), "\(name): user threshold")
                XCTAssertTrue(doc.contains("Acceptable-use policy: https://"), "\(name): AUP")
                XCTAssertTrue(doc.contains("finetuned from tiny-llama"), "\(name): lineage")
                XCTAssertTrue(doc.contains("unsigned"), "\(name): signature status")
                XCTAssertTrue(doc.contains("ok (re-hashed)"), "\(name): verification")
                XCTAssertTrue(doc.contains("cc-by-nc-4.0 forbids commercial use"), "\(name): denial reason")
                XCTAssertTrue(doc.contains("overridden at add"), "\(name): the recorded override")
                // Policy, keys, audit, moderation, usage, evaluations.
                XCTAssertTrue(doc.contains(home.path + "/policy.json") && doc.contains("audit, licenses, models, moderation, usage"), "\(name): policy")
                XCTAssertTrue(doc.contains("cc-by-nc-4.0") && doc.contains("retention_days"), "\(name): pretty-printed policy")
                XCTAssertTrue(doc.contains(chatID) && doc.contains("60 rpm") && doc.contains("support-bot"), "\(name): key row")
                XCTAssertTrue(doc.contains("2099-12-31"), "\(name): expiry")
                XCTAssertTrue(doc.contains("hash (SHA-256 of prompt and completion)"), "\(name): prompt logging mode")
                XCTAssertTrue(doc.contains("intact"), "\(name): chain intact")
                XCTAssertTrue(doc.contains("90 days"), "\(name): retention")
                XCTAssertTrue(doc.contains("Policy support-bot") && doc.contains("project falcon") && doc.contains(name == "markdown" ? "detector secret.\\* → block" : "detector secret.* → block"), "\(name): moderation rules")
                XCTAssertTrue(doc.contains("Policy standard (built-in preset)"), "\(name): the default preset is shown")
                XCTAssertTrue(doc.contains("1200") && doc.contains("300") && doc.contains("Cost (EUR)") && doc.contains("0.9000"), "\(name): usage")
                XCTAssertTrue(doc.contains("No evaluation results recorded"), "\(name): evaluations")
                // Never a secret or its hash.
                for key in [chatKey, adminKey] {
                    XCTAssertFalse(doc.contains(key), "\(name): a key")
                    XCTAssertFalse(doc.contains(String(key.suffix(43))), "\(name): a key's secret part")
                }
                for h in storedHashes {
                    XCTAssertFalse(doc.contains(h.map { String(format: "%02x", $0) }.joined()), "\(name): a key hash (hex)")
                    XCTAssertFalse(doc.contains(h.base64EncodedString()), "\(name): a key hash (base64)")
                }
            }
            // Escaping: the key name and the policy comment are text, never markup.
            XCTAssertFalse(html.contains("<script"), "no script element can appear in the HTML")
            XCTAssertTrue(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the key name, escaped")
            XCTAssertTrue(html.contains("&lt;script&gt;alert(&#39;policy&#39;)&lt;/script&gt; &amp; friends"), "the policy comment, escaped")
            XCTAssertTrue(html.contains("&lt;b&gt;hf&lt;/b&gt; &amp; co"), "the model source, escaped")
            XCTAssertTrue(html.contains("Content-Security-Policy") && !html.contains("http-equiv=\"refresh\"") && !html.contains("<link"), "self-contained")
            XCTAssertTrue(md.contains("\\<script\\>alert(1)\\</script\\>"), "the key name, backslash-escaped in Markdown")
            // Outside the fenced (literal) policy block, Markdown has no raw "<script".
            for (i, part) in md.components(separatedBy: "```").enumerated() where i % 2 == 0 {
                XCTAssertNil(part.range(of: #"(?<!\\)<script"#, options: .regularExpression), "raw <script> in Markdown text")
            }
            XCTAssertTrue(md.contains("```json\n"), "the policy is in a fenced block")

            // The report itself is recorded as an admin action.
            XCTAssertTrue(try log.tail(1).first?.action == "compliance.report")

            // An evaluation result and --quick.
            try FileManager.default.createDirectory(atPath: home.path + "/evals", withIntermediateDirectories: true)
            try Data(#"{"model": "tiny-llama", "suite": "smoke", "metrics": {"accuracy": 0.75}}"#.utf8)
                .write(to: home.appendingPathComponent("evals/run-1.json"))
            r = steward(["compliance", "report", "--out", out, "--quick"])
            XCTAssertEqual(r.code, 0, r.err)
            let quick = try read(out + "/compliance-report.md")
            XCTAssertTrue(quick.contains("run-1.json") && quick.contains("metrics.accuracy") && quick.contains("0.75") && quick.contains("smoke"), quick)
            XCTAssertTrue(quick.contains("unchanged size, mtime and inode (not re-hashed)"), "--quick trusts unchanged files")
            XCTAssertEqual(mode(out + "/compliance-report.md"), 0o600, "rewritten files stay private")

            // Tampering with the audit log shows up as a problem in the report.
            try storage.execute("DROP TRIGGER audit_log_no_update")
            try storage.execute("UPDATE audit_log SET tokens_out = 9999 WHERE seq = 2")
            r = steward(["compliance", "report", "--out", out])
            XCTAssertEqual(r.code, 0, r.err)
            XCTAssertTrue(r.out.contains("Audit chain: 1 problem"), r.out)
            for doc in [try read(out + "/compliance-report.md"), try read(out + "/compliance-report.html")] {
                XCTAssertTrue(doc.contains("PROBLEMS FOUND"), "summary")
                XCTAssertTrue(doc.contains("seq 2 was edited"), "the problem names the record")
            }

            // A changed model file is reported too.
            let h = try XCTUnwrap(FileHandle(forWritingAtPath: llama))
            try h.seek(toOffset: try h.seekToEnd() - 4)
            try h.write(contentsOf: Data([1, 2, 3, 4]))
            try h.close()
            r = steward(["compliance", "report", "--out", out])
            XCTAssertEqual(r.code, 0, r.err)
            let changed = try read(out + "/compliance-report.md")
            XCTAssertTrue(changed.contains("CHANGED (now sha256"), changed)
            XCTAssertTrue(r.out.contains("Model tiny-llama: files changed or missing"), r.out)
        }
    }

    func testNoPolicyNoModerationAndUsageErrors() throws {
        try withStewardHome("compliance-empty") { home in
            var r = steward(["compliance", "report"])
            XCTAssertEqual(r.code, 2, "--out is required")
            XCTAssertTrue(r.err.contains("--out"), r.err)
            XCTAssertEqual(steward(["compliance", "summary", "--out", home.path]).code, 2)
            r = steward(["compliance", "report", "--out", home.path + "/r"])
            XCTAssertEqual(r.code, 0, r.err)
            let md = try read(home.path + "/r/compliance-report.md")
            XCTAssertTrue(md.contains("No policy file"), md)
            XCTAssertTrue(md.contains("**off**: the policy has no \"moderation\" section"), md)
            XCTAssertTrue(md.contains("No models are registered"), md)
            XCTAssertTrue(md.contains("No API keys exist"), md)
            XCTAssertTrue(md.contains("No evaluation results recorded (looked for `\(home.path)/evals/*.json`)"), md)

            // A policy without a moderation section: moderation is off, said so.
            let p = home.path + "/p.json"
            try Data(#"{"licenses": {"use": "research"}}"#.utf8).write(to: URL(fileURLWithPath: p))
            r = steward(["compliance", "report", "--out", home.path + "/r", "--policy", p])
            XCTAssertEqual(r.code, 0, r.err)
            XCTAssertTrue(try read(home.path + "/r/compliance-report.html").contains("<strong>off</strong>: the policy has no"), "html")

            // A broken policy is an error, not a report judged against nothing.
            try Data(#"{"licenses": {"usage": "research"}}"#.utf8).write(to: URL(fileURLWithPath: p))
            r = steward(["compliance", "report", "--out", home.path + "/r", "--policy", p])
            XCTAssertEqual(r.code, 1)
            XCTAssertTrue(r.err.contains("licenses.usage"), r.err)
        }
    }
}

enum StewardCLITestsVersion {
    static var current: String {
        let r = steward(["--version"])
        return r.out.replacingOccurrences(of: "steward ", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
