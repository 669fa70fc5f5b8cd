import Foundation
import Governance
import TestSupport
import XCTest

final class PolicyTests: XCTestCase {
    func testExamplePolicyParses() throws {
        let p = try DeploymentPolicy.load(contentsOf: TestPaths.repoRoot + "/examples/policy.json")
        XCTAssertEqual(p.licenses.use, .commercial)
        XCTAssertEqual(p.licenses.distribution, .internal)
        XCTAssertEqual(p.licenses.derivatives, [.quantize])
        XCTAssertTrue(p.licenses.deny.contains("cc-by-nc-4.0"))
        XCTAssertFalse(p.models.requireSigned)
        XCTAssertEqual(p.sourcePath, TestPaths.repoRoot + "/examples/policy.json")
    }

    func testDefaultsAndOtherSectionsIgnored() throws {
        let p = try policy(#"{"audit": {"prompts": "full", "anything": 1}, "moderation": {}}"#)
        XCTAssertEqual(p.licenses, DeploymentPolicy.Licenses())
        XCTAssertEqual(p.models, DeploymentPolicy.Models())
        XCTAssertEqual(p.licenses.use, .commercial)
        XCTAssertFalse(p.licenses.acceptUnknown)
        XCTAssertFalse(p.licenses.allowOverride)
        XCTAssertEqual(try policy(#"{"licenses": {"derivatives": true}}"#).licenses.derivatives, Set(DerivativeAction.allCases))
        XCTAssertEqual(try policy(#"{"licenses": {"derivatives": false}}"#).licenses.derivatives, [])
        XCTAssertEqual(try policy(#"{"licenses": {"allow": ["Apache-2.0", "gemma-terms-of-use"]}}"#).licenses.allow, ["apache-2.0", "gemma"])
    }

    func testInvalidPoliciesNameTheKey() {
        let cases: [(String, String)] = [
            (#"{"licenses": {"usage": "commercial"}}"#, "licenses.usage"),
            (#"{"models": {"require_sign": true}}"#, "models.require_sign"),
            (#"{"licenses": {"use": "fun"}}"#, "licenses.use"),
            (#"{"licenses": {"derivatives": ["distill"]}}"#, "distill"),
            (#"{"licenses": {"deny": ["not-a-licence"]}}"#, "not-a-licence"),
            (#"{"licenses": {"accept_unknown": 1}}"#, "licenses.accept_unknown"),
            (#"{"models": {"trusted_keys": ["abc"]}}"#, "models.trusted_keys"),
            (#"{"licenses": []}"#, "licenses"),
            (#"[1, 2]"#, "JSON object"),
            (#"{"licenses": "#, "not valid JSON"),
        ]
        for (json, needle) in cases {
            XCTAssertThrowsError(try policy(json), json) { e in
                XCTAssertTrue("\(e)".contains(needle), "\(json): \(e)")
            }
        }
        XCTAssertThrowsError(try DeploymentPolicy.load(path: "/no/such/policy.json")) { e in
            XCTAssertTrue("\(e)".contains("/no/such/policy.json"), "\(e)")
        }
    }

    func testDeniedWithEveryReason() throws {
        let p = try policy(#"{"licenses": {"use": "commercial", "distribution": "external", "derivatives": ["finetune"], "deny": ["cc-by-nc-4.0"]}}"#)
        let d = LicensePolicy.evaluate(license: "CC-BY-NC-4.0", policy: p)
        XCTAssertFalse(d.allowed)
        XCTAssertEqual(d.licenseID, "cc-by-nc-4.0")
        XCTAssertTrue(d.reasons.contains { $0.contains("deny list") }, "\(d.reasons)")
        XCTAssertTrue(d.reasons.contains { $0.contains("cc-by-nc-4.0 forbids commercial use; policy licenses.use is commercial") }, "\(d.reasons)")
        XCTAssertEqual(d.reasons.count, 2, "\(d.reasons)")
        XCTAssertFalse(d.overridable)
        XCTAssertTrue(d.refusal(model: "m").contains("allow_override is false"))
    }

    func testAllowListAndResearchUse() throws {
        let allowOnly = try policy(#"{"licenses": {"allow": ["apache-2.0", "mit"]}}"#)
        XCTAssertTrue(LicensePolicy.evaluate(license: "apache-2.0", policy: allowOnly).allowed)
        let g = LicensePolicy.evaluate(license: "gemma", policy: allowOnly)
        XCTAssertFalse(g.allowed)
        XCTAssertTrue(g.reasons[0].contains("not on the policy's allow list"), "\(g.reasons)")
        let research = try policy(#"{"licenses": {"use": "research", "derivatives": ["finetune"]}}"#)
        XCTAssertTrue(LicensePolicy.evaluate(license: "cc-by-nc-4.0", policy: research).allowed)
        XCTAssertTrue(LicensePolicy.evaluate(license: "mistral-research", policy: research).allowed)
        XCTAssertFalse(LicensePolicy.evaluate(license: "mistral-research", policy: DeploymentPolicy()).allowed)
    }

    func testUnknownLicences() throws {
        let d = LicensePolicy.evaluate(license: "my-own-licence", policy: DeploymentPolicy())
        XCTAssertFalse(d.allowed)
        XCTAssertTrue(d.reasons[0].contains("unknown ('my-own-licence')") && d.reasons[0].contains("accept_unknown is false"), "\(d.reasons)")
        XCTAssertFalse(LicensePolicy.evaluate(license: nil, policy: DeploymentPolicy()).allowed)
        let accepting = try policy(#"{"licenses": {"accept_unknown": true, "distribution": "external"}}"#)
        let a = LicensePolicy.evaluate(license: nil, policy: accepting)
        XCTAssertTrue(a.allowed, "\(a.reasons)")
        XCTAssertTrue(a.obligations.contains { $0.contains("unknown") })
        // Accepting unknown licences does not bypass the deny list.
        let denyUnknown = try policy(#"{"licenses": {"accept_unknown": true, "deny": ["unknown"]}}"#)
        XCTAssertFalse(LicensePolicy.evaluate(license: nil, policy: denyUnknown).allowed)
    }

    func testObligationsForExternalDistribution() throws {
        let p = try policy(#"{"licenses": {"distribution": "external", "derivatives": ["finetune"]}}"#)
        let d = LicensePolicy.evaluate(license: "llama3.2", policy: p)
        XCTAssertTrue(d.allowed, "\(d.reasons)")
        XCTAssertTrue(d.obligations.contains { $0.contains("Built with Llama") }, "\(d.obligations)")
        XCTAssertTrue(d.obligations.contains { $0.contains("700,000,000") }, "\(d.obligations)")
        XCTAssertTrue(d.obligations.contains { $0.contains("starting with \"Llama\"") }, "\(d.obligations)")
        XCTAssertTrue(d.obligations.contains { $0.contains("use-policy") }, "\(d.obligations)")
        XCTAssertTrue(d.obligations.contains { $0.contains("Llama 3.2 is licensed under the Llama 3.2 Community License") }, "\(d.obligations)")
        // Internal use: no distribution duties.
        let internalUse = LicensePolicy.evaluate(license: "llama3.2", policy: DeploymentPolicy())
        XCTAssertFalse(internalUse.obligations.contains { $0.contains("Built with Llama") })
    }

    func testDerivativeCheckForAdaptCommands() throws {
        let dir = try ScratchDirectory("policy-derivative")
        let store = try ModelStore(storage: SQLiteStorage(path: ":memory:"))
        let rec = try store.add(.init(target: try dir.gguf("base", license: "apache-2.0")), policy: nil).record
        let quantizeOnly = try policy(#"{"licenses": {"derivatives": ["quantize"]}}"#)
        XCTAssertNoThrow(try LicensePolicy.check(model: rec, action: .quantize, policy: quantizeOnly))
        XCTAssertThrowsError(try LicensePolicy.check(model: rec, action: .merge, policy: quantizeOnly)) { e in
            XCTAssertTrue("\(e)".contains("does not plan merge"), "\(e)")
        }
        let nc = try store.add(.init(target: try dir.gguf("nc", license: "cc-by-nc-4.0", seed: 2)), policy: nil).record
        let all = try policy(#"{"licenses": {"use": "commercial", "derivatives": true}}"#)
        XCTAssertThrowsError(try LicensePolicy.check(model: nc, action: .finetune, policy: all)) { e in
            XCTAssertTrue("\(e)".contains("forbids commercial use"), "\(e)")
        }
        let unknown = try store.add(.init(target: try dir.gguf("u", seed: 3)), policy: nil).record
        XCTAssertThrowsError(try LicensePolicy.check(model: unknown, action: .finetune, policy: all))
    }
}

final class DerivativeCheckByNameTests: XCTestCase {
    func testCheckByPathWithPolicyFileAndOverride() throws {
        let dir = try ScratchDirectory("policy-by-path")
        let path = try dir.gguf("nc", license: "cc-by-nc-4.0")
        let strict = try dir.write("strict.json", #"{"licenses": {"derivatives": true}}"#)
        XCTAssertThrowsError(try LicensePolicy.check(model: path, action: .finetune, store: nil, policyPath: strict)) { e in
            XCTAssertTrue("\(e)".contains("forbids commercial use"), "\(e)")
        }
        XCTAssertThrowsError(try LicensePolicy.check(model: path, action: .finetune, store: nil, policyPath: strict, override: true)) { e in
            guard case ModelStoreError.overrideNotAllowed = e else { return XCTFail("\(e)") }
        }
        let lenient = try dir.write("lenient.json", #"{"licenses": {"derivatives": true, "allow_override": true}}"#)
        let d = try LicensePolicy.check(model: path, action: .finetune, store: nil, policyPath: lenient, override: true)
        XCTAssertEqual(d?.allowed, false, "admitted by override, still reported as denied")
        let research = try dir.write("research.json", #"{"licenses": {"use": "research", "derivatives": ["finetune"]}}"#)
        XCTAssertEqual(try LicensePolicy.check(model: path, action: .finetune, store: nil, policyPath: research)?.allowed, true)
    }
}
