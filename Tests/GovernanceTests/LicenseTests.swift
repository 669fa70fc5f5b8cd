import Foundation
import Governance
import XCTest

final class LicenseTests: XCTestCase {
    func testCatalogueHasEveryLicenceTheIssueNames() {
        let required = ["apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "openrail", "openrail++",
                        "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "gemma", "qwen", "qwen-research",
                        "deepseek", "mistral-research", "falcon", "unknown"]
        XCTAssertEqual(Set(LicenseCatalog.ids), Set(required))
        XCTAssertEqual(LicenseCatalog.ids.count, required.count, "ids are unique")
        for t in LicenseCatalog.all where !t.isUnknown {
            XCTAssertTrue(t.sourceURL.hasPrefix("https://"), "\(t.id) names its source text")
            XCTAssertFalse(t.openness.isEmpty, t.id)
        }
    }

    func testAliasesNormalise() {
        let cases: [(String, String)] = [
            ("Apache-2.0", "apache-2.0"), ("apache 2.0", "apache-2.0"), ("MIT", "mit"), ("BSD-3-Clause", "bsd-3-clause"),
            ("llama3.2", "llama3.2"), ("llama-3.2-community", "llama3.2"), ("Llama-3.2-Community-License-Agreement", "llama3.2"),
            ("llama3_1", "llama3.1"), ("gemma-terms-of-use", "gemma"), ("Gemma", "gemma"), ("CC-BY-NC-4.0", "cc-by-nc-4.0"),
            ("creativeml-openrail-m", "openrail"), ("MRL", "mistral-research"), ("MNPL", "mistral-research"),
            ("tongyi-qianwen", "qwen"), ("other", "unknown"),
        ]
        for (raw, id) in cases { XCTAssertEqual(LicenseCatalog.normalize(raw), id, raw) }
        XCTAssertNil(LicenseCatalog.normalize("my-own-licence"))
        XCTAssertTrue(LicenseCatalog.lookup("my-own-licence").isUnknown)
        XCTAssertTrue(LicenseCatalog.lookup(nil).isUnknown)
    }

    func testStructuredTerms() throws {
        let l31 = try XCTUnwrap(LicenseCatalog.terms(id: "llama3.1"))
        XCTAssertEqual(l31.monthlyActiveUserLimit, 700_000_000)
        XCTAssertEqual(l31.derivativeNamePrefix, "Llama")
        XCTAssertTrue(l31.attribution.contains { $0.contains("Built with Llama") })
        XCTAssertNotNil(l31.acceptableUsePolicyURL)
        XCTAssertEqual(l31.commercialUse, .conditional)
        let l3 = try XCTUnwrap(LicenseCatalog.terms(id: "llama3"))
        XCTAssertTrue(l3.attribution.contains { $0.contains("Built with Meta Llama 3") })
        XCTAssertEqual(l3.derivativeNamePrefix, "Llama 3")
        XCTAssertNil(LicenseCatalog.terms(id: "llama2")?.derivativeNamePrefix)
        XCTAssertEqual(LicenseCatalog.terms(id: "cc-by-nc-4.0")?.commercialUse, .no)
        XCTAssertEqual(LicenseCatalog.terms(id: "qwen-research")?.commercialUse, .no)
        XCTAssertEqual(LicenseCatalog.terms(id: "mistral-research")?.commercialUse, .no)
        XCTAssertEqual(LicenseCatalog.terms(id: "qwen")?.monthlyActiveUserLimit, 100_000_000)
        XCTAssertEqual(LicenseCatalog.terms(id: "cc-by-sa-4.0")?.shareAlike, true)
        XCTAssertEqual(LicenseCatalog.terms(id: "apache-2.0")?.shareAlike, false)
        XCTAssertEqual(LicenseCatalog.terms(id: "apache-2.0")?.osiApproved, true)
        XCTAssertEqual(LicenseCatalog.terms(id: "gemma")?.acceptableUsePolicyURL, "https://ai.google.dev/gemma/prohibited_use_policy")
        XCTAssertNotNil(LicenseCatalog.terms(id: "gemma")?.requiredNotice)
        XCTAssertNotNil(LicenseCatalog.terms(id: "mistral-research")?.ambiguity, "one entry for two texts says so")
        XCTAssertEqual(LicenseCatalog.unknown.commercialUse, .no, "no licence: no rights assumed")
    }

    func testPlainWords() throws {
        let text = try XCTUnwrap(LicenseCatalog.terms(id: "llama3.2")).plainWords
        XCTAssertTrue(text.contains("700,000,000 monthly active users"), text)
        XCTAssertTrue(text.contains("must begin with \"Llama\""), text)
        XCTAssertTrue(text.contains("Acceptable use:"), text)
        XCTAssertTrue(text.contains("not legal advice"), text)
    }
}
