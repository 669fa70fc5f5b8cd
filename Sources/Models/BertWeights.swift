import Foundation
import ModelFiles
import Kernels

/// The weights of a BERT encoder, bound by their Hugging Face names (transformers'
/// `BertModel.state_dict()`), optionally under a `bert.` prefix as task checkpoints save them.
///
/// Matrices in HF layout are (out × in) row-major, which is QuantizedMatrix's rows × cols, so
/// F32 and F16 tensors are zero-copy views into the mapped file; BF16 and F64 ones are widened
/// to an owned F32 copy. Vectors (biases, LayerNorm) are copied out as Float.
///
/// Unused tensors: `pooler.dense.*` (the [CLS] pooler, which sentence embeddings do not use) and
/// `embeddings.position_ids` (a buffer of 0…511 that older transformers versions saved) are
/// known and ignored. Any other tensor we would not use is an error, since it means the file
/// is a variant we might run wrongly.
public final class BertWeights: @unchecked Sendable {
    public struct Layer: @unchecked Sendable {
        public let query: QuantizedMatrix, key: QuantizedMatrix, value: QuantizedMatrix  // (hidden × hidden)
        public let queryBias: [Float], keyBias: [Float], valueBias: [Float]              // (hidden)
        public let attentionOutput: QuantizedMatrix                                       // (hidden × hidden)
        public let attentionOutputBias: [Float]
        public let attentionNormWeight: [Float], attentionNormBias: [Float]               // (hidden)
        public let intermediate: QuantizedMatrix                                          // (intermediate × hidden)
        public let intermediateBias: [Float]                                              // (intermediate)
        public let output: QuantizedMatrix                                                // (hidden × intermediate)
        public let outputBias: [Float]
        public let outputNormWeight: [Float], outputNormBias: [Float]
    }

    public let file: SafetensorsFile
    /// "" or "bert.", whichever the file uses.
    public let prefix: String
    public let wordEmbeddings: QuantizedMatrix       // (vocab × hidden)
    public let positionEmbeddings: QuantizedMatrix   // (maxPositions × hidden)
    public let tokenTypeEmbeddings: QuantizedMatrix  // (typeVocab × hidden)
    public let embeddingNormWeight: [Float], embeddingNormBias: [Float]
    public let layers: [Layer]
    /// Tensors present in the file but deliberately not used (the pooler, position_ids).
    public let ignoredTensors: [String]
    /// F32 copies of matrices stored in a type the kernels cannot read directly.
    private var owned: [UnsafeMutableRawBufferPointer] = []

    deinit { for b in owned { b.deallocate() } }

    public init(file f: SafetensorsFile, config c: BertConfig) throws(BertError) {
        self.file = f
        let path = f.path
        let prefix = f.tensor(named: "embeddings.word_embeddings.weight") == nil
            && f.tensor(named: "bert.embeddings.word_embeddings.weight") != nil ? "bert." : ""
        self.prefix = prefix
        var used = Set<String>()
        var owned: [UnsafeMutableRawBufferPointer] = []

        func info(_ short: String, shape: [Int]) throws(BertError) -> SafetensorsTensorInfo {
            let name = prefix + short
            guard let t = f.tensor(named: name) else { throw .missingTensor(path: path, name: name) }
            guard t.shape == shape else { throw .badTensorShape(path: path, name: name, expected: shape, found: t.shape) }
            used.insert(name)
            return t
        }
        func vector(_ short: String, _ n: Int) throws(BertError) -> [Float] {
            let t = try info(short, shape: [n])
            do {
                return try f.floats(named: t.name)
            } catch {
                throw .unsupportedTensorType(path: path, name: t.name, dtype: t.dtype.rawValue)
            }
        }
        func matrix(_ short: String, rows: Int, cols: Int) throws(BertError) -> QuantizedMatrix {
            let t = try info(short, shape: [rows, cols])
            do {
                switch t.dtype {
                case .f32:
                    return try QuantizedMatrix(type: .f32, rows: rows, cols: cols, bytes: f.data(of: t), name: t.name)
                case .f16:
                    return try QuantizedMatrix(type: .f16, rows: rows, cols: cols, bytes: f.data(of: t), name: t.name)
                case .bf16, .f64:
                    let values = try f.floats(named: t.name)
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(4, values.count * 4), alignment: 64)
                    owned.append(buffer)
                    values.withUnsafeBytes { buffer.copyMemory(from: $0) }
                    return try QuantizedMatrix(type: .f32, rows: rows, cols: cols,
                                               bytes: UnsafeRawBufferPointer(buffer), name: t.name)
                default:
                    throw BertError.unsupportedTensorType(path: path, name: t.name, dtype: t.dtype.rawValue)
                }
            } catch let e as BertError {
                throw e
            } catch {
                throw .badConfig(path: path, field: t.name, reason: "cannot be used as a matrix: \(error)")
            }
        }

        let h = c.hiddenSize, inter = c.intermediateSize
        do {
            wordEmbeddings = try matrix("embeddings.word_embeddings.weight", rows: c.vocabSize, cols: h)
            positionEmbeddings = try matrix("embeddings.position_embeddings.weight", rows: c.maxPositions, cols: h)
            tokenTypeEmbeddings = try matrix("embeddings.token_type_embeddings.weight", rows: c.typeVocabSize, cols: h)
            embeddingNormWeight = try vector("embeddings.LayerNorm.weight", h)
            embeddingNormBias = try vector("embeddings.LayerNorm.bias", h)
            var layers: [Layer] = []
            for i in 0..<c.layers {
                let p = "encoder.layer.\(i)."
                layers.append(Layer(
                    query: try matrix(p + "attention.self.query.weight", rows: h, cols: h),
                    key: try matrix(p + "attention.self.key.weight", rows: h, cols: h),
                    value: try matrix(p + "attention.self.value.weight", rows: h, cols: h),
                    queryBias: try vector(p + "attention.self.query.bias", h),
                    keyBias: try vector(p + "attention.self.key.bias", h),
                    valueBias: try vector(p + "attention.self.value.bias", h),
                    attentionOutput: try matrix(p + "attention.output.dense.weight", rows: h, cols: h),
                    attentionOutputBias: try vector(p + "attention.output.dense.bias", h),
                    attentionNormWeight: try vector(p + "attention.output.LayerNorm.weight", h),
                    attentionNormBias: try vector(p + "attention.output.LayerNorm.bias", h),
                    intermediate: try matrix(p + "intermediate.dense.weight", rows: inter, cols: h),
                    intermediateBias: try vector(p + "intermediate.dense.bias", inter),
                    output: try matrix(p + "output.dense.weight", rows: h, cols: inter),
                    outputBias: try vector(p + "output.dense.bias", h),
                    outputNormWeight: try vector(p + "output.LayerNorm.weight", h),
                    outputNormBias: try vector(p + "output.LayerNorm.bias", h)))
            }
            self.layers = layers
        } catch {
            for b in owned { b.deallocate() }
            throw error
        }
        self.owned = owned

        let known: Set<String> = [prefix + "pooler.dense.weight", prefix + "pooler.dense.bias",
                                  prefix + "embeddings.position_ids"]
        var ignored: [String] = [], unused: [String] = []
        for t in f.tensors where !used.contains(t.name) {
            if known.contains(t.name) { ignored.append(t.name) } else { unused.append(t.name) }
        }
        ignoredTensors = ignored.sorted()
        guard unused.isEmpty else {
            // Deallocation happens in deinit, which still runs for a fully initialized object.
            throw .unusedTensors(path: path, names: unused.sorted())
        }
    }
}
