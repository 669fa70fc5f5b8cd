import Foundation
import XCTest
import Evaluation
import Server
import Generation

final class ServerWebPageTests: XCTestCase {
    /// The page is one document: no scripts, styles, fonts or images from anywhere, and model
    /// text never goes through innerHTML.
    func testPageIsSelfContained() throws {
        let (api, _) = try Shared.get()
        let r = api.handle(HTTPRequest(method: "GET", path: "/"))
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("Content-Type"), "text/html; charset=utf-8")
        let csp = try XCTUnwrap(r.header("Content-Security-Policy"))
        XCTAssertTrue(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"), csp)
        let html = String(decoding: r.collectBody(), as: UTF8.self)
        XCTAssertTrue(html.hasPrefix("<!doctype html>"))
        for banned in ["http://", "https://", "src=", "@import", "url(", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
            XCTAssertFalse(html.contains(banned), "the page must not contain \(banned)")
        }
        // Every href is a data: URL (the empty favicon, so the browser asks for nothing else).
        for part in html.components(separatedBy: "href=\"").dropFirst() {
            XCTAssertTrue(part.hasPrefix("data:"), String(part.prefix(40)))
        }
        XCTAssertTrue(html.contains("/v1/chat/completions") && html.contains("/v1/models") && html.contains("include_usage"))
        XCTAssertEqual(api.handle(HTTPRequest(method: "HEAD", path: "/")).status, 200)
        XCTAssertEqual(api.handle(HTTPRequest(method: "POST", path: "/", json: "{}")).status, 405)
    }

    /// Where test artifacts go: <package>/.build/test-artifacts.
    static var artifacts: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/test-artifacts")
    }

    /// The page in headless Chromium against a live server: it lists the model, streams an
    /// answer equal to the API's own (greedy), shows tokens/s from the stream's usage, shows
    /// the API's error message as is, and its Stop button ends a generation at once. A
    /// screenshot is saved.
    func testChatPageInHeadlessChromium() throws {
        guard HeadlessChromium.executable() != nil else {
            let why = "chromium is not installed; install it with `make deps` (Debian package chromium) to test the chat page"
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(why); return }
            throw XCTSkip(why)
        }
        let (api, model) = try Shared.get()
        let server = HTTPServer(host: "127.0.0.1", port: 0) { api.handle($0) }
        try server.start()
        defer { server.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("steward-webpage-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let browser = try HeadlessChromium(directory: dir, width: 1000, height: 800)
        defer { browser.stop() }
        do {
            try drive(browser, server: server, api: api, model: model, dir: dir)
        } catch {
            XCTFail("\(error)\nchromium log (\(browser.logPath)):\n\(browser.logTail)")
        }
    }

    private func drive(_ browser: HeadlessChromium, server: HTTPServer, api: API, model: ServedModel, dir: URL) throws {
        let t0 = Date()
        try browser.open("http://127.0.0.1:\(server.port)/")
        try browser.wait(for: "the model list", "document.readyState === 'complete' && document.getElementById('status')?.textContent === 'Ready'", timeout: 15)
        XCTAssertEqual(try browser.evaluate("document.getElementById('model').value") as? String, model.id)
        XCTAssertEqual(try browser.evaluate("document.title") as? String, "Steward chat")

        // 1. A streamed answer, greedy, equal to the API's own non-streamed one.
        let first = try ask(browser, "Hello", temperature: "0", maxTokens: "12")
        let expected = try object(api.handle(HTTPRequest(method: "POST", path: "/v1/chat/completions",
            json: #"{"model":"\#(model.id)","messages":[{"role":"user","content":"Hello"}],"temperature":0,"max_tokens":12}"#)).collectBody())
        let expectedText = try XCTUnwrap(((expected["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String)
        let completion = try XCTUnwrap((expected["usage"] as? [String: Int])?["completion_tokens"])
        XCTAssertFalse(first.answer.isEmpty)
        XCTAssertEqual(first.answer, expectedText)
        XCTAssertNil(first.error)
        // Tokens from the stream's usage (no "~" estimate), a rate, and why it finished.
        XCTAssertTrue(first.meta.hasPrefix("\(completion) tokens · "), first.meta)
        XCTAssertTrue(first.meta.range(of: #"[0-9]+\.[0-9] tok/s"#, options: .regularExpression) != nil, first.meta)
        XCTAssertTrue(first.meta.contains("finish: "), first.meta)
        XCTAssertEqual(first.status, "Ready")

        // 2. An error: the API's message, shown as it is. The history so far goes with it.
        let second = try ask(browser, "Again", temperature: "0", maxTokens: "100000")
        let refusal = api.handle(HTTPRequest(method: "POST", path: "/v1/chat/completions", headers: ["Content-Type": "application/json"],
            body: try JSONSerialization.data(withJSONObject: ["model": model.id, "temperature": 0, "max_tokens": 100000,
                "messages": [["role": "user", "content": "Hello"], ["role": "assistant", "content": first.answer], ["role": "user", "content": "Again"]]] as [String: Any])))
        XCTAssertEqual(refusal.status, 400)
        let message = try XCTUnwrap((try object(refusal.collectBody())["error"] as? [String: Any])?["message"] as? String)
        XCTAssertEqual(second.error, message)
        XCTAssertEqual(second.answer, "")
        XCTAssertEqual(second.status, "Error")

        // 3. Stop: abort the fetch mid-stream; the server frees the sequence.
        try set(browser, ["temperature": "0", "max-tokens": "400", "input": "Write a long story about a brave dragon who learns to fly."])
        _ = try browser.evaluate("document.getElementById('send').click(), true")
        try browser.wait(for: "the story to start", "(() => { const a = [...document.querySelectorAll('.msg.assistant .answer')].pop(); return !!a && a.textContent.length > 0; })()", timeout: 20)
        XCTAssertEqual(model.engine.status.active, 1)
        _ = try browser.evaluate("document.getElementById('stop').click(), true")
        let third = try finished(browser, timeout: 10)
        XCTAssertTrue(third.meta.contains("stopped"), third.meta)
        XCTAssertTrue(third.meta.hasPrefix("~"), "a stopped stream has no usage: the count is an estimate: \(third.meta)")
        XCTAssertFalse(third.answer.isEmpty)
        XCTAssertNil(third.error)
        let stopAt = Date()
        while model.engine.status.active != 0 && Date().timeIntervalSince(stopAt) < 3 { usleep(10_000) }
        XCTAssertEqual(model.engine.status.active, 0, "stopping in the page frees the sequence")

        // Model text stayed text: no element was made from it.
        XCTAssertEqual(try browser.evaluate("[...document.querySelectorAll('.msg .body')].every(b => b.children.length === 0)") as? Bool, true)
        XCTAssertEqual(try browser.evaluate("document.querySelectorAll('.msg').length") as? Int, 6)

        let png = try browser.screenshot()
        let shot = dir.appendingPathComponent("chat-page.png")
        try png.write(to: shot)
        let dom = try XCTUnwrap(try browser.evaluate("document.documentElement.outerHTML") as? String)
        try Data(dom.utf8).write(to: dir.appendingPathComponent("chat-page.html"))
        try FileManager.default.createDirectory(at: ServerWebPageTests.artifacts, withIntermediateDirectories: true)
        let kept = ServerWebPageTests.artifacts.appendingPathComponent("chat-page.png")
        try? FileManager.default.removeItem(at: kept)
        try FileManager.default.copyItem(at: shot, to: kept)
        print("chat page screenshot: \(shot.path) (copied to \(kept.path)); DOM: \(dir.appendingPathComponent("chat-page.html").path); took \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")

        // A real PNG of the window, not a blank stub.
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertGreaterThan(png.count, 10_000)
        let width = png.count > 24 ? png[16..<20].reduce(0) { $0 << 8 | Int($1) } : 0
        let height = png.count > 24 ? png[20..<24].reduce(0) { $0 << 8 | Int($1) } : 0
        XCTAssertEqual(width, 1000)
        XCTAssertEqual(height, 800)
    }

    struct Turn { var answer: String; var meta: String; var error: String?; var status: String }

    private func set(_ browser: HeadlessChromium, _ values: [String: String]) throws {
        let data = try JSONSerialization.data(withJSONObject: values)
        _ = try browser.evaluate("(() => { const v = \(String(decoding: data, as: UTF8.self)); for (const k in v) document.getElementById(k).value = v[k]; return true; })()")
    }

    /// Types a message, presses Send, and waits for the answer to finish.
    private func ask(_ browser: HeadlessChromium, _ text: String, temperature: String, maxTokens: String) throws -> Turn {
        try set(browser, ["temperature": temperature, "max-tokens": maxTokens, "input": text])
        let before = try browser.evaluate("document.querySelectorAll('.msg.assistant').length") as? Int ?? -1
        _ = try browser.evaluate("document.getElementById('send').click(), true")
        XCTAssertEqual(try browser.evaluate("document.querySelectorAll('.msg.assistant').length") as? Int, before + 1)
        return try finished(browser, timeout: 40)
    }

    /// Waits until the page is idle again with the last answer's line of figures written.
    private func finished(_ browser: HeadlessChromium, timeout: TimeInterval) throws -> Turn {
        try browser.wait(for: "the answer to finish", """
            (() => { const a = [...document.querySelectorAll('.msg.assistant')].pop();
                     return !!a && document.getElementById('stop').disabled && a.querySelector('.meta').textContent !== ''; })()
            """, timeout: timeout)
        let r = try XCTUnwrap(try browser.evaluate("""
            (() => { const a = [...document.querySelectorAll('.msg.assistant')].pop(); const e = a.querySelector('.error');
                     return { answer: a.querySelector('.answer').textContent, meta: a.querySelector('.meta').textContent,
                              error: e ? e.textContent : null, status: document.getElementById('status').textContent }; })()
            """) as? [String: Any])
        return Turn(answer: r["answer"] as? String ?? "<missing>", meta: r["meta"] as? String ?? "", error: r["error"] as? String,
                    status: r["status"] as? String ?? "")
    }

    /// `steward eval report`'s HTML page renders in headless Chromium (kept as a PNG).
    func testEvalReportRendersInHeadlessChromium() throws {
        guard HeadlessChromium.executable() != nil else {
            let why = "chromium is not installed; install it with `make deps` (Debian package chromium)"
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(why); return }
            throw XCTSkip(why)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("steward-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func run(_ acc: Double) -> EvalRun {
            EvalRun(steward_version: "test", created: "2026-12-07", model: ["path": "smollm2.gguf"], settings: [:], tasks: [
                TaskResult(name: "capitals_mc", type: "multiple_choice", samples: 40,
                           metrics: ["acc": MetricValue(value: acc, stderr: 0.05, higherIsBetter: true)], outputs: [], seconds: 1)])
        }
        var extras = EvalReport.Extras()
        extras.tuneCurves = [("style", [(1, 1.03, 0.31), (2, 0.20, 0.21), (3, 0.14, 0.21)])]
        _ = try EvalReport.write(runs: [("base", run(1.0)), ("style", run(0.85))], extras: extras, to: dir.path)
        let browser = try HeadlessChromium(directory: dir, width: 900, height: 900)
        defer { browser.stop() }
        try browser.open("file://" + dir.path + "/report.html")
        // A new browser's about:blank is 'complete' at once: wait for the report itself.
        try browser.wait(for: "the report", "location.protocol === 'file:' && document.readyState === 'complete'", timeout: 15)
        XCTAssertEqual(try browser.evaluate("document.querySelectorAll('svg').length") as? Int, 2)
        XCTAssertEqual(try browser.evaluate("document.querySelectorAll('svg rect').length > 2") as? Bool, true)
        let png = try browser.screenshot()
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        try FileManager.default.createDirectory(at: ServerWebPageTests.artifacts, withIntermediateDirectories: true)
        try png.write(to: ServerWebPageTests.artifacts.appendingPathComponent("eval-report.png"))
    }
}
