import Foundation
import ModelFiles
import Kernels

/// Per-sequence state: the KV cache. The model itself is immutable and shared between sequences.
/// K and V are stored in f16 (as llama.cpp does by default), one row of kvHeads·headDim per cell.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public private(set) var count = 0
    let kvDim: Int
    let vDim: Int
    let layers: Int
    var k: UnsafeMutablePointer<Float16>   // (layer, capacity, kvDim)
    var v: UnsafeMutablePointer<Float16>   // (layer, capacity, vDim)

    public init(config c: DecoderConfig, capacity: Int) {
        self.capacity = capacity
        self.kvDim = c.kvHeads * c.headDim
        self.vDim = c.kvHeads * c.valueDim
        self.layers = c.layers
        k = .allocate(capacity: layers * capacity * kvDim)
        v = .allocate(capacity: layers * capacity * vDim)
    }

    deinit {
        k.deallocate()
        v.deallocate()
    }

    /// Forgets positions from `position` on (e.g. to reuse a shared prompt prefix).
    public func truncate(to position: Int) { count = max(0, min(count, position)) }
    public func reset() { count = 0 }

    public var bytes: Int { layers * capacity * (kvDim + vDim) * 2 }

    @inline(__always) func kRow(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float16> { k + (layer * capacity + pos) * kvDim }
    @inline(__always) func vRow(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float16> { v + (layer * capacity + pos) * vDim }
    func advance(_ n: Int) { count += n }
}

/// A decoder-only transformer (llama family, Gemma 3) as config → weights → forward, in the
/// spirit of llama2.c's run.c: one readable pass, buffers named with their shapes.
public final class DecoderModel: @unchecked Sendable {
    public let config: DecoderConfig
    public let weights: DecoderWeights
    public let file: GGUFFile
    public let pool: ThreadPool

    public init(file: GGUFFile, threads: Int? = nil) throws(ModelError) {
        self.file = file
        self.config = try DecoderConfig(gguf: file)
        self.weights = try DecoderWeights(file: file, config: config)
        self.pool = ThreadPool(threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
    }

    public func makeCache(capacity: Int) -> KVCache { KVCache(config: config, capacity: capacity) }

    /// Scratch buffers for a batch of up to `n` tokens.
    final class Scratch {
        let n: Int
        let x, xn, q, k, v, att, o, gate, up, down: UnsafeMutablePointer<Float>
        let scores: UnsafeMutablePointer<Float>   // (threads, capacity)
        init(config c: DecoderConfig, n: Int, capacity: Int, threads: Int) {
            self.n = n
            let h = c.hiddenSize
            x = .allocate(capacity: n * h)                      // (n, hidden) residual stream
            xn = .allocate(capacity: n * max(h, c.ffnSize))     // (n, hidden) normed input
            q = .allocate(capacity: n * c.heads * c.headDim)    // (n, heads·headDim)
            k = .allocate(capacity: n * c.kvHeads * c.headDim)  // (n, kvHeads·headDim)
            v = .allocate(capacity: n * c.kvHeads * c.valueDim) // (n, kvHeads·valueDim)
            att = .allocate(capacity: n * c.heads * c.valueDim) // (n, heads·valueDim)
            o = .allocate(capacity: n * h)                      // (n, hidden)
            gate = .allocate(capacity: n * c.ffnSize)           // (n, ffn)
            up = .allocate(capacity: n * c.ffnSize)             // (n, ffn)
            down = .allocate(capacity: n * h)                   // (n, hidden)
            scores = .allocate(capacity: threads * capacity)
        }
        deinit {
            for p in [x, xn, q, k, v, att, o, gate, up, down, scores] { p.deallocate() }
        }
    }

    /// Runs `tokens` at the cache's next positions and returns logits (vocab floats) for the
    /// last token, or for every token when `allLogits` is true (row-major (n, vocab)).
    public func forward(tokens: [Int32], cache: KVCache, allLogits: Bool = false) throws(ModelError) -> [Float] {
        let c = config
        let n = tokens.count
        guard n > 0 else { return [] }
        guard cache.count + n <= cache.capacity else {
            throw .badConfig("the KV cache holds \(cache.capacity) tokens; \(cache.count) used, \(n) more requested")
        }
        for t in tokens where t < 0 || Int(t) >= c.vocabSize {
            throw .badConfig("token id \(t) is outside the vocabulary (0..<\(c.vocabSize))")
        }
        let s = Scratch(config: c, n: n, capacity: cache.capacity, threads: pool.threads)
        let h = c.hiddenSize
        let pos0 = cache.count

        // x = embed(tokens) · embeddingScale
        for (i, t) in tokens.enumerated() {
            weights.tokenEmbedding.matrix.dequantizeRow(Int(t), into: s.x + i * h)
            if c.embeddingScale != 1 { Ops.scale(s.x + i * h, h, c.embeddingScale) }
        }

        let qDim = c.heads * c.headDim, kDim = c.kvHeads * c.headDim, vDim = c.kvHeads * c.valueDim
        for (l, b) in weights.blocks.enumerated() {
            // Attention
            for i in 0..<n { Ops.rmsnorm(s.x + i * h, b.attnNorm, h, c.rmsEps, into: s.xn + i * h) }
            linear(b.wq, s.xn, n, s.q)
            linear(b.wk, s.xn, n, s.k)
            linear(b.wv, s.xn, n, s.v)
            if let bq = b.bq, let bk = b.bk, let bv = b.bv {
                for i in 0..<n {
                    Ops.add(s.q + i * qDim, bq, qDim)
                    Ops.add(s.k + i * kDim, bk, kDim)
                    Ops.add(s.v + i * vDim, bv, vDim)
                }
            }
            if let qn = b.qNorm, let kn = b.kNorm {
                for i in 0..<n {
                    for hh in 0..<c.heads { let p = s.q + i * qDim + hh * c.headDim; Ops.rmsnorm(p, qn, c.headDim, c.rmsEps, into: p) }
                    for hh in 0..<c.kvHeads { let p = s.k + i * kDim + hh * c.headDim; Ops.rmsnorm(p, kn, c.headDim, c.rmsEps, into: p) }
                }
            }
            let base = c.isSliding(layer: l) ? c.ropeBaseLocal : c.ropeBase
            for i in 0..<n {
                let pos = Float(pos0 + i) * c.ropeScale
                Ops.rope(s.q + i * qDim, heads: c.heads, headDim: c.headDim, ropeDims: c.ropeDims, position: pos, base: base, style: c.ropeStyle)
                Ops.rope(s.k + i * kDim, heads: c.kvHeads, headDim: c.headDim, ropeDims: c.ropeDims, position: pos, base: base, style: c.ropeStyle)
                Ops.toF16(s.k + i * kDim, cache.kRow(l, pos0 + i), kDim)
                Ops.toF16(s.v + i * vDim, cache.vRow(l, pos0 + i), vDim)
            }
            attention(layer: l, n: n, pos0: pos0, cache: cache, s: s)
            linear(b.wo, s.att, n, s.o)
            if let pn = b.postAttnNorm {
                for i in 0..<n { Ops.rmsnorm(s.o + i * h, pn, h, c.rmsEps, into: s.o + i * h) }
            }
            Ops.add(s.x, s.o, n * h)

            // Feed-forward (gated)
            for i in 0..<n { Ops.rmsnorm(s.x + i * h, b.ffnNorm, h, c.rmsEps, into: s.xn + i * h) }
            linear(b.wGate, s.xn, n, s.gate)
            linear(b.wUp, s.xn, n, s.up)
            switch c.activation {
            case .silu: Ops.siluMul(s.gate, s.up, n * c.ffnSize)
            case .geluTanh: Ops.geluMul(s.gate, s.up, n * c.ffnSize)
            }
            linear(b.wDown, s.gate, n, s.down)
            if let pn = b.postFFNNorm {
                for i in 0..<n { Ops.rmsnorm(s.down + i * h, pn, h, c.rmsEps, into: s.down + i * h) }
            }
            Ops.add(s.x, s.down, n * h)
        }
        cache.advance(n)

        // Output: logits for the last token (or all).
        let rowsOut = allLogits ? n : 1
        let first = allLogits ? 0 : n - 1
        for i in 0..<rowsOut { Ops.rmsnorm(s.x + (first + i) * h, weights.outputNorm, h, c.rmsEps, into: s.xn + i * h) }
        var logits = [Float](repeating: 0, count: rowsOut * c.vocabSize)
        logits.withUnsafeMutableBufferPointer { lp in
            linear(weights.output, s.xn, rowsOut, lp.baseAddress!)
        }
        return logits
    }

    @inline(__always) func linear(_ w: Weight, _ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        w.matrix.multiply(x, rows: n, into: y, pool: pool)
    }

    /// Causal (and, on sliding layers, windowed) attention for the batch's queries over the cache,
    /// parallel over (token, head).
    func attention(layer l: Int, n: Int, pos0: Int, cache: KVCache, s: Scratch) {
        let c = config
        let qDim = c.heads * c.headDim, kDim = c.kvHeads * c.headDim, vDim = c.kvHeads * c.valueDim
        let group = c.heads / c.kvHeads
        let window = c.isSliding(layer: l) ? c.slidingWindow : nil
        let cap = cache.capacity
        let scale = c.attentionScale
        let headDim = c.headDim, valueDim = c.valueDim
        pool.parallelFor(n * c.heads, chunk: 1) { begin, end, thread in
            let scores = s.scores + thread * cap
            for task in begin..<end {
                let i = task / c.heads, hh = task % c.heads
                let kvh = hh / group
                let pos = pos0 + i
                // per llama.cpp's standard SWA mask: a key at p is visible when pos - p < window
                let lo = window.map { max(0, pos - $0 + 1) } ?? 0
                let q = s.q + i * qDim + hh * headDim
                var mx = -Float.infinity
                for p in lo...pos {
                    let kr = cache.kRow(l, p) + kvh * headDim
                    let d = Ops.dotF16(q, kr, headDim) * scale
                    scores[p - lo] = d
                    if d > mx { mx = d }
                }
                var sum: Float = 0
                for j in 0...(pos - lo) {
                    let e = Foundation.exp(scores[j] - mx)
                    scores[j] = e
                    sum += e
                }
                let out = s.att + i * c.heads * valueDim + hh * valueDim
                out.initialize(repeating: 0, count: valueDim)
                let inv = 1 / sum
                for p in lo...pos {
                    Ops.axpyF16(scores[p - lo] * inv, cache.vRow(l, p) + kvh * valueDim, out, valueDim)
                }
            }
        }
        _ = kDim; _ = vDim
    }
}
