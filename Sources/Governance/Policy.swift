import Foundation

/// The deployment policy's "licenses" and "models" sections (the rest of the policy file belongs
/// to the audit, moderation and access components, which decode their own sections).
///
/// ```json
/// { "licenses": { "use": "commercial", "distribution": "internal", "derivatives": ["quantize"],
///                 "allow": [], "deny": ["cc-by-nc-4.0"], "accept_unknown": false, "allow_override": false },
///   "models":   { "require_registered": false, "require_signed": false, "trusted_keys": [],
///                 "trust_unchanged_files": false } }
/// ```
public struct DeploymentPolicy: Sendable, Equatable {
    public enum Use: String, Sendable, CaseIterable { case commercial, research, personal }
    public enum Distribution: String, Sendable, CaseIterable { case `internal`, external }

    public struct Licenses: Sendable, Equatable {
        /// What the deployment is for.
        public var use: Use = .commercial
        /// Internal: served to the organisation's own people. External: weights or a service
        /// built on them reach people outside it (distribution duties apply).
        public var distribution: Distribution = .internal
        /// Derivatives the team plans to make.
        public var derivatives: Set<DerivativeAction> = []
        /// Licence ids allowed (empty: any catalogued licence not denied).
        public var allow: [String] = []
        public var deny: [String] = []
        /// Whether models whose licence is not known may be used.
        public var acceptUnknown = false
        /// Whether `--override-license` may admit a denied model (the override is recorded).
        public var allowOverride = false
        public init() {}
    }

    public struct Models: Sendable, Equatable {
        /// Serve only models registered in the store (`steward models add`).
        public var requireRegistered = false
        /// Serve only models with a valid signature (implies registered).
        public var requireSigned = false
        /// Public key ids (hex, as `steward models show` prints) whose signatures are trusted;
        /// empty: any valid signature counts.
        public var trustedKeys: [String] = []
        /// Skip re-hashing a file whose size, mtime and inode are unchanged since it was hashed.
        public var trustUnchangedFiles = false
        public init() {}
    }

    public var licenses = Licenses()
    public var models = Models()
    /// The file this was read from (nil: built-in defaults).
    public var sourcePath: String?

    public init() {}

    /// The default policy file: `$STEWARD_HOME/policy.json`.
    public static var defaultPath: String { StewardPaths.defaultPolicyFile }

    /// Reads `path` (or the default file when nil). Returns nil when no path was given and the
    /// default file does not exist: no policy declared, so nothing is enforced.
    public static func load(path: String?) throws(PolicyError) -> DeploymentPolicy? {
        if let path { return try load(contentsOf: path) }
        guard FileManager.default.fileExists(atPath: defaultPath) else { return nil }
        return try load(contentsOf: defaultPath)
    }

    public static func load(contentsOf path: String) throws(PolicyError) -> DeploymentPolicy {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
        }
        var p = try parse(data, origin: path)
        p.sourcePath = path
        return p
    }

    /// Decodes the "licenses" and "models" sections; other top-level sections are ignored
    /// (other components own them), unknown keys inside these two are errors naming the key.
    public static func parse(_ data: Data, origin: String = "policy") throws(PolicyError) -> DeploymentPolicy {
        let root: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw PolicyError.invalid(origin: origin, key: "", reason: "the policy must be a JSON object")
            }
            root = o
        } catch let e as PolicyError { throw e } catch {
            throw .invalid(origin: origin, key: "", reason: "not valid JSON (\(error.localizedDescription))")
        }
        var p = DeploymentPolicy()
        if let raw = root["licenses"] {
            guard let l = raw as? [String: Any] else { throw .invalid(origin: origin, key: "licenses", reason: "must be an object") }
            for (k, v) in l {
                let key = "licenses.\(k)"
                switch k {
                case "$comment": continue
                case "use":
                    guard let s = v as? String, let u = Use(rawValue: s) else {
                        throw .invalid(origin: origin, key: key, reason: "must be one of \(Use.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    p.licenses.use = u
                case "distribution":
                    guard let s = v as? String, let d = Distribution(rawValue: s) else {
                        throw .invalid(origin: origin, key: key, reason: "must be internal or external")
                    }
                    p.licenses.distribution = d
                case "derivatives":
                    if let b = try? bool(v, origin, key) {
                        p.licenses.derivatives = b ? Set(DerivativeAction.allCases) : []
                    } else if let list = v as? [String] {
                        var set = Set<DerivativeAction>()
                        for s in list {
                            guard let a = DerivativeAction(rawValue: s) else {
                                throw .invalid(origin: origin, key: key, reason: "unknown derivative '\(s)' (use finetune, merge, quantize)")
                            }
                            set.insert(a)
                        }
                        p.licenses.derivatives = set
                    } else {
                        throw .invalid(origin: origin, key: key, reason: "must be true, false or a list of finetune, merge, quantize")
                    }
                case "allow", "deny":
                    guard let list = v as? [String] else { throw .invalid(origin: origin, key: key, reason: "must be a list of licence ids") }
                    var ids: [String] = []
                    for s in list {
                        guard let id = LicenseCatalog.normalize(s) else {
                            throw .invalid(origin: origin, key: key, reason: "'\(s)' is not a catalogued licence (known: \(LicenseCatalog.ids.joined(separator: ", ")))")
                        }
                        ids.append(id)
                    }
                    if k == "allow" { p.licenses.allow = ids } else { p.licenses.deny = ids }
                case "accept_unknown": p.licenses.acceptUnknown = try bool(v, origin, key)
                case "allow_override": p.licenses.allowOverride = try bool(v, origin, key)
                default:
                    throw .invalid(origin: origin, key: key, reason: "unknown key (known: use, distribution, derivatives, allow, deny, accept_unknown, allow_override)")
                }
            }
        }
        if let raw = root["models"] {
            guard let m = raw as? [String: Any] else { throw .invalid(origin: origin, key: "models", reason: "must be an object") }
            for (k, v) in m {
                let key = "models.\(k)"
                switch k {
                case "$comment": continue
                case "require_registered": p.models.requireRegistered = try bool(v, origin, key)
                case "require_signed": p.models.requireSigned = try bool(v, origin, key)
                case "trust_unchanged_files": p.models.trustUnchangedFiles = try bool(v, origin, key)
                case "trusted_keys":
                    guard let list = v as? [String], list.allSatisfy({ $0.count == 64 && $0.allSatisfy(\.isHexDigit) }) else {
                        throw .invalid(origin: origin, key: key, reason: "must be a list of 64-hex-digit public key ids (see `steward models show`)")
                    }
                    p.models.trustedKeys = list.map { $0.lowercased() }
                default:
                    throw .invalid(origin: origin, key: key, reason: "unknown key (known: require_registered, require_signed, trusted_keys, trust_unchanged_files)")
                }
            }
        }
        return p
    }

    private static func bool(_ v: Any, _ origin: String, _ key: String) throws(PolicyError) -> Bool {
        // JSONSerialization gives NSNumber for both numbers and booleans; accept only booleans.
        if let n = v as? NSNumber, String(cString: n.objCType) == "c" { return n.boolValue }
        throw .invalid(origin: origin, key: key, reason: "must be true or false")
    }
}

public enum PolicyError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case invalid(origin: String, key: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "cannot read the policy file \(path): \(reason)"
        case let .invalid(origin, key, reason):
            return key.isEmpty ? "policy \(origin): \(reason)" : "policy \(origin): \(key) \(reason)"
        }
    }
}

/// Derivatives the adapt commands make (and a policy may plan).
public enum DerivativeAction: String, Sendable, CaseIterable, Hashable {
    case finetune, merge, quantize
}

/// The outcome of checking a licence against the policy: allowed or denied with every reason,
/// and the obligations that come with using it.
public struct LicenseDecision: Sendable, Equatable {
    public let licenseID: String
    /// The licence as written where it was found (before normalising).
    public let licenseAsWritten: String?
    public let allowed: Bool
    /// Why it is denied (empty when allowed).
    public let reasons: [String]
    /// What the deployment must do to comply (attribution, notices, thresholds, use policies).
    public let obligations: [String]
    /// Whether `--override-license` may admit it under this policy.
    public let overridable: Bool

    /// One paragraph for a refusal: what, why, what to do.
    public func refusal(model: String) -> String {
        var s = "licence policy denies \(model) (licence \(licenseID)):\n"
        for r in reasons { s += "  - \(r)\n" }
        s += overridable
            ? "Change the policy, or admit it anyway with --override-license (the override is recorded)."
            : "Change the policy (licenses section) or use a model whose licence the policy allows; overrides are off (licenses.allow_override is false)."
        return s
    }
}

/// Licence checks against a deployment policy.
public enum LicensePolicy {
    /// Evaluates a licence (as written anywhere: catalogue id, SPDX, GGUF `general.license`)
    /// against `policy`. With `action`, also checks that one derivative (what adapt commands do).
    public static func evaluate(license raw: String?, policy: DeploymentPolicy, action: DerivativeAction? = nil) -> LicenseDecision {
        let terms = LicenseCatalog.lookup(raw)
        let id = terms.id
        let lp = policy.licenses
        var reasons: [String] = []
        var obligations: [String] = []
        let written = raw.map { "'\($0)'" } ?? "none recorded"

        if lp.deny.contains(id) {
            reasons.append("\(id) is on the policy's deny list (licenses.deny)")
        }
        if terms.isUnknown {
            if lp.acceptUnknown {
                obligations.append("The licence is unknown (\(written)); the policy accepts unknown licences (licenses.accept_unknown), but find and record the licence before distributing anything.")
            } else {
                reasons.append("the licence is unknown (\(written)) and licenses.accept_unknown is false; record it with `steward models add … --license ID` (known: \(LicenseCatalog.ids.filter { $0 != LicenseCatalog.unknownID }.joined(separator: ", ")))")
            }
        } else if !lp.allow.isEmpty, !lp.allow.contains(id) {
            reasons.append("\(id) is not on the policy's allow list (licenses.allow: \(lp.allow.joined(separator: ", ")))")
        }

        // Unknown licences accepted by policy are not checked term by term: nothing is known.
        let checkTerms = !terms.isUnknown || !lp.acceptUnknown
        if checkTerms && !terms.isUnknown {
            switch (lp.use, terms.commercialUse) {
            case (.commercial, .no):
                reasons.append("\(id) forbids commercial use; policy licenses.use is commercial" + (terms.commercialNote.map { " (\($0))" } ?? ""))
            case (.commercial, .conditional):
                obligations.append("Commercial use is conditional: \(terms.commercialNote ?? "see the licence")")
            default: break
            }
            if lp.distribution == .external {
                switch terms.redistribution {
                case .no: reasons.append("\(id) forbids redistribution; policy licenses.distribution is external")
                case .conditional:
                    if lp.use == .commercial && terms.commercialUse == .no { break } // already denied above
                    obligations.append("Redistribution: \(terms.redistributionNote ?? "see the licence")")
                case .yes:
                    if let n = terms.redistributionNote { obligations.append("Redistribution: \(n)") }
                }
                obligations += terms.attribution
                if let notice = terms.requiredNotice, !terms.attribution.contains(where: { $0.contains(notice) }) {
                    obligations.append("Ship this notice: \(notice)")
                }
            }
            if let limit = terms.monthlyActiveUserLimit, lp.use == .commercial {
                obligations.append("Above \(LicenseCatalog.grouped(limit)) monthly active users a separate licence from the licensor is needed.")
            }
            if let aup = terms.acceptableUsePolicyURL {
                obligations.append("Every use must follow the acceptable-use policy: \(aup)")
            }
            var planned = lp.derivatives
            if let action { planned.insert(action) }
            for a in DerivativeAction.allCases where planned.contains(a) {
                let grant = a == .merge ? terms.merging : terms.derivatives
                let why = action == a && !lp.derivatives.contains(a) ? "the requested \(a.rawValue)" : "policy licenses.derivatives plans \(a.rawValue)"
                switch grant {
                case .no: reasons.append("\(id) does not allow derivatives (\(a.rawValue)); \(why)")
                case .conditional:
                    if lp.use == .commercial && terms.commercialUse == .no { break }
                    obligations.append("Derivatives (\(a.rawValue)): \(terms.derivativesNote ?? "see the licence")")
                case .yes:
                    if let n = terms.derivativesNote, a != .quantize { obligations.append("Derivatives (\(a.rawValue)): \(n)") }
                }
            }
            if !planned.isEmpty, let prefix = terms.derivativeNamePrefix, lp.distribution == .external {
                obligations.append("Name distributed derivative models starting with \"\(prefix)\".")
            }
            if !planned.isEmpty, terms.shareAlike, lp.distribution == .external, let n = terms.shareAlikeNote {
                obligations.append("Share-alike: \(n)")
            }
        }
        if let action, !lp.derivatives.contains(action) {
            reasons.append("the policy does not plan \(action.rawValue) derivatives (add \"\(action.rawValue)\" to licenses.derivatives)")
        }
        var seen = Set<String>()
        obligations = obligations.filter { seen.insert($0).inserted }
        return LicenseDecision(licenseID: id, licenseAsWritten: raw, allowed: reasons.isEmpty, reasons: reasons,
                               obligations: obligations, overridable: lp.allowOverride)
    }

    /// The check the adapt commands (fine-tune, merge, quantize) call before making a derivative
    /// of a stored model: throws `LicenseRefusal` when the policy denies it.
    @discardableResult
    public static func check(model: ModelRecord, action: DerivativeAction, policy: DeploymentPolicy) throws(LicenseRefusal) -> LicenseDecision {
        let d = evaluate(license: model.licenseAsWritten ?? model.license, policy: policy, action: action)
        guard d.allowed else { throw LicenseRefusal(model: model.name, decision: d) }
        return d
    }

    /// The same check for a model given as a store name or a path (a file not in the store is
    /// judged by the licence its metadata or model card declares), with the policy file at
    /// `policyPath` (nil: `$STEWARD_HOME/policy.json`). Returns nil when no policy is declared
    /// (nothing enforced, as at `models add` and `serve`). `override` admits a denied derivative
    /// only when the policy allows overrides; the override is recorded through `AdminAudit`.
    @discardableResult
    public static func check(model nameOrPath: String, action: DerivativeAction, store: ModelStore?,
                             policyPath: String? = nil, override: Bool = false) throws -> LicenseDecision? {
        guard let policy = try DeploymentPolicy.load(path: policyPath) else { return nil }
        let record = try store?.resolve(nameOrPath)
        let raw = record.map { $0.licenseAsWritten ?? $0.license } ?? ModelStore.licenseOnDisk(nameOrPath)?.license
        let name = record?.name ?? nameOrPath
        let d = evaluate(license: raw, policy: policy, action: action)
        if !d.allowed {
            let refusal = LicenseRefusal(model: name, decision: d)
            guard override else { throw ModelStoreError.licenseDenied(refusal) }
            guard policy.licenses.allowOverride else { throw ModelStoreError.overrideNotAllowed(refusal) }
            AdminAudit.record(action: "\(action.rawValue).license_override", target: name,
                              details: ["license": d.licenseID, "reasons": d.reasons.joined(separator: "; ")])
        }
        return d
    }
}

/// A licence policy refusal, with every reason.
public struct LicenseRefusal: Error, CustomStringConvertible, Equatable {
    public let model: String
    public let decision: LicenseDecision
    public var description: String { decision.refusal(model: model) }
}

/// The seam through which licence overrides and store changes reach the audit log. The lead
/// connects the audit helper's `AuditLog.recordAdmin`; until then records are kept only in the
/// model store's own `license_override` column.
public enum AdminAudit {
    public typealias Recorder = @Sendable (_ action: String, _ keyID: String?, _ target: String?, _ details: [String: String]) -> Void
    nonisolated(unsafe) private static var recorder: Recorder?
    private static let lock = NSLock()

    public static func setRecorder(_ r: Recorder?) {
        lock.lock(); defer { lock.unlock() }
        recorder = r
    }

    public static func record(action: String, keyID: String? = nil, target: String?, details: [String: String]) {
        lock.lock()
        let r = recorder
        lock.unlock()
        r?(action, keyID, target, details)
    }
}
