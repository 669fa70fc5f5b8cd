import Glibc
import Foundation
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

/// A tiny synchronous client for a server's admin API: plain HTTP/1.1 over a socket. Not
/// URLSession, whose Linux implementation needs libcurl, which the self-contained dist binary
/// does not carry; https is refused (on the server's own machine leave out --server, the kill
/// switch then goes through the database).
enum AdminClient {
    struct Unreachable: Error, CustomStringConvertible { let description: String }

    static func post(server: String, path: String, key: String, body: Data) throws -> (Int, String) {
        let base = server.hasSuffix("/") ? String(server.dropLast()) : server
        guard let url = URL(string: base + path), let scheme = url.scheme, let host = url.host else {
            throw UsageError("--server must be an http:// URL, got '\(server)'")
        }
        guard scheme == "http" else {
            throw UsageError("--server \(server): only http:// is supported; for a TLS server run the command on its machine without --server (it uses the database)")
        }
        let port = url.port ?? 80
        let fd = try connect(host: host, port: port, base: base)
        defer { close(fd) }
        var request = "POST \(url.path.isEmpty ? "/" : url.path) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
        request += "Authorization: Bearer \(key)\r\nContent-Type: application/json\r\n"
        request += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Data(request.utf8) + body
        let sent = bytes.withUnsafeBytes { buf -> Bool in
            var off = 0
            while off < buf.count {
                let n = send(fd, buf.baseAddress! + off, buf.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return false }
                off += n
            }
            return true
        }
        guard sent else { throw Unreachable(description: "cannot send to \(base): \(String(cString: strerror(errno)))") }
        var response = Data()
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { break }
            response.append(contentsOf: chunk[0..<n])
        }
        // "HTTP/1.1 200 OK\r\n…\r\n\r\nbody" (the admin API answers with Content-Length, never chunked).
        guard let headEnd = response.range(of: Data("\r\n\r\n".utf8)),
              let statusLine = String(data: response[..<headEnd.lowerBound], encoding: .utf8)?.split(separator: "\r\n").first,
              let status = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
            throw Unreachable(description: "\(base) did not answer with HTTP")
        }
        return (status, String(decoding: response[headEnd.upperBound...], as: UTF8.self))
    }

    /// A connected TCP socket with 30-second send and receive timeouts.
    private static func connect(host: String, port: Int, base: String) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw Unreachable(description: "cannot reach \(base): unknown host \(host)")
        }
        defer { freeaddrinfo(list) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if fd >= 0 {
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                if Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 { return fd }
                close(fd)
            }
            ai = a.pointee.ai_next
        }
        throw Unreachable(description: "cannot reach \(base): \(String(cString: strerror(errno)))")
    }

    /// The message of an OpenAI-shaped error body, or the body itself.
    static func message(_ text: String) -> String {
        if let d = text.data(using: .utf8), let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
           let e = o["error"] as? [String: Any], let m = e["message"] as? String { return m }
        return text
    }
}
