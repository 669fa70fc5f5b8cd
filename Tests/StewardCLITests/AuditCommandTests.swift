import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif
import XCTest
import Governance
import StewardCLI
import TestSupport

final class AuditCommandTests: XCTestCase {
    var dir: URL!
    var db: String { dir.appendingPathComponent("steward.db").path }
    var key: String { dir.appendingPathComponent("audit-signing.pem").path }

    override func setUpWithError() throws { dir = try makeTemporaryDirectory("audit") }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func seed(_ n: Int, prompts: PromptLogging = .none) throws -> (SQLiteStorage, AuditLog) {
        let s = try SQLiteStorage(path: db)
        let log = try AuditLog(storage: s, policy: AuditPolicy(prompts: prompts), usage: try UsageLedger(storage: s))
        for i in 1...n {
            try log.recordRequest(AuditRequestInfo(requestID: "req_\(i)", keyID: i % 2 == 0 ? "key_even" : "key_odd", route: "/v1/chat/completions",
                                                   method: "POST", model: i % 3 == 0 ? "b" : "a", status: i == 4 ? 500 : 200,
                                                   tokensIn: 10 * i, tokensOut: i, latencySeconds: 0.25, prompt: "prompt \(i), with comma", completion: "done"))
        }
        return (s, log)
    }

    func testVerifyReportsTamperingBySeq() throws {
        let (s, _) = try seed(6)
        var r = steward(["audit", "verify", "--db", db])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("audit log OK: 6 records (seq 1…6)"), r.out)
        try s.execute("DROP TRIGGER audit_log_no_update")
        try s.execute("UPDATE audit_log SET tokens_out = 0 WHERE seq = 2")
        try s.execute("DROP TRIGGER audit_log_no_delete")
        try s.execute("DELETE FROM audit_log WHERE seq = 5")
        r = steward(["audit", "verify", "--db", db])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.out.contains("FAILED verification: 2 problems"), r.out)
        XCTAssertTrue(r.out.contains("edited: seq 2 was edited"), r.out)
        XCTAssertTrue(r.out.contains("deleted: seq 5 is missing"), r.out)
    }

    func testTailExportAndPrune() throws {
        _ = try seed(5, prompts: .full)
        var r = steward(["audit", "tail", "-n", "2", "--db", db])
        XCTAssertEqual(r.code, 0, r.err)
        let lines = r.out.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].hasPrefix("4  "), r.out)
        XCTAssertTrue(lines[0].contains("500  POST /v1/chat/completions  model=a  key=key_even  tokens=40/4"), r.out)
        XCTAssertTrue(lines[1].contains("req_5"), r.out)

        let csv = dir.appendingPathComponent("out.csv").path
        r = steward(["audit", "export", "--db", db, "--format", "csv", "--out", csv, "--since", "2000-01-01", "--until", "2999-01-01"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: csv)[.posixPermissions] as? Int, 0o600)
        let text = try String(contentsOfFile: csv, encoding: .utf8)
        XCTAssertEqual(text.components(separatedBy: "\r\n").filter { !$0.isEmpty }.count, 6)
        XCTAssertTrue(text.contains("\"prompt 3, with comma\""), text)
        r = steward(["audit", "export", "--db", db, "--format", "jsonl", "--since", "2999-01-01"])
        XCTAssertEqual(r.out, "")
        r = steward(["audit", "export", "--db", db])
        let objs = try r.out.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(objs.map { $0["seq"] as? Int }, [1, 2, 3, 4, 5])
        XCTAssertEqual(steward(["audit", "export", "--db", db, "--format", "xml"]).code, 2)
        XCTAssertEqual(steward(["audit", "export", "--db", db, "--since", "yesterday"]).code, 1)

        r = steward(["audit", "prune", "--db", db, "--key", key, "--before", "2999-01-01"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("pruned 5 records"), r.out)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: key)[.posixPermissions] as? Int, 0o600)
        r = steward(["audit", "verify", "--db", db, "--key", key])
        XCTAssertEqual(r.code, 0, r.out)
        XCTAssertTrue(r.out.contains("starting from the signed checkpoint at seq 5"), r.out)
        r = steward(["audit", "tail", "--db", db])
        XCTAssertTrue(r.out.contains("admin  audit.prune"), r.out)
        // Another key is not trusted.
        let other = dir.appendingPathComponent("other.pem").path
        _ = try AuditLog.signingKey(path: other)
        r = steward(["audit", "verify", "--db", db, "--key", other])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.out.contains("forged"), r.out)
    }

    func testUsageCommand() throws {
        _ = try seed(6)
        let policy = dir.appendingPathComponent("policy.json").path
        try Data(#"{"usage": {"currency": "USD", "cost_per_1k_tokens": {"default": {"input": 1.0, "output": 2.0}}}, "moderation": {}}"#.utf8)
            .write(to: URL(fileURLWithPath: policy))
        var r = steward(["usage", "--db", db, "--by", "model", "--policy", policy])
        XCTAssertEqual(r.code, 0, r.err)
        let lines = r.out.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, r.out)
        XCTAssertTrue(lines[0].hasPrefix("MODEL"), r.out)
        XCTAssertTrue(lines[0].hasSuffix("COST (USD)"), r.out)
        // model a: seq 1,2,4,5 → in 120, out 12, one error (seq 4); cost 0.12 + 0.024
        XCTAssertEqual(lines[1].split(separator: " ").map(String.init), ["a", "4", "1", "120", "12", "0.1440"], r.out)
        r = steward(["usage", "--db", db, "--by", "key", "--format", "json"])
        let list = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]])
        XCTAssertEqual(list.map { $0["key"] as? String }, ["key_even", "key_odd"])
        XCTAssertEqual(list[0]["requests"] as? Int, 3)
        XCTAssertNil(list[0]["cost"], "no policy → no cost")
        XCTAssertEqual(steward(["usage", "--db", db, "--by", "week"]).code, 2)
        r = steward(["usage", "--db", db, "--since", "2999-01-01"])
        XCTAssertTrue(r.out.contains("no usage recorded"), r.out)
    }

    func testBenchCommands() throws {
        var r = steward(["audit", "bench", "--records", "200"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("chain intact"), r.out)
        r = steward(["bench-governance", "--requests", "100"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("governance overhead:"), r.out)
    }

    /// serve refuses to start (before loading anything) on an audit policy it cannot honour.
    func testServeRefusesBadAuditPolicy() throws {
        let model = try TestPaths.model("smollm2-135m-instruct")
        let policy = dir.appendingPathComponent("policy.json")
        try Data(#"{"audit": {"prompts": "everything"}}"#.utf8).write(to: policy)
        var r = steward(["serve", "--model", model, "--policy", policy.path])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("must be one of none, hash, redacted, full"), r.err)
        XCTAssertFalse(r.err.contains("listening"), r.err)
        try Data(#"{"audit": {"prompt": "full"}}"#.utf8).write(to: policy)
        r = steward(["serve", "--model", model, "--policy", policy.path])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("unknown key 'prompt' in the \"audit\" section"), r.err)
    }

    // MARK: kill -9 durability

    /// The built `steward` next to this test bundle.
    func stewardBinary() throws -> String {
        let exe = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
        var d = exe.deletingLastPathComponent()
        if d.lastPathComponent == "MacOS" || d.lastPathComponent == "Contents" { d = d.deletingLastPathComponent() }
        for candidate in [d.appendingPathComponent("steward").path, d.deletingLastPathComponent().appendingPathComponent("steward").path] {
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw XCTSkip("no steward binary beside \(exe.path); run swift build first")
    }

    final class Answered: @unchecked Sendable {
        let lock = NSLock()
        var ids: [String] = []
        var failures = 0
        func add(_ id: String) { lock.lock(); ids.append(id); lock.unlock() }
        func fail() { lock.lock(); failures += 1; lock.unlock() }
    }

    /// A request that got its response is in the log even when the server is killed right
    /// after (SIGKILL under load), and the chain verifies.
    func testKillDashNineKeepsEveryAnsweredRequest() throws {
        let binary = try stewardBinary()
        let model = try TestPaths.model("smollm2-135m-instruct")
        let modelID = ((model as NSString).lastPathComponent as NSString).deletingPathExtension
        let home = dir.appendingPathComponent("home").path
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: binary)
        proc.arguments = ["serve", "--model", model, "--port", "0", "--ctx", "256", "--parallel", "2", "--threads", "1"]
        var env = ProcessInfo.processInfo.environment
        env["STEWARD_HOME"] = home
        proc.environment = env
        let out = Pipe()
        proc.standardOutput = out
        proc.standardError = FileHandle.nullDevice
        try proc.run()
        defer { if proc.isRunning { kill(proc.processIdentifier, SIGKILL); proc.waitUntilExit() } }

        // Wait for "ready at http://127.0.0.1:PORT", reading on another thread so the deadline
        // holds even when the server prints nothing more.
        let output = LockedText()
        let readyOrClosed = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            while true {
                let d = out.fileHandleForReading.availableData
                if d.isEmpty { break }
                if output.append(String(decoding: d, as: UTF8.self)).contains("ready at ") { readyOrClosed.signal() }
            }
            readyOrClosed.signal()
        }
        _ = readyOrClosed.wait(timeout: .now() + 120)
        let seen = output.text
        var port: Int?
        if let r = seen.range(of: #"ready at http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
            port = Int(seen[r].split(separator: ":").last ?? "")
        }
        let p = try XCTUnwrap(port, "server did not become ready: \(seen)")
        XCTAssertTrue(seen.contains("audit log at \(home)/steward.db (prompts: none)"), seen)

        // Clients loop until the kill; each records the X-Request-Id of every 200 it fully got.
        let answered = Answered()
        let stopFlag = LockedFlag()
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = 20
        let session = URLSession(configuration: config)
        let bodies: [(String, String, String?)] = [
            ("GET", "/v1/models", nil),
            ("POST", "/v1/completions", #"{"model":"\#(modelID)","prompt":"Hello","max_tokens":2,"temperature":0}"#),
            ("POST", "/v1/chat/completions", #"{"model":"\#(modelID)","messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"stream":true}"#),
            ("GET", "/nope", nil),
        ]
        let group = DispatchGroup()
        for c in 0..<6 {
            group.enter()
            Thread.detachNewThread {
                var i = c
                while !stopFlag.isSet {
                    let (method, path, body) = bodies[i % bodies.count]
                    i += 1
                    var req = URLRequest(url: URL(string: "http://127.0.0.1:\(p)\(path)")!)
                    req.httpMethod = method
                    if let body { req.httpBody = Data(body.utf8); req.setValue("application/json", forHTTPHeaderField: "Content-Type") }
                    let done = DispatchSemaphore(value: 0)
                    session.dataTask(with: req) { data, resp, err in
                        if err == nil, let h = resp as? HTTPURLResponse, let id = h.value(forHTTPHeaderField: "X-Request-Id"),
                           h.statusCode == 200 || h.statusCode == 404, data != nil {
                            answered.add(id)
                        } else {
                            answered.fail()
                        }
                        done.signal()
                    }.resume()
                    done.wait()
                }
                group.leave()
            }
        }
        Thread.sleep(forTimeInterval: 4)
        kill(proc.processIdentifier, SIGKILL)
        let exitDeadline = Date().addingTimeInterval(30)
        while proc.isRunning && Date() < exitDeadline { usleep(10_000) }
        stopFlag.set()
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
        XCTAssertFalse(proc.isRunning, "the server did not die on SIGKILL within 30 s")
        if !proc.isRunning { XCTAssertEqual(proc.terminationReason, .uncaughtSignal) }

        let ids = answered.lock.withLock { answered.ids }
        XCTAssertGreaterThan(ids.count, 10, "enough requests were answered before the kill")
        let storage = try SQLiteStorage(path: home + "/steward.db")
        let log = try AuditLog(storage: storage)
        let all = try log.records(since: nil, until: nil)
        let logged = Set(all.compactMap(\.requestID))
        let answeredSet = Set(ids)
        let generated = all.filter { answeredSet.contains($0.requestID ?? "") && $0.model != nil && $0.tokensOut > 0 }
        XCTAssertTrue(generated.contains { $0.route == "/v1/chat/completions" }, "answered streams are among them")
        XCTAssertTrue(generated.contains { $0.route == "/v1/completions" }, "answered completions are among them")
        let missing = ids.filter { !logged.contains($0) }
        XCTAssertTrue(missing.isEmpty, "\(missing.count) of \(ids.count) answered requests are not in the audit log: \(missing.prefix(5))")
        let v = try log.verify(trustedKey: nil)
        XCTAssertTrue(v.ok, "\(v.problems)")
        print("kill -9: \(ids.count) answered requests all in the log (\(logged.count) records, \(generated.count) generations; \(answered.failures) requests failed: in flight at the kill or sent after it)")
    }
}

final class LockedText: @unchecked Sendable {
    private let lock = NSLock()
    private var value = ""
    var text: String { lock.lock(); defer { lock.unlock() }; return value }
    /// Appends and returns the whole text so far.
    func append(_ s: String) -> String { lock.lock(); defer { lock.unlock() }; value += s; return value }
}

final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}

/// The governance overhead per request with auth, moderation (`standard`) and audit all on:
/// a chat request's path piece by piece, and whole requests through API.handle.
/// STEWARD_BENCH=1, release build; target < 1 ms.
final class GovernanceBenchTests: XCTestCase {
    func testGovernanceOverheadPerRequest() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["STEWARD_BENCH"] == "1", "set STEWARD_BENCH=1")
        for mode in [PromptLogging.none, .hash] {
            let chat = try GovernanceBench.runChatPath(requests: 3000, prompts: mode)
            for p in chat.pieces + [chat.total] {
                print(String(format: "governance bench (prompts %@) chat path %@: median %.1f µs, p99 %.1f µs, mean %.1f µs",
                             mode.rawValue, p.name, p.median, p.p99, p.mean))
            }
            XCTAssertEqual(chat.pieces.count, 4, "auth, input moderation, output moderation, audit")
            XCTAssertGreaterThan(chat.bodyBytes, 1400)
            XCTAssertLessThan(chat.total.median, 1000, "chat request governance path over 1 ms (median)")
            for r in try GovernanceBench.run(requests: 3000, prompts: mode) {
                let overhead = r.governed - r.baseline
                print(String(format: "governance bench (prompts %@) %@: %.1f → %.1f µs, overhead %.1f µs (p99 %.1f µs)",
                             mode.rawValue, r.name, r.baseline, r.governed, overhead, r.governedP99))
                XCTAssertLessThan(overhead, 1000, "\(r.name): governance overhead per request over 1 ms")
            }
        }
    }
}
