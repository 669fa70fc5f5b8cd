import Foundation

/// The built-in detectors by id. Ids are stable: policies name them ("pii.email") or their
/// group ("pii.*", "secret.*", "*").
public enum ModerationDetectors {
    struct Entry: Sendable {
        let id: String
        let category: String
        let summary: String
        let scan: @Sendable (ScanText) -> [RawMatch]
    }

    static let entries: [Entry] = [
        Entry(id: "pii.email", category: "pii", summary: "e-mail addresses", scan: PIIDetectors.email),
        Entry(id: "pii.phone", category: "pii", summary: "phone numbers (international +CC, North American, national 0…)", scan: PIIDetectors.phone),
        Entry(id: "pii.card", category: "pii", summary: "payment card numbers (Luhn check, known issuer prefixes)", scan: PIIDetectors.card),
        Entry(id: "pii.iban", category: "pii", summary: "IBANs (country length, mod-97 check)", scan: PIIDetectors.iban),
        Entry(id: "pii.ssn", category: "pii", summary: "US social security numbers (valid areas, groups, serials)", scan: PIIDetectors.ssn),
        Entry(id: "pii.ip", category: "pii", summary: "IPv4 and IPv6 addresses", scan: PIIDetectors.ip),
        Entry(id: "secret.aws_access_key", category: "secret", summary: "AWS access key ids (AKIA…, ASIA…)", scan: SecretDetectors.awsAccessKey),
        Entry(id: "secret.aws_secret_key", category: "secret", summary: "AWS secret access keys next to their name", scan: SecretDetectors.awsSecretKey),
        Entry(id: "secret.github_token", category: "secret", summary: "GitHub tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_)", scan: SecretDetectors.githubToken),
        Entry(id: "secret.slack_token", category: "secret", summary: "Slack tokens (xoxb-, xoxp-, …) and webhook URLs", scan: SecretDetectors.slackToken),
        Entry(id: "secret.google_api_key", category: "secret", summary: "Google API keys (AIza…)", scan: SecretDetectors.googleAPIKey),
        Entry(id: "secret.openai_key", category: "secret", summary: "OpenAI-style API keys (sk-…, sk-proj-…, sk-ant-…)", scan: SecretDetectors.openAIKey),
        Entry(id: "secret.private_key", category: "secret", summary: "PEM private-key blocks", scan: SecretDetectors.privateKey),
        Entry(id: "secret.bearer_token", category: "secret", summary: "bearer tokens and JWTs", scan: SecretDetectors.bearerToken),
    ]

    /// Every detector id a policy may name, with a one-line summary.
    public static var catalogue: [(id: String, summary: String)] {
        entries.map { ($0.id, $0.summary) } + [("injection", "prompt-injection heuristics (scored; threshold, default 0.5)")]
    }

    public static var ids: [String] { catalogue.map(\.id) }

    static func category(of id: String) -> String {
        if id == "injection" { return "injection" }
        return entries.first { $0.id == id }?.category ?? "rule"
    }

    /// Ids a policy pattern selects: an id, "pii.*"/"secret.*", "pii"/"secret", or "*".
    static func select(_ pattern: String) -> [String] {
        if pattern == "*" { return ids }
        if pattern.hasSuffix(".*") {
            let p = String(pattern.dropLast(2))
            return ids.filter { $0.hasPrefix(p + ".") }
        }
        if ids.contains(pattern) { return [pattern] }
        return ids.filter { $0.hasPrefix(pattern + ".") }
    }

    /// Runs one detector by id on `text`; spans are UTF-8 byte ranges. For the corpus
    /// evaluation and tests.
    public static func detect(_ id: String, in text: String) -> [Range<Int>] {
        let t = ScanText(text)
        if id == "injection" {
            let r = InjectionDetector.detect(t)
            return r.score >= 0.5 ? r.signals.map { $0.start..<$0.end } : []
        }
        return entries.first { $0.id == id }?.scan(t).map { $0.start..<$0.end } ?? []
    }

    /// The injection heuristic's score (0…1) and the names of the signals it found.
    public static func injectionScore(_ text: String) -> (score: Double, signals: [String]) {
        let r = InjectionDetector.detect(ScanText(text))
        return (r.score, r.signals.map(\.name))
    }
}
