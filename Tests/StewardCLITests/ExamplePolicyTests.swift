import Foundation
import Governance
import Moderation
import XCTest

/// examples/policy.json is what docs/governance.md tells people to copy: every component must
/// accept its section as written.
final class ExamplePolicyTests: XCTestCase {
    private var path: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples/policy.json").path
    }

    func testEverySectionOfTheExamplePolicyLoads() throws {
        let deployment = try XCTUnwrap(try DeploymentPolicy.load(path: path))
        XCTAssertEqual(deployment.models.requireSigned, false)
        let audit = try AuditPolicy.load(policyFile: path)
        XCTAssertEqual(audit.prompts, PromptLogging.none)
        XCTAssertEqual(audit.retentionDays, 90)
        let usage = try UsagePolicy.load(policyFile: path)
        XCTAssertNotNil(usage.price(model: "smollm2-135m-instruct"))
        let moderation = try ModerationConfig.load(policyFile: path)
        XCTAssertEqual(moderation.defaultPolicy, "standard")
        XCTAssertTrue(moderation.policyNames.contains("support-bot"))
    }
}
