import Foundation
import ModelFiles
import Kernels
import CKernels

/// Per-sequence state: the KV cache. The model itself is immutable and shared between sequences.
/// K and V are stored in f16, as llama.cpp does by default, one row per position:
/// (layer, position, kvHeads·headDim) and (layer, position, kvHeads·valueDim).
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public private(set) var count = 0
    /// The LoRA adapters this sequence runs with (empty: the base model). The K/V held were
    /// computed under them: set it on an empty (or reset) cache.
    public var adapters: [LoRAUse] = []
    let kDim: Int
    let vDim: Int
    let layers: Int
    let k: UnsafeMutablePointer<UInt16>   // (layer, capacity, kDim) f16 bits
    let v: UnsafeMutablePointer<UInt16>   // (layer, capacity, vDim) f16 bits

    public init(config c: DecoderConfig, capacity: Int) {
        self.capacity = max(1, capacity)
        self.kDim = c.kvHeads * c.headDim
        self.vDim = c.kvHeads * c.valueDim
        self.layers = c.layers
        k = .allocate(capacity: layers * self.capacity * kDim)
        v = .allocate(capacity: layers * self.capacity * vDim)
    }

    deinit {
        k.deallocate()
        v.deallocate()
    }

    /// Forgets positions from `position` on (to reuse a shared prompt prefix).
    public func truncate(to position: Int) { count = max(0, min(count, position)) }
    public func reset() { count = 0 }

    /// Bytes held for K and V.
    public var bytes: Int { layers * capacity * (kDim + vDim) * 2 }

    @inline(__always) func kRow(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<UInt16> { k + (layer * capacity + pos) * kDim }
    @inline(__always) func vRow(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<UInt16> { v + (layer * capacity + pos) * vDim }
    func advance(_ n: Int) { count += n }
}

/// A decoder-only transformer (llama family, Gemma 3) as config → weights → forward, in the
/// spirit of llama2.c's run.c: one readable pass, buffers named with their shapes.
/// One forward at a time per model (the compute scratch is shared); sequences keep their own
/// KV caches, so a scheduler interleaves them.
public final class DecoderModel: @unchecked Sendable {
    public let config: DecoderConfig
    public let weights: DecoderWeights
    public let file: GGUFFile
    public let compute: Compute
    public var pool: ThreadPool { compute.pool }
    private let lock = NSLock()
    /// Batches of at least this many tokens use llama.cpp's tiled prefill attention.
    static let tiledAttentionRows = 64
    /// Longer inputs run in batches of this many tokens (llama.cpp's default n_ubatch), so the
    /// arithmetic of each batch is the reference's.
    public static let maxBatch = 512
    /// Tokens computed together within a batch (bounds scratch memory).
    public static let stepTokens = 128

    /// How a batch of `batch` tokens is cut into steps of at most `step` tokens (a multiple of
    /// 4, at least 16) without changing its arithmetic: llama.cpp's Q4_K batch kernel groups
    /// tokens by 4 from the batch's start, so every step but the last is a multiple of 4; its
    /// Q6_K batch arithmetic needs 8 or more tokens in the product, so a last step under 8
    /// borrows 8 from the one before.
    public static func steps(ofBatch batch: Int, step: Int = stepTokens) -> [Int] {
        guard batch > 0 else { return [] }
        let step = max(16, step / 4 * 4)
        var out = Array(repeating: step, count: batch / step)
        let r = batch % step
        if r > 0 {
            if r < 8 && !out.isEmpty { out[out.count - 1] -= 8; out.append(r + 8) } else { out.append(r) }
        }
        return out
    }
    /// Testing only: called with (name, layer, values, count) at each step of the forward pass
    /// (names as llama.cpp's eval callback: attn_norm, Qcur (after RoPE), Kcur, Vcur, kqv_out,
    /// ffn_inp, ffn_norm, ffn_act, ffn_out, l_out, result_norm, result_output; layer -1 for the
    /// output), to compare intermediates with the peer's (scripts/llamacpp-dump).
    public var debugTap: ((String, Int, UnsafePointer<Float>, Int) -> Void)?

    public init(file: GGUFFile, threads: Int? = nil) throws(ModelError) {
        self.file = file
        self.config = try DecoderConfig(gguf: file)
        self.weights = try DecoderWeights(file: file, config: config)
        self.compute = Compute(threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
    }

    public func makeCache(capacity: Int) -> KVCache { KVCache(config: config, capacity: capacity) }

    /// Scratch buffers for a batch of `n` tokens.
    final class Scratch {
        let n: Int
        let x, xn, q, k, v, att, o, gate, up: UnsafeMutablePointer<Float>
        let half16: UnsafeMutablePointer<UInt16>      // (threads, headDim + valueDim) f16 scratch
        let tiled: UnsafeMutablePointer<Float>?       // (threads, tiled-attention scratch) for batches ≥ 64
        let tiledFloats: Int
        let ropeCos, ropeSin: UnsafeMutablePointer<Float>          // (n, ropeDims/2) global base
        let ropeCosLocal, ropeSinLocal: UnsafeMutablePointer<Float> // (n, ropeDims/2) local base
        init(config c: DecoderConfig, n: Int, capacity: Int, threads: Int) {
            self.n = n
            let h = c.hiddenSize
            x = .allocate(capacity: n * h)                      // (n, hidden) residual stream
            xn = .allocate(capacity: n * h)                     // (n, hidden) normed input
            q = .allocate(capacity: n * c.heads * c.headDim)    // (n, heads·headDim)
            k = .allocate(capacity: n * c.kvHeads * c.headDim)  // (n, kvHeads·headDim)
            v = .allocate(capacity: n * c.kvHeads * c.valueDim) // (n, kvHeads·valueDim)
            att = .allocate(capacity: n * c.heads * c.valueDim) // (n, heads·valueDim)
            o = .allocate(capacity: n * h)                      // (n, hidden)
            gate = .allocate(capacity: n * c.ffnSize)           // (n, ffn)
            up = .allocate(capacity: n * c.ffnSize)             // (n, ffn)
            half16 = .allocate(capacity: threads * (c.headDim + c.valueDim))
            tiledFloats = ck_attention_tiled_scratch_floats(Int64(c.headDim), Int64(c.valueDim))
            tiled = n > 1 ? .allocate(capacity: threads * tiledFloats) : nil
            let half = c.ropeDims / 2
            ropeCos = .allocate(capacity: n * half); ropeSin = .allocate(capacity: n * half)
            ropeCosLocal = .allocate(capacity: n * half); ropeSinLocal = .allocate(capacity: n * half)
        }
        deinit {
            for p in [x, xn, q, k, v, att, o, gate, up, ropeCos, ropeSin, ropeCosLocal, ropeSinLocal] { p.deallocate() }
            half16.deallocate()
            tiled?.deallocate()
        }
    }

    private var scratch: Scratch?
    private var scratchCapacity = 0

    private func scratch(n: Int, capacity: Int) -> Scratch {
        if let s = scratch, s.n >= n, scratchCapacity >= capacity { return s }
        let s = Scratch(config: config, n: n, capacity: capacity, threads: pool.threadCount)
        scratch = s
        scratchCapacity = capacity
        return s
    }

    /// Runs `tokens` at the cache's next positions and returns logits (vocab floats) for the
    /// last token, or for every token when `allLogits` is true (row-major (n, vocab)).
    public func forward(tokens: [Int32], cache: KVCache, allLogits: Bool = false) throws(ModelError) -> [Float] {
        let c = config
        let n = tokens.count
        guard n > 0 else { return [] }
        try checkRoom(for: tokens, in: cache)
        lock.lock()
        defer { lock.unlock() }
        // llama.cpp's batches of up to maxBatch tokens decide the attention kernel (tiled for 64
        // or more queries); each runs in steps of at most stepTokens, which gives the same
        // numbers (every token's arithmetic is independent of its neighbours') with a quarter of
        // the scratch memory.
        var logits: [Float] = []
        var start = 0
        while start < n {
            let end = min(start + Self.maxBatch, n)
            let tiled = end - start >= Self.tiledAttentionRows
            var s0 = start
            for len in Self.steps(ofBatch: end - start) {
                let e0 = s0 + len
                let want: LogitRows = allLogits ? .all : (e0 == n ? .last : .none)
                let pos0 = cache.count
                let part = forwardStep(Array(tokens[s0..<e0]), rows: RowPlaces(single: cache, pos0: pos0, count: e0 - s0),
                                       logits: want, tiledAttention: tiled)
                if allLogits { logits += part } else if e0 == n { logits = part }
                s0 = e0
            }
            start = end
        }
        return logits
    }

    /// Part of a prompt for a caller that interleaves prompt processing with other work (a
    /// batching engine): `tokens` are the next `tokens.count` tokens of a batch of `batchTokens`
    /// (≤ maxBatch) tokens, evaluated exactly as `forward` evaluates that batch, so a prompt fed
    /// in slices gives the same numbers as in one call. Returns logits per `logits`: none, the
    /// last row's, or every row's.
    public func prefill(tokens: [Int32], cache: KVCache, batchTokens: Int, logits: PrefillLogits) throws(ModelError) -> [Float] {
        let n = tokens.count
        guard n > 0 else { return [] }
        try checkRoom(for: tokens, in: cache)
        guard n <= batchTokens && batchTokens <= Self.maxBatch else {
            throw .badConfig("prefill: a slice of \(n) tokens of a batch of \(batchTokens) (at most \(Self.maxBatch))")
        }
        lock.lock()
        defer { lock.unlock() }
        var out: [Float] = []
        var s0 = 0
        while s0 < n {
            let e0 = min(s0 + Self.stepTokens, n)
            let want: LogitRows = logits == .all ? .all : (logits == .last && e0 == n ? .last : .none)
            let part = forwardStep(Array(tokens[s0..<e0]), rows: RowPlaces(single: cache, pos0: cache.count, count: e0 - s0),
                                   logits: want, tiledAttention: batchTokens >= Self.tiledAttentionRows)
            if logits == .all { out += part } else if e0 == n { out = part }
            s0 = e0
        }
        return out
    }

    public enum PrefillLogits: Sendable { case none, last, all }

    /// The cache has room for `tokens` and every id is in the vocabulary.
    private func checkRoom(for tokens: [Int32], in cache: KVCache) throws(ModelError) {
        guard cache.count + tokens.count <= cache.capacity else {
            throw .badConfig("the KV cache holds \(cache.capacity) tokens; \(cache.count) used, \(tokens.count) more requested")
        }
        for t in tokens where t < 0 || Int(t) >= config.vocabSize {
            throw .badConfig("token id \(t) is outside the vocabulary (0..<\(config.vocabSize))")
        }
    }

    /// The final hidden state of every token of `tokens` (after the output norm, before the
    /// output matrix), row-major (n, hiddenSize), run at the cache's next positions in the same
    /// batches as `forward`. This is what llama.cpp's embedding mode pools (its `result_norm`
    /// with all outputs requested); no logits are computed. Used for embeddings from a chat
    /// model: pass a scratch cache of the caller's own, never a generating sequence's.
    public func hiddenStates(tokens: [Int32], cache: KVCache) throws(ModelError) -> [Float] {
        let n = tokens.count
        guard n > 0 else { return [] }
        try checkRoom(for: tokens, in: cache)
        lock.lock()
        defer { lock.unlock() }
        var out: [Float] = []
        out.reserveCapacity(n * config.hiddenSize)
        var start = 0
        while start < n {
            let end = min(start + Self.maxBatch, n)
            let tiled = end - start >= Self.tiledAttentionRows
            var s0 = start
            for len in Self.steps(ofBatch: end - start) {
                let e0 = s0 + len
                out += forwardStep(Array(tokens[s0..<e0]), rows: RowPlaces(single: cache, pos0: cache.count, count: e0 - s0),
                                   logits: .all, tiledAttention: tiled, hiddenOnly: true)
                s0 = e0
            }
            start = end
        }
        return out
    }

    /// One decode step for several sequences at once (continuous batching): token i goes to
    /// caches[i] at its next position; each cache appears at most once. Returns the logits of
    /// every row (row-major (n, vocab)). Each row's arithmetic is exactly that of a single-token
    /// forward on its own cache, so batching never changes a sequence's output.
    public func decode(tokens: [Int32], caches: [KVCache]) throws(ModelError) -> [Float] {
        let n = tokens.count
        guard n > 0 else { return [] }
        guard caches.count == n else { throw .badConfig("decode: \(n) tokens for \(caches.count) caches") }
        guard Set(caches.map { ObjectIdentifier($0) }).count == n else {
            throw .badConfig("decode: a sequence's cache appears twice in one step")
        }
        for (t, cache) in zip(tokens, caches) {
            guard cache.count < cache.capacity else {
                throw .badConfig("the KV cache holds \(cache.capacity) tokens and is full")
            }
            guard t >= 0 && Int(t) < config.vocabSize else {
                throw .badConfig("token id \(t) is outside the vocabulary (0..<\(config.vocabSize))")
            }
        }
        lock.lock()
        defer { lock.unlock() }
        return forwardStep(tokens, rows: RowPlaces(caches: caches, positions: caches.map(\.count)), logits: .all, tiledAttention: false)
    }

    enum LogitRows { case none, last, all }

    /// Where each row of a step goes: its sequence's cache and position.
    struct RowPlaces {
        let caches: [KVCache]
        let positions: [Int]
        /// Set when every row belongs to one sequence at consecutive positions.
        let single: KVCache?
        init(single cache: KVCache, pos0: Int, count: Int) {
            caches = Array(repeating: cache, count: count)
            positions = Array(pos0..<(pos0 + count))
            single = cache
        }
        init(caches: [KVCache], positions: [Int]) {
            self.caches = caches
            self.positions = positions
            single = caches.count == 1 ? caches[0] : nil
        }
    }

    private func forwardStep(_ tokens: [Int32], rows: RowPlaces, logits want: LogitRows, tiledAttention: Bool, hiddenOnly: Bool = false) -> [Float] {
        let c = config
        let n = tokens.count
        let s = scratch(n: n, capacity: rows.caches.map(\.capacity).max() ?? 0)
        let h = c.hiddenSize
        let qDim = c.heads * c.headDim, kDim = c.kvHeads * c.headDim, vDim = c.kvHeads * c.valueDim
        let half = c.ropeDims / 2

        // x = embed(tokens) · embeddingScale
        for (i, t) in tokens.enumerated() {
            weights.tokenEmbedding.matrix.dequantizeRow(Int(t), into: s.x + i * h)
            if c.embeddingScale != 1 { FloatOps.scale(s.x + i * h, by: c.embeddingScale, count: h) }
        }
        // RoPE tables for this batch's positions (global base, and local base when it differs).
        let hasLocal = c.ropeBaseLocal != c.ropeBase
        for i in 0..<n {
            let pos = Float(rows.positions[i])
            ck_rope_cache(pos, Int64(c.ropeDims), c.ropeBase, c.ropeScale, s.ropeCos + i * half, s.ropeSin + i * half)
            if hasLocal {
                ck_rope_cache(pos, Int64(c.ropeDims), c.ropeBaseLocal, c.ropeScale, s.ropeCosLocal + i * half, s.ropeSinLocal + i * half)
            }
        }
        let neox: Int32 = c.ropeStyle == .neox ? 1 : 0
        let lora = rows.caches.contains { !$0.adapters.isEmpty }

        for (l, b) in weights.blocks.enumerated() {
            // Attention
            rmsnorm(s.x, b.attnNorm, n, h, into: s.xn)
            debugTap?("attn_norm", l, s.xn, n * h)
            // q, k and v share one quantized input and one parallel loop
            compute.matmul([b.wq.matrix, b.wk.matrix, b.wv.matrix], x: s.xn, tokens: n, ys: [s.q, s.k, s.v])
            if lora {
                applyLoRA(l, .q, x: s.xn, y: s.q, rows: n, rows.caches)
                applyLoRA(l, .k, x: s.xn, y: s.k, rows: n, rows.caches)
                applyLoRA(l, .v, x: s.xn, y: s.v, rows: n, rows.caches)
            }
            if let bq = b.bq, let bk = b.bk, let bv = b.bv {
                for i in 0..<n {
                    addInPlace(s.q + i * qDim, bq)
                    addInPlace(s.k + i * kDim, bk)
                    addInPlace(s.v + i * vDim, bv)
                }
            }
            if let qn = b.qNorm, let kn = b.kNorm {
                rmsnorm(s.q, qn, n * c.heads, c.headDim, into: s.q)
                rmsnorm(s.k, kn, n * c.kvHeads, c.headDim, into: s.k)
            }
            let local = hasLocal && c.isSliding(layer: l)
            let cosT = local ? s.ropeCosLocal : s.ropeCos, sinT = local ? s.ropeSinLocal : s.ropeSin
            for i in 0..<n {
                ck_rope_apply(s.q + i * qDim, Int64(c.heads), Int64(c.headDim), Int64(c.ropeDims), cosT + i * half, sinT + i * half, neox)
                ck_rope_apply(s.k + i * kDim, Int64(c.kvHeads), Int64(c.headDim), Int64(c.ropeDims), cosT + i * half, sinT + i * half, neox)
                let kr = rows.caches[i].kRow(l, rows.positions[i])
                for d in 0..<kDim { kr[d] = ck_f32_to_f16(s.k[i * kDim + d]) }
                let vr = rows.caches[i].vRow(l, rows.positions[i])
                for d in 0..<vDim { vr[d] = ck_f32_to_f16(s.v[i * vDim + d]) }
            }
            attention(layer: l, n: n, rows: rows, s: s, tiled: tiledAttention)
            debugTap?("Qcur", l, s.q, n * qDim)
            debugTap?("Kcur", l, s.k, n * kDim)
            debugTap?("Vcur", l, s.v, n * vDim)
            debugTap?("kqv_out", l, s.att, n * c.heads * c.valueDim)
            compute.matmul(b.wo.matrix, x: s.att, tokens: n, y: s.o)
            if lora { applyLoRA(l, .o, x: s.att, y: s.o, rows: n, rows.caches) }
            if let pn = b.postAttnNorm { rmsnorm(s.o, pn, n, h, into: s.o) }
            FloatOps.add(s.x, s.o, into: s.x, count: n * h)
            debugTap?("ffn_inp", l, s.x, n * h)

            // As llama.cpp (inp_out_ids), the last layer's feed-forward runs only for the rows
            // whose logits are wanted: none, the last token (moved to row 0), or all. This saves
            // work and keeps the batch shape of its products, hence their rounding, the
            // reference's.
            var m = n
            if l == weights.blocks.count - 1 && want != .all {
                if want == .none { break }
                if n > 1 { (s.x).update(from: s.x + (n - 1) * h, count: h) }
                m = 1
            }
            // Feed-forward: down(act(gate(x)) · up(x))
            rmsnorm(s.x, b.ffnNorm, m, h, into: s.xn)
            debugTap?("ffn_norm", l, s.xn, m * h)
            compute.matmul([b.wGate.matrix, b.wUp.matrix], x: s.xn, tokens: m, ys: [s.gate, s.up])
            // With one row left it is the last token's (moved to row 0).
            let ffnCaches = m == n ? rows.caches : [rows.caches[n - 1]]
            if lora {
                applyLoRA(l, .gate, x: s.xn, y: s.gate, rows: m, ffnCaches)
                applyLoRA(l, .up, x: s.xn, y: s.up, rows: m, ffnCaches)
            }
            switch c.activation {
            case .silu: FloatOps.silu(s.gate, into: s.gate, count: m * c.ffnSize)
            case .geluTanh: FloatOps.geluTanhTable(s.gate, into: s.gate, count: m * c.ffnSize)  // llama.cpp's f16 table
            }
            FloatOps.mul(s.gate, s.up, into: s.gate, count: m * c.ffnSize)
            debugTap?("ffn_act", l, s.gate, m * c.ffnSize)
            compute.matmul(b.wDown.matrix, x: s.gate, tokens: m, y: s.o)
            if lora { applyLoRA(l, .down, x: s.gate, y: s.o, rows: m, ffnCaches) }
            if let pn = b.postFFNNorm { rmsnorm(s.o, pn, m, h, into: s.o) }
            FloatOps.add(s.x, s.o, into: s.x, count: m * h)
            debugTap?("l_out", l, s.x, m * h)
        }
        for cache in rows.caches { cache.advance(1) }

        // Output: logits for the last token (or all).
        if want == .none { return [] }
        let rowsOut = want == .all ? n : 1  // with .last, the last layer left it in row 0
        rmsnorm(s.x, weights.outputNorm, rowsOut, h, into: s.xn)
        debugTap?("result_norm", -1, s.xn, rowsOut * h)
        if hiddenOnly { return Array(UnsafeBufferPointer(start: s.xn, count: rowsOut * h)) }
        var logits = [Float](repeating: 0, count: rowsOut * c.vocabSize)
        logits.withUnsafeMutableBufferPointer { lp in
            compute.matmul(weights.output.matrix, x: s.xn, tokens: rowsOut, y: lp.baseAddress!)
            debugTap?("result_output", -1, lp.baseAddress!, rowsOut * c.vocabSize)
        }
        return logits
    }

    /// Adds each row's adapters' low-rank products to a projection's output:
    /// y[i] += scale · scaling · B·(A·x[i]) for every adapter of row i's sequence. The base
    /// product is shared by the batch; only this part differs between sequences.
    func applyLoRA(_ layer: Int, _ t: LoRATarget, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, _ caches: [KVCache]) {
        for i in 0..<rows {
            for use in caches[i].adapters {
                guard let p = use.adapter.pair(layer: layer, t) else { continue }
                let k = use.scale * use.adapter.scaling
                guard k != 0 else { continue }
                let xi = x + i * p.inDim, yi = y + i * p.outDim
                p.a.withUnsafeBufferPointer { a in
                    p.bT.withUnsafeBufferPointer { bt in
                        for j in 0..<p.rank {
                            // u_j = A_j·x, then y += k·u_j·(column j of B), both AVX2 loops.
                            let u = FloatOps.dot(a.baseAddress! + j * p.inDim, xi, count: p.inDim) * k
                            if u != 0 { FloatOps.axpy(u, bt.baseAddress! + j * p.outDim, yi, count: p.outDim) }
                        }
                    }
                }
            }
        }
    }

    /// RMSNorm of `rows` vectors of `width`, each times `w`.
    @inline(__always) func rmsnorm(_ x: UnsafePointer<Float>, _ w: [Float], _ rows: Int, _ width: Int, into y: UnsafeMutablePointer<Float>) {
        w.withUnsafeBufferPointer { wp in
            for r in 0..<rows { FloatOps.rmsNorm(x + r * width, weight: wp.baseAddress, into: y + r * width, count: width, eps: config.rmsEps) }
        }
    }

    @inline(__always) func addInPlace(_ y: UnsafeMutablePointer<Float>, _ b: [Float]) {
        b.withUnsafeBufferPointer { FloatOps.add(y, $0.baseAddress!, into: y, count: b.count) }
    }

    /// Causal (and, on sliding layers, windowed) attention of the batch's queries over the
    /// cache, parallel over (token, head), with llama.cpp's flash-attention roundings
    /// (CKernels/attention.c).
    func attention(layer l: Int, n: Int, rows: RowPlaces, s: Scratch, tiled useTiled: Bool) {
        let c = config
        let qDim = c.heads * c.headDim
        let group = c.heads / c.kvHeads
        let window = c.isSliding(layer: l) ? c.slidingWindow : nil
        let headDim = c.headDim, valueDim = c.valueDim, heads = c.heads
        let kDim = rows.caches[0].kDim, vDim = rows.caches[0].vDim
        // Gemma scales queries before attention (per llm_build_gemma3_iswa); others scale q·k.
        let scale: Float = c.scalesQueries ? 1 : c.attentionScale
        if c.scalesQueries { FloatOps.scale(s.q, by: c.attentionScale, count: n * qDim) }
        if useTiled, let tiled = s.tiled, let cache = rows.single {
            let pos0 = rows.positions[0]
            // llama.cpp's tiled kernel for batches of 64 or more queries (its GGML_FA_TILE_Q):
            // one task per (head, 64 query rows).
            let tilesPerHead = (n + 63) / 64
            let stride = s.tiledFloats
            pool.parallelFor(heads * tilesPerHead, chunk: 1) { range, thread in
                for task in range {
                    let hh = task / tilesPerHead, i0 = (task % tilesPerHead) * 64
                    let rows = min(64, n - i0)
                    let kvh = hh / group
                    ck_attention_tiled(s.q + i0 * qDim + hh * headDim, qDim, Int64(rows), Int64(headDim), Int64(valueDim),
                                       cache.kRow(l, 0) + kvh * headDim, kDim, cache.vRow(l, 0) + kvh * valueDim, vDim,
                                       Int64(pos0 + i0), Int64(window ?? 0), scale,
                                       s.att + i0 * heads * valueDim + hh * valueDim, heads * valueDim,
                                       tiled + thread * stride)
                }
            }
            return
        }
        pool.parallelFor(n * heads, chunk: 1) { range, thread in
            let q16 = s.half16 + thread * (headDim + valueDim)
            let acc16 = q16 + headDim
            for task in range {
                let i = task / heads, hh = task % heads
                let kvh = hh / group
                let pos = rows.positions[i], cache = rows.caches[i]
                // per llama.cpp's standard SWA mask: a key at p is visible when pos - p < window
                let lo = window.map { max(0, pos - $0 + 1) } ?? 0
                ck_attention_head_f16(s.q + i * qDim + hh * headDim, Int64(headDim), Int64(valueDim),
                                      cache.kRow(l, 0) + kvh * headDim, kDim,
                                      cache.vRow(l, 0) + kvh * valueDim, vDim,
                                      Int64(lo), Int64(pos), scale,
                                      s.att + i * heads * valueDim + hh * valueDim, q16, acc16)
            }
        }
    }
}
