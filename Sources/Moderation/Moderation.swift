// Moderation: input and output policies (rules, PII detectors, prompt-injection heuristics)
// applied to request and response text. Pure Swift, no model or server dependency, so
// `steward moderate` and the server share one implementation. See docs/governance.md.
//
// Detectors scan UTF-8 bytes by hand rather than with regular expressions: a typical chat
// request (1–2 KB) must be moderated in well under a millisecond, and each detector validates
// what it finds (Luhn, mod-97, SSN area rules, octet ranges) to keep false positives down.

import Foundation

/// What a policy does with a finding. Ordered by severity: when several findings apply to a
/// text, the most severe decides the outcome.
public enum ModerationAction: String, Sendable, Codable, Comparable, CaseIterable {
    /// Detected but let through unrecorded (an exemption, e.g. allow IP addresses).
    case allow
    /// Let through unchanged, recorded (audit log, /v1/moderations `flagged`).
    case flag
    /// Replaced by a placeholder such as `[REDACTED:email]`.
    case redact
    /// The whole input is refused, or the output stream stops.
    case block

    var severity: Int {
        switch self { case .allow: return 0; case .flag: return 1; case .redact: return 2; case .block: return 3 }
    }
    public static func < (a: Self, b: Self) -> Bool { a.severity < b.severity }
}

/// Which side of a generation a text is on: what the user sent, or what the model wrote.
public enum ModerationDirection: String, Sendable, Codable, CaseIterable {
    case input, output
}

/// One thing a detector or rule found in a text, with the action the policy gives it.
public struct ModerationFinding: Sendable, Equatable, Codable {
    /// Stable id, e.g. "pii.email", "secret.github_token", "injection", "rule.keyword",
    /// "rule.regex", "length.chars", "classifier.violence".
    public var detector: String
    /// "pii", "secret", "injection", "rule", "length" or "classifier".
    public var category: String
    /// The rule's name from the policy when it has one (keyword and regex rules).
    public var rule: String?
    /// The span in Unicode scalars (Python string indices), end exclusive.
    public var start: Int
    public var end: Int
    /// The span in UTF-8 bytes, end exclusive.
    public var utf8Start: Int
    public var utf8End: Int
    /// 1 for validated detections; the heuristic's score for injection and classifier findings.
    public var score: Double
    public var action: ModerationAction

    /// "pii.email:redact" — how the server records a verdict (request.context.addModeration).
    public func verdict(_ direction: ModerationDirection) -> String {
        "\(direction.rawValue):\(rule.map { "\(detector)[\($0)]" } ?? detector):\(action.rawValue)"
    }

    /// What a refusal may say about this finding: the detector and rule, never the matched text.
    public var label: String { rule.map { "\(detector) (rule '\($0)')" } ?? detector }
}

/// The outcome of moderating one text.
public struct ModerationResult: Sendable, Equatable {
    /// Findings the policy acts on (allowed ones are left out), in text order.
    public var findings: [ModerationFinding]
    /// The text after redaction (the original when nothing was redacted or when blocked).
    public var text: String
    /// The most severe action among the findings (`.allow` when there are none).
    public var action: ModerationAction
    public var blocked: Bool { action == .block }
    /// The first finding that blocks, if any.
    public var blockingFinding: ModerationFinding? { findings.first { $0.action == .block } }
    public init(findings: [ModerationFinding], text: String, action: ModerationAction) {
        self.findings = findings; self.text = text; self.action = action
    }
}

/// A problem in a moderation policy (file or JSON). The message names what is wrong and where.
public struct ModerationPolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
