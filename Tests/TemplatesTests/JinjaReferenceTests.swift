import Foundation
import Templates
import TestSupport
import XCTest

/// Small snippets rendered by Python jinja2 (scripts/make-jinja-reference) compared byte for byte.
final class JinjaReferenceTests: XCTestCase {
    /// 2024-07-26 12:00 in the local time zone, matching the script's naive datetime.
    static var referenceNoon: Date {
        var c = DateComponents()
        (c.year, c.month, c.day, c.hour) = (2024, 7, 26, 12)
        return Calendar(identifier: .gregorian).date(from: c) ?? Date(timeIntervalSince1970: 1_721_995_200)
    }

    func testSnippetsMatchPythonJinja2() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("templates/jinja-cases.json")))
        guard case .array(let cases)? = try TemplateValue.parseJSON(data)["cases"] else {
            return XCTFail("jinja-cases.json has no cases")
        }
        XCTAssertGreaterThan(cases.count, 80)
        var failures: [String] = []
        for c in cases {
            guard case .string(let name)? = c["name"], case .string(let source)? = c["template"],
                  case .object(let ctxObject)? = c["context"]
            else { failures.append("malformed case"); continue }
            var context: [String: TemplateValue] = [:]
            for (k, v) in ctxObject.entries { context[k] = v }
            let result: Result<String, TemplateError>
            do {
                result = .success(try Template(source: source).render(context: context, now: Self.referenceNoon))
            } catch {
                result = .failure(error)
            }
            switch (c["expected"], c["error"], result) {
            case (.string(let want)?, _, .success(let got)):
                if want != got { failures.append("\(name): expected \(want.debugDescription), got \(got.debugDescription)") }
            case (.string(let want)?, _, .failure(let e)):
                failures.append("\(name): expected \(want.debugDescription), got error \(e)")
            case (_, .string(let err)?, .success(let got)):
                failures.append("\(name): expected error \(err), rendered \(got.debugDescription)")
            case (_, .string(let err)?, .failure(let e)):
                // Check the error lands in the matching category.
                if err.hasPrefix("TemplateSyntaxError"), case .syntax = e { continue }
                if err.hasPrefix("TemplateError: "), e == .raised(String(err.dropFirst("TemplateError: ".count))) { continue }
                if !err.hasPrefix("TemplateSyntaxError"), !err.hasPrefix("TemplateError:"), case .runtime = e { continue }
                failures.append("\(name): expected \(err), got \(e)")
            default:
                failures.append("\(name): case has neither expected nor error")
            }
        }
        XCTAssertTrue(failures.isEmpty, "\(failures.count) of \(cases.count) snippets differ from jinja2:\n" + failures.joined(separator: "\n"))
    }
}
