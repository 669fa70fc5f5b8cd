import Foundation
import XCTest
import Governance
import Moderation

final class AuditLogTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("steward-audit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func open(_ policy: AuditPolicy = AuditPolicy(), redactor: (@Sendable (String) -> String)? = nil) throws -> (SQLiteStorage, AuditLog) {
        let s = try SQLiteStorage(path: dir.appendingPathComponent("steward.db").path)
        return (s, try AuditLog(storage: s, policy: policy, redactor: redactor, usage: try UsageLedger(storage: s)))
    }

    func request(_ i: Int, status: Int = 200, prompt: String? = nil, completion: String? = nil) -> AuditRequestInfo {
        AuditRequestInfo(requestID: "req_\(i)", keyID: "key_a", route: "/v1/chat/completions", method: "POST", model: "m",
                         status: status, tokensIn: 10 + i, tokensOut: 5, latencySeconds: 0.0123, moderation: ["input:pii.email:redact"],
                         prompt: prompt, completion: completion)
    }

    /// Five records, chain intact; the triggers are dropped as a tamperer with write access would.
    func fiveRecords() throws -> (SQLiteStorage, AuditLog) {
        let (s, log) = try open()
        for i in 1...5 { try log.recordRequest(request(i)) }
        XCTAssertTrue(try log.verify(trustedKey: nil).ok)
        try s.execute("DROP TRIGGER audit_log_no_update")
        try s.execute("DROP TRIGGER audit_log_no_delete")
        return (s, log)
    }

    func testChainLinksAndFields() throws {
        let (_, log) = try open()
        let a = try log.recordRequest(request(1))
        let b = try log.recordAdmin(action: "keys.create", keyID: "key_admin", target: "key_b", details: ["scopes": "chat"])
        XCTAssertEqual(a.seq, 1)
        XCTAssertEqual(b.seq, 2)
        XCTAssertEqual(a.prevHash, AuditLog.genesisHash)
        XCTAssertEqual(b.prevHash, a.hash)
        XCTAssertEqual(a.hash, AuditLog.chainHash(prev: a.prevHash, record: a))
        XCTAssertEqual(a.hash.count, 64)
        // UTC ISO 8601 with milliseconds.
        XCTAssertNotNil(a.time.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression), a.time)
        let t = try log.tail(10)
        XCTAssertEqual(t.map(\.seq), [1, 2])
        XCTAssertEqual(t[0], a)
        XCTAssertEqual(t[0].latencyMs, 12.3, accuracy: 0.001)
        XCTAssertEqual(t[0].moderation, ["input:pii.email:redact"])
        XCTAssertEqual(t[1].kind, "admin")
        XCTAssertEqual(t[1].details, ["scopes": "chat"])
        XCTAssertNil(t[0].prompt, "default policy logs no prompt")
        let v = try log.verify(trustedKey: nil)
        XCTAssertTrue(v.ok, "\(v.problems)")
        XCTAssertEqual(v.recordsChecked, 2)
    }

    func testCanonicalJSONIsSortedAndEscaped() {
        XCTAssertEqual(CanonicalJSON.text("a\"b\\c\nd\u{01}é"), #""a\"b\\c\nd\u0001é""#)
        XCTAssertEqual(CanonicalJSON.stringObject(["b": "1", "a": "2"]), #"{"a":"2","b":"1"}"#)
        XCTAssertEqual(CanonicalJSON.text(nil), "null")
    }

    func testTriggersBlockUpdateAndDelete() throws {
        let (s, log) = try open()
        try log.recordRequest(request(1))
        XCTAssertThrowsError(try s.execute("UPDATE audit_log SET status = 500 WHERE seq = 1")) {
            XCTAssertTrue("\($0)".contains("append-only"), "\($0)")
        }
        XCTAssertThrowsError(try s.execute("DELETE FROM audit_log WHERE seq = 1")) {
            XCTAssertTrue("\($0)".contains("steward audit prune"), "\($0)")
        }
    }

    func testEditedRecordIsFound() throws {
        let (s, log) = try fiveRecords()
        try s.execute("UPDATE audit_log SET status = 500 WHERE seq = 3")
        let v = try log.verify(trustedKey: nil)
        XCTAssertEqual(v.problems.map(\.kind), [.edited], "\(v.problems)")
        XCTAssertEqual(v.problems.first?.seq, 3)
        // Editing only the link is found too.
        try s.execute("UPDATE audit_log SET status = 200 WHERE seq = 3")
        XCTAssertTrue(try log.verify(trustedKey: nil).ok)
        try s.execute("UPDATE audit_log SET prev_hash = ? WHERE seq = 4", .text(String(repeating: "a", count: 64)))
        let v2 = try log.verify(trustedKey: nil)
        XCTAssertEqual(v2.problems.map(\.kind), [.edited], "\(v2.problems)")
        XCTAssertEqual(v2.problems.first?.seq, 4)
    }

    func testDeletedRecordIsFound() throws {
        let (s, log) = try fiveRecords()
        try s.execute("DELETE FROM audit_log WHERE seq = 3")
        let v = try log.verify(trustedKey: nil)
        XCTAssertEqual(v.problems.map(\.kind), [.deleted], "\(v.problems)")
        XCTAssertEqual(v.problems.first?.seq, 3)
        XCTAssertTrue(v.problems[0].message.contains("seq 3 is missing"), v.problems[0].message)
    }

    func testDeletedLastAndFirstRecordsAreFound() throws {
        let (s, log) = try fiveRecords()
        try s.execute("DELETE FROM audit_log WHERE seq = 5")
        var v = try log.verify(trustedKey: nil)
        XCTAssertEqual(v.problems.map(\.kind), [.deleted], "\(v.problems)")
        XCTAssertEqual(v.problems.first?.seq, 5)
        try s.execute("DELETE FROM audit_log WHERE seq <= 2")
        v = try log.verify(trustedKey: nil)
        XCTAssertEqual(v.problems.map(\.kind), [.deleted, .deleted], "\(v.problems)")
        XCTAssertEqual(v.problems.first?.seq, 1)
        // A new record after a tail deletion gets a fresh seq: the gap stays visible.
        let next = try log.recordRequest(request(9))
        XCTAssertEqual(next.seq, 6)
    }

    func testInsertedRecordIsFound() throws {
        let (s, log) = try fiveRecords()
        // Make room at seq 3 and insert a forged record that links to seq 2 with a correct hash,
        // as someone who knows the scheme would.
        try s.execute("UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 3")
        try s.execute("UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000")
        let two = try XCTUnwrap(try log.records(after: 1, limit: 1).first)
        var forged = two
        forged.seq = 3
        forged.requestID = "req_forged"
        forged.prevHash = two.hash
        forged.hash = AuditLog.chainHash(prev: two.hash, record: forged)
        try s.execute("""
            INSERT INTO audit_log (seq, time, kind, request_id, key_id, route, method, model, status, tokens_in, tokens_out,
              latency_us, moderation, overrides, prompt_mode, details, prev_hash, hash)
            VALUES (3, ?, 'request', 'req_forged', 'key_a', '/v1/chat/completions', 'POST', 'm', 200, 12, 5, 12300,
              '["input:pii.email:redact"]', '[]', 'none', '{}', ?, ?)
            """, .text(forged.time), .text(forged.prevHash), .text(forged.hash))
        let v = try log.verify(trustedKey: nil)
        XCTAssertEqual(v.problems.map(\.kind), [.inserted], "\(v.problems)")
        XCTAssertEqual(v.problems.first?.seq, 3)
    }

    func testReorderedRecordsAreFound() throws {
        let (s, log) = try fiveRecords()
        // Swap seq 3 and 4.
        try s.execute("UPDATE audit_log SET seq = 100 WHERE seq = 3")
        try s.execute("UPDATE audit_log SET seq = 3 WHERE seq = 4")
        try s.execute("UPDATE audit_log SET seq = 4 WHERE seq = 100")
        let v = try log.verify(trustedKey: nil)
        XCTAssertEqual(v.problems.map(\.kind), [.reordered], "\(v.problems)")
        XCTAssertEqual(v.problems.first?.seq, 3)
        XCTAssertTrue(v.problems[0].message.contains("seq 4"), v.problems[0].message)
    }

    func testPruneWritesSignedCheckpointAndVerifyStillWorks() throws {
        let (s, log) = try open()
        for i in 1...4 { try log.recordRequest(request(i)) }
        Thread.sleep(forTimeInterval: 0.01)
        let cut = Date()
        Thread.sleep(forTimeInterval: 0.01)
        for i in 5...6 { try log.recordRequest(request(i)) }
        let keyPath = dir.appendingPathComponent("audit-signing.pem").path
        let key = try AuditLog.signingKey(path: keyPath)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? Int, 0o600)
        let r = try log.prune(before: cut, key: key)
        XCTAssertEqual(r.pruned, 4)
        XCTAssertEqual(r.checkpoint?.seq, 4)
        let left = try log.tail(100)
        XCTAssertEqual(left.map(\.seq), [5, 6, 7])
        XCTAssertEqual(left.last?.action, "audit.prune")
        XCTAssertEqual(left.first?.prevHash, r.checkpoint?.hash)
        let v = try log.verify(trustedKey: try AuditLog.signingKey(path: keyPath, create: false))
        XCTAssertTrue(v.ok, "\(v.problems)")
        XCTAssertEqual(v.checkpointSeq, 4)
        // The public key alone verifies.
        let pub = try Ed25519Key.load(pem: try key.publicPEM())
        XCTAssertTrue(try log.verify(trustedKey: pub).ok)
        // Without the key a checkpoint cannot be trusted: said, not silently accepted.
        XCTAssertEqual(try log.verify(trustedKey: nil).problems.map(\.kind), [.checkpoint])
        // Deleting the first surviving record after a prune is still found.
        try s.execute("DROP TRIGGER audit_log_no_delete")
        try s.execute("DELETE FROM audit_log WHERE seq = 5")
        let v2 = try log.verify(trustedKey: key)
        XCTAssertEqual(v2.problems.map(\.kind), [.deleted], "\(v2.problems)")
        XCTAssertEqual(v2.problems.first?.seq, 5)
    }

    func testForgedCheckpointIsFound() throws {
        let (s, log) = try fiveRecords()
        let key = try AuditLog.signingKey(path: dir.appendingPathComponent("audit-signing.pem").path)
        // Someone deletes seq 1–3 and covers it with a checkpoint signed by their own key.
        try s.execute("DELETE FROM audit_log WHERE seq <= 3")
        let three = try log.verify(trustedKey: key)
        XCTAssertEqual(three.problems.map(\.kind), [.deleted])
        let rogue = try Ed25519Key.generate()
        let row = try XCTUnwrap(try log.tail(10).first)
        let time = "2030-01-01T00:00:00.000Z"
        let sig = try rogue.sign(AuditCheckpoint.message(seq: 3, hash: row.prevHash, pruned: 3, time: time))
        try s.execute("INSERT INTO audit_checkpoints (time, seq, hash, pruned, public_key, signature) VALUES (?, 3, ?, 3, ?, ?)",
                      .text(time), .text(row.prevHash), .text(rogue.publicKeyHex), .text(sig.map { String(format: "%02x", $0) }.joined()))
        let v = try log.verify(trustedKey: key)
        XCTAssertEqual(v.problems.map(\.kind), [.checkpoint, .deleted], "\(v.problems)")
        XCTAssertTrue(v.problems[0].message.contains("forged"), v.problems[0].message)

        // A genuine checkpoint whose seq is moved on (to hide more deletions) fails its signature.
        let (s2, log2) = try open2()
        for i in 1...5 { try log2.recordRequest(request(i)) }
        try log2.prune(before: Date().addingTimeInterval(1), key: key)
        try s2.execute("DROP TRIGGER audit_checkpoints_no_update")
        try s2.execute("UPDATE audit_checkpoints SET seq = 6")
        let v2 = try log2.verify(trustedKey: key)
        XCTAssertEqual(v2.problems.first?.kind, .checkpoint, "\(v2.problems)")
        XCTAssertTrue(v2.problems[0].message.contains("signature"), v2.problems[0].message)
    }

    func open2() throws -> (SQLiteStorage, AuditLog) {
        let s = try SQLiteStorage(path: dir.appendingPathComponent("second.db").path)
        return (s, try AuditLog(storage: s))
    }

    func testPromptModes() throws {
        let text = "mail me at ann@example.com"
        var results: [PromptLogging: AuditRecord] = [:]
        for mode in PromptLogging.allCases {
            let s = try SQLiteStorage(path: ":memory:")
            var redactor: (@Sendable (String) -> String)?
            if mode == .redacted {
                redactor = { (s: String) -> String in s.replacingOccurrences(of: "ann@example.com", with: "[EMAIL]") }
            }
            let log = try AuditLog(storage: s, policy: AuditPolicy(prompts: mode), redactor: redactor)
            results[mode] = try log.recordRequest(request(1, prompt: text, completion: "ok"))
            XCTAssertTrue(try log.verify(trustedKey: nil).ok)
        }
        XCTAssertNil(results[.none]?.prompt)
        XCTAssertNil(results[.none]?.completion)
        XCTAssertEqual(results[.hash]?.prompt, Secrets.sha256Hex(text))
        XCTAssertEqual(results[.hash]?.completion, Secrets.sha256Hex("ok"))
        XCTAssertEqual(results[.redacted]?.prompt, "mail me at [EMAIL]")
        XCTAssertEqual(results[.full]?.prompt, text)
        XCTAssertEqual(results[.full]?.promptMode, "full")
        // Redacted without a redactor refuses to start rather than log raw text.
        XCTAssertThrowsError(try AuditLog(storage: try SQLiteStorage(path: ":memory:"), policy: AuditPolicy(prompts: .redacted))) {
            XCTAssertEqual($0 as? AuditError, .redactorMissing)
        }
    }

    /// What `steward serve` wires for prompts "redacted": moderation's PII and secret detectors.
    func testRedactedModeWithModerationsRedactor() throws {
        let (_, log) = try open(AuditPolicy(prompts: .redacted), redactor: ModerationService.redactor)
        let r = try log.recordRequest(request(1, prompt: "mail ann@example.com, card 4111 1111 1111 1111", completion: "call +44 20 7946 0958"))
        let prompt = try XCTUnwrap(r.prompt), completion = try XCTUnwrap(r.completion)
        XCTAssertFalse(prompt.contains("ann@example.com"), prompt)
        XCTAssertFalse(prompt.contains("4111 1111 1111 1111"), prompt)
        XCTAssertFalse(completion.contains("7946 0958"), completion)
        XCTAssertTrue(prompt.contains("REDACTED"), prompt)
    }

    func testExportFormats() throws {
        let (_, log) = try open(AuditPolicy(prompts: .full))
        try log.recordRequest(request(1, prompt: "a, \"quoted\"\nline", completion: "=cmd"))
        try log.recordRequest(request(2, status: 401))
        let recs = try log.records(since: nil, until: nil)
        let jsonl = AuditLog.export(recs, format: .jsonl)
        let lines = jsonl.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        let first = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        XCTAssertEqual(first["seq"] as? Int, 1)
        XCTAssertEqual(first["prompt"] as? String, "a, \"quoted\"\nline")
        XCTAssertEqual(first["request_id"] as? String, "req_1")
        XCTAssertEqual(first["hash"] as? String, recs[0].hash)
        let csv = AuditLog.export(recs, format: .csv)
        XCTAssertTrue(csv.hasPrefix("seq,time,kind,request_id,key_id,route,method,model,adapter,status,tokens_in,tokens_out,latency_ms,"))
        XCTAssertTrue(csv.contains("\"a, \"\"quoted\"\"\nline\""), csv)
        XCTAssertTrue(csv.contains(",'=cmd,"), "formula-like cells are defused: \(csv)")
        XCTAssertEqual(csv.components(separatedBy: "\r\n").filter { !$0.isEmpty }.count, 3, "header + 2 records (the quoted newline is not a record end)")
        // Time window: since after everything gives nothing.
        XCTAssertTrue(try log.records(since: Date().addingTimeInterval(60), until: nil).isEmpty)
        XCTAssertEqual(try log.records(since: Date().addingTimeInterval(-60), until: Date().addingTimeInterval(60)).count, 2)
    }

    func testFilesArePrivate() throws {
        let (_, log) = try open()
        try log.recordRequest(request(1))
        for name in ["steward.db", "steward.db-wal"] {
            let p = dir.appendingPathComponent(name).path
            guard FileManager.default.fileExists(atPath: p) else { continue }
            XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: p)[.posixPermissions] as? Int, 0o600, name)
        }
    }

    func testPolicySection() throws {
        let p = try AuditPolicy(section: ["prompts": "hash", "retention_days": 30, "durable": true])
        XCTAssertEqual(p, AuditPolicy(prompts: .hash, retentionDays: 30, durable: true))
        XCTAssertThrowsError(try AuditPolicy(section: ["prompt": "hash"])) { XCTAssertTrue("\($0)".contains("'prompt'"), "\($0)") }
        XCTAssertThrowsError(try AuditPolicy(section: ["prompts": "everything"]))
        XCTAssertThrowsError(try AuditPolicy(section: ["retention_days": 0]))
        XCTAssertThrowsError(try AuditPolicy(section: ["durable": 1]))
        let file = dir.appendingPathComponent("policy.json")
        try Data(#"{"licenses": {"x": 1}, "audit": {"prompts": "full", "retention_days": 7}}"#.utf8).write(to: file)
        XCTAssertEqual(try AuditPolicy.load(policyFile: file.path), AuditPolicy(prompts: .full, retentionDays: 7))
    }

    func testDurablePolicySyncsEveryCommit() throws {
        let (s, _) = try open(AuditPolicy(durable: true))
        XCTAssertEqual(try s.query("PRAGMA synchronous").first?["synchronous"]?.int, 2, "FULL")
        let (s2, _) = try open2()
        XCTAssertEqual(try s2.query("PRAGMA synchronous").first?["synchronous"]?.int, 1, "NORMAL")
        XCTAssertEqual(try s2.query("PRAGMA journal_mode").first?["journal_mode"]?.string, "wal")
    }

    func testRecorderSeam() throws {
        let (_, log) = try open()
        let recorder: AdminActionRecorder = log
        try recorder.recordAdmin(action: "models.remove", keyID: "key_1", target: "m", details: [:])
        XCTAssertEqual(try log.tail(1).first?.action, "models.remove")
    }

    func testRetentionFromPolicy() throws {
        let (_, log) = try open(AuditPolicy(retentionDays: 1))
        try log.recordRequest(request(1))
        let key = try Ed25519Key.generate()
        XCTAssertEqual(try log.applyRetention(key: key).pruned, 0, "nothing is a day old yet")
        XCTAssertEqual(try log.applyRetention(key: key, now: Date().addingTimeInterval(2 * 86400)).pruned, 1)
        XCTAssertTrue(try log.verify(trustedKey: key).ok)
    }

    /// Cost per append (audit record + usage update), for the report. STEWARD_BENCH=1.
    func testAppendCostBenchmark() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["STEWARD_BENCH"] == "1", "set STEWARD_BENCH=1")
        let (_, log) = try open()
        let n = 2000
        for i in 0..<50 { try log.recordRequest(request(i)) }
        let t0 = Date()
        for i in 0..<n { try log.recordRequest(request(i)) }
        let per = Date().timeIntervalSince(t0) / Double(n)
        print(String(format: "audit append + usage: %.1f µs per record (%d records, WAL, synchronous=NORMAL)", per * 1e6, n))
        let mem = try AuditLog(storage: try SQLiteStorage(path: ":memory:"), usage: try UsageLedger(storage: try SQLiteStorage(path: ":memory:")))
        let t1 = Date()
        for i in 0..<n { try mem.recordRequest(request(i)) }
        print(String(format: "in memory (no file I/O): %.1f µs per record", Date().timeIntervalSince(t1) / Double(n) * 1e6))
        XCTAssertLessThan(per, 0.001)
    }
}
