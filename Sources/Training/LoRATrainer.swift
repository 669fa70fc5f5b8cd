import CKernels
import Foundation
import Generation
import Kernels
import ModelFiles
import Models

public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case unsupported(String)
    case invalid(String)

    public var description: String {
        switch self {
        case let .unsupported(m), let .invalid(m): return m
        }
    }
}

/// The trainable LoRA weights: for each (layer, target) A (rank × in) and B (out × rank), f32,
/// in one flat buffer (so gradients, AdamW moments and clipping see one vector). B's rows are in
/// the GGUF file's order, as `LoRAAdapter` applies them.
public final class LoRAParameters: @unchecked Sendable {
    public struct Slot: Sendable {
        public let layer: Int
        public let target: LoRATarget
        public let a: Int, b: Int          // offsets of A and B in `values`
        public let inDim: Int, outDim: Int
    }
    public let rank: Int
    public let alpha: Float
    public let scaling: Float
    public let targets: [LoRATarget]
    public private(set) var slots: [Slot] = []
    /// [layer][target.rawValue] → index in `slots`.
    let index: [[Int?]]
    public var values: [Float]

    /// PEFT's initialisation: A ~ U(−1/√in, 1/√in) (kaiming-uniform with a = √5), B = 0, so
    /// training starts from the base model exactly.
    public init(config c: DecoderConfig, rank: Int, alpha: Float, targets: [LoRATarget], seed: UInt64) {
        self.rank = rank; self.alpha = alpha; self.scaling = alpha / Float(rank); self.targets = targets
        var idx = [[Int?]](repeating: Array(repeating: nil, count: LoRATarget.allCases.count), count: c.layers)
        var n = 0
        var slots: [Slot] = []
        for l in 0..<c.layers {
            for t in targets {
                let (out, inD) = t.shape(c)
                idx[l][t.rawValue] = slots.count
                slots.append(Slot(layer: l, target: t, a: n, b: n + rank * inD, inDim: inD, outDim: out))
                n += rank * inD + out * rank
            }
        }
        self.slots = slots
        self.index = idx
        values = [Float](repeating: 0, count: n)
        var rng = SeededGenerator(seed: seed)
        for s in slots {
            let bound = 1 / Float(s.inDim).squareRoot()
            for i in 0..<(rank * s.inDim) { values[s.a + i] = (rng.uniform() * 2 - 1) * bound }
        }
    }

    func slot(_ layer: Int, _ t: LoRATarget) -> Slot? { index[layer][t.rawValue].map { slots[$0] } }

    /// The weights as an adapter the engine applies (a copy: training may go on).
    public func adapter(name: String, path: String = "") -> LoRAAdapter {
        var pairs = [[LoRAPair?]](repeating: Array(repeating: nil, count: LoRATarget.allCases.count), count: index.count)
        for s in slots {
            pairs[s.layer][s.target.rawValue] = LoRAPair(rank: rank, inDim: s.inDim, outDim: s.outDim,
                                                         a: Array(values[s.a ..< s.a + rank * s.inDim]),
                                                         b: Array(values[s.b ..< s.b + s.outDim * rank]))
        }
        return LoRAAdapter.make(name: name, path: path, format: "peft", rank: rank, alpha: alpha, scaling: scaling, pairs: pairs)
    }
}

extension SeededGenerator {
    /// Uniform in [0, 1), 24 bits.
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
}

/// Loss and gradients of a decoder with LoRA adapters on its projections, the base weights
/// frozen and kept as they are in the file (quantized): forward products run on the engine's
/// kernels, backward products on transposed copies dequantized once to f16 (f32 for f32 files).
/// Everything else — RMSNorm, RoPE, causal attention with GQA, SwiGLU, cross-entropy — is f32
/// here, forward and backward. Llama-family models (llama, mistral, qwen2/qwen3 without their
/// biases and norms) are supported; others are refused.
public final class LoRATrainer: @unchecked Sendable {
    public let model: DecoderModel
    public var config: DecoderConfig { model.config }
    let compute: Compute
    /// [layer][target.rawValue] Wᵀ (in × out) for dx = dy·W; and the output matrix's transpose.
    private var transposed: [[QuantizedMatrix?]] = []
    private var outputT: QuantizedMatrix
    private var buffers: [Data] = []

    public init(model: DecoderModel) throws {
        let c = model.config
        guard !c.hasQKVBias, !c.hasQKNorm, !c.hasPostNorms, c.activation == .silu, c.slidingWindow == nil,
              c.embeddingScale == 1, !c.scalesQueries, c.valueDim == c.headDim else {
            throw TrainingError.unsupported("steward tune supports llama-family models (RMSNorm, RoPE, SwiGLU, no biases, no sliding window); \(c.architecture) with these options is not supported yet")
        }
        self.model = model
        self.compute = model.compute
        var bufs: [Data] = []
        func transpose(_ w: QuantizedMatrix, name: String) throws -> QuantizedMatrix {
            var t = [Float](repeating: 0, count: w.rows * w.cols)
            var row = [Float](repeating: 0, count: w.cols)
            for r in 0..<w.rows {
                row.withUnsafeMutableBufferPointer { w.dequantizeRow(r, into: $0.baseAddress!) }
                for c in 0..<w.cols { t[c * w.rows + r] = row[c] }
            }
            let type: GGMLType = w.type == .f32 ? .f32 : .f16
            let bytes = Data(try quantize(type, t))
            bufs.append(bytes)
            return try bytes.withUnsafeBytes { raw in
                try QuantizedMatrix(type: type, rows: w.cols, cols: w.rows,
                                    bytes: UnsafeRawBufferPointer(start: raw.baseAddress, count: raw.count), name: name + "ᵀ")
            }
        }
        var ts: [[QuantizedMatrix?]] = []
        for (l, b) in model.weights.blocks.enumerated() {
            var row = [QuantizedMatrix?](repeating: nil, count: LoRATarget.allCases.count)
            for t in LoRATarget.allCases {
                row[t.rawValue] = try transpose(LoRATrainer.weight(b, t).matrix, name: "blk.\(l).\(t.ggufName)")
            }
            ts.append(row)
        }
        outputT = try transpose(model.weights.output.matrix, name: "output")
        transposed = ts
        buffers = bufs
        _ = buffers
    }

    static func weight(_ b: BlockWeights, _ t: LoRATarget) -> Weight {
        switch t {
        case .q: return b.wq
        case .k: return b.wk
        case .v: return b.wv
        case .o: return b.wo
        case .gate: return b.wGate
        case .up: return b.wUp
        case .down: return b.wDown
        }
    }

    /// What the forward pass keeps for the backward pass, per layer.
    struct LayerCache {
        var xIn: [Float] = [], r1: [Float] = [], xn1: [Float] = []
        var q: [Float] = [], k: [Float] = [], v: [Float] = [], p: [Float] = [], att: [Float] = []
        var xMid: [Float] = [], r2: [Float] = [], xn2: [Float] = []
        var g: [Float] = [], u: [Float] = [], act: [Float] = []
        /// A·x per target, (T × rank).
        var lora: [[Float]] = Array(repeating: [], count: LoRATarget.allCases.count)
    }

    /// Mean cross-entropy of predicting tokens[t+1] at every position t with mask[t+1] true,
    /// and (when `grads` is given) its gradient with respect to the LoRA weights added into
    /// `grads` (same layout as `params.values`), scaled by `gradScale`. Returns the summed loss
    /// and the number of scored tokens.
    ///
    /// With `checkpointing` the forward pass keeps only each layer's input, and the backward
    /// pass recomputes one layer's activations at a time from it (gradient checkpointing):
    /// the same arithmetic in the same order, so the gradients are bitwise those without it,
    /// for one more forward pass of time and one layer's activations of memory instead of all.
    public func lossAndGradients(tokens: [Int32], mask: [Bool], params: LoRAParameters, grads: UnsafeMutablePointer<Float>?,
                                 gradScale: Float = 1, checkpointing: Bool = false) throws -> (loss: Double, count: Int) {
        let c = config
        let T = tokens.count
        guard T >= 2, mask.count == T else { throw TrainingError.invalid("a training sequence needs at least 2 tokens and one mask flag per token") }
        let h = c.hiddenSize, qd = c.heads * c.headDim, kd = c.kvHeads * c.headDim, f = c.ffnSize, V = c.vocabSize
        let r = params.rank
        let s = params.scaling
        let scored = (0..<(T - 1)).filter { mask[$0 + 1] }
        guard !scored.isEmpty else { return (0, 0) }

        // RoPE tables for positions 0..<T.
        let half = c.ropeDims / 2
        var cosT = [Float](repeating: 0, count: T * half), sinT = [Float](repeating: 0, count: T * half)
        cosT.withUnsafeMutableBufferPointer { cp in sinT.withUnsafeMutableBufferPointer { sp in
            for t in 0..<T { ck_rope_cache(Float(t), Int64(c.ropeDims), c.ropeBase, c.ropeScale, cp.baseAddress! + t * half, sp.baseAddress! + t * half) }
        } }
        let negSin = sinT.map { -$0 }
        let neox: Int32 = c.ropeStyle == .neox ? 1 : 0
        /// Rotates each row's heads by +θ (sin) or −θ (negSin).
        func rope(_ m: inout [Float], heads: Int, width: Int, _ sines: [Float]) {
            m.withUnsafeMutableBufferPointer { mp in cosT.withUnsafeBufferPointer { cp in sines.withUnsafeBufferPointer { sp in
                for t in 0..<T {
                    ck_rope_apply(mp.baseAddress! + t * width, Int64(heads), Int64(c.headDim), Int64(c.ropeDims),
                                  cp.baseAddress! + t * half, sp.baseAddress! + t * half, neox)
                }
            } } }
        }

        var x = [Float](repeating: 0, count: T * h)
        x.withUnsafeMutableBufferPointer { xp in
            for (i, tok) in tokens.enumerated() { model.weights.tokenEmbedding.matrix.dequantizeRow(Int(tok), into: xp.baseAddress! + i * h) }
        }
        // Per layer: everything the backward pass needs, or (checkpointing) only the layer's
        // input; nothing when no gradients are wanted.
        var caches: [LayerCache] = []
        caches.reserveCapacity(c.layers)

        func linear(_ l: Int, _ t: LoRATarget, _ input: [Float], rows: Int, cache: inout LayerCache) -> [Float] {
            let w = LoRATrainer.weight(model.weights.blocks[l], t).matrix
            var y = [Float](repeating: 0, count: rows * w.rows)
            input.withUnsafeBufferPointer { ip in y.withUnsafeMutableBufferPointer { yp in
                compute.matmul(w, x: ip.baseAddress!, tokens: rows, y: yp.baseAddress!)
            } }
            if let sl = params.slot(l, t) {
                var u = [Float](repeating: 0, count: rows * r)
                params.values.withUnsafeBufferPointer { pv in
                    let a = pv.baseAddress! + sl.a, b = pv.baseAddress! + sl.b
                    input.withUnsafeBufferPointer { ip in
                        for i in 0..<rows {
                            for j in 0..<r { u[i * r + j] = FloatOps.dot(a + j * sl.inDim, ip.baseAddress! + i * sl.inDim, count: sl.inDim) }
                        }
                    }
                    y.withUnsafeMutableBufferPointer { yp in
                        for i in 0..<rows {
                            for o in 0..<sl.outDim {
                                var acc: Float = 0
                                for j in 0..<r { acc += b[o * r + j] * u[i * r + j] }
                                yp[i * sl.outDim + o] += s * acc
                            }
                        }
                    }
                }
                cache.lora[t.rawValue] = u
            }
            return y
        }

        // Forward
        let scale = c.attentionScale
        let group = c.heads / c.kvHeads
        let d = c.headDim
        /// Layer `l` on `x` (updated in place); returns what its backward pass reads.
        func forwardLayer(_ l: Int, _ x: inout [Float]) -> LayerCache {
            let b = model.weights.blocks[l]
            var lc = LayerCache()
            lc.xIn = x
            (lc.xn1, lc.r1) = LoRATrainer.rmsnorm(x, b.attnNorm, rows: T, width: h, eps: c.rmsEps)
            var q = linear(l, .q, lc.xn1, rows: T, cache: &lc)
            var k = linear(l, .k, lc.xn1, rows: T, cache: &lc)
            let v = linear(l, .v, lc.xn1, rows: T, cache: &lc)
            rope(&q, heads: c.heads, width: qd, sinT)
            rope(&k, heads: c.kvHeads, width: kd, sinT)
            // Causal attention: P (heads × T × T), att (T × qd).
            var p = [Float](repeating: 0, count: c.heads * T * T)
            var att = [Float](repeating: 0, count: T * qd)
            q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
                p.withUnsafeMutableBufferPointer { pp in att.withUnsafeMutableBufferPointer { ap in
                    for hd in 0..<c.heads {
                        let g = hd / group
                        for t in 0..<T {
                            let row = pp.baseAddress! + (hd * T + t) * T
                            let qt = qp.baseAddress! + t * qd + hd * d
                            var mx = -Float.infinity
                            for u in 0...t {
                                let sc = FloatOps.dot(qt, kp.baseAddress! + u * kd + g * d, count: d) * scale
                                row[u] = sc
                                mx = max(mx, sc)
                            }
                            var sum: Float = 0
                            for u in 0...t { row[u] = Foundation.exp(row[u] - mx); sum += row[u] }
                            let inv = 1 / sum
                            let out = ap.baseAddress! + t * qd + hd * d
                            for u in 0...t {
                                row[u] *= inv
                                FloatOps.axpy(row[u], vp.baseAddress! + u * kd + g * d, out, count: d)
                            }
                        }
                    }
                } }
            } } }
            lc.q = q; lc.k = k; lc.v = v; lc.p = p; lc.att = att
            let o = linear(l, .o, att, rows: T, cache: &lc)
            for i in 0..<(T * h) { x[i] += o[i] }
            lc.xMid = x
            (lc.xn2, lc.r2) = LoRATrainer.rmsnorm(x, b.ffnNorm, rows: T, width: h, eps: c.rmsEps)
            lc.g = linear(l, .gate, lc.xn2, rows: T, cache: &lc)
            lc.u = linear(l, .up, lc.xn2, rows: T, cache: &lc)
            var act = [Float](repeating: 0, count: T * f)
            for i in 0..<(T * f) { let gv = lc.g[i]; act[i] = gv / (1 + Foundation.exp(-gv)) * lc.u[i] }
            lc.act = act
            let down = linear(l, .down, act, rows: T, cache: &lc)
            for i in 0..<(T * h) { x[i] += down[i] }
            return lc
        }
        for l in 0..<c.layers {
            var lc = forwardLayer(l, &x)
            if grads == nil { continue }
            if checkpointing { lc = LayerCache(xIn: lc.xIn) }
            caches.append(lc)
        }
        let (xf, rf) = LoRATrainer.rmsnorm(x, model.weights.outputNorm, rows: T, width: h, eps: c.rmsEps)
        // Logits only for the scored positions.
        let n = scored.count
        var xs = [Float](repeating: 0, count: n * h)
        for (i, t) in scored.enumerated() { for j in 0..<h { xs[i * h + j] = xf[t * h + j] } }
        var logits = [Float](repeating: 0, count: n * V)
        xs.withUnsafeBufferPointer { xp in logits.withUnsafeMutableBufferPointer { lp in
            compute.matmul(model.weights.output.matrix, x: xp.baseAddress!, tokens: n, y: lp.baseAddress!)
        } }
        var loss = 0.0
        for (i, t) in scored.enumerated() {
            let row = i * V
            var mx = -Float.infinity
            for j in 0..<V { mx = max(mx, logits[row + j]) }
            var sum = 0.0
            for j in 0..<V { sum += Double(Foundation.exp(logits[row + j] - mx)) }
            let target = Int(tokens[t + 1])
            loss += Foundation.log(sum) + Double(mx) - Double(logits[row + target])
            if grads != nil {
                // dlogits = softmax − onehot, times gradScale (the caller divides by the token count).
                let inv = Float(1 / sum)
                for j in 0..<V { logits[row + j] = Foundation.exp(logits[row + j] - mx) * inv * gradScale }
                logits[row + target] -= gradScale
            }
        }
        guard let grads else { return (loss, n) }

        // Backward
        var dxs = [Float](repeating: 0, count: n * h)
        logits.withUnsafeBufferPointer { lp in dxs.withUnsafeMutableBufferPointer { dp in
            compute.matmul(outputT, x: lp.baseAddress!, tokens: n, y: dp.baseAddress!)
        } }
        var dxf = [Float](repeating: 0, count: T * h)
        for (i, t) in scored.enumerated() { for j in 0..<h { dxf[t * h + j] = dxs[i * h + j] } }
        var dx = LoRATrainer.rmsnormBackward(x, model.weights.outputNorm, rf, dxf, rows: T, width: h)

        /// dy → dx for a projection, accumulating the LoRA gradients.
        func linearBackward(_ l: Int, _ t: LoRATarget, input: [Float], dy: [Float], rows: Int, cache: LayerCache) -> [Float] {
            let wt = transposed[l][t.rawValue]!
            var dxo = [Float](repeating: 0, count: rows * wt.rows)
            dy.withUnsafeBufferPointer { dp in dxo.withUnsafeMutableBufferPointer { xp in
                compute.matmul(wt, x: dp.baseAddress!, tokens: rows, y: xp.baseAddress!)
            } }
            guard let sl = params.slot(l, t) else { return dxo }
            let u = cache.lora[t.rawValue]
            params.values.withUnsafeBufferPointer { pv in
                let a = pv.baseAddress! + sl.a, b = pv.baseAddress! + sl.b
                let gA = grads + sl.a, gB = grads + sl.b
                var e = [Float](repeating: 0, count: r)
                dy.withUnsafeBufferPointer { dp in input.withUnsafeBufferPointer { ip in dxo.withUnsafeMutableBufferPointer { xp in
                    for i in 0..<rows {
                        let dyi = dp.baseAddress! + i * sl.outDim
                        // dB += s·dy⊗u ; e = Bᵀ·dy
                        for j in 0..<r { e[j] = 0 }
                        for o in 0..<sl.outDim {
                            let g = dyi[o]
                            if g == 0 { continue }
                            for j in 0..<r {
                                gB[o * r + j] += s * g * u[i * r + j]
                                e[j] += b[o * r + j] * g
                            }
                        }
                        // dA += s·e⊗x ; dx += s·Aᵀ·e
                        for j in 0..<r {
                            let ej = s * e[j]
                            if ej == 0 { continue }
                            FloatOps.axpy(ej, ip.baseAddress! + i * sl.inDim, gA + j * sl.inDim, count: sl.inDim)
                            FloatOps.axpy(ej, a + j * sl.inDim, xp.baseAddress! + i * sl.inDim, count: sl.inDim)
                        }
                    }
                } } }
            }
            return dxo
        }

        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let b = model.weights.blocks[l]
            var lc = caches[l]
            if checkpointing {
                var xr = lc.xIn
                lc = forwardLayer(l, &xr)
            }
            caches[l] = LayerCache()  // this layer's activations are not needed again
            // Feed-forward: x += down(silu(g)·u)
            let dAct = linearBackward(l, .down, input: lc.act, dy: dx, rows: T, cache: lc)
            var dg = [Float](repeating: 0, count: T * f), du = [Float](repeating: 0, count: T * f)
            for i in 0..<(T * f) {
                let gv = lc.g[i]
                let sig = 1 / (1 + Foundation.exp(-gv))
                let silu = gv * sig
                du[i] = dAct[i] * silu
                dg[i] = dAct[i] * lc.u[i] * sig * (1 + gv * (1 - sig))
            }
            var dxn2 = linearBackward(l, .gate, input: lc.xn2, dy: dg, rows: T, cache: lc)
            let dxn2u = linearBackward(l, .up, input: lc.xn2, dy: du, rows: T, cache: lc)
            for i in 0..<(T * h) { dxn2[i] += dxn2u[i] }
            let dMid = LoRATrainer.rmsnormBackward(lc.xMid, b.ffnNorm, lc.r2, dxn2, rows: T, width: h)
            for i in 0..<(T * h) { dx[i] += dMid[i] }
            // Attention: x += o(attn(q, k, v))
            let dAtt = linearBackward(l, .o, input: lc.att, dy: dx, rows: T, cache: lc)
            var dq = [Float](repeating: 0, count: T * qd), dk = [Float](repeating: 0, count: T * kd), dv = [Float](repeating: 0, count: T * kd)
            var dp = [Float](repeating: 0, count: T)
            lc.q.withUnsafeBufferPointer { qp in lc.k.withUnsafeBufferPointer { kp in lc.v.withUnsafeBufferPointer { vp in
                lc.p.withUnsafeBufferPointer { pp in dAtt.withUnsafeBufferPointer { ap in
                    dq.withUnsafeMutableBufferPointer { dqp in dk.withUnsafeMutableBufferPointer { dkp in dv.withUnsafeMutableBufferPointer { dvp in
                        for hd in 0..<c.heads {
                            let g = hd / group
                            for t in 0..<T {
                                let row = pp.baseAddress! + (hd * T + t) * T
                                let dOut = ap.baseAddress! + t * qd + hd * d
                                // dP = dO·Vᵀ ; dV += P·dO
                                var dot: Float = 0
                                for u in 0...t {
                                    dp[u] = FloatOps.dot(dOut, vp.baseAddress! + u * kd + g * d, count: d)
                                    dot += dp[u] * row[u]
                                    FloatOps.axpy(row[u], dOut, dvp.baseAddress! + u * kd + g * d, count: d)
                                }
                                // dS = P⊙(dP − Σ dP·P) ; dQ += scale·dS·K ; dK += scale·dS·Q
                                let qt = qp.baseAddress! + t * qd + hd * d
                                let dqt = dqp.baseAddress! + t * qd + hd * d
                                for u in 0...t {
                                    let ds = row[u] * (dp[u] - dot) * scale
                                    if ds == 0 { continue }
                                    FloatOps.axpy(ds, kp.baseAddress! + u * kd + g * d, dqt, count: d)
                                    FloatOps.axpy(ds, qt, dkp.baseAddress! + u * kd + g * d, count: d)
                                }
                            }
                        }
                    } } }
                } }
            } } }
            // Undo RoPE on the gradients (rotation by −θ).
            rope(&dq, heads: c.heads, width: qd, negSin)
            rope(&dk, heads: c.kvHeads, width: kd, negSin)
            var dxn1 = linearBackward(l, .q, input: lc.xn1, dy: dq, rows: T, cache: lc)
            let dk1 = linearBackward(l, .k, input: lc.xn1, dy: dk, rows: T, cache: lc)
            let dv1 = linearBackward(l, .v, input: lc.xn1, dy: dv, rows: T, cache: lc)
            for i in 0..<(T * h) { dxn1[i] += dk1[i] + dv1[i] }
            let dIn = LoRATrainer.rmsnormBackward(lc.xIn, b.attnNorm, lc.r1, dxn1, rows: T, width: h)
            for i in 0..<(T * h) { dx[i] += dIn[i] }
        }
        return (loss, n)
    }

    /// y = x · r · w with r = 1/√(mean(x²) + eps) per row; returns y and r.
    static func rmsnorm(_ x: [Float], _ w: [Float], rows: Int, width: Int, eps: Float) -> ([Float], [Float]) {
        var y = [Float](repeating: 0, count: x.count), rs = [Float](repeating: 0, count: rows)
        for i in 0..<rows {
            var ss: Float = 0
            for j in 0..<width { let v = x[i * width + j]; ss += v * v }
            let rr = 1 / (ss / Float(width) + eps).squareRoot()
            rs[i] = rr
            for j in 0..<width { y[i * width + j] = x[i * width + j] * rr * w[j] }
        }
        return (y, rs)
    }

    /// dx = r·(w⊙dy) − x·r³·Σ(w⊙dy⊙x)/n per row.
    static func rmsnormBackward(_ x: [Float], _ w: [Float], _ rs: [Float], _ dy: [Float], rows: Int, width: Int) -> [Float] {
        var dx = [Float](repeating: 0, count: x.count)
        for i in 0..<rows {
            let rr = rs[i]
            var dot: Float = 0
            for j in 0..<width { dot += w[j] * dy[i * width + j] * x[i * width + j] }
            let k = rr * rr * rr * dot / Float(width)
            for j in 0..<width { dx[i * width + j] = rr * w[j] * dy[i * width + j] - x[i * width + j] * k }
        }
        return dx
    }
}

