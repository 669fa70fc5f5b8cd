import Foundation
import XCTest
import Governance
import StewardCLI

final class DoctorCommandTests: XCTestCase {
    func lines(_ out: String, _ prefix: String) -> [String] {
        out.split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix) }
    }

    func testBindAddressAgainstKeys() throws {
        try withStewardHome("doctor-bind") { home in
            chmod(home.path, 0o700)
            let local = steward(["doctor"])
            XCTAssertEqual(local.code, 0, local.out)
            let open = steward(["doctor", "--host", "0.0.0.0"])
            XCTAssertEqual(open.code, 1, "no keys on every interface must be fixed")
            XCTAssertTrue(lines(open.out, "FIX").contains { $0.contains("0.0.0.0") && $0.contains("steward keys create") }, open.out)
            XCTAssertEqual(steward(["keys", "create", "--name", "ops", "--scopes", "admin"]).code, 0)
            let keyed = steward(["doctor", "--host", "0.0.0.0"])
            XCTAssertEqual(keyed.code, 0, keyed.out)
            XCTAssertTrue(lines(keyed.out, "warn").contains { $0.contains("clear text") }, keyed.out)
            XCTAssertFalse(steward(["doctor", "--host", "0.0.0.0", "--tls"]).out.contains("clear text"))
        }
    }

    func testModelStoreIsVerified() throws {
        try withStewardHome("doctor-models") { home in
            chmod(home.path, 0o700)
            let scratch = try GovernanceScratch("doctor-models-files")
            let path = try scratch.gguf("m", license: "apache-2.0")
            XCTAssertEqual(steward(["models", "add", path]).code, 0)
            let good = steward(["doctor"])
            XCTAssertTrue(lines(good.out, "ok").contains { $0.contains("model m: 1 file verified") }, good.out)
            // Change one byte of the registered file: doctor must say to fix it.
            let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
            try h.seek(toOffset: try h.seekToEnd() - 1)
            try h.write(contentsOf: Data([0x7f]))
            try h.close()
            let bad = steward(["doctor"])
            XCTAssertEqual(bad.code, 1, bad.out)
            XCTAssertTrue(lines(bad.out, "FIX").contains { $0.contains("model m: files changed") }, bad.out)
        }
    }

    func testFileModes() throws {
        try withStewardHome("doctor-modes") { home in
            XCTAssertEqual(steward(["keys", "create", "--name", "a"]).code, 0)
            chmod(home.path, 0o700)
            XCTAssertEqual(steward(["doctor"]).code, 0)
            chmod(home.path + "/steward.db", 0o644)
            let db = steward(["doctor"])
            XCTAssertEqual(db.code, 1)
            XCTAssertTrue(lines(db.out, "FIX").contains { $0.contains("steward.db is mode 644") && $0.contains("chmod 600") }, db.out)
            chmod(home.path + "/steward.db", 0o600)
            chmod(home.path, 0o755)
            let dir = steward(["doctor"])
            XCTAssertEqual(dir.code, 1)
            XCTAssertTrue(lines(dir.out, "FIX").contains { $0.contains("chmod 700") }, dir.out)
            chmod(home.path, 0o700)
        }
    }

    func testPolicyAndLoggingMode() throws {
        try withStewardHome("doctor-policy") { home in
            chmod(home.path, 0o700)
            let policy = home.path + "/policy.json"
            XCTAssertTrue(lines(steward(["doctor"]).out, "warn").contains { $0.contains("no policy file") })
            try StewardPaths.writePrivateFile(Data("{not json".utf8), to: policy)
            let broken = steward(["doctor"])
            XCTAssertEqual(broken.code, 1)
            XCTAssertTrue(lines(broken.out, "FIX").contains { $0.contains("not a valid JSON") }, broken.out)
            try StewardPaths.writePrivateFile(Data(#"{"audit":{"prompts":"full"}}"#.utf8), to: policy)
            let full = steward(["doctor"])
            XCTAssertEqual(full.code, 0, "full logging is a warning, not a fault")
            XCTAssertTrue(lines(full.out, "warn").contains { $0.contains("\"full\"") }, full.out)
            chmod(policy, 0o666)
            XCTAssertEqual(steward(["doctor"]).code, 1, "a world-writable policy must be fixed")
            // --policy names another file.
            let other = home.path + "/other.json"
            try StewardPaths.writePrivateFile(Data(#"{"audit":{"prompts":"hash"}}"#.utf8), to: other)
            chmod(policy, 0o600)
            XCTAssertTrue(steward(["doctor", "--policy", other]).out.contains("audit.prompts is \"hash\""))
        }
    }

    func testKeysExpiringAndAdminCount() throws {
        try withStewardHome("doctor-keys") { home in
            chmod(home.path, 0o700)
            let soon = ISO8601DateFormatter().string(from: Date().addingTimeInterval(2 * 86400 + 600))
            XCTAssertEqual(steward(["keys", "create", "--name", "soon", "--expires", soon]).code, 0)
            let out = steward(["doctor"]).out
            XCTAssertTrue(lines(out, "warn").contains { $0.contains("soon") && $0.contains("expires in 2 days") }, out)
            XCTAssertTrue(lines(out, "warn").contains { $0.contains("no active admin key") }, out)
            for i in 0..<4 { XCTAssertEqual(steward(["keys", "create", "--name", "admin\(i)", "--scopes", "admin"]).code, 0) }
            XCTAssertTrue(lines(steward(["doctor"]).out, "warn").contains { $0.contains("4 active admin keys") })
            XCTAssertEqual(steward(["kill-switch", "disable-model", "m"]).code, 0)
            XCTAssertTrue(lines(steward(["doctor"]).out, "warn").contains { $0.contains("model m is disabled") })
        }
    }
}
