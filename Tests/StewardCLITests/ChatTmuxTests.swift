#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import StewardCLI
import TestSupport

/// `steward chat` driven as a person would: the release binary in a detached tmux session,
/// keys sent with send-keys, the screen read with capture-pane. Builds nothing: it needs
/// `swift build -c release` to have produced .build/release/steward, and tmux installed.
final class ChatTmuxTests: XCTestCase {
    let socket = "steward-chat-test-\(getpid())"
    let session = "chat"

    static func executable(_ name: String) -> String? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        return dirs.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs a tmux command on our own server socket and returns its standard output.
    /// posix_spawn + waitpid rather than Foundation's Process: the tmux server that `new-session`
    /// starts outlives the client and inherits its descriptors, and Process then waits on it.
    /// Output goes through a file, so no pipe is held open by the server.
    @discardableResult
    func tmux(_ args: [String]) throws -> String {
        let tmuxPath = try XCTUnwrap(Self.executable("tmux"))
        let outPath = FileManager.default.temporaryDirectory.appendingPathComponent("steward-tmux-\(UUID().uuidString).out").path
        defer { unlink(outPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([tmuxPath, "-L", socket] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, tmuxPath, &actions, nil, argv, environ)
        guard rc == 0 else { throw Timeout(description: "cannot start tmux: error \(rc)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    }

    func screen() throws -> String {
        // -J joins wrapped lines; -S - starts at the top of the scrollback.
        try tmux(["capture-pane", "-p", "-J", "-S", "-", "-t", session])
    }

    /// Polls the screen until `condition` holds (model load and 16 tokens take well under this).
    func waitFor(_ what: String, timeout: Double = 90, _ condition: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var s = ""
        while Date() < deadline {
            s = try screen()
            if condition(s) { return s }
            usleep(100_000)
        }
        throw Timeout(description: "timed out waiting for \(what); screen:\n\(s)")
    }

    struct Timeout: Error, CustomStringConvertible { let description: String }

    func promptCount(_ s: String) -> Int {
        s.split(separator: "\n", omittingEmptySubsequences: false).filter { $0.hasPrefix(">") }.count
    }

    /// The lines the model answered after the user's line `> message`, up to the next prompt.
    func answer(after message: String, in s: String) -> String? {
        let lines = s.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let i = lines.firstIndex(of: "> " + message) else { return nil }
        var out: [String] = []
        for l in lines[(i + 1)...] {
            if l.hasPrefix(">") { break }
            out.append(l)
        }
        return out.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// What `steward run` (in process, same model, template and settings) answers to one message.
    func singleTurnAnswer(_ message: String) throws -> String {
        let r = steward(["run", "--model", "smollm2-135m-instruct", "--temperature", "0", "--max-tokens", "16", "--prompt", message])
        XCTAssertEqual(r.code, 0, r.err)
        // As on the screen: tmux drops trailing blanks of each line.
        return r.out.split(separator: "\n", omittingEmptySubsequences: false)
            .map { String($0).replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression) }
            .joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testChatConversationResetAndExit() throws {
        let binary = TestPaths.repoRoot + "/.build/release/steward"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw XCTSkip("\(binary) is absent: run `swift build -c release` first (this test builds nothing)")
        }
        guard Self.executable("tmux") != nil else {
            throw XCTSkip("tmux is not installed (Debian package tmux); the chat end-to-end test needs it")
        }
        _ = try TestPaths.model("smollm2-135m-instruct")

        let command = "'\(binary)' chat --model smollm2-135m-instruct --temperature 0 --max-tokens 16; echo \"[steward exited $?]\"; sleep 600"
        try tmux(["new-session", "-d", "-s", session, "-x", "220", "-y", "60", command])
        defer {
            // Our own server, on our own socket; tmux can leave the socket file behind.
            _ = try? tmux(["kill-server"])
            let dir = ProcessInfo.processInfo.environment["TMUX_TMPDIR"] ?? "/tmp"
            unlink("\(dir)/tmux-\(getuid())/\(socket)")
        }

        _ = try waitFor("the first prompt") { $0.contains("steward chat:") && promptCount($0) >= 1 }

        let first = "What is the capital of France?"
        try tmux(["send-keys", "-t", session, "-l", first])
        try tmux(["send-keys", "-t", session, "Enter"])
        var s = try waitFor("the first answer") { promptCount($0) >= 2 }

        try tmux(["send-keys", "-t", session, "-l", "/reset"])
        try tmux(["send-keys", "-t", session, "Enter"])
        s = try waitFor("(history cleared)") { $0.contains("(history cleared)") && promptCount($0) >= 3 }

        let second = "Name one colour of the rainbow."
        try tmux(["send-keys", "-t", session, "-l", second])
        try tmux(["send-keys", "-t", session, "Enter"])
        s = try waitFor("the second answer") { promptCount($0) >= 4 }

        try tmux(["send-keys", "-t", session, "-l", "/exit"])
        try tmux(["send-keys", "-t", session, "Enter"])
        s = try waitFor("the process to exit") { $0.contains("[steward exited") }

        XCTAssertTrue(s.contains("> " + first), s)
        XCTAssertTrue(s.contains("> /reset\n(history cleared)"), s)
        XCTAssertTrue(s.contains("> " + second), s)
        XCTAssertTrue(s.contains("> /exit\n[steward exited 0]"), s)
        let a1 = try XCTUnwrap(answer(after: first, in: s), s)
        let a2 = try XCTUnwrap(answer(after: second, in: s), s)
        XCTAssertFalse(a1.isEmpty, s)
        XCTAssertFalse(a2.isEmpty, s)
        // Greedy answers equal a one-shot `steward run` of the same message; for the second that
        // holds only if /reset really dropped the first exchange from the conversation.
        XCTAssertEqual(a1, try singleTurnAnswer(first))
        XCTAssertEqual(a2, try singleTurnAnswer(second))
    }
}
