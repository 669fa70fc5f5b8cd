import Foundation
import ModelFiles
import Templates
import TestSupport
import XCTest

/// The chat template embedded in the SmolLM2 GGUF renders the golden SmolLM2 cases.
final class GGUFChatTemplateTests: XCTestCase {
    func testSmolLM2EmbeddedTemplateRendersGolden() throws {
        let gguf = try GGUFFile(path: try TestPaths.model("smollm2-135m-instruct"))
        let source = try XCTUnwrap(gguf.string("tokenizer.chat_template"), "GGUF has no tokenizer.chat_template")
        let dir = TestPaths.golden + "/chat-templates"
        XCTAssertEqual(source, try String(contentsOfFile: dir + "/SmolLM2-135M-Instruct.jinja", encoding: .utf8),
                       "the GGUF's template should be the one the golden was rendered from")

        let golden = try TemplateValue.parseJSON(try Data(contentsOf: URL(fileURLWithPath: dir + "/cases.json")))
        guard case .array(let cases)? = golden["cases"] else { return XCTFail("no cases") }
        let template = try ChatTemplate(source: source)
        var checked = 0
        for c in cases where c["template"] == .string("SmolLM2-135M-Instruct.jinja") {
            guard case .string(let convName)? = c["conversation"], let conv = golden["conversations"]?[convName],
                  let messages = conv["messages"], case .bool(let addGen)? = conv["add_generation_prompt"],
                  case .string(let expected)? = c["expected"]
            else { return XCTFail("malformed SmolLM2 case") }
            let got = try template.render(messages: messages, tools: conv["tools"], addGenerationPrompt: addGen,
                                          bosToken: "<s>", eosToken: "</s>")
            XCTAssertEqual(got, expected, convName)
            checked += 1
        }
        XCTAssertEqual(checked, 4)
    }
}
