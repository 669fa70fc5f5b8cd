import Foundation
import Models

/// An HTTP request as the handlers see it: no socket, so handlers are testable in-process.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path without the query string, e.g. "/v1/chat/completions".
    public var path: String
    /// Header names lowercased.
    public var headers: [String: String]
    public var body: Data
    /// Set by the transport when the body was over its limit (then `body` is empty): the API
    /// answers 413 in its own error shape.
    public var bodyLimit: Int?
    /// What is learned while this request is handled (caller, model, tokens, moderation
    /// verdicts), for the audit log and usage accounting. Shared by copies of the request.
    public var context = RequestContext()

    public init(method: String, path: String, headers: [String: String] = [:], body: Data = Data()) {
        self.method = method.uppercased()
        if let q = path.firstIndex(of: "?") { self.path = String(path[..<q]) } else { self.path = path }
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { _, b in b })
        self.body = body
    }

    public init(method: String, path: String, json: String) {
        self.init(method: method, path: path, headers: ["Content-Type": "application/json"], body: Data(json.utf8))
    }
}

/// Facts about one request gathered by the layers that handle it: authentication sets the key,
/// handlers the model and token counts, moderation its verdicts, policy its overrides. Read
/// once the response (or its stream) has ended, to write the audit record and usage.
public final class RequestContext: @unchecked Sendable {
    /// A fresh id per request, returned as `X-Request-Id` and recorded in the audit log.
    public let id: String
    public let started = Date()
    private let lock = NSLock()
    private var _keyID: String?
    private var _model: String?
    private var _adapter: String?
    private var _adapterUses: [LoRAUse] = []
    private var _promptTokens = 0
    private var _completionTokens = 0
    private var _moderation: [String] = []
    private var _overrides: [String] = []

    public init(id: String = RequestContext.newID()) { self.id = id }

    public static func newID() -> String {
        "req_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
    }

    private func locked<T>(_ body: () -> T) -> T { lock.lock(); defer { lock.unlock() }; return body() }

    /// The id of the API key that made the request (never the key itself).
    public var keyID: String? { get { locked { _keyID } } set { locked { _keyID = newValue } } }
    public var model: String? { get { locked { _model } } set { locked { _model = newValue } } }
    public var adapter: String? { get { locked { _adapter } } set { locked { _adapter = newValue } } }
    /// The adapters the request runs with (resolved from `model: BASE+ADAPTER` or `adapter`).
    public var adapterUses: [LoRAUse] { get { locked { _adapterUses } } set { locked { _adapterUses = newValue } } }
    public var promptTokens: Int { get { locked { _promptTokens } } set { locked { _promptTokens = newValue } } }
    public var completionTokens: Int { get { locked { _completionTokens } } set { locked { _completionTokens = newValue } } }
    /// Moderation findings as short verdicts, e.g. "input:pii.email:redact".
    public var moderation: [String] { locked { _moderation } }
    public func addModeration(_ verdict: String) { locked { _moderation.append(verdict) } }
    /// Policy overrides used for this request (recorded in the audit log).
    public var overrides: [String] { locked { _overrides } }
    public func addOverride(_ override: String) { locked { _overrides.append(override) } }
    /// Adds generated-token counts as they are produced (streams add per choice).
    public func addTokens(prompt: Int, completion: Int) {
        locked { _promptTokens += prompt; _completionTokens += completion }
    }

    // Prompt and completion text, kept only when the audit policy logs them (hash, redacted,
    // full): with `captureText` false the handlers' text is never even built.
    private var _captureText = false
    private var _prompt: String?
    private var _completion: String?
    private var _error: String?
    public var captureText: Bool { get { locked { _captureText } } set { locked { _captureText = newValue } } }
    public var prompt: String? { locked { _prompt } }
    public var completion: String? { locked { _completion } }
    public func capturePrompt(_ text: @autoclosure () -> String) {
        guard captureText else { return }
        let t = text()
        locked { _prompt = t }
    }
    /// Appends a choice's generated text (choices are separated by a blank line).
    public func captureCompletion(_ text: @autoclosure () -> String) {
        guard captureText else { return }
        let t = text()
        locked { _completion = _completion.map { $0 + "\n\n" + t } ?? t }
    }
    /// How the request ended when not normally (a stream's in-band error code, "cancelled").
    public var error: String? { get { locked { _error } } set { locked { _error = newValue } } }
}

public struct HTTPResponse: Sendable {
    public enum Body: Sendable {
        case bytes(Data)
        /// Produced while it is sent (SSE, NDJSON); the transport reads it until it ends.
        case stream(ChunkPipe)
    }

    public var status: Int
    public var headers: [(String, String)]
    public var body: Body

    public init(status: Int, headers: [(String, String)] = [], body: Body) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func json<T: Encodable>(_ value: T, status: Int = 200) -> HTTPResponse {
        let data = (try? JSONCoding.encoder.encode(value)) ?? Data("{}".utf8)
        return HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: .bytes(data))
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The whole body: the bytes, or everything the stream yields until it ends (blocks).
    /// For tests and in-process callers.
    public func collectBody() -> Data {
        switch body {
        case let .bytes(d): return d
        case let .stream(p):
            var out = Data()
            while let d = p.next() { out += d }
            return out
        }
    }
}

/// One JSON configuration for the whole API.
enum JSONCoding {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.withoutEscapingSlashes]
        return e
    }()
    static var decoder: JSONDecoder { JSONDecoder() }
}

/// A one-producer, one-consumer queue of byte chunks with back-channel cancellation: the
/// producer (a generation) writes; the consumer (the HTTP transport, or a test) reads until the
/// producer closes it. When the consumer goes away (client disconnected, server stopping) it
/// cancels, and the producer's next `write` returns false so it stops at once.
public final class ChunkPipe: @unchecked Sendable {
    private let cond = NSCondition()
    private var chunks: [Data] = []
    private var closed = false
    private var cancelled = false
    private var wroteAny = false

    public init() {}

    /// Queues `data`; false when the consumer has cancelled (stop producing).
    @discardableResult
    public func write(_ data: Data) -> Bool {
        cond.lock(); defer { cond.unlock() }
        if cancelled { return false }
        if !data.isEmpty { chunks.append(data); wroteAny = true; written += 1 }
        cond.broadcast()
        return true
    }

    @discardableResult
    public func write(_ s: String) -> Bool { write(Data(s.utf8)) }

    /// The producer is done.
    public func close() {
        runFinishHook()
        cond.lock(); closed = true; cond.broadcast(); cond.unlock()
    }

    // The audit log records a stream when it ends and before its last frame can reach the
    // client: `finish(_:)` runs the hook, then queues the last frame and closes. The hook runs
    // exactly once, on whichever side comes second (the API sets it after the handler returned;
    // a fast producer may have finished already, and then the API runs it before the transport
    // has the response at all).
    private var finishHook: (@Sendable () -> Void)?
    private var producerDone = false

    /// Sets the hook run once when the producer finishes (or now, if it already has).
    public func onFinish(_ hook: @escaping @Sendable () -> Void) {
        cond.lock()
        if producerDone { cond.unlock(); hook(); return }
        finishHook = hook
        cond.unlock()
    }

    /// Ends the stream with `last` (e.g. "data: [DONE]"): the finish hook runs before it is queued.
    public func finish(_ last: String) {
        runFinishHook()
        write(last)
        close()
    }

    private func runFinishHook() {
        cond.lock()
        let hook = finishHook
        finishHook = nil
        producerDone = true
        cond.unlock()
        hook?()
    }

    /// Drops the frames the consumer has not taken yet (the producer goes on writing): a kill
    /// switch withdraws the output queued ahead of a slow client, so nothing generated before
    /// the stop but not yet sent still reaches it.
    public func dropPending() {
        cond.lock(); chunks = []; cond.unlock()
    }

    /// The consumer is gone: drop what is queued and make further writes fail.
    public func cancel() {
        cond.lock(); cancelled = true; closed = true; chunks = []; cond.broadcast(); cond.unlock()
    }

    private var _failure: String?
    /// Set when the stream ended with an in-band error frame (its code), for the audit log.
    public var failure: String? {
        get { cond.lock(); defer { cond.unlock() }; return _failure }
        set { cond.lock(); _failure = newValue; cond.unlock() }
    }

    private var written = 0
    /// How many frames the producer has queued so far (read or not, dropped or not).
    public var framesWritten: Int { cond.lock(); defer { cond.unlock() }; return written }

    /// True once the producer has written something.
    public var hasWritten: Bool { cond.lock(); defer { cond.unlock() }; return wroteAny }

    public var isCancelled: Bool { cond.lock(); defer { cond.unlock() }; return cancelled }

    /// The next chunk, blocking until one is written; nil once the pipe is closed and drained.
    public func next() -> Data? {
        cond.lock(); defer { cond.unlock() }
        while chunks.isEmpty && !closed { cond.wait() }
        return chunks.isEmpty ? nil : chunks.removeFirst()
    }

    /// Blocks until something was written or the producer closed; true when something was.
    func waitForFirstWrite() -> Bool {
        cond.lock(); defer { cond.unlock() }
        while !wroteAny && !closed { cond.wait() }
        return wroteAny
    }
}
