import ModelFiles
import Kernels

/// A weight matrix as a zero-copy view into the mmap. ggml order: `cols` (input features) is the
/// contiguous dimension, `rows` the output features.
public struct Weight: @unchecked Sendable {
    public let name: String
    public let matrix: QuantizedMatrix
    public var rows: Int { matrix.rows }
    public var cols: Int { matrix.cols }
}

/// A vector of f32 values (norm weights, biases), copied out of the file once (they are tiny).
public typealias Vector = [Float]

/// The weights of one transformer block. Shapes in (rows × cols), ggml naming.
public struct BlockWeights: @unchecked Sendable {
    public let attnNorm: Vector            // (hidden)
    public let wq: Weight                  // (heads·headDim × hidden)
    public let wk: Weight                  // (kvHeads·headDim × hidden)
    public let wv: Weight                  // (kvHeads·valueDim × hidden)
    public let wo: Weight                  // (hidden × heads·valueDim)
    public let bq: Vector?, bk: Vector?, bv: Vector?
    public let qNorm: Vector?, kNorm: Vector?   // (headDim)
    public let postAttnNorm: Vector?       // (hidden)
    public let ffnNorm: Vector             // (hidden)
    public let wGate: Weight               // (ffn × hidden)
    public let wUp: Weight                 // (ffn × hidden)
    public let wDown: Weight               // (hidden × ffn)
    public let postFFNNorm: Vector?        // (hidden)
}

public struct DecoderWeights: @unchecked Sendable {
    public let tokenEmbedding: Weight      // (vocab × hidden)
    public let outputNorm: Vector          // (hidden)
    /// The output projection; the token embedding when the model ties them.
    public let output: Weight              // (vocab × hidden)
    public let blocks: [BlockWeights]

    /// Binds every tensor the configuration needs, checks shapes and types, and fails if the
    /// file has a tensor the architecture does not use (a sign we would compute the wrong thing).
    public init(file f: GGUFFile, config c: DecoderConfig) throws(ModelError) {
        var used = Set<String>()

        func info(_ name: String) throws(ModelError) -> GGUFTensorInfo {
            guard let t = f.tensor(named: name) else { throw .missingTensor(name) }
            used.insert(name)
            return t
        }
        func weight(_ name: String, rows: Int, cols: Int) throws(ModelError) -> Weight {
            let t = try info(name)
            guard t.dims == [cols, rows] else { throw .badTensorShape(name, expected: [cols, rows], found: t.dims) }
            guard QuantizedMatrix.supportedTypes.contains(t.type) else { throw .unsupportedTensorType(name, t.type) }
            do {
                return Weight(name: name, matrix: try QuantizedMatrix(type: t.type, rows: rows, cols: cols, bytes: f.data(of: t), name: name))
            } catch {
                throw .badConfig(error.description)
            }
        }
        func vector(_ name: String, _ n: Int) throws(ModelError) -> Vector {
            let t = try info(name)
            guard t.dims == [n] else { throw .badTensorShape(name, expected: [n], found: t.dims) }
            guard t.type == .f32 else { throw .unsupportedTensorType(name, t.type) }
            let raw = f.data(of: t)
            return (0..<n).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        }
        func optionalVector(_ name: String, _ n: Int, _ wanted: Bool) throws(ModelError) -> Vector? {
            guard wanted else { return nil }
            return try vector(name, n)
        }

        let h = c.hiddenSize, qDim = c.heads * c.headDim, kDim = c.kvHeads * c.headDim, vDim = c.kvHeads * c.valueDim
        tokenEmbedding = try weight("token_embd.weight", rows: c.vocabSize, cols: h)
        outputNorm = try vector("output_norm.weight", h)
        if f.tensor(named: "output.weight") != nil {
            output = try weight("output.weight", rows: c.vocabSize, cols: h)
        } else {
            output = tokenEmbedding
        }
        var bs: [BlockWeights] = []
        for i in 0..<c.layers {
            let p = "blk.\(i)."
            bs.append(BlockWeights(
                attnNorm: try vector(p + "attn_norm.weight", h),
                wq: try weight(p + "attn_q.weight", rows: qDim, cols: h),
                wk: try weight(p + "attn_k.weight", rows: kDim, cols: h),
                wv: try weight(p + "attn_v.weight", rows: vDim, cols: h),
                wo: try weight(p + "attn_output.weight", rows: h, cols: c.heads * c.valueDim),
                bq: try optionalVector(p + "attn_q.bias", qDim, c.hasQKVBias),
                bk: try optionalVector(p + "attn_k.bias", kDim, c.hasQKVBias),
                bv: try optionalVector(p + "attn_v.bias", vDim, c.hasQKVBias),
                qNorm: try optionalVector(p + "attn_q_norm.weight", c.headDim, c.hasQKNorm),
                kNorm: try optionalVector(p + "attn_k_norm.weight", c.headDim, c.hasQKNorm),
                postAttnNorm: try optionalVector(p + "post_attention_norm.weight", h, c.hasPostNorms),
                ffnNorm: try vector(p + "ffn_norm.weight", h),
                wGate: try weight(p + "ffn_gate.weight", rows: c.ffnSize, cols: h),
                wUp: try weight(p + "ffn_up.weight", rows: c.ffnSize, cols: h),
                wDown: try weight(p + "ffn_down.weight", rows: h, cols: c.ffnSize),
                postFFNNorm: try optionalVector(p + "post_ffw_norm.weight", h, c.hasPostNorms)))
        }
        blocks = bs
        // rope_freqs and similar optional helpers are not used by these architectures.
        let unused = f.tensors.map(\.name).filter { !used.contains($0) }
        if !unused.isEmpty { throw .unusedTensors(unused) }
    }
}
