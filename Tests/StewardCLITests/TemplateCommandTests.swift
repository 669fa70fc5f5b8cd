import Foundation
import XCTest
import StewardCLI
import TestSupport

/// `steward template render` against Python jinja2's renders (shared/golden/chat-templates).
final class TemplateCommandTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = try makeTemporaryDirectory("template")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
    }

    var templatesDir: String { TestPaths.golden + "/chat-templates" }

    func casesText() throws -> String {
        try String(contentsOfFile: templatesDir + "/cases.json", encoding: .utf8)
    }

    func expected(template: String, conversation: String) throws -> String {
        let root = try XCTUnwrap(TestPaths.loadJSON(templatesDir + "/cases.json") as? [String: Any])
        let cases = try XCTUnwrap(root["cases"] as? [[String: Any]])
        let c = try XCTUnwrap(cases.first { $0["template"] as? String == template && $0["conversation"] as? String == conversation })
        return try XCTUnwrap(c["expected"] as? String, "case \(template)/\(conversation) has no expected text")
    }

    /// Writes the golden conversation's messages (and tools) as files, keys in their original
    /// order, and returns the arguments that pass them.
    func conversationArguments(_ name: String) throws -> [String] {
        let text = try casesText()
        let messages = tmp.appendingPathComponent("\(name)-messages.json")
        try RawJSON.value(in: text, path: ["conversations", name, "messages"]).write(to: messages, atomically: true, encoding: .utf8)
        var args = ["--messages", messages.path]
        let conv = try XCTUnwrap(((TestPaths.loadJSON(templatesDir + "/cases.json") as? [String: Any])?["conversations"] as? [String: Any])?[name] as? [String: Any])
        if conv["tools"] != nil {
            let tools = tmp.appendingPathComponent("\(name)-tools.json")
            try RawJSON.value(in: text, path: ["conversations", name, "tools"]).write(to: tools, atomically: true, encoding: .utf8)
            args += ["--tools", tools.path]
        }
        if conv["add_generation_prompt"] as? Bool == true { args.append("--add-generation-prompt") }
        return args
    }

    func render(template: String, conversation: String, extra: [String] = []) throws -> (code: Int32, out: String, err: String) {
        let args = ["template", "render", "--template", templatesDir + "/" + template,
                    "--bos-token", "<s>", "--eos-token", "</s>"] + (try conversationArguments(conversation)) + extra
        return steward(args)
    }

    func testRendersGoldenCasesByteForByte() throws {
        let picks = [
            ("SmolLM2-135M-Instruct.jinja", "multi_turn"),
            ("SmolLM2-135M-Instruct.jinja", "tools"),
            ("Qwen-Qwen2.5-7B-Instruct.jinja", "tools"),
            ("meta-llama-Llama-3.1-8B-Instruct.jinja", "tools"),
            ("microsoft-Phi-3.5-mini-instruct.jinja", "no_generation_prompt"),
        ]
        for (template, conversation) in picks {
            let r = try render(template: template, conversation: conversation)
            XCTAssertEqual(r.code, 0, "\(template)/\(conversation): \(r.err)")
            XCTAssertEqual(r.out, try expected(template: template, conversation: conversation), "\(template)/\(conversation)")
        }
    }

    func testNowFixesStrftimeNow() throws {
        // Llama 3.2's template prints strftime_now("%d %b %Y"); the golden renders used 26 Jul 2024.
        let template = "meta-llama-Llama-3.2-3B-Instruct.jinja"
        let r = try render(template: template, conversation: "tools", extra: ["--now", "2024-07-26"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertEqual(r.out, try expected(template: template, conversation: "tools"))
        let other = try render(template: template, conversation: "single_user", extra: ["--now", "2025-01-02"])
        XCTAssertEqual(other.code, 0, other.err)
        XCTAssertTrue(other.out.contains("Today Date: 02 Jan 2025"), other.out)
        XCTAssertEqual(try render(template: template, conversation: "single_user", extra: ["--now", "July 26"]).code, 2)
    }

    func testModelTemplateMatchesTheGoldenSmolLM2Render() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        // The golden SmolLM2 template is the one in the GGUF; its renders use neither bos nor eos.
        for conversation in ["single_user", "multi_turn"] {
            let r = steward(["template", "render", "--model", "smollm2-135m-instruct"] + (try conversationArguments(conversation)))
            XCTAssertEqual(r.code, 0, r.err)
            XCTAssertEqual(r.out, try expected(template: "SmolLM2-135M-Instruct.jinja", conversation: conversation))
        }
    }

    func testMessagesFromStandardInput() throws {
        let text = try casesText()
        let messages = try RawJSON.value(in: text, path: ["conversations", "single_user", "messages"])
        let r = steward(["template", "render", "--template", templatesDir + "/SmolLM2-135M-Instruct.jinja",
                         "--messages", "-", "--add-generation-prompt"], stdin: messages)
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertEqual(r.out, try expected(template: "SmolLM2-135M-Instruct.jinja", conversation: "single_user"))
    }

    func testTemplateThatRaisesIsARuntimeError() throws {
        // Gemma 2's template raises on a system message (the golden case has `error`).
        let r = try render(template: "google-gemma-2-2b-it.jinja", conversation: "multi_turn")
        XCTAssertEqual(r.code, 1)
        XCTAssertEqual(r.out, "")
        XCTAssertFalse(r.err.isEmpty)
    }

    func testModelWithoutTemplateSaysToUseTemplate() throws {
        _ = try TestPaths.model("gemma-3-270m")
        let r = steward(["template", "render", "--model", "gemma-3-270m"] + (try conversationArguments("single_user")))
        XCTAssertEqual(r.code, 2)
        XCTAssertTrue(r.err.contains("--template"), r.err)
        XCTAssertTrue(r.err.contains("no chat template"), r.err)
    }

    func testUsageErrors() throws {
        let tpl = templatesDir + "/SmolLM2-135M-Instruct.jinja"
        let bad = tmp.appendingPathComponent("bad.json")
        try Data("[{\"role\": \"user\", \"content\": ".utf8).write(to: bad)
        let malformed = steward(["template", "render", "--template", tpl, "--messages", bad.path])
        XCTAssertEqual(malformed.code, 2)
        XCTAssertTrue(malformed.err.contains("not valid JSON"), malformed.err)

        let object = tmp.appendingPathComponent("object.json")
        try Data("{\"role\": \"user\"}".utf8).write(to: object)
        XCTAssertEqual(steward(["template", "render", "--template", tpl, "--messages", object.path]).code, 2)

        let good = try conversationArguments("single_user")
        XCTAssertEqual(steward(["template", "render"] + good).code, 2, "neither --model nor --template")
        XCTAssertEqual(steward(["template", "render", "--template", tpl, "--model", "smollm2-135m-instruct"] + good).code, 2)
        XCTAssertEqual(steward(["template", "--template", tpl] + good).code, 2, "no 'render'")
        XCTAssertEqual(steward(["template", "render", "--template", tpl]).code, 2, "no --messages")
        XCTAssertEqual(steward(["template", "render", "--template", tmp.path + "/none.jinja"] + good).code, 2)
        XCTAssertEqual(steward(["template", "render", "--template", tpl, "--messages", tmp.path + "/none.json"]).code, 2)
    }
}
