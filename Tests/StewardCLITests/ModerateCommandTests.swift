import Foundation
import XCTest
import StewardCLI
import TestSupport

final class ModerateCommandTests: XCTestCase {
    func testFindingsActionsAndExitCodes() throws {
        let home = try makeTemporaryDirectory("moderate")
        // A temporary STEWARD_HOME (no policy.json there: the presets apply), restored after:
        // other tests in this process find models through it.
        let saved = ProcessInfo.processInfo.environment["STEWARD_HOME"]
        setenv("STEWARD_HOME", home.path, 1)
        defer {
            if let saved { setenv("STEWARD_HOME", saved, 1) } else { unsetenv("STEWARD_HOME") }
            try? FileManager.default.removeItem(at: home)
        }
        let redacted = steward(["moderate", "--name", "standard", "--output", "call +1 415 555 0132 or mail x@example.org"])
        XCTAssertEqual(redacted.code, 0, redacted.err)
        XCTAssertTrue(redacted.out.contains("pii.phone  [5, 20)  redact"), redacted.out)
        XCTAssertTrue(redacted.out.contains("call [REDACTED:phone] or mail [REDACTED:email]"), redacted.out)

        let blocked = steward(["moderate", "-"], stdin: "here: ghp_16C7e42F292c6912E7710c838347Ae178B4a")
        XCTAssertEqual(blocked.code, 2, "blocked is exit code 2")
        XCTAssertTrue(blocked.out.contains("secret.github_token"))
        XCTAssertTrue(blocked.out.contains("result: blocked"))

        let clean = steward(["moderate", "hello there"])
        XCTAssertEqual(clean.code, 0)
        XCTAssertTrue(clean.out.contains("no findings"))
    }

    func testPolicyFileAndErrors() throws {
        let dir = try makeTemporaryDirectory("moderate-policy")
        defer { try? FileManager.default.removeItem(at: dir) }
        let f = dir.appendingPathComponent("policy.json").path
        try #"{"moderation": {"default": "p", "policies": {"p": {"input": [{"keywords": ["falcon"], "action": "block", "name": "codename"}]}}}}"#
            .write(toFile: f, atomically: true, encoding: .utf8)
        let r = steward(["moderate", "--policy", f, "--json", "Project Falcon launch"])
        XCTAssertEqual(r.code, 2)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        XCTAssertEqual(o["action"] as? String, "block")
        XCTAssertEqual((o["findings"] as? [[String: Any]])?.first?["rule"] as? String, "codename")

        try #"{"moderation": {"policies": {"p": {"input": [{"keywords": ["x"], "actoin": "block"}]}}}}"#.write(toFile: f, atomically: true, encoding: .utf8)
        let bad = steward(["moderate", "--policy", f, "x"])
        XCTAssertEqual(bad.code, 1)
        XCTAssertTrue(bad.err.contains("unknown key 'actoin'"), bad.err)
    }

    func testCorpusTable() throws {
        let r = steward(["moderate", "--corpus", TestPaths.fixture("moderation/corpus.jsonl")])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.hasPrefix("| detector | positives |"))
        XCTAssertTrue(r.out.contains("| pii.card |"))
    }
}
