import Foundation
import Governance
import XCTest

final class SigningTests: XCTestCase {
    func testSignVerifyAndTamperDetection() throws {
        let key = try Ed25519Key.generate()
        let msg = Data("manifest v1".utf8)
        let sig = try key.sign(msg)
        XCTAssertEqual(sig.count, 64)
        XCTAssertTrue(key.verify(sig, for: msg))
        XCTAssertFalse(key.verify(sig, for: Data("manifest v2".utf8)))
        var bad = sig; bad[0] ^= 1
        XCTAssertFalse(key.verify(bad, for: msg))
        XCTAssertFalse(try Ed25519Key.generate().verify(sig, for: msg), "another key must not verify")
    }

    func testPEMRoundTripAndPublicOnlyKeys() throws {
        let key = try Ed25519Key.generate()
        let priv = try key.privatePEM()
        XCTAssertTrue(String(decoding: priv, as: UTF8.self).hasPrefix("-----BEGIN PRIVATE KEY-----"))
        let again = try Ed25519Key.load(pem: priv)
        XCTAssertEqual(again.publicKeyHex, key.publicKeyHex)
        XCTAssertEqual(key.publicKeyHex.count, 64)
        let pub = try Ed25519Key.load(pem: try key.publicPEM())
        XCTAssertFalse(pub.hasPrivateKey)
        let msg = Data("x".utf8)
        XCTAssertTrue(pub.verify(try again.sign(msg), for: msg))
        XCTAssertThrowsError(try pub.sign(msg))
    }

    func testOpenSSLGeneratedKeyLoads() throws {
        // Interop: a key made by the openssl command line tool (when present) loads and signs.
        let dir = NSTemporaryDirectory() + "steward-sign-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = ["genpkey", "-algorithm", "ed25519", "-out", dir + "/k.pem"]
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else { throw XCTSkip("no openssl command") }
        try p.run(); p.waitUntilExit()
        let key = try Ed25519Key.load(path: dir + "/k.pem")
        XCTAssertTrue(key.hasPrivateKey)
        XCTAssertTrue(key.verify(try key.sign(Data("m".utf8)), for: Data("m".utf8)))
    }

    func testGarbageKeyIsAClearError() {
        XCTAssertThrowsError(try Ed25519Key.load(pem: Data("not a key".utf8))) { e in
            XCTAssertTrue("\(e)".contains("openssl genpkey"), "\(e)")
        }
    }

    func testSecrets() throws {
        XCTAssertEqual(Secrets.sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertTrue(Secrets.constantTimeEqual(Data("abc".utf8), Data("abc".utf8)))
        XCTAssertFalse(Secrets.constantTimeEqual(Data("abc".utf8), Data("abd".utf8)))
        XCTAssertFalse(Secrets.constantTimeEqual(Data("abc".utf8), Data("ab".utf8)))
        let r1 = try Secrets.randomBytes(32), r2 = try Secrets.randomBytes(32)
        XCTAssertEqual(r1.count, 32)
        XCTAssertNotEqual(r1, r2)
    }
}
