import Foundation
import Models
import Tokenization

/// What a server needs from a loaded decoder model: run a generation request to the end,
/// streaming chunks as they come. Implementations decide how concurrent requests share the
/// model: `SerialEngine` runs them one at a time; a batching engine advances every active
/// sequence in one forward pass per step. Results do not depend on which one is used.
public protocol GenerationEngine: AnyObject, Sendable {
    var model: DecoderModel { get }
    var tokenizer: Tokenizer { get }
    /// Tokens one sequence may hold (prompt plus generated).
    var contextLength: Int { get }
    /// Runs `request` on `prompt` and blocks until it finishes. `onChunk` is called for each
    /// piece of text as it is produced, possibly on another thread; it must return quickly
    /// (hand the chunk to a queue) and returns false to cancel (e.g. the client went away), in
    /// which case the sequence is freed at once and the result so far is returned.
    /// Throws `GenerationError.contextOverflow` before any work when prompt plus max tokens do
    /// not fit, and `GenerationError.busy` when the queue of waiting requests is full.
    func generate(prompt: [Int32], _ request: GenerationRequest,
                  onChunk: @escaping @Sendable (GeneratedChunk) -> Bool) throws -> GenerationResult
    /// A snapshot for /metrics and /api/ps.
    var status: EngineStatus { get }
}

public struct EngineStatus: Sendable, Equatable {
    /// Requests waiting for a free slot.
    public var queued: Int
    /// Sequences being processed now.
    public var active: Int
    /// KV cache positions in use over all sequences, and the total the engine holds.
    public var kvUsed: Int
    public var kvCapacity: Int
    public init(queued: Int, active: Int, kvUsed: Int, kvCapacity: Int) {
        self.queued = queued; self.active = active; self.kvUsed = kvUsed; self.kvCapacity = kvCapacity
    }
}

/// Runs one request at a time on a single session, keeping its KV cache between requests so a
/// request that extends the previous one (a chat's history) only evaluates the new tokens.
/// Waiting requests queue in arrival order, up to `maxQueue`.
public final class SerialEngine: GenerationEngine, @unchecked Sendable {
    public let session: Session
    public var model: DecoderModel { session.model }
    public var tokenizer: Tokenizer { session.tokenizer }
    public var contextLength: Int { session.contextLength }
    public let maxQueue: Int

    private let turn = NSCondition()
    private var busy = false
    private var waiting = 0

    public init(model: DecoderModel, tokenizer: Tokenizer, contextLength: Int? = nil, maxQueue: Int = 64) throws(GenerationError) {
        session = try Session(model: model, tokenizer: tokenizer, contextLength: contextLength)
        self.maxQueue = maxQueue
    }

    public func generate(prompt: [Int32], _ request: GenerationRequest,
                         onChunk: @escaping @Sendable (GeneratedChunk) -> Bool) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw GenerationError.emptyPrompt }
        if prompt.count + request.maxTokens > contextLength {
            throw GenerationError.contextOverflow(promptTokens: prompt.count, maxTokens: request.maxTokens, contextLength: contextLength)
        }
        turn.lock()
        if busy && waiting >= maxQueue {
            turn.unlock()
            throw GenerationError.busy(queued: waiting)
        }
        waiting += 1
        while busy { turn.wait() }
        waiting -= 1
        busy = true
        turn.unlock()
        defer {
            turn.lock()
            busy = false
            turn.signal()
            turn.unlock()
        }
        return try session.generate(prompt: prompt, request, reusePrefix: true, onChunk: onChunk)
    }

    public var status: EngineStatus {
        turn.lock()
        defer { turn.unlock() }
        return EngineStatus(queued: waiting, active: busy ? 1 : 0,
                            kvUsed: busy ? session.cache.count : 0, kvCapacity: session.cache.capacity)
    }
}
