import Foundation
import Governance

/// `steward keys create|list|revoke|rotate|grant|ungrant`: API keys in $STEWARD_HOME/steward.db. A running
/// server reads the same database, so a revocation here takes effect on its next request.
struct KeysCommand: Command {
    let spec = CommandSpec(
        name: "keys",
        summary: "Create, list, revoke and rotate API keys (stored as hashes in $STEWARD_HOME/steward.db); grant RAG collections.",
        usage: "steward keys create --name NAME [--scopes chat,completions,embeddings,rag,admin] [--models a,b|*] [--collections a,b|*] [--rpm N] [--tpm N] [--daily-tokens N] [--expires DATE] [--moderation-policy NAME] | keys list | keys revoke ID|NAME | keys rotate ID|NAME | keys grant ID|NAME --collections a,b|* | keys ungrant ID|NAME --collections a,b|*",
        options: [
            .value("--name", valueName: "NAME", help: "create: the key's name (unique; revoke and rotate accept it instead of the id)."),
            .value("--scopes", valueName: "LIST", help: "create: comma-separated scopes (default chat,completions,embeddings; admin only when asked)."),
            .value("--models", valueName: "LIST|*", help: "create: the models the key may use (default *: every model)."),
            .value("--collections", valueName: "LIST|*", help: "create, grant, ungrant: RAG collections the key may retrieve from (default none; needs the rag scope, which --collections adds when --scopes is not given)."),
            .value("--rpm", valueName: "N", help: "create: requests per minute (default: no limit)."),
            .value("--tpm", valueName: "N", help: "create: tokens (prompt + completion) per minute."),
            .value("--daily-tokens", valueName: "N", help: "create: tokens per UTC day (kept across restarts)."),
            .value("--expires", valueName: "DATE", help: "create: ISO 8601 date (2026-01-31: from midnight UTC) or date-time (2026-01-31T18:00:00Z)."),
            .value("--moderation-policy", valueName: "NAME", help: "create: the moderation policy for this key's requests."),
        ],
        discussion: """
        `keys create` prints the key once on standard output (sk-stw-<id>-<secret>; details go to
        standard error), so KEY=$(steward keys create --name ci) works. Only its SHA-256 is stored.
        `keys list` prints one key per line: id, name, scopes, models, limits, state, created, last used.
        As soon as one key exists (in any state), `steward serve` requires a key on every route but /health.
        A key retrieves only from the collections granted to it (`keys grant NAME --collections handbook`).
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard let sub = a.positionals.first else { throw UsageError("give a subcommand: create, list, revoke, rotate, grant or ungrant") }
        let rest = Array(a.positionals.dropFirst())
        let createOnly = ["--name", "--scopes", "--models", "--rpm", "--tpm", "--daily-tokens", "--expires", "--moderation-policy"]
        if sub != "create" && sub != "grant" && sub != "ungrant" && a.value("--collections") != nil {
            throw UsageError("--collections is an option of 'keys create', 'keys grant' and 'keys ungrant'")
        }
        if sub != "create", let used = createOnly.first(where: { a.value($0) != nil }) {
            throw UsageError("\(used) is an option of 'keys create'")
        }
        switch sub {
        case "create":
            guard rest.isEmpty else { throw UsageError("unexpected argument '\(rest[0])' (the name goes in --name)") }
            var k = NewKey(name: try a.require("--name"))
            if let s = a.value("--scopes") { k.scopes = try KeyScope.parseList(s) }
            if let c = a.value("--collections") {
                k.collections = KeysCommand.list(c)
                guard !k.collections.isEmpty else { throw UsageError("--collections needs collection names, or * for every collection") }
                if a.value("--scopes") == nil { k.scopes.append(.rag) }
            }
            if let m = a.value("--models") {
                let list = m.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                guard !list.isEmpty else { throw UsageError("--models needs model ids, or * for every model") }
                k.models = list == ["*"] ? nil : list
            }
            k.rpm = try a.int("--rpm"); k.tpm = try a.int("--tpm"); k.dailyTokens = try a.int("--daily-tokens")
            if let e = a.value("--expires") { k.expires = try KeyStore.parseExpiry(e) }
            k.moderationPolicy = a.value("--moderation-policy")
            let (record, key) = try store().create(k)
            console.err("created key \(record.id) (\(record.name)): \(KeysCommand.describe(record))\n"
                        + "The key is printed below once; store it now (only its hash is kept).\n")
            console.out(key + "\n")
        case "list":
            guard rest.isEmpty else { throw UsageError("unexpected argument '\(rest[0])'") }
            let keys = try store().list()
            if keys.isEmpty { console.err("no keys yet (steward keys create --name NAME); the server is open to anyone who can reach it\n") }
            for k in keys { console.out(KeysCommand.line(k) + "\n") }
        case "revoke":
            guard rest.count == 1 else { throw UsageError("give one key id or name: steward keys revoke ID|NAME") }
            let r = try store().revoke(rest[0])
            console.out("revoked key \(r.id) (\(r.name)); a running server refuses it from its next request\n")
        case "rotate":
            guard rest.count == 1 else { throw UsageError("give one key id or name: steward keys rotate ID|NAME") }
            let (record, key) = try store().rotate(rest[0])
            console.err("rotated key \(record.id) (\(record.name)): the old secret stops working now; the new key is printed below once\n")
            console.out(key + "\n")
        case "grant", "ungrant":
            guard rest.count == 1 else { throw UsageError("give one key id or name: steward keys \(sub) ID|NAME --collections a,b") }
            let list = KeysCommand.list(try a.require("--collections"))
            let r = try store().grant(rest[0], collections: list, revoke: sub == "ungrant")
            console.out("key \(r.id) (\(r.name)) may retrieve from: \(r.collections.isEmpty ? "no collection" : r.collections.joined(separator: ","))\n")
        default:
            throw UsageError("unknown subcommand '\(sub)' (create, list, revoke, rotate, grant, ungrant)")
        }
        return ExitCode.ok
    }

    static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    private func store() throws -> KeyStore { try KeyStore(storage: SQLiteStorage()) }

    static func iso(_ d: Date?) -> String {
        guard let d else { return "-" }
        let f = ISO8601DateFormatter()
        return f.string(from: d)
    }

    static func describe(_ k: KeyRecord) -> String {
        "scopes=\(k.scopes.map(\.rawValue).joined(separator: ",")) models=\(k.models?.joined(separator: ",") ?? "*") "
            + "rpm=\(k.rpm.map(String.init) ?? "-") tpm=\(k.tpm.map(String.init) ?? "-") daily_tokens=\(k.dailyTokens.map(String.init) ?? "-")"
            + (k.expires.map { " expires=\(iso($0))" } ?? "")
            + (k.moderationPolicy.map { " moderation_policy=\($0)" } ?? "")
            + (k.collections.isEmpty ? "" : " collections=\(k.collections.joined(separator: ","))")
    }

    /// One key per line: id first, then name, scopes, models, limits, state, created, last used.
    static func line(_ k: KeyRecord) -> String {
        "\(k.id)  \(k.name)  \(describe(k))  state=\(k.state().rawValue)  created=\(iso(k.created))  last_used=\(k.lastUsed.map(iso) ?? "never")"
    }
}
