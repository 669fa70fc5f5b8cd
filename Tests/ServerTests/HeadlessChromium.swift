import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum ChromiumError: Error, CustomStringConvertible {
    case notInstalled
    case spawn(Int32)
    case timeout(String)
    case closed(String)
    case protocolError(String)

    var description: String {
        switch self {
        case .notInstalled: return "chromium is not installed (Debian: apt-get install -y --no-install-recommends chromium, or make deps)"
        case let .spawn(e): return "could not start chromium: \(String(cString: strerror(e)))"
        case let .timeout(what): return "chromium: timed out waiting for \(what)"
        case let .closed(log): return "chromium closed its DevTools pipe; its log ends:\n\(log)"
        case let .protocolError(m): return "DevTools protocol error: \(m)"
        }
    }
}

/// Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
/// the browser reads NUL-terminated JSON commands on fd 3 and answers on fd 4), so a test can
/// load a page, act on it, wait for a condition, and take a screenshot — no WebSocket needed.
final class HeadlessChromium {
    static func executable() -> String? {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
                let p = "\(dir)/\(name)"
                if access(p, X_OK) == 0 { return p }
            }
        }
        return nil
    }

    let pid: pid_t
    private let toBrowser: Int32
    private let fromBrowser: Int32
    private var buffer = [UInt8]()
    private var nextID = 1
    private var session: String?
    private let width: Int, height: Int
    let logPath: String

    /// Starts the browser with a fresh profile under `directory`.
    init(directory: URL, width: Int = 1000, height: Int = 800) throws {
        guard let exe = HeadlessChromium.executable() else { throw ChromiumError.notInstalled }
        logPath = directory.appendingPathComponent("chromium.log").path
        let profile = directory.appendingPathComponent("profile").path
        var commands: [Int32] = [0, 0], answers: [Int32] = [0, 0]
        guard pipe(&commands) == 0, pipe(&answers) == 0 else { throw ChromiumError.spawn(errno) }
        // Keep our ends away from 3 and 4, which the child's copies must take.
        func high(_ fd: Int32) -> Int32 { let h = fcntl(fd, F_DUPFD_CLOEXEC, 10); close(fd); return h }
        let childIn = high(commands[0]), parentOut = high(commands[1])
        let parentIn = high(answers[0]), childOut = high(answers[1])
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_adddup2(&actions, childIn, 3)
        posix_spawn_file_actions_adddup2(&actions, childOut, 4)
        let args = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                    "--disable-extensions", "--disable-background-networking", "--disable-sync", "--mute-audio",
                    "--remote-debugging-pipe", "--user-data-dir=\(profile)", "--window-size=\(width),\(height)", "about:blank"]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, exe, &actions, nil, &argv, environ)
        close(childIn); close(childOut)
        guard rc == 0 else { close(parentOut); close(parentIn); throw ChromiumError.spawn(rc) }
        pid = child
        self.width = width
        self.height = height
        toBrowser = parentOut
        fromBrowser = parentIn
    }

    deinit { stop() }

    private var stopped = false

    /// Asks the browser to close, then makes sure it is gone.
    func stop() {
        guard !stopped else { return }
        stopped = true
        _ = try? write(["id": 999_999, "method": "Browser.close"])
        close(toBrowser)
        var status: Int32 = 0
        let deadline = Date().addingTimeInterval(5)
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Date() > deadline { kill(pid, SIGKILL); waitpid(pid, &status, 0); break }
            usleep(50_000)
        }
        close(fromBrowser)
    }

    var logTail: String {
        let s = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return String(s.suffix(2000))
    }

    private func write(_ message: [String: Any]) throws {
        var data = try JSONSerialization.data(withJSONObject: message)
        data.append(0)
        try data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var off = 0
            while off < raw.count {
                let n = Glibc.write(toBrowser, base + off, raw.count - off)
                if n <= 0 { throw ChromiumError.closed(logTail) }
                off += n
            }
        }
    }

    /// The next message from the browser, waiting until `deadline`.
    private func readMessage(until deadline: Date) throws -> [String: Any] {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            if let end = buffer.firstIndex(of: 0) {
                let bytes = Data(buffer[..<end])
                buffer.removeSubrange(...end)
                guard let o = try JSONSerialization.jsonObject(with: bytes) as? [String: Any] else {
                    throw ChromiumError.protocolError("a message that is not a JSON object")
                }
                return o
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw ChromiumError.timeout("a DevTools answer") }
            var p = pollfd(fd: fromBrowser, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, Int32(min(left, 1) * 1000))
            if ready <= 0 { continue }
            let n = read(fromBrowser, &chunk, chunk.count)
            if n <= 0 { throw ChromiumError.closed(logTail) }
            buffer += chunk[0..<n]
        }
    }

    /// Sends a command (to the attached page unless `browser`) and returns its result.
    @discardableResult
    func send(_ method: String, _ params: [String: Any] = [:], browser: Bool = false, timeout: TimeInterval = 20) throws -> [String: Any] {
        let id = nextID
        nextID += 1
        var m: [String: Any] = ["id": id, "method": method, "params": params]
        if !browser, let session { m["sessionId"] = session }
        try write(m)
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let answer = try readMessage(until: deadline)
            guard answer["id"] as? Int == id else { continue } // events and other answers
            if let e = answer["error"] as? [String: Any] {
                throw ChromiumError.protocolError("\(method): \(e["message"] ?? e)")
            }
            return answer["result"] as? [String: Any] ?? [:]
        }
    }

    /// Opens `url` in a new tab and attaches to it.
    func open(_ url: String) throws {
        let target = try send("Target.createTarget", ["url": url], browser: true)
        guard let targetID = target["targetId"] as? String else { throw ChromiumError.protocolError("no targetId") }
        let attached = try send("Target.attachToTarget", ["targetId": targetID, "flatten": true], browser: true)
        guard let s = attached["sessionId"] as? String else { throw ChromiumError.protocolError("no sessionId") }
        session = s
        // The window's inner size is the window less its (invisible) frame: pin the viewport.
        try send("Emulation.setDeviceMetricsOverride", ["width": width, "height": height, "deviceScaleFactor": 1, "mobile": false])
    }

    /// The value of a JavaScript expression in the page (JSON-compatible values).
    func evaluate(_ expression: String) throws -> Any? {
        let r = try send("Runtime.evaluate", ["expression": expression, "returnByValue": true, "awaitPromise": true])
        if let ex = r["exceptionDetails"] as? [String: Any] {
            throw ChromiumError.protocolError("script failed: \(((ex["exception"] as? [String: Any])?["description"]) ?? ex)")
        }
        return (r["result"] as? [String: Any])?["value"]
    }

    /// Polls `expression` until it is true. A script error (the page still navigating) counts
    /// as not yet.
    func wait(for what: String, _ expression: String, timeout: TimeInterval) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < deadline {
            do {
                if try evaluate(expression) as? Bool == true { return }
            } catch let ChromiumError.protocolError(m) {
                last = m
            }
            usleep(100_000)
        }
        throw ChromiumError.timeout(what + (last.isEmpty ? "" : " (last script error: \(last))"))
    }

    /// A PNG of the page as the window shows it.
    func screenshot() throws -> Data {
        let r = try send("Page.captureScreenshot", ["format": "png"])
        guard let b64 = r["data"] as? String, let png = Data(base64Encoded: b64) else {
            throw ChromiumError.protocolError("no screenshot data")
        }
        return png
    }
}
