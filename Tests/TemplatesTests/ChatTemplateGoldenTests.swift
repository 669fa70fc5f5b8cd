import Foundation
import Templates
import TestSupport
import XCTest

/// Renders every case of the shared chat-template golden (made by Python jinja2 the way
/// transformers' apply_chat_template does) and compares byte for byte.
final class ChatTemplateGoldenTests: XCTestCase {
    static var goldenDir: String { TestPaths.golden + "/chat-templates" }

    /// 2024-07-26 at noon UTC: the same calendar day in every time zone within ±12 h, so
    /// `strftime_now` yields "26 Jul 2024" as the reference did.
    static let referenceDate = Date(timeIntervalSince1970: 1_721_995_200)

    /// The reference's `strftime_now` was a stub, not real strftime: it answers "26 Jul 2024" for
    /// Llama 3.2's "%d %b %Y" but "2024-07-26" for both gpt-oss's "%Y-%m-%d" and Granite's
    /// "%B %d, %Y" (real strftime would give "July 26, 2024" there). We reproduce the stub here;
    /// our real strftime is checked separately in TemplateLanguageTests.
    static let referenceStrftime: @Sendable (String) -> String = { format in
        format == "%d %b %Y" ? "26 Jul 2024" : "2024-07-26"
    }

    func loadCases() throws -> TemplateValue {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.goldenDir + "/cases.json"))
        return try TemplateValue.parseJSON(data)
    }

    func testAllGoldenCases() throws {
        let golden = try loadCases()
        guard case .array(let cases)? = golden["cases"], case .object(let conversations)? = golden["conversations"],
              case .string(let bos)? = golden["specials"]?["bos_token"], case .string(let eos)? = golden["specials"]?["eos_token"]
        else { return XCTFail("cases.json does not have the expected shape") }
        XCTAssertEqual(cases.count, 52)
        var failures: [String] = []
        var passed = 0
        for c in cases {
            guard case .string(let name)? = c["template"], case .string(let convName)? = c["conversation"],
                  let conv = conversations[convName], let messages = conv["messages"],
                  case .bool(let addGen)? = conv["add_generation_prompt"]
            else { failures.append("malformed case \(c)"); continue }
            let label = "\(name) × \(convName)"
            let source: String
            do {
                source = try String(contentsOfFile: Self.goldenDir + "/" + name, encoding: .utf8)
            } catch {
                failures.append("\(label): cannot read template: \(error)"); continue
            }
            let rendered: Result<String, TemplateError>
            do {
                let template = try ChatTemplate(source: source)
                rendered = .success(try template.render(messages: messages, tools: conv["tools"], addGenerationPrompt: addGen,
                                                        bosToken: bos, eosToken: eos, now: Self.referenceDate,
                                                        strftimeNow: Self.referenceStrftime))
            } catch {
                rendered = .failure(error)
            }
            switch (c["expected"], c["error"], rendered) {
            case (.string(let expected)?, _, .success(let got)):
                if got == expected { passed += 1 } else { failures.append("\(label): output differs\n\(Self.diff(expected, got))") }
            case (.string?, _, .failure(let e)):
                failures.append("\(label): expected output but got error: \(e)")
            case (_, .string(let err)?, .success(let got)):
                failures.append("\(label): expected error '\(err)' but rendered:\n\(got)")
            case (_, .string(let err)?, .failure(let e)):
                // The reference's raise_exception messages must come through as .raised.
                let refMessage = err.replacingOccurrences(of: "RuntimeError: ", with: "")
                if e == .raised(refMessage) { passed += 1 } else { failures.append("\(label): expected raised '\(refMessage)', got \(e)") }
            default:
                failures.append("\(label): case has neither expected nor error")
            }
        }
        XCTAssertTrue(failures.isEmpty, "\(failures.count) of \(cases.count) cases failed:\n\n" + failures.joined(separator: "\n\n"))
        XCTAssertEqual(passed, cases.count)
    }

    /// Shows where two renderings first part, with a little context.
    static func diff(_ expected: String, _ got: String) -> String {
        let e = Array(expected.unicodeScalars), g = Array(got.unicodeScalars)
        var i = 0
        while i < e.count, i < g.count, e[i] == g[i] { i += 1 }
        func snippet(_ a: [Unicode.Scalar]) -> String {
            let lo = max(0, i - 60), hi = min(a.count, i + 60)
            return String(String.UnicodeScalarView(a[lo..<hi])).debugDescription
        }
        return "  first difference at scalar \(i) (expected length \(e.count), got \(g.count))\n  expected: \(snippet(e))\n  got:      \(snippet(g))"
    }
}
