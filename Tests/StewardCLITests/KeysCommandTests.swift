import Foundation
import XCTest
import Governance
import Server
import StewardCLI
import TestSupport

/// Runs `body` with $STEWARD_HOME pointing at a fresh directory (restored afterwards).
func withStewardHome<T>(_ tag: String, _ body: (URL) throws -> T) throws -> T {
    let dir = try makeTemporaryDirectory(tag)
    defer { try? FileManager.default.removeItem(at: dir) }
    let old = ProcessInfo.processInfo.environment["STEWARD_HOME"]
    setenv("STEWARD_HOME", dir.path, 1)
    defer { if let old { setenv("STEWARD_HOME", old, 1) } else { unsetenv("STEWARD_HOME") } }
    return try body(dir)
}

final class KeysCommandTests: XCTestCase {
    func testCollectionGrants() throws {
        try withStewardHome("keys-grants") { _ in
            var r = steward(["keys", "create", "--name", "reader", "--collections", "handbook,hr"])
            XCTAssertEqual(r.code, 0, r.err)
            XCTAssertTrue(r.err.contains("scopes=chat,completions,embeddings,rag"), "--collections adds the rag scope: \(r.err)")
            XCTAssertTrue(r.err.contains("collections=handbook,hr"), r.err)
            r = steward(["keys", "grant", "reader", "--collections", "finance"])
            XCTAssertEqual(r.code, 0, r.err)
            XCTAssertEqual(r.out, "key \(try KeyStore(storage: SQLiteStorage()).find("reader").id) (reader) may retrieve from: finance,handbook,hr\n")
            r = steward(["keys", "ungrant", "reader", "--collections", "hr,handbook"])
            XCTAssertTrue(r.out.hasSuffix("may retrieve from: finance\n"), r.out)
            XCTAssertTrue(steward(["keys", "list"]).out.contains("collections=finance"))
            r = steward(["keys", "create", "--name", "chat", "--scopes", "chat", "--collections", "hr"])
            XCTAssertEqual(r.code, 1)
            XCTAssertTrue(r.err.contains("'rag' scope"), r.err)
            r = steward(["keys", "list", "--collections", "x"])
            XCTAssertEqual(r.code, 2, "a usage error: --collections belongs to create, grant and ungrant")
        }
    }

    func testCreateListRevokeRotate() throws {
        try withStewardHome("keys") { home in
            let created = steward(["keys", "create", "--name", "ci"])
            XCTAssertEqual(created.code, 0, created.err)
            let key = created.out.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertNotNil(key.range(of: "^sk-stw-[0-9a-f]{12}-[A-Za-z0-9_-]{43}$", options: .regularExpression), "stdout is the key alone")
            let id = String(key.dropFirst("sk-stw-".count).prefix(12))
            XCTAssertTrue(created.err.contains("once"), created.err)
            XCTAssertFalse(created.err.contains(key), "the key is printed once, on stdout only")
            // The database file is 0600 and holds no key.
            var st = stat()
            XCTAssertEqual(stat(home.path + "/steward.db", &st), 0)
            XCTAssertEqual(Int(st.st_mode) & 0o777, 0o600)

            let admin = steward(["keys", "create", "--name", "ops", "--scopes", "admin,chat", "--models", "a,b", "--rpm", "10",
                                 "--tpm", "2000", "--daily-tokens", "100000", "--expires", "2099-12-31", "--moderation-policy", "strict"])
            XCTAssertEqual(admin.code, 0, admin.err)

            let list = steward(["keys", "list"])
            XCTAssertEqual(list.code, 0)
            let lines = list.out.split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.count, 2, list.out)
            XCTAssertTrue(lines[0].hasPrefix(id + "  ci  "), lines[0])
            XCTAssertTrue(lines[0].contains("scopes=chat,completions,embeddings "), "default scopes, no admin: \(lines[0])")
            XCTAssertTrue(lines[0].contains("models=*") && lines[0].contains("state=active") && lines[0].contains("last_used=never"), lines[0])
            XCTAssertTrue(lines[1].contains("scopes=chat,admin") && lines[1].contains("models=a,b") && lines[1].contains("rpm=10")
                          && lines[1].contains("tpm=2000") && lines[1].contains("daily_tokens=100000")
                          && lines[1].contains("expires=2099-12-31T00:00:00Z") && lines[1].contains("moderation_policy=strict"), lines[1])
            XCTAssertFalse(list.out.contains(String(key.suffix(43))), "list never shows secrets")

            // Rotate by name: a new secret for the same id; the old one stops working.
            let rotated = steward(["keys", "rotate", "ci"])
            XCTAssertEqual(rotated.code, 0, rotated.err)
            let newKey = rotated.out.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertTrue(newKey.hasPrefix("sk-stw-\(id)-"))
            XCTAssertNotEqual(newKey, key)
            let store = try KeyStore(storage: SQLiteStorage())
            XCTAssertEqual(try store.check(key), .unknown)
            if case .valid = try store.check(newKey) {} else { XCTFail("the rotated key works") }

            // Revoke by id.
            let revoked = steward(["keys", "revoke", id])
            XCTAssertEqual(revoked.code, 0, revoked.err)
            XCTAssertTrue(steward(["keys", "list"]).out.split(separator: "\n").first?.contains("state=revoked") ?? false)
            if case .revoked = try store.check(newKey) {} else { XCTFail("revoked") }
        }
    }

    func testRefusals() throws {
        try withStewardHome("keys-bad") { _ in
            let noName = steward(["keys", "create"])
            XCTAssertEqual(noName.code, 2)
            XCTAssertTrue(noName.err.contains("--name"), noName.err)
            let badScope = steward(["keys", "create", "--name", "x", "--scopes", "chat,root"])
            XCTAssertEqual(badScope.code, 1)
            XCTAssertTrue(badScope.err.contains("unknown scope 'root'"), badScope.err)
            let badDate = steward(["keys", "create", "--name", "x", "--expires", "soon"])
            XCTAssertEqual(badDate.code, 1)
            XCTAssertTrue(badDate.err.contains("ISO 8601"), badDate.err)
            let past = steward(["keys", "create", "--name", "x", "--expires", "2001-01-01"])
            XCTAssertEqual(past.code, 1)
            XCTAssertTrue(past.err.contains("past"), past.err)
            XCTAssertEqual(steward(["keys", "create", "--name", "x", "--rpm", "many"]).code, 2)
            XCTAssertEqual(steward(["keys", "create", "--name", "dup"]).code, 0)
            let dup = steward(["keys", "create", "--name", "dup"])
            XCTAssertEqual(dup.code, 1)
            XCTAssertTrue(dup.err.contains("already exists"), dup.err)
            let missing = steward(["keys", "revoke", "nobody"])
            XCTAssertEqual(missing.code, 1)
            XCTAssertTrue(missing.err.contains("nobody") && missing.err.contains("keys list"), missing.err)
            XCTAssertEqual(steward(["keys", "revoke", "--name", "dup"]).code, 2)
            XCTAssertEqual(steward(["keys", "frobnicate"]).code, 2)
            XCTAssertEqual(steward(["keys"]).code, 2)
        }
    }

    func testKillSwitchWritesTheSharedFlag() throws {
        try withStewardHome("killswitch") { _ in
            let off = steward(["kill-switch", "disable-model", "smollm2-135m-instruct", "--reason", "incident"])
            XCTAssertEqual(off.code, 0, off.err)
            XCTAssertEqual(try KeyStore(storage: SQLiteStorage()).disabledModels(), ["smollm2-135m-instruct"])
            XCTAssertTrue(steward(["kill-switch", "status"]).out.contains("disabled smollm2-135m-instruct"))
            XCTAssertEqual(steward(["kill-switch", "enable-model", "smollm2-135m-instruct"]).code, 0)
            XCTAssertEqual(try KeyStore(storage: SQLiteStorage()).disabledModels(), [])
            let noKey = steward(["kill-switch", "disable-model", "m", "--server", "http://127.0.0.1:1"])
            XCTAssertEqual(noKey.code, 2, "--server needs an admin key")
        }
    }

    /// `kill-switch --server` calls a running server's admin API (plain HTTP, no URLSession, so
    /// the dist binary needs no libcurl): the key is checked and the server's answer comes back.
    /// (Disabling a served model through the admin API is covered in ServerAuthTests.)
    func testKillSwitchThroughTheAdminAPI() throws {
        try withStewardHome("killswitch-http") { home in
            let admin = steward(["keys", "create", "--name", "ops", "--scopes", "admin"])
            XCTAssertEqual(admin.code, 0, admin.err)
            let key = admin.out.trimmingCharacters(in: .whitespacesAndNewlines)
            let registry = ModelRegistry()
            registry.markReady()
            let api = API(models: registry, version: "test")
            let gate = try AccessGate(storage: SQLiteStorage(path: home.path + "/steward.db"))
            api.access = gate
            let server = HTTPServer(host: "127.0.0.1", port: 0) { api.handle($0) }
            try server.start()
            defer { server.stop() }
            // No model is served here: the admin API's own answer (404 naming the model) comes back
            // through the client, after the key was accepted.
            let off = steward(["kill-switch", "disable-model", "m1", "--server", server.url, "--key", key])
            XCTAssertEqual(off.code, 1, off.err)
            XCTAssertTrue(off.err.contains("404") && off.err.contains("model 'm1' not found"), off.err)
            XCTAssertEqual(try gate.keys.disabledModels(), [])
            let wrong = steward(["kill-switch", "enable-model", "m1", "--server", server.url, "--key", "sk-stw-000000000000-nope"])
            XCTAssertEqual(wrong.code, 1)
            XCTAssertTrue(wrong.err.contains("401"), wrong.err)
            XCTAssertFalse(wrong.err.contains("nope"), "the key is never echoed: \(wrong.err)")
            let tls = steward(["kill-switch", "enable-model", "m1", "--server", "https://127.0.0.1:1", "--key", key])
            XCTAssertEqual(tls.code, 2)
            XCTAssertTrue(tls.err.contains("only http://"), tls.err)
        }
    }

    /// serve on a non-loopback address with no key in the store is refused before anything is
    /// loaded (the model here is real, so the refusal is about access, not the model).
    func testServeRefusesAllInterfacesWithoutKeys() throws {
        let model = try TestPaths.model("smollm2-135m-instruct")
        try withStewardHome("serve-refuse") { _ in
            let r = steward(["serve", "--model", model, "--host", "0.0.0.0", "--port", "0"])
            XCTAssertEqual(r.code, 2)
            XCTAssertTrue(r.err.contains("no API key exists") && r.err.contains("--insecure-no-auth") && r.err.contains("steward keys create"), r.err)
            XCTAssertFalse(r.out.contains("listening"), r.out)
        }
    }
}
