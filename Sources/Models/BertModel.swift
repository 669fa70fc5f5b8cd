import Foundation
import ModelFiles
import Kernels

/// One input sequence of a BERT encoder: token ids (special tokens included), optional segment
/// ids (all 0 when nil) and an optional attention mask (1 = attend, 0 = padding; all 1 when nil).
public struct BertSequence: Sendable, Equatable {
    public var ids: [Int32]
    public var tokenTypes: [Int32]?
    public var attentionMask: [Int32]?

    public init(ids: [Int32], tokenTypes: [Int32]? = nil, attentionMask: [Int32]? = nil) {
        self.ids = ids
        self.tokenTypes = tokenTypes
        self.attentionMask = attentionMask
    }
}

/// A BERT encoder (transformers' `BertModel` without the pooler): embeddings, then post-LayerNorm
/// blocks of bidirectional self-attention and a GELU MLP. Returns the last hidden state.
///
/// A batch is packed, not padded: all tokens of all sequences go through each matrix product
/// together, and attention runs within each sequence over its unmasked keys. That equals
/// transformers' padded batch with an attention mask (masked keys get a large negative score,
/// so their softmax weight is exactly 0), without computing the padding.
/// One forward at a time per model (the compute scratch is shared); calls are serialized.
public final class BertModel: @unchecked Sendable {
    public let config: BertConfig
    public let weights: BertWeights
    public let compute: Compute
    private let lock = NSLock()

    /// Loads `config.json` and `model.safetensors` from a Hugging Face model directory.
    public convenience init(directory: String, threads: Int? = nil) throws {
        let config = try BertConfig(contentsOf: directory + "/config.json")
        let file = try SafetensorsFile(path: directory + "/model.safetensors")
        try self.init(file: file, config: config, threads: threads)
    }

    public init(file: SafetensorsFile, config: BertConfig, threads: Int? = nil) throws(BertError) {
        self.config = config
        self.weights = try BertWeights(file: file, config: config)
        self.compute = Compute(threads: max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount))
    }

    /// The last hidden state of each sequence, row-major (tokens × hidden). Rows of masked
    /// (padding) positions are computed as transformers computes them, and are usually ignored.
    public func forward(_ batch: [BertSequence]) throws(BertError) -> [[Float]] {
        try validate(batch)
        let total = batch.reduce(0) { $0 + $1.ids.count }
        guard total > 0 else { return [] }
        lock.lock()
        defer { lock.unlock() }
        let hidden = run(batch, total: total)
        defer { hidden.deallocate() }
        var out: [[Float]] = []
        out.reserveCapacity(batch.count)
        var offset = 0
        for s in batch {
            let n = s.ids.count * config.hiddenSize
            out.append(Array(UnsafeBufferPointer(start: hidden + offset * config.hiddenSize, count: n)))
            offset += s.ids.count
        }
        return out
    }

    /// The last hidden state of one sequence (tokens × hidden).
    public func forward(ids: [Int32], tokenTypes: [Int32]? = nil) throws(BertError) -> [Float] {
        try forward([BertSequence(ids: ids, tokenTypes: tokenTypes)])[0]
    }

    private func validate(_ batch: [BertSequence]) throws(BertError) {
        let c = config
        for (i, s) in batch.enumerated() {
            let n = s.ids.count
            guard n > 0 else { throw .badInput("sequence \(i) is empty; a BERT input holds at least [CLS] and [SEP]") }
            guard n <= c.maxPositions else {
                throw .badInput("sequence \(i) has \(n) tokens but the model has only \(c.maxPositions) positions; split the text")
            }
            if let bad = s.ids.first(where: { $0 < 0 || Int($0) >= c.vocabSize }) {
                throw .badInput("sequence \(i) has token id \(bad), outside the vocabulary 0..<\(c.vocabSize); the tokenizer does not match the model")
            }
            if let types = s.tokenTypes {
                guard types.count == n else { throw .badInput("sequence \(i): \(types.count) token types for \(n) tokens") }
                if let bad = types.first(where: { $0 < 0 || Int($0) >= c.typeVocabSize }) {
                    throw .badInput("sequence \(i) has token type \(bad); the model has \(c.typeVocabSize) types")
                }
            }
            if let mask = s.attentionMask {
                guard mask.count == n else { throw .badInput("sequence \(i): attention mask of \(mask.count) for \(n) tokens") }
                guard mask.allSatisfy({ $0 == 0 || $0 == 1 }) else { throw .badInput("sequence \(i): attention mask values must be 0 or 1") }
                guard mask.contains(1) else { throw .badInput("sequence \(i): the attention mask hides every token") }
            }
        }
    }

    // MARK: Forward pass

    /// Runs the encoder over the packed batch; returns (total × hidden), caller deallocates.
    private func run(_ batch: [BertSequence], total n: Int) -> UnsafeMutablePointer<Float> {
        let c = config, w = weights, h = c.hiddenSize, ff = c.intermediateSize
        let pool = compute.pool
        let x = UnsafeMutablePointer<Float>.allocate(capacity: n * h)     // (n, hidden) residual stream
        let q = UnsafeMutablePointer<Float>.allocate(capacity: n * h)     // (n, hidden) queries
        let k = UnsafeMutablePointer<Float>.allocate(capacity: n * h)     // (n, hidden) keys
        let v = UnsafeMutablePointer<Float>.allocate(capacity: n * h)     // (n, hidden) values
        let ctx = UnsafeMutablePointer<Float>.allocate(capacity: n * h)   // (n, hidden) attention output
        let tmp = UnsafeMutablePointer<Float>.allocate(capacity: n * h)   // (n, hidden) projection + residual
        let mid = UnsafeMutablePointer<Float>.allocate(capacity: n * ff)  // (n, intermediate)
        defer { for p in [q, k, v, ctx, tmp, mid] { p.deallocate() } }

        // Sequence layout in the packed batch, and the key positions each one attends to.
        var starts: [Int] = [], keys: [[Int]] = []
        var offset = 0
        var longest = 0
        for s in batch {
            starts.append(offset)
            let len = s.ids.count
            keys.append(s.attentionMask.map { m in (0..<len).filter { m[$0] != 0 } } ?? Array(0..<len))
            offset += len
            longest = max(longest, len)
        }

        // Embeddings: (word + token type) + position, then LayerNorm (BertEmbeddings.forward order).
        var row = 0
        let posRow = UnsafeMutablePointer<Float>.allocate(capacity: 2 * h)
        defer { posRow.deallocate() }
        let typeRow = posRow + h
        for s in batch {
            for (p, id) in s.ids.enumerated() {
                let xr = x + row * h
                w.wordEmbeddings.dequantizeRow(Int(id), into: xr)
                w.tokenTypeEmbeddings.dequantizeRow(Int(s.tokenTypes?[p] ?? 0), into: typeRow)
                w.positionEmbeddings.dequantizeRow(p, into: posRow)
                FloatOps.add(xr, typeRow, into: xr, count: h)
                FloatOps.add(xr, posRow, into: xr, count: h)
                row += 1
            }
        }
        layerNorm(x, rows: n, weight: w.embeddingNormWeight, bias: w.embeddingNormBias)

        let heads = c.heads, hd = c.headDim
        let scale = 1 / Float(hd).squareRoot()
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: pool.threadCount * max(1, longest))
        defer { scores.deallocate() }

        for layer in w.layers {
            linear(layer.query, layer.queryBias, x, n, q)
            linear(layer.key, layer.keyBias, x, n, k)
            linear(layer.value, layer.valueBias, x, n, v)

            // Bidirectional attention within each sequence, one (sequence, head) pair per task.
            pool.parallelFor(batch.count * heads) { range, thread in
                let sc = scores + thread * max(1, longest)
                for item in range {
                    let s = item / heads, head = item % heads
                    let base = starts[s], len = batch[s].ids.count
                    let attended = keys[s]
                    for i in 0..<len {
                        let qi = q + (base + i) * h + head * hd
                        for (j, key) in attended.enumerated() {
                            sc[j] = FloatOps.dot(qi, k + (base + key) * h + head * hd, count: hd) * scale
                        }
                        FloatOps.softmax(sc, count: attended.count)
                        let out = ctx + (base + i) * h + head * hd
                        out.update(repeating: 0, count: hd)
                        for (j, key) in attended.enumerated() {
                            FloatOps.axpy(sc[j], v + (base + key) * h + head * hd, out, count: hd)
                        }
                    }
                }
            }

            // BertSelfOutput: dense, then LayerNorm(dense + input).
            linear(layer.attentionOutput, layer.attentionOutputBias, ctx, n, tmp)
            FloatOps.add(tmp, x, into: tmp, count: n * h)
            layerNorm(tmp, rows: n, weight: layer.attentionNormWeight, bias: layer.attentionNormBias, into: x)

            // BertIntermediate (dense + GELU), then BertOutput: dense, LayerNorm(dense + input).
            linear(layer.intermediate, layer.intermediateBias, x, n, mid)
            gelu(mid, count: n * ff, rowLength: ff)
            linear(layer.output, layer.outputBias, mid, n, tmp)
            FloatOps.add(tmp, x, into: tmp, count: n * h)
            layerNorm(tmp, rows: n, weight: layer.outputNormWeight, bias: layer.outputNormBias, into: x)
        }
        return x
    }

    /// y (tokens × rows) = x (tokens × cols) · Wᵀ + b.
    private func linear(_ m: QuantizedMatrix, _ bias: [Float], _ x: UnsafePointer<Float>, _ tokens: Int,
                        _ y: UnsafeMutablePointer<Float>) {
        compute.matmul(m, x: x, tokens: tokens, y: y)
        bias.withUnsafeBufferPointer { b in
            guard let bp = b.baseAddress else { return }
            for t in 0..<tokens { FloatOps.add(y + t * m.rows, bp, into: y + t * m.rows, count: m.rows) }
        }
    }

    private func layerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, weight: [Float], bias: [Float],
                           into y: UnsafeMutablePointer<Float>? = nil) {
        let h = config.hiddenSize, eps = config.layerNormEps
        let out = y ?? x
        weight.withUnsafeBufferPointer { wb in
            bias.withUnsafeBufferPointer { bb in
                for r in 0..<rows {
                    FloatOps.layerNorm(x + r * h, weight: wb.baseAddress, bias: bb.baseAddress, into: out + r * h, count: h, eps: eps)
                }
            }
        }
    }

    /// GELU in place, split over the pool by rows.
    private func gelu(_ x: UnsafeMutablePointer<Float>, count: Int, rowLength: Int) {
        let rows = count / rowLength
        switch config.activation {
        case .gelu:
            compute.pool.parallelFor(rows, chunk: max(1, rows / (4 * compute.pool.threadCount))) { range, _ in
                let p = x + range.lowerBound * rowLength
                BertModel.geluErf(p, count: range.count * rowLength)
            }
        case .geluTanh:
            compute.pool.parallelFor(rows, chunk: max(1, rows / (4 * compute.pool.threadCount))) { range, _ in
                let p = x + range.lowerBound * rowLength
                FloatOps.gelu(p, into: p, count: range.count * rowLength)
            }
        }
    }

    /// The exact GELU, x·Φ(x) = 0.5·x·(1 + erf(x/√2)), as torch.nn.functional.gelu computes it
    /// by default (not the tanh approximation FloatOps.gelu uses for Gemma).
    static func geluErf(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let r = Float(0.5).squareRoot()
        for i in 0..<count {
            let v = x[i]
            x[i] = 0.5 * v * (1 + erf(v * r))
        }
    }
}
