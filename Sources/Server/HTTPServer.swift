import Foundation
import CMicroHTTPD
#if canImport(Glibc)
import Glibc
#endif

public enum HTTPServerError: Error, CustomStringConvertible, Equatable {
    case cannotStart(host: String, port: Int)
    case badHost(String)
    case noTLS
    case tls(String)

    public var description: String {
        switch self {
        case let .cannotStart(host, port):
            return "cannot listen on \(host):\(port): the port may be in use (pick another with --port, or 0 for any free port)"
        case let .badHost(h):
            return "--host \(h) is not an IPv4 address (e.g. 127.0.0.1, or 0.0.0.0 for every interface)"
        case .noTLS:
            return "this libmicrohttpd was built without TLS, so --tls-cert/--tls-key cannot be served (Debian's libmicrohttpd12 has it; or terminate TLS in a reverse proxy)"
        case let .tls(m):
            return m
        }
    }
}

/// The HTTP transport: libmicrohttpd with one thread per connection. It gathers a request's
/// body (refusing more than `maxBodyBytes`), calls `handler` on the connection's thread, and
/// sends the response; a streamed body is read from its `ChunkPipe` as it is produced. When the
/// client goes away mid-stream, libmicrohttpd drops the response and the pipe is cancelled, so
/// the generation writing to it stops at its next token.
public final class HTTPServer: @unchecked Sendable {
    public typealias Handler = @Sendable (HTTPRequest) -> HTTPResponse

    public let host: String
    public let requestedPort: Int
    public let maxBodyBytes: Int
    /// PEM certificate (chain) and private key: serve HTTPS instead of HTTP.
    public let tls: (certificate: String, key: String)?
    let handler: Handler
    // libmicrohttpd keeps pointers to the PEM text: these stay alive as long as the daemon.
    private var tlsBuffers: (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>)?

    private let lock = NSLock()
    private var daemon: OpaquePointer?
    private var boundPort = 0
    private var stopping = false
    private var openStreams: [ObjectIdentifier: ChunkPipe] = [:]

    /// - Parameters:
    ///   - host: an IPv4 address; "localhost" means 127.0.0.1.
    ///   - port: 0 lets the system pick a free port (see `port` after `start`).
    public init(host: String = "127.0.0.1", port: Int = 8080, maxBodyBytes: Int = 1 << 20,
                tls: (certificate: String, key: String)? = nil, handler: @escaping Handler) {
        self.host = host == "localhost" ? "127.0.0.1" : host
        self.requestedPort = port
        self.maxBodyBytes = maxBodyBytes
        self.tls = tls
        self.handler = handler
    }

    /// True when the linked libmicrohttpd can serve HTTPS.
    public static var supportsTLS: Bool { steward_mhd_has_tls() != 0 }

    /// The port being listened on (0 before `start`).
    public var port: Int { lock.lock(); defer { lock.unlock() }; return boundPort }

    public var url: String { "\(tls == nil ? "http" : "https")://\(host):\(port)" }

    public func start() throws {
        var probe = in_addr()
        guard inet_pton(AF_INET, host, &probe) == 1 else { throw HTTPServerError.badHost(host) }
        guard (0...65535).contains(requestedPort) else { throw HTTPServerError.cannotStart(host: host, port: requestedPort) }
        // A client that disconnects must not kill the process (libmicrohttpd sends with
        // MSG_NOSIGNAL, but other writes might not).
        signal(SIGPIPE, SIG_IGN)
        let me = Unmanaged.passUnretained(self).toOpaque()
        let started: OpaquePointer?
        if let tls {
            guard HTTPServer.supportsTLS else { throw HTTPServerError.noTLS }
            guard tls.certificate.contains("-----BEGIN CERTIFICATE-----") else {
                throw HTTPServerError.tls("the --tls-cert file is not a PEM certificate (it should start with -----BEGIN CERTIFICATE-----)")
            }
            guard tls.key.contains("PRIVATE KEY-----") else {
                throw HTTPServerError.tls("the --tls-key file is not a PEM private key (-----BEGIN PRIVATE KEY----- or similar)")
            }
            let cert = strdup(tls.certificate), key = strdup(tls.key)
            guard let cert, let key else { throw HTTPServerError.tls("out of memory") }
            started = steward_mhd_start_tls(host, UInt16(requestedPort), accessHandler, me, requestCompleted, me, 300, 8 << 20, cert, key)
            if started == nil {
                free(cert); free(key)
                throw HTTPServerError.tls("cannot serve HTTPS on \(host):\(requestedPort): the port may be in use, or the certificate and key do not match or cannot be read by GnuTLS")
            }
            tlsBuffers = (cert, key)
        } else {
            started = steward_mhd_start(host, UInt16(requestedPort), accessHandler, me, requestCompleted, me, 300, 8 << 20)
        }
        guard let d = started else {
            throw HTTPServerError.cannotStart(host: host, port: requestedPort)
        }
        lock.lock()
        daemon = d
        boundPort = Int(steward_mhd_port(d))
        lock.unlock()
    }

    /// Stops accepting connections, cancels open streams, waits for connection threads to end.
    /// Callers cancel their own in-flight non-streamed work first (see `API.shutdown`).
    public func stop() {
        lock.lock()
        guard let d = daemon, !stopping else { lock.unlock(); return }
        stopping = true
        let streams = Array(openStreams.values)
        lock.unlock()
        let listenFD = MHD_quiesce_daemon(d)
        for s in streams { s.cancel() }
        MHD_stop_daemon(d)
        if listenFD >= 0 { close(listenFD) }
        lock.lock(); daemon = nil; lock.unlock()
        if let (c, k) = tlsBuffers {
            // Wipe the private key's text before handing the memory back.
            memset(k, 0, strlen(k))
            free(c); free(k)
            tlsBuffers = nil
        }
    }

    deinit { stop() }

    var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    // MARK: - libmicrohttpd callbacks (on connection threads)

    final class RequestState {
        var body = Data()
        var tooLarge = false
        var responded = false
    }

    final class StreamReader {
        let pipe: ChunkPipe
        weak var server: HTTPServer?
        var pending = Data()
        init(pipe: ChunkPipe, server: HTTPServer) { self.pipe = pipe; self.server = server }

        func read(into buf: UnsafeMutablePointer<CChar>, max: Int) -> Int {
            if pending.isEmpty {
                guard let next = pipe.next() else { return Int(MHD_CONTENT_READER_END_OF_STREAM) }
                pending = next
            }
            let n = min(max, pending.count)
            pending.withUnsafeBytes { src in
                if let base = src.baseAddress, n > 0 { UnsafeMutableRawPointer(buf).copyMemory(from: base, byteCount: n) }
            }
            pending.removeFirst(n)
            if pending.isEmpty { pending = Data() } else { pending = Data(pending) }
            return n
        }
    }

    func access(_ conn: OpaquePointer, url: String, method: String, upload: UnsafePointer<CChar>?,
                uploadSize: UnsafeMutablePointer<Int>, state slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> MHD_Result {
        if isStopping { return MHD_Result.NO }
        guard let raw = slot.pointee else {
            let st = RequestState()
            slot.pointee = Unmanaged.passRetained(st).toOpaque()
            steward_mhd_nodelay(conn)
            // A declared body over the limit is refused before it is read.
            if let cl = MHD_lookup_connection_value(conn, MHD_ValueKind.HEADER_KIND, "Content-Length"),
               let n = Int(String(cString: cl)), n > maxBodyBytes {
                st.tooLarge = true
                st.responded = true
                return respond(conn, to: makeRequest(conn, url: url, method: method, body: Data(), tooLarge: true))
            }
            return MHD_Result.YES
        }
        let st = Unmanaged<RequestState>.fromOpaque(raw).takeUnretainedValue()
        if uploadSize.pointee > 0 {
            let n = uploadSize.pointee
            if !st.tooLarge, let upload {
                if st.body.count + n > maxBodyBytes {
                    st.tooLarge = true
                    st.body = Data()
                } else {
                    upload.withMemoryRebound(to: UInt8.self, capacity: n) { st.body.append($0, count: n) }
                }
            }
            uploadSize.pointee = 0
            return MHD_Result.YES
        }
        if st.responded { return MHD_Result.YES }
        st.responded = true
        let body = st.body
        st.body = Data()
        return respond(conn, to: makeRequest(conn, url: url, method: method, body: body, tooLarge: st.tooLarge))
    }

    private func makeRequest(_ conn: OpaquePointer, url: String, method: String, body: Data, tooLarge: Bool) -> HTTPRequest {
        final class Box { var headers: [String: String] = [:] }
        let box = Box()
        let iterator: MHD_KeyValueIterator = { cls, _, key, value in
            guard let cls, let key else { return MHD_Result.YES }
            let b = Unmanaged<Box>.fromOpaque(cls).takeUnretainedValue()
            b.headers[String(cString: key).lowercased()] = value.map { String(cString: $0) } ?? ""
            return MHD_Result.YES
        }
        _ = withExtendedLifetime(box) {
            MHD_get_connection_values(conn, MHD_ValueKind.HEADER_KIND, iterator, Unmanaged.passUnretained(box).toOpaque())
        }
        var r = HTTPRequest(method: method, path: url, headers: box.headers, body: body)
        if tooLarge { r.bodyLimit = maxBodyBytes }
        return r
    }

    private func respond(_ conn: OpaquePointer, to request: HTTPRequest) -> MHD_Result {
        let r = handler(request)
        var response: OpaquePointer?
        switch r.body {
        case let .bytes(d):
            response = d.withUnsafeBytes { p in
                MHD_create_response_from_buffer(d.count, UnsafeMutableRawPointer(mutating: p.baseAddress), .RESPMEM_MUST_COPY)
            }
        case let .stream(pipe):
            lock.lock(); openStreams[ObjectIdentifier(pipe)] = pipe; lock.unlock()
            let reader = Unmanaged.passRetained(StreamReader(pipe: pipe, server: self)).toOpaque()
            response = MHD_create_response_from_callback(UInt64.max, 4096, streamRead, reader, streamFree)
            if response == nil { streamFree(reader) }
        }
        guard let response else { return MHD_Result.NO }
        for (k, v) in r.headers { _ = MHD_add_response_header(response, k, v) }
        let ok = MHD_queue_response(conn, UInt32(r.status), response)
        MHD_destroy_response(response)
        return ok
    }

    fileprivate func streamEnded(_ pipe: ChunkPipe) {
        pipe.cancel()
        lock.lock(); openStreams[ObjectIdentifier(pipe)] = nil; lock.unlock()
    }
}

private let accessHandler: MHD_AccessHandlerCallback = { cls, conn, url, method, _, upload, uploadSize, slot in
    guard let cls, let conn, let uploadSize, let slot else { return MHD_Result.NO }
    let server = Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue()
    return server.access(conn, url: url.map { String(cString: $0) } ?? "/", method: method.map { String(cString: $0) } ?? "GET",
                         upload: upload, uploadSize: uploadSize, state: slot)
}

private let requestCompleted: MHD_RequestCompletedCallback = { _, _, slot, _ in
    guard let slot, let raw = slot.pointee else { return }
    Unmanaged<HTTPServer.RequestState>.fromOpaque(raw).release()
    slot.pointee = nil
}

private let streamRead: MHD_ContentReaderCallback = { cls, _, buf, max in
    guard let cls, let buf else { return Int(MHD_CONTENT_READER_END_WITH_ERROR) }
    return Unmanaged<HTTPServer.StreamReader>.fromOpaque(cls).takeUnretainedValue().read(into: buf, max: max)
}

/// Called when libmicrohttpd drops the response: after the last byte, or when the client went
/// away or the server stops. Either way the producer is told to stop.
private let streamFree: MHD_ContentReaderFreeCallback = { cls in
    guard let cls else { return }
    let reader = Unmanaged<HTTPServer.StreamReader>.fromOpaque(cls).takeRetainedValue()
    if let s = reader.server { s.streamEnded(reader.pipe) } else { reader.pipe.cancel() }
}
