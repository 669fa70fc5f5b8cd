import Foundation
import ModelFiles

/// What `steward serve` learns when it admits a model file: its store record (if registered),
/// its licence id, and the policy's decision.
public struct ModelAdmission: Sendable {
    public let path: String
    public let record: ModelRecord?
    public let licenseID: String
    public let decision: LicenseDecision?
    /// True when the policy denied the licence and `--override-license` admitted it anyway.
    public let overridden: Bool
    /// Things the operator should know (e.g. "not in the store: no digest check").
    public let notes: [String]
}

/// The checks before a model is loaded for serving, in order:
/// 1. store: a registered model's files are re-hashed (or stat-checked under
///    `models.trust_unchanged_files`) and a changed file is refused; its signature is checked
///    (refused when broken, or missing under `models.require_signed`);
///    a model not in the store is refused under `models.require_registered`/`require_signed`,
///    else served with a note that nothing was verified;
/// 2. licence: with a policy, the licence (store record, else the file's own metadata or model
///    card) must be allowed; `overrideLicense` admits a denied one only when the policy allows
///    overrides, and the override is recorded (AdminAudit). Without a policy nothing is enforced.
public enum ServeGate {
    public static func admit(path: String, store: ModelStore?, policy: DeploymentPolicy?, overrideLicense: Bool = false,
                             progress: HashProgress? = nil) throws -> ModelAdmission {
        var notes: [String] = []
        let record: ModelRecord?
        if let store {
            record = try store.verifyForLoad(path: path, policy: policy, progress: progress)
        } else {
            if let mp = policy?.models, mp.requireRegistered || mp.requireSigned {
                throw ModelStoreError.notRegistered(path: path)
            }
            record = nil
        }
        var licenseRaw: String?
        if let record {
            licenseRaw = record.licenseAsWritten ?? record.license
            if record.licenseOverride != nil { notes.append("admitted to the store with a licence override") }
        } else {
            notes.append("not in the model store: digests and signatures not checked (add it with `steward models add`)")
            licenseRaw = ModelStore.licenseOnDisk(path)?.license
        }
        let licenseID = LicenseCatalog.lookup(licenseRaw).id
        guard let policy else {
            return ModelAdmission(path: path, record: record, licenseID: licenseID, decision: nil, overridden: false, notes: notes)
        }
        let name = record?.name ?? (path as NSString).lastPathComponent
        let d = LicensePolicy.evaluate(license: licenseRaw, policy: policy)
        var overridden = false
        if !d.allowed {
            let refusal = LicenseRefusal(model: name, decision: d)
            guard overrideLicense else { throw ModelStoreError.licenseDenied(refusal) }
            guard policy.licenses.allowOverride else { throw ModelStoreError.overrideNotAllowed(refusal) }
            overridden = true
            notes.append("licence denied by policy, served because of --override-license: " + d.reasons.joined(separator: "; "))
            AdminAudit.record(action: "serve.license_override", target: name,
                              details: ["license": licenseID, "path": path, "reasons": d.reasons.joined(separator: "; ")])
        }
        return ModelAdmission(path: path, record: record, licenseID: licenseID, decision: d, overridden: overridden, notes: notes)
    }
}

extension ModelStore {
    /// The licence a model on disk declares: GGUF `general.license`, else the `license:` of a
    /// model card (README.md) beside it. Nil when neither says.
    public static func licenseOnDisk(_ path: String) -> (license: String, source: String)? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return nil }
        guard let d = try? describe(root: canonicalPath(path), isDirectory: isDir.boolValue) else {
            // Not a model we can parse; a model card may still say.
            let dir = isDir.boolValue ? path : (path as NSString).deletingLastPathComponent
            return modelCardLicense(dir).map { ($0, "model card (README.md)") }
        }
        if let l = d.ggufLicense { return (l, "gguf general.license") }
        if let l = d.cardLicense { return (l, "model card (README.md)") }
        let canon = canonicalPath(path)
        if let p = PinnedPackage.all.first(where: { ModelLocator.path(forName: $0.model).map(canonicalPath) == canon }) {
            return (p.license, "pinned package list (shared/MODELS.md)")
        }
        return nil
    }
}
