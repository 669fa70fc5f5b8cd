import Foundation
import StewardCLI
import TestSupport
import XCTest

final class LicenseCommandTests: XCTestCase {
    func testShowByStoreNamePathAndID() throws {
        let s = try GovernanceScratch("license-show")
        XCTAssertEqual(steward(["models", "add", try TestPaths.model("gemma-3-270m"), "--db", s.db]).code, 0)
        let byName = steward(["license", "show", "gemma-3-270m", "--db", s.db])
        XCTAssertEqual(byName.code, 0, byName.err)
        XCTAssertTrue(byName.out.hasPrefix("gemma-3-270m: licence gemma, from gguf general.license"), byName.out)
        XCTAssertTrue(byName.out.contains("prohibited_use_policy"), byName.out)
        // A path not in the store: read from the file.
        let byPath = steward(["license", "show", try TestPaths.model("smollm2-135m-instruct"), "--db", s.db])
        XCTAssertEqual(byPath.code, 0, byPath.err)
        XCTAssertTrue(byPath.out.contains("licence apache-2.0, from gguf general.license"), byPath.out)
        let byID = steward(["license", "show", "llama3.3"])
        XCTAssertTrue(byID.out.contains("Built with Llama"), byID.out)
        XCTAssertEqual(steward(["license", "show", "no-such-thing"]).code, 2)
        XCTAssertTrue(steward(["license", "list"]).out.contains("mistral-research"))
    }

    func testCheckExitCodesAndReasons() throws {
        let s = try GovernanceScratch("license-check")
        let p = try s.policy(#"{"licenses": {"use": "commercial", "distribution": "external", "deny": ["qwen-research"]}}"#)
        let ok = steward(["license", "check", try TestPaths.model("smollm2-135m-instruct"), "--policy", p, "--db", s.db])
        XCTAssertEqual(ok.code, 0, ok.out)
        XCTAssertTrue(ok.out.contains("ALLOWED"), ok.out)
        let denied = steward(["license", "check", "qwen-research", "--policy", p, "--db", s.db])
        XCTAssertEqual(denied.code, 1)
        XCTAssertTrue(denied.out.contains("DENIED"), denied.out)
        XCTAssertTrue(denied.out.contains("deny list"), denied.out)
        XCTAssertTrue(denied.out.contains("qwen-research forbids commercial use; policy licenses.use is commercial"), denied.out)
        let unknown = steward(["license", "check", try s.gguf("u", license: nil), "--policy", p, "--db", s.db])
        XCTAssertEqual(unknown.code, 1)
        XCTAssertTrue(unknown.out.contains("the licence is unknown"), unknown.out)
        let merge = steward(["license", "check", "apache-2.0", "--policy", p, "--action", "merge"])
        XCTAssertEqual(merge.code, 1)
        XCTAssertTrue(merge.out.contains("does not plan merge"), merge.out)
    }

    func testNotice() throws {
        let s = try GovernanceScratch("license-notice")
        let notice = steward(["license", "notice", try TestPaths.model("gemma-3-270m"), "--db", s.db])
        XCTAssertEqual(notice.code, 0, notice.err)
        XCTAssertTrue(notice.out.contains("Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms"), notice.out)
        XCTAssertTrue(notice.out.contains("GEMMA_TERMS.html"), "the fetched terms file is pointed at: \(notice.out)")
        let llama = steward(["license", "notice", "llama3.1"])
        XCTAssertTrue(llama.out.contains("Llama 3.1 is licensed under the Llama 3.1 Community License"), llama.out)
        XCTAssertTrue(llama.out.contains("starting with \"Llama\""), llama.out)
        let unknown = steward(["license", "notice", try s.gguf("u", license: nil)])
        XCTAssertEqual(unknown.code, 1)
        XCTAssertTrue(unknown.out.contains("Licence: unknown"), unknown.out)
    }
}
