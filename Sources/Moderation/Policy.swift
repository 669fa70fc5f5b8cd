import Foundation

/// One entry of a policy: what to look for and what to do with it.
public struct ModerationRule: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Built-in detectors selected by id or group ("pii.email", "secret.*", "*", "injection").
        case detector(String)
        /// Keywords or phrases; whole words by default, case-insensitive by default (ASCII).
        case keywords([String], wholeWord: Bool, caseSensitive: Bool)
        /// An ICU regular expression (NSRegularExpression).
        case regex(String, caseSensitive: Bool)
        /// The text may have at most this many characters (Unicode scalars).
        case maxChars(Int)
        /// At most this many tokens of the serving model (needs a token counter; skipped without).
        case maxTokens(Int)
        /// The model-based classifier (see `ModerationClassifier`): categories scoring at or over
        /// the threshold become findings; nil categories = any unsafe category.
        case classifier(categories: [String]?)
    }

    public var kind: Kind
    public var action: ModerationAction
    /// A name for refusals and verdicts (keyword and regex rules).
    public var name: String?
    /// Injection and classifier: the score at which a finding is made (default 0.5).
    public var threshold: Double?
    /// Redaction text; default "[REDACTED:<detector>]".
    public var replacement: String?

    public init(_ kind: Kind, action: ModerationAction, name: String? = nil, threshold: Double? = nil, replacement: String? = nil) {
        self.kind = kind; self.action = action; self.name = name; self.threshold = threshold; self.replacement = replacement
    }
}

/// A named policy: rules for what goes into the model and for what comes out.
public struct ModerationPolicy: Sendable, Equatable {
    public var name: String
    public var input: [ModerationRule]
    public var output: [ModerationRule]
    public init(name: String, input: [ModerationRule], output: [ModerationRule]) {
        self.name = name; self.input = input; self.output = output
    }
    public func rules(_ d: ModerationDirection) -> [ModerationRule] { d == .input ? input : output }
    public var isEmpty: Bool { input.isEmpty && output.isEmpty }
    public var usesClassifier: Bool {
        (input + output).contains { if case .classifier = $0.kind { return true }; return false }
    }

    // MARK: presets

    /// "off": nothing. "standard": secrets in input are refused, injection attempts flagged,
    /// personal data and secrets in output redacted. "strict": additionally redacts personal
    /// data in input, refuses injection attempts and long inputs, and stops output that
    /// contains a secret.
    public static let presets: [String: ModerationPolicy] = [
        "off": ModerationPolicy(name: "off", input: [], output: []),
        "standard": ModerationPolicy(name: "standard", input: [
            ModerationRule(.detector("secret.*"), action: .block),
            ModerationRule(.detector("injection"), action: .flag, threshold: 0.5),
        ], output: [
            ModerationRule(.detector("pii.*"), action: .redact),
            ModerationRule(.detector("secret.*"), action: .redact),
        ]),
        "strict": ModerationPolicy(name: "strict", input: [
            ModerationRule(.detector("pii.*"), action: .redact),
            ModerationRule(.detector("secret.*"), action: .block),
            ModerationRule(.detector("injection"), action: .block, threshold: 0.5),
            ModerationRule(.maxChars(32_000), action: .block),
        ], output: [
            ModerationRule(.detector("pii.*"), action: .redact),
            ModerationRule(.detector("secret.*"), action: .block),
            ModerationRule(.detector("injection"), action: .flag, threshold: 0.5),
        ]),
    ]
}

/// Where a guard-prompt classifier runs (the server resolves the model id).
public struct ClassifierSettings: Sendable, Equatable {
    public var model: String
    public var maxTokens: Int
    public init(model: String, maxTokens: Int = 12) { self.model = model; self.maxTokens = maxTokens }
}

/// The "moderation" section of the deployment policy file: named policies, the default, and an
/// optional classifier. Built-in presets ("off", "standard", "strict") are always available and
/// can be extended ("extends": "standard") or replaced by a policy of the same name.
///
/// ```json
/// "moderation": {
///   "default": "standard",
///   "classifier": {"model": "smollm2-135m-instruct"},
///   "policies": {
///     "support-bot": {"extends": "standard",
///                     "input":  [{"keywords": ["project falcon"], "action": "block", "name": "codename"}],
///                     "output": [{"detector": "pii.ip", "action": "allow"}]}
///   }
/// }
/// ```
public struct ModerationConfig: Sendable, Equatable {
    public var defaultPolicy: String
    public var policies: [String: ModerationPolicy]
    public var classifier: ClassifierSettings?

    public init(defaultPolicy: String = "standard", policies: [String: ModerationPolicy] = [:], classifier: ClassifierSettings? = nil) {
        self.defaultPolicy = defaultPolicy; self.policies = policies; self.classifier = classifier
    }

    /// Presets only, with `defaultPolicy` as the default.
    public static func presets(default name: String = "standard") -> ModerationConfig { ModerationConfig(defaultPolicy: name) }

    /// A policy by name: the file's, else a preset.
    public func policy(named name: String) -> ModerationPolicy? { policies[name] ?? ModerationPolicy.presets[name] }

    public var policyNames: [String] { Array(Set(policies.keys).union(ModerationPolicy.presets.keys)).sorted() }

    /// The policy for a request: the key's own (through `selector`, e.g. the access store's
    /// per-key `moderation_policy`), else the default. A name that does not exist is an error
    /// (fail closed rather than run unmoderated).
    public func policy(forKey keyID: String?, selector: ((String?) -> String?)?) throws -> ModerationPolicy {
        let name = selector?(keyID) ?? defaultPolicy
        guard let p = policy(named: name) else {
            throw ModerationPolicyError("moderation policy '\(name)' is not defined (defined: \(policyNames.joined(separator: ", "))); fix the policy file or the key's moderation_policy")
        }
        return p
    }

    // MARK: reading the policy file

    /// Reads the "moderation" section of a policy file. A file without one gives the presets
    /// with "off" as default (moderation is opted into: `"moderation": {}` selects "standard").
    /// Other sections are ignored (other components read them).
    public static func load(policyFile path: String) throws -> ModerationConfig {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ModerationPolicyError("cannot read the policy file \(path): \(error.localizedDescription)")
        }
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: data) } catch {
            throw ModerationPolicyError("the policy file \(path) is not valid JSON: \(error.localizedDescription)")
        }
        guard let obj = root as? [String: Any] else { throw ModerationPolicyError("the policy file \(path) must hold a JSON object") }
        guard let section = obj["moderation"] else { return .presets(default: "off") }
        do { return try parse(section: section) } catch let e as ModerationPolicyError {
            throw ModerationPolicyError("\(path): \(e.message)")
        }
    }

    /// Parses the section's JSON text (the value of "moderation").
    public static func parse(json: String) throws -> ModerationConfig {
        guard let data = json.data(using: .utf8), let v = try? JSONSerialization.jsonObject(with: data) else {
            throw ModerationPolicyError("moderation: not valid JSON")
        }
        return try parse(section: v)
    }

    static let sectionKeys = ["default", "policies", "classifier"]
    static let policyKeys = ["extends", "input", "output", "description"]
    static let ruleKinds = ["detector", "keywords", "regex", "max_chars", "max_tokens", "classifier"]
    static let ruleKeys = ruleKinds + ["action", "name", "whole_word", "case_sensitive", "threshold", "replacement", "categories"]

    static func checkKeys(_ o: [String: Any], _ known: [String], at path: String) throws {
        // "$comment" documents a policy file anywhere, as in the other sections.
        for k in o.keys.sorted() where !known.contains(k) && k != "$comment" {
            throw ModerationPolicyError("\(path): unknown key '\(k)' (known: \(known.joined(separator: ", ")))")
        }
    }

    public static func parse(section: Any) throws -> ModerationConfig {
        guard let o = section as? [String: Any] else { throw ModerationPolicyError("moderation: must be an object") }
        try checkKeys(o, sectionKeys, at: "moderation")
        var config = ModerationConfig()
        if let c = o["classifier"] {
            guard let co = c as? [String: Any] else { throw ModerationPolicyError("moderation.classifier: must be an object like {\"model\": \"smollm2-135m-instruct\"}") }
            try checkKeys(co, ["model", "max_tokens"], at: "moderation.classifier")
            guard let m = co["model"] as? String, !m.isEmpty else { throw ModerationPolicyError("moderation.classifier.model: must name a served model") }
            var s = ClassifierSettings(model: m)
            if let n = co["max_tokens"] {
                guard let i = n as? Int, (1...64).contains(i) else { throw ModerationPolicyError("moderation.classifier.max_tokens: must be an integer 1…64") }
                s.maxTokens = i
            }
            config.classifier = s
        }
        var raw: [String: [String: Any]] = [:]
        if let p = o["policies"] {
            guard let po = p as? [String: Any] else { throw ModerationPolicyError("moderation.policies: must be an object of named policies") }
            for (name, v) in po {
                guard !name.isEmpty else { throw ModerationPolicyError("moderation.policies: a policy name must not be empty") }
                guard let vo = v as? [String: Any] else { throw ModerationPolicyError("moderation.policies.\(name): must be an object with \"input\" and/or \"output\"") }
                try checkKeys(vo, policyKeys, at: "moderation.policies.\(name)")
                raw[name] = vo
            }
        }
        // Resolve "extends" (a preset or another policy), refusing cycles.
        func build(_ name: String, _ seen: [String]) throws -> ModerationPolicy {
            guard let vo = raw[name] else {
                if let p = ModerationPolicy.presets[name] { return p }
                throw ModerationPolicyError("moderation.policies.\(seen.last ?? name).extends: no policy or preset '\(name)' (presets: off, standard, strict)")
            }
            let path = "moderation.policies.\(name)"
            var base = ModerationPolicy(name: name, input: [], output: [])
            if let e = vo["extends"] {
                guard let en = e as? String else { throw ModerationPolicyError("\(path).extends: must be a policy name") }
                if seen.contains(en) { throw ModerationPolicyError("\(path).extends: '\(en)' extends itself (\((seen + [en]).joined(separator: " → ")))") }
                // A policy may extend the preset it replaces.
                let parent = en == name ? (ModerationPolicy.presets[en].map { $0 } ?? nil) : try build(en, seen + [name])
                guard let parent else { throw ModerationPolicyError("\(path).extends: '\(en)' extends itself") }
                base.input = parent.input; base.output = parent.output
            }
            if let d = vo["description"], !(d is String) { throw ModerationPolicyError("\(path).description: must be a string") }
            base.input += try parseRules(vo["input"], at: "\(path).input")
            base.output += try parseRules(vo["output"], at: "\(path).output")
            return base
        }
        for name in raw.keys { config.policies[name] = try build(name, []) }
        if let d = o["default"] {
            guard let dn = d as? String else { throw ModerationPolicyError("moderation.default: must be a policy name") }
            config.defaultPolicy = dn
        }
        guard config.policy(named: config.defaultPolicy) != nil else {
            throw ModerationPolicyError("moderation.default: no policy '\(config.defaultPolicy)' (defined: \(config.policyNames.joined(separator: ", ")))")
        }
        for (name, p) in config.policies where p.usesClassifier && config.classifier == nil {
            throw ModerationPolicyError("moderation.policies.\(name): uses the classifier but moderation.classifier names no model")
        }
        return config
    }

    static func parseRules(_ v: Any?, at path: String) throws -> [ModerationRule] {
        guard let v else { return [] }
        guard let list = v as? [Any] else { throw ModerationPolicyError("\(path): must be a list of rules") }
        return try list.enumerated().map { i, item in try parseRule(item, at: "\(path)[\(i)]") }
    }

    static func parseRule(_ item: Any, at path: String) throws -> ModerationRule {
        guard let o = item as? [String: Any] else { throw ModerationPolicyError("\(path): a rule must be an object such as {\"detector\": \"pii.email\", \"action\": \"redact\"}") }
        try checkKeys(o, ruleKeys, at: path)
        let kinds = ruleKinds.filter { o[$0] != nil }
        guard kinds.count == 1 else {
            throw ModerationPolicyError(kinds.isEmpty ? "\(path): a rule needs one of \(ruleKinds.joined(separator: ", "))"
                                                      : "\(path): a rule has one kind, got \(kinds.joined(separator: " and "))")
        }
        guard let a = o["action"] as? String else { throw ModerationPolicyError("\(path).action: required (allow, flag, redact or block)") }
        guard let action = ModerationAction(rawValue: a) else { throw ModerationPolicyError("\(path).action: '\(a)' is not one of allow, flag, redact, block") }
        func bool(_ k: String, _ def: Bool) throws -> Bool {
            guard let v = o[k] else { return def }
            guard let b = v as? Bool else { throw ModerationPolicyError("\(path).\(k): must be true or false") }
            return b
        }
        func string(_ k: String) throws -> String? {
            guard let v = o[k] else { return nil }
            guard let s = v as? String else { throw ModerationPolicyError("\(path).\(k): must be a string") }
            return s
        }
        func positiveInt(_ k: String) throws -> Int {
            guard let n = o[k] as? Int, n > 0, !(o[k] is Bool) else { throw ModerationPolicyError("\(path).\(k): must be a positive integer") }
            return n
        }
        let kind: ModerationRule.Kind
        switch kinds[0] {
        case "detector":
            guard let d = o["detector"] as? String, !d.isEmpty else { throw ModerationPolicyError("\(path).detector: must be a detector id") }
            guard !ModerationDetectors.select(d).isEmpty else {
                throw ModerationPolicyError("\(path).detector: unknown detector '\(d)' (known: \(ModerationDetectors.ids.joined(separator: ", ")), or pii.*, secret.*, *)")
            }
            kind = .detector(d)
        case "keywords":
            guard let k = o["keywords"] as? [String], !k.isEmpty, !k.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) else {
                throw ModerationPolicyError("\(path).keywords: must be a non-empty list of non-empty strings")
            }
            kind = .keywords(k, wholeWord: try bool("whole_word", true), caseSensitive: try bool("case_sensitive", false))
        case "regex":
            guard let r = o["regex"] as? String, !r.isEmpty else { throw ModerationPolicyError("\(path).regex: must be a non-empty pattern") }
            let cs = try bool("case_sensitive", false)
            do { _ = try NSRegularExpression(pattern: r) } catch {
                throw ModerationPolicyError("\(path).regex: not a valid regular expression: \(r)")
            }
            kind = .regex(r, caseSensitive: cs)
        case "max_chars": kind = .maxChars(try positiveInt("max_chars"))
        case "max_tokens": kind = .maxTokens(try positiveInt("max_tokens"))
        default:
            guard o["classifier"] as? Bool == true else { throw ModerationPolicyError("\(path).classifier: must be true") }
            var cats: [String]?
            if let c = o["categories"] {
                guard let l = c as? [String], !l.isEmpty else { throw ModerationPolicyError("\(path).categories: must be a non-empty list of category names") }
                cats = l
            }
            kind = .classifier(categories: cats)
        }
        if o["categories"] != nil, case .classifier = kind {} else if o["categories"] != nil {
            throw ModerationPolicyError("\(path).categories: only classifier rules take categories")
        }
        switch kind {
        case .maxChars, .maxTokens:
            guard action == .block || action == .flag else {
                throw ModerationPolicyError("\(path).action: a length limit can only flag or block (not \(action.rawValue))")
            }
        default: break
        }
        var threshold: Double?
        if let t = o["threshold"] {
            guard let d = t as? Double, !(t is Bool), d > 0, d <= 1 else { throw ModerationPolicyError("\(path).threshold: must be a number in (0, 1]") }
            switch kind {
            case .classifier: break
            case let .detector(d) where ModerationDetectors.select(d).contains("injection"): break
            default: throw ModerationPolicyError("\(path).threshold: only injection and classifier rules have a threshold")
            }
            threshold = d
        }
        return ModerationRule(kind, action: action, name: try string("name"), threshold: threshold, replacement: try string("replacement"))
    }
}
