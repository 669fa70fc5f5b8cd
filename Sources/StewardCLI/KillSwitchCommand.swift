import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Governance

/// `steward kill-switch disable-model|enable-model NAME`: stop a model on a running server.
/// Two paths to the same flag: without --server the flag is written to the shared database
/// (a server on this machine sees it on its next request and its running generations within
/// ~0.1 s); with --server the admin API of that server is called (needs an admin key).
struct KillSwitchCommand: Command {
    let spec = CommandSpec(
        name: "kill-switch",
        summary: "Disable or re-enable a model on a running server (new requests refused, running streams stopped).",
        usage: "steward kill-switch disable-model|enable-model NAME [--reason TEXT] [--server URL [--key KEY]] | kill-switch status",
        options: [
            .value("--server", valueName: "URL", help: "Call this server's admin API (e.g. https://host:8080) instead of writing the local database."),
            .value("--key", valueName: "KEY", help: "An admin-scope key for --server (default: $STEWARD_API_KEY; the environment keeps it out of the process list)."),
            .value("--reason", valueName: "TEXT", help: "disable-model: why (recorded with the flag)."),
        ],
        discussion: """
        A disabled model stays disabled across restarts until enable-model. Requests for it get
        403 with code model_disabled; running streams end at their next token with an error event.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard let sub = a.positionals.first else { throw UsageError("give a subcommand: disable-model, enable-model or status") }
        let rest = Array(a.positionals.dropFirst())
        switch sub {
        case "disable-model", "enable-model":
            guard rest.count == 1 else { throw UsageError("give one model id: steward kill-switch \(sub) NAME") }
            let model = rest[0]
            let disable = sub == "disable-model"
            if let server = a.value("--server") {
                let key = a.value("--key") ?? ProcessInfo.processInfo.environment["STEWARD_API_KEY"]
                guard let key, !key.isEmpty else { throw UsageError("--server needs an admin key: --key KEY or $STEWARD_API_KEY") }
                let path = "/admin/models/\(model.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? model)/\(disable ? "disable" : "enable")"
                var body = Data("{}".utf8)
                if let r = a.value("--reason") { body = (try? JSONSerialization.data(withJSONObject: ["reason": r])) ?? body }
                let (status, text) = try AdminClient.post(server: server, path: path, key: key, body: body)
                guard status == 200 else {
                    console.err("steward kill-switch: the server answered \(status): \(AdminClient.message(text))\n")
                    return ExitCode.failure
                }
            } else {
                let keys = try KeyStore(storage: SQLiteStorage())
                if disable { try keys.disableModel(model, reason: a.value("--reason")) } else { try keys.enableModel(model) }
            }
            console.out(disable ? "disabled \(model): new requests are refused and running generations stop at their next token\n"
                                : "enabled \(model)\n")
        case "status":
            let keys = try KeyStore(storage: SQLiteStorage())
            let list = try keys.disabledModels()
            console.out(list.isEmpty ? "no model is disabled\n" : list.map { "disabled \($0)\n" }.joined())
        default:
            throw UsageError("unknown subcommand '\(sub)' (disable-model, enable-model, status)")
        }
        return ExitCode.ok
    }
}

/// A tiny synchronous client for a server's admin API.
enum AdminClient {
    final class Box: @unchecked Sendable { var data: Data?; var status = 0; var error: Error? }

    static func post(server: String, path: String, key: String, body: Data) throws -> (Int, String) {
        let base = server.hasSuffix("/") ? String(server.dropLast()) : server
        guard let url = URL(string: base + path), url.scheme == "http" || url.scheme == "https" else {
            throw UsageError("--server must be an http:// or https:// URL, got '\(server)'")
        }
        var req = URLRequest(url: url)
        req.httpMethod = "POST"
        req.timeoutInterval = 30
        req.httpBody = body
        req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        req.setValue("Bearer " + key, forHTTPHeaderField: "Authorization")
        // An https server's certificate must be trusted by the system store (Foundation on Linux
        // has no per-request override); on the server's own machine, leave out --server instead.
        let session = URLSession(configuration: .ephemeral)
        defer { session.finishTasksAndInvalidate() }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        session.dataTask(with: req) { data, resp, err in
            box.data = data; box.status = (resp as? HTTPURLResponse)?.statusCode ?? 0; box.error = err
            done.signal()
        }.resume()
        done.wait()
        if let e = box.error {
            struct Unreachable: Error, CustomStringConvertible { let description: String }
            throw Unreachable(description: "cannot reach \(base): \(e.localizedDescription)")
        }
        return (box.status, String(decoding: box.data ?? Data(), as: UTF8.self))
    }

    /// The message of an OpenAI-shaped error body, or the body itself.
    static func message(_ text: String) -> String {
        if let d = text.data(using: .utf8), let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
           let e = o["error"] as? [String: Any], let m = e["message"] as? String { return m }
        return text
    }
}
