import Foundation

/// A model-based moderation classifier: text in, unsafe categories with scores out (0…1).
/// An empty list means "safe". The server provides one that runs a guard prompt on a served
/// model (GuardPromptClassifier); tests can provide fakes.
public protocol ModerationClassifier: Sendable {
    func classify(_ text: String) throws -> [ClassifierScore]
}

public struct ClassifierScore: Sendable, Equatable, Codable {
    public var category: String
    public var score: Double
    public init(category: String, score: Double) { self.category = category; self.score = score }
}

/// One direction (input or output) of a policy, ready to run: detectors resolved to actions,
/// regular expressions compiled. Build once per policy and direction; `moderate` is thread-safe.
public final class Moderator: @unchecked Sendable {
    public let policyName: String
    public let direction: ModerationDirection
    struct DetectorUse { let entry: ModerationDetectors.Entry; let action: ModerationAction; let replacement: String? }
    let detectors: [DetectorUse]
    let injection: (action: ModerationAction, threshold: Double, replacement: String?)?
    struct KeywordUse { let bytes: [UInt8]; let wholeWord: Bool; let caseSensitive: Bool; let rule: ModerationRule }
    let keywords: [KeywordUse]
    let regexes: [(NSRegularExpression, ModerationRule)]
    let maxChars: [(Int, ModerationRule)]
    let maxTokens: [(Int, ModerationRule)]
    let classifierRules: [ModerationRule]
    public let classifier: ModerationClassifier?
    /// Longest keyword phrase in words (the stream moderator holds back that many words).
    let longestPhraseWords: Int

    /// `classifier` is used by classifier rules; without one they are skipped.
    public init(policy: ModerationPolicy, direction: ModerationDirection, classifier: ModerationClassifier? = nil) {
        policyName = policy.name
        self.direction = direction
        self.classifier = classifier
        let rules = policy.rules(direction)
        // For each detector the last rule that names it decides (so a later "allow" exempts).
        var chosen: [String: ModerationRule] = [:]
        var kws: [KeywordUse] = []
        var res: [(NSRegularExpression, ModerationRule)] = []
        var mc: [(Int, ModerationRule)] = [], mt: [(Int, ModerationRule)] = []
        var cls: [ModerationRule] = []
        for r in rules {
            switch r.kind {
            case let .detector(p): for id in ModerationDetectors.select(p) { chosen[id] = r }
            case let .keywords(list, whole, cs):
                for k in list {
                    let b = Array(k.utf8)
                    kws.append(KeywordUse(bytes: cs ? b : b.map { isUpper($0) ? $0 + 32 : $0 }, wholeWord: whole, caseSensitive: cs, rule: r))
                }
            case let .regex(p, cs):
                if let re = try? NSRegularExpression(pattern: p, options: cs ? [] : [.caseInsensitive]) { res.append((re, r)) }
            case let .maxChars(n): mc.append((n, r))
            case let .maxTokens(n): mt.append((n, r))
            case .classifier: cls.append(r)
            }
        }
        detectors = ModerationDetectors.entries.compactMap { e in
            guard let r = chosen[e.id], r.action != .allow else { return nil }
            return DetectorUse(entry: e, action: r.action, replacement: r.replacement)
        }
        if let r = chosen["injection"], r.action != .allow { injection = (r.action, r.threshold ?? 0.5, r.replacement) } else { injection = nil }
        keywords = kws.filter { $0.rule.action != .allow }
        regexes = res.filter { $0.1.action != .allow }
        maxChars = mc; maxTokens = mt
        classifierRules = cls.filter { $0.action != .allow }
        longestPhraseWords = kws.map { k in k.bytes.split(separator: 32).count }.max() ?? 1
    }

    public convenience init(presetOrFail name: String, direction: ModerationDirection) {
        self.init(policy: ModerationPolicy.presets[name] ?? ModerationPolicy(name: name, input: [], output: []), direction: direction)
    }

    public var isEmpty: Bool {
        detectors.isEmpty && injection == nil && keywords.isEmpty && regexes.isEmpty && maxChars.isEmpty && maxTokens.isEmpty && classifierRules.isEmpty
    }

    /// An internal finding with byte offsets and its redaction text.
    struct Hit {
        var detector: String
        var category: String
        var rule: String?
        var start: Int
        var end: Int
        var score: Double
        var action: ModerationAction
        var replacement: String
    }

    /// Everything the rules find in `t` (byte offsets), classifier and token limits excluded
    /// unless asked for (the stream moderator calls this on windows of text).
    func scan(_ t: ScanText, tokenCounter: ((String) -> Int)?, text: String?, useClassifier: Bool) -> [Hit] {
        var hits: [Hit] = []
        for d in detectors {
            let label = d.entry.id.split(separator: ".").last.map(String.init) ?? d.entry.id
            for m in d.entry.scan(t) {
                hits.append(Hit(detector: d.entry.id, category: d.entry.category, rule: nil, start: m.start, end: m.end, score: m.score,
                                action: d.action, replacement: d.replacement ?? "[REDACTED:\(label)]"))
            }
        }
        if let inj = injection {
            let r = InjectionDetector.detect(t)
            if r.score >= inj.threshold, let strongest = r.signals.max(by: { $0.weight < $1.weight }) {
                hits.append(Hit(detector: "injection", category: "injection", rule: nil, start: strongest.start, end: strongest.end,
                                score: r.score, action: inj.action, replacement: inj.replacement ?? "[REDACTED:injection]"))
            }
        }
        for k in keywords {
            let hay = k.caseSensitive ? t.bytes : t.lower
            guard let first = k.bytes.first, k.bytes.count <= hay.count else { continue }
            var i = 0
            while i <= hay.count - k.bytes.count {
                if hay[i] == first && hay[i..<(i + k.bytes.count)].elementsEqual(k.bytes) {
                    let e = i + k.bytes.count
                    let boundaryOK = !k.wholeWord || ((!isAlnum(k.bytes[0]) || !isAlnum(t.at(i - 1))) && (!isAlnum(k.bytes[k.bytes.count - 1]) || !isAlnum(t.at(e))))
                    if boundaryOK {
                        hits.append(Hit(detector: "rule.keyword", category: "rule", rule: k.rule.name, start: i, end: e, score: 1,
                                        action: k.rule.action, replacement: k.rule.replacement ?? "[REDACTED:\(k.rule.name ?? "keyword")]"))
                        i = e
                        continue
                    }
                }
                i += 1
            }
        }
        if !regexes.isEmpty {
            let s = text ?? String(decoding: t.bytes, as: UTF8.self)
            let map = UTF16ToUTF8(s)
            let ns = s as NSString
            for (re, rule) in regexes {
                for m in re.matches(in: s, range: NSRange(location: 0, length: ns.length)) where m.range.length > 0 {
                    hits.append(Hit(detector: "rule.regex", category: "rule", rule: rule.name, start: map[m.range.location],
                                    end: map[m.range.location + m.range.length], score: 1, action: rule.action,
                                    replacement: rule.replacement ?? "[REDACTED:\(rule.name ?? "pattern")]"))
                }
            }
        }
        if !maxChars.isEmpty {
            let chars = t.bytes.reduce(0) { $0 + (($1 & 0xC0) == 0x80 ? 0 : 1) }
            for (n, rule) in maxChars where chars > n {
                hits.append(Hit(detector: "length.chars", category: "length", rule: rule.name, start: 0, end: t.count, score: 1,
                                action: rule.action, replacement: ""))
            }
        }
        if let count = tokenCounter, !maxTokens.isEmpty {
            let s = text ?? String(decoding: t.bytes, as: UTF8.self)
            let tokens = count(s)
            for (n, rule) in maxTokens where tokens > n {
                hits.append(Hit(detector: "length.tokens", category: "length", rule: rule.name, start: 0, end: t.count, score: 1,
                                action: rule.action, replacement: ""))
            }
        }
        if useClassifier, let c = classifier, !classifierRules.isEmpty {
            let s = text ?? String(decoding: t.bytes, as: UTF8.self)
            // A classifier that fails is recorded as a flag, not a pass or a crash.
            let scores = (try? c.classify(s)) ?? [ClassifierScore(category: "error", score: 1)]
            for rule in classifierRules {
                for sc in scores where sc.score >= (rule.threshold ?? 0.5) {
                    if case let .classifier(cats?) = rule.kind, !cats.contains(sc.category) { continue }
                    let action: ModerationAction = sc.category == "error" ? .flag : rule.action
                    hits.append(Hit(detector: "classifier.\(sc.category)", category: "classifier", rule: rule.name, start: 0, end: t.count,
                                    score: sc.score, action: action, replacement: "[REDACTED:classifier]"))
                }
            }
        }
        return hits.sorted { ($0.start, $0.end) < ($1.start, $1.end) }
    }

    /// Moderates one whole text. `tokenCounter` (the serving model's tokenizer) enables
    /// max_tokens rules.
    public func moderate(_ text: String, tokenCounter: ((String) -> Int)? = nil) -> ModerationResult {
        let t = ScanText(text)
        let hits = scan(t, tokenCounter: tokenCounter, text: text, useClassifier: true)
        return Moderator.result(text: text, t, hits)
    }

    static func result(text: String, _ t: ScanText, _ hits: [Hit]) -> ModerationResult {
        guard !hits.isEmpty else { return ModerationResult(findings: [], text: text, action: .allow) }
        let scalarAt = ScalarOffsets(t.bytes)
        let findings = hits.map { h in
            ModerationFinding(detector: h.detector, category: h.category, rule: h.rule, start: scalarAt[h.start], end: scalarAt[h.end],
                              utf8Start: h.start, utf8End: h.end, score: h.score, action: h.action)
        }
        let action = hits.map(\.action).max() ?? .allow
        let out = action == .block ? text : String(decoding: redact(t.bytes, hits), as: UTF8.self)
        return ModerationResult(findings: findings, text: out, action: action)
    }

    /// Replaces redacted spans (merged where they overlap) by their placeholders.
    static func redact(_ bytes: [UInt8], _ hits: [Hit], upTo limit: Int? = nil) -> [UInt8] {
        let spans = hits.filter { $0.action == .redact }.sorted { $0.start < $1.start }
        let end = limit ?? bytes.count
        guard !spans.isEmpty else { return Array(bytes[0..<end]) }
        var out: [UInt8] = []
        out.reserveCapacity(end)
        var pos = 0
        var i = 0
        while i < spans.count {
            var s = spans[i]
            var j = i + 1
            while j < spans.count && spans[j].start < s.end { s.end = max(s.end, spans[j].end); j += 1 }
            guard s.start < end else { break }
            if s.start > pos { out += bytes[pos..<s.start] }
            out += Array(s.replacement.utf8)
            pos = max(pos, min(s.end, end))
            i = j
        }
        if pos < end { out += bytes[pos..<end] }
        return out
    }
}

/// Byte offset → Unicode scalar offset.
struct ScalarOffsets {
    private var prefix: [Int32]
    init(_ bytes: [UInt8]) {
        prefix = [Int32](repeating: 0, count: bytes.count + 1)
        var n: Int32 = 0
        for (i, b) in bytes.enumerated() {
            prefix[i] = n
            if (b & 0xC0) != 0x80 { n += 1 }
        }
        prefix[bytes.count] = n
    }
    subscript(i: Int) -> Int { Int(prefix[min(max(0, i), prefix.count - 1)]) }
}

/// UTF-16 offset (NSRange) → UTF-8 byte offset.
struct UTF16ToUTF8 {
    private var map: [Int32]
    init(_ s: String) {
        map = []
        map.reserveCapacity(s.utf16.count + 1)
        var byte: Int32 = 0
        for u in s.unicodeScalars {
            let w = Int32(u.utf8.count)
            map.append(byte)
            if u.value > 0xFFFF { map.append(byte) }
            byte += w
        }
        map.append(byte)
    }
    subscript(i: Int) -> Int { Int(map[min(max(0, i), map.count - 1)]) }
}

/// The policy set used by a deployment, with both directions of each policy compiled once.
public final class ModerationService: @unchecked Sendable {
    public let config: ModerationConfig
    public let classifier: ModerationClassifier?
    /// Per-key policy selection: key id → policy name (nil = the default). The lead connects
    /// it to the access store's per-key `moderation_policy`.
    public var policyName: (@Sendable (String?) -> String?)?
    private let lock = NSLock()
    private var compiled: [String: (input: Moderator, output: Moderator)] = [:]

    public init(config: ModerationConfig, classifier: ModerationClassifier? = nil, policyName: (@Sendable (String?) -> String?)? = nil) {
        self.config = config; self.classifier = classifier; self.policyName = policyName
    }

    /// The compiled policy for a caller (see `ModerationConfig.policy(forKey:selector:)`).
    public func moderators(forKey keyID: String?) throws -> (input: Moderator, output: Moderator) {
        let p = try config.policy(forKey: keyID, selector: policyName)
        return moderators(p)
    }

    public func moderators(named name: String) throws -> (input: Moderator, output: Moderator) {
        guard let p = config.policy(named: name) else {
            throw ModerationPolicyError("moderation policy '\(name)' is not defined (defined: \(config.policyNames.joined(separator: ", ")))")
        }
        return moderators(p)
    }

    private func moderators(_ p: ModerationPolicy) -> (input: Moderator, output: Moderator) {
        lock.lock(); defer { lock.unlock() }
        if let c = compiled[p.name] { return c }
        let c = (Moderator(policy: p, direction: .input, classifier: classifier), Moderator(policy: p, direction: .output, classifier: classifier))
        compiled[p.name] = c
        return c
    }

    /// The audit log's redactor for its "redacted" prompt mode: every PII and secret detector,
    /// redacted, whatever the request's policy.
    public static let redactor: @Sendable (String) -> String = { text in
        redactAll.moderate(text).text
    }
    static let redactAll = Moderator(policy: ModerationPolicy(name: "audit-redaction", input: [
        ModerationRule(.detector("pii.*"), action: .redact), ModerationRule(.detector("secret.*"), action: .redact),
    ], output: []), direction: .input)
}
