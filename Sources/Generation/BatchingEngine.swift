import Foundation
import Models
import Tokenization

/// Continuous batching: up to `slots` sequences share one decode loop. At every step each
/// decoding sequence advances by one token in a single batched forward pass (its own KV cache,
/// its own sampling settings); new requests join between steps and finished ones leave. A
/// newcomer's prompt is evaluated a slice at a time between decode steps so it does not stall
/// the others for long. A slot keeps its KV entries after a request, and a new request that
/// shares a prefix with a free slot's tokens (a system prompt, a chat history) reuses them.
///
/// Every sequence's arithmetic is the one it would get alone: decode rows are computed exactly
/// as single-token forwards, and prompt slices exactly as `DecoderModel.forward` computes the
/// prompt, so batched and unbatched greedy output are identical.
public final class BatchingEngine: GenerationEngine, @unchecked Sendable {
    public let model: DecoderModel
    public let tokenizer: Tokenizer
    public let contextLength: Int
    public let maxQueue: Int
    /// Prompt tokens evaluated per loop iteration for one newcomer (a multiple of 4, 16...128).
    public let promptSlice: Int

    private final class Job {
        let prompt: [Int32]
        let request: GenerationRequest
        var sequence: SequenceGenerator
        let finished = DispatchSemaphore(value: 0)
        var result: Result<GenerationResult, Error>?
        /// Prompt tokens already in the slot's cache; the prompt is done when this reaches
        /// prompt.count.
        var evaluated = 0
        /// The first prompt token the prefill phase has to evaluate (after prefix reuse).
        var start = 0
        var promptLogprobs: [TokenLogprob] = []
        var pending: Int32?
        let queuedAt = Date()
        var promptStart: Date?
        var decodeStart: Date?
        init(prompt: [Int32], request: GenerationRequest, sequence: SequenceGenerator) {
            self.prompt = prompt
            self.request = request
            self.sequence = sequence
        }
    }

    private final class Slot {
        let cache: KVCache
        /// The tokens whose K/V are in the cache, in order.
        var tokens: [Int32] = []
        var job: Job?
        init(cache: KVCache) { self.cache = cache }
    }

    private let slots: [Slot]
    private let lock = NSCondition()
    private var waiting: [Job] = []
    private var stopping = false
    private var loopThread: Thread?
    // For status: read under lock.
    private var activeCount = 0
    private var kvUsed = 0
    private var reused = 0

    /// Prompt tokens so far taken from a slot's cache instead of being evaluated.
    public var reusedPromptTokens: Int {
        lock.lock()
        defer { lock.unlock() }
        return reused
    }

    public init(model: DecoderModel, tokenizer: Tokenizer, contextLength: Int? = nil, slots: Int = 4,
                maxQueue: Int = 64, promptSlice: Int = 128) throws(GenerationError) {
        let n = contextLength ?? min(model.config.contextLength, 4096)
        guard n > 0 else { throw .invalidParameter("context length must be positive, got \(n)") }
        guard n <= model.config.contextLength else {
            throw .invalidParameter("context length \(n) exceeds what the model was trained for (\(model.config.contextLength))")
        }
        guard slots >= 1 else { throw .invalidParameter("parallel sequences must be ≥ 1, got \(slots)") }
        guard promptSlice >= 16 && promptSlice <= 128 && promptSlice % 4 == 0 else {
            throw .invalidParameter("prompt slice must be a multiple of 4 in 16...128, got \(promptSlice)")
        }
        self.model = model
        self.tokenizer = tokenizer
        self.contextLength = n
        self.maxQueue = maxQueue
        self.promptSlice = promptSlice
        self.slots = (0..<slots).map { _ in Slot(cache: model.makeCache(capacity: n)) }
        // The thread holds the engine only while it works (or waits at most a second), so an
        // engine nobody uses any more is released and its thread ends.
        let t = Thread { [weak self] in
            while let engine = self, engine.runOnce() {}
        }
        t.name = "steward-batch"
        t.stackSize = 1 << 20
        loopThread = t
        t.start()
    }

    /// Stops the loop after the current step: running and waiting requests end as cancelled.
    public func shutdown() {
        lock.lock()
        stopping = true
        lock.broadcast()
        lock.unlock()
    }

    deinit { shutdown() }

    public var status: EngineStatus {
        lock.lock()
        defer { lock.unlock() }
        return EngineStatus(queued: waiting.count, active: activeCount, kvUsed: kvUsed, kvCapacity: slots.count * contextLength)
    }

    public func generate(prompt: [Int32], _ request: GenerationRequest,
                         onChunk: @escaping @Sendable (GeneratedChunk) -> Bool) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw GenerationError.emptyPrompt }
        guard request.maxTokens >= 0 else { throw GenerationError.invalidParameter("max tokens must be ≥ 0") }
        if prompt.count + request.maxTokens > contextLength {
            throw GenerationError.contextOverflow(promptTokens: prompt.count, maxTokens: request.maxTokens, contextLength: contextLength)
        }
        for t in prompt where t < 0 || Int(t) >= model.config.vocabSize {
            throw GenerationError.invalidInput("token id \(t) is outside the vocabulary (0..<\(model.config.vocabSize))")
        }
        let sampler = try Sampler(request.sampling)
        let job = Job(prompt: prompt, request: request,
                      sequence: SequenceGenerator(request: request, sampler: sampler, tokenizer: tokenizer,
                                                  context: prompt, onChunk: onChunk))
        lock.lock()
        if stopping {
            lock.unlock()
            throw GenerationError.cancelled
        }
        // Requests beyond the free slots wait; at most maxQueue of them.
        if waiting.count >= slots.count - activeCount + maxQueue {
            let q = waiting.count
            lock.unlock()
            throw GenerationError.busy(queued: q)
        }
        waiting.append(job)
        lock.signal()
        lock.unlock()
        job.finished.wait()
        switch job.result {
        case .success(let r): return r
        case .failure(let e): throw e
        case nil: throw GenerationError.cancelled
        }
    }

    // MARK: - The loop (one thread owns the slots and the model)

    /// One iteration of the loop; false when the engine has stopped.
    private func runOnce() -> Bool {
        do {
            lock.lock()
            if !stopping && waiting.isEmpty && activeCount == 0 {
                _ = lock.wait(until: Date(timeIntervalSinceNow: 1))
                if !stopping && waiting.isEmpty && activeCount == 0 {
                    lock.unlock()
                    return true
                }
            }
            if stopping {
                let left = waiting
                waiting = []
                lock.unlock()
                for job in left { finish(job, .failure(GenerationError.cancelled)) }
                for slot in slots { if let job = slot.job { end(slot, job, cancelled: true) } }
                return false
            }
            // Admit waiting requests into free slots, each into the free slot sharing the longest
            // prefix with its prompt.
            var admitted: [(Job, Slot)] = []
            while !waiting.isEmpty, let slot = bestSlot(for: waiting[0], among: slots.filter { $0.job == nil }) {
                let job = waiting.removeFirst()
                slot.job = job
                admitted.append((job, slot))
            }
            activeCount = slots.filter { $0.job != nil }.count
            lock.unlock()
            for (job, slot) in admitted { begin(job, in: slot) }

            // One batched decode step for every sequence that has a token to evaluate.
            let decoding = slots.filter { $0.job?.pending != nil }
            if !decoding.isEmpty { decodeStep(decoding) }

            // One prompt slice for the oldest sequence still reading its prompt.
            if let slot = slots.filter({ $0.job.map { $0.evaluated < $0.prompt.count } ?? false })
                .min(by: { $0.job!.queuedAt < $1.job!.queuedAt }) {
                promptStep(slot)
            }
            updateStatus()
            return true
        }
    }


    private func bestSlot(for job: Job, among free: [Slot]) -> Slot? {
        func shared(_ s: Slot) -> Int { LoRAUse.same(s.cache.adapters, job.request.adapters) ? commonPrefix(s.tokens, job.prompt) : -1 }
        return free.max { shared($0) < shared($1) }
    }

    private func begin(_ job: Job, in slot: Slot) {
        // Reuse the shared prefix (not when the prompt is to be scored: every token is then
        // evaluated with its logits), always evaluating at least one token for fresh logits.
        var common = job.request.promptLogprobs == nil ? commonPrefix(slot.tokens, job.prompt) : 0
        // A prefix computed under other adapters is not reusable: each sequence carries its own.
        if !LoRAUse.same(slot.cache.adapters, job.request.adapters) {
            common = 0
            slot.cache.adapters = job.request.adapters
        }
        common = min(common, job.prompt.count - 1)
        slot.cache.truncate(to: common)
        slot.tokens = Array(slot.tokens.prefix(common))
        job.start = common
        job.evaluated = common
        lock.lock()
        reused += common
        lock.unlock()
        job.promptStart = Date()
    }

    private func promptStep(_ slot: Slot) {
        guard let job = slot.job else { return }
        // The prompt after the reused prefix runs in forward's batches of up to maxBatch tokens;
        // this step evaluates the next slice of the current batch.
        let remaining = job.prompt.count - job.start
        let offset = job.evaluated - job.start
        let batchStart = offset / DecoderModel.maxBatch * DecoderModel.maxBatch
        let batchTokens = min(DecoderModel.maxBatch, remaining - batchStart)
        // The batch's slices are forward's steps, so the arithmetic is forward's.
        var sliceEnd = job.start + batchStart
        for len in DecoderModel.steps(ofBatch: batchTokens, step: promptSlice) {
            sliceEnd += len
            if sliceEnd > job.evaluated { break }
        }
        let slice = Array(job.prompt[job.evaluated..<sliceEnd])
        let last = sliceEnd == job.prompt.count
        let scoring = job.request.promptLogprobs
        do {
            let logits = try model.prefill(tokens: slice, cache: slot.cache, batchTokens: batchTokens,
                                           logits: scoring != nil ? .all : (last ? .last : .none))
            slot.tokens += slice
            let v = model.config.vocabSize
            if let topN = scoring {
                logits.withUnsafeBufferPointer { lp in
                    for (k, i) in (job.evaluated..<sliceEnd).enumerated() where i + 1 < job.prompt.count {
                        let row = UnsafeBufferPointer(rebasing: lp[k * v ..< (k + 1) * v])
                        job.promptLogprobs.append(TokenLogprob(id: job.prompt[i + 1], logits: row, topN: topN))
                    }
                }
            }
            job.evaluated = sliceEnd
            if last {
                job.decodeStart = Date()
                let lastRow = scoring != nil ? Array(logits[(slice.count - 1) * v ..< slice.count * v]) : logits
                advance(job, in: slot, logits: lastRow)
            }
        } catch {
            end(slot, job, error: error)
        }
    }

    private func decodeStep(_ decoding: [Slot]) {
        let tokens = decoding.map { $0.job!.pending! }
        do {
            let logits = try model.decode(tokens: tokens, caches: decoding.map(\.cache))
            let v = model.config.vocabSize
            for (k, slot) in decoding.enumerated() {
                guard let job = slot.job else { continue }
                slot.tokens.append(tokens[k])
                advance(job, in: slot, logits: Array(logits[k * v ..< (k + 1) * v]))
            }
        } catch {
            for slot in decoding { if let job = slot.job { end(slot, job, error: error) } }
        }
    }

    /// Samples the job's next token from `logits`: it is evaluated at the next decode step, or
    /// the job ends.
    private func advance(_ job: Job, in slot: Slot, logits: [Float]) {
        let next = logits.withUnsafeBufferPointer { job.sequence.step(logits: $0) }
        job.pending = next
        if next == nil { end(slot, job, cancelled: false) }
    }

    private func end(_ slot: Slot, _ job: Job, cancelled: Bool) {
        var r = job.sequence.finish(promptTokens: job.prompt.count)
        if cancelled { r.finishReason = .cancelled }
        r.promptLogprobs = job.promptLogprobs
        let now = Date()
        if let p = job.promptStart { r.promptSeconds = (job.decodeStart ?? now).timeIntervalSince(p) }
        if let d = job.decodeStart { r.generateSeconds = now.timeIntervalSince(d) }
        slot.job = nil
        updateStatus()  // before the caller wakes, so status never counts a finished request
        finish(job, .success(r))
    }

    private func end(_ slot: Slot, _ job: Job, error: Error) {
        // The cache may hold a partial batch: forget what it holds.
        slot.cache.reset()
        slot.tokens = []
        slot.job = nil
        updateStatus()
        finish(job, .failure(error))
    }

    private func finish(_ job: Job, _ result: Result<GenerationResult, Error>) {
        job.result = result
        job.finished.signal()
    }

    private func updateStatus() {
        lock.lock()
        activeCount = slots.filter { $0.job != nil }.count
        kvUsed = slots.reduce(0) { $0 + ($1.job != nil ? $1.cache.count : 0) }
        lock.unlock()
    }
}
