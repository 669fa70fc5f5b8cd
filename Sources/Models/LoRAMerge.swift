import Foundation
import ModelFiles

/// Bakes LoRA adapters into a copy of a GGUF model: W' = W + Σ scale·scaling·B·A for every
/// projection an adapter changes, requantized (to the tensor's own type, or `type`); every other
/// tensor and all metadata are copied as they are, plus `steward.merged_adapters`.
public enum LoRAMerge {
    public struct Report: Sendable {
        /// Tensors that received a low-rank update, and the type each was written in.
        public var merged: [(name: String, type: GGMLType)] = []
        /// Tensors whose own type cannot be re-quantized here (Q2_K, Q3_K) and went to Q8_0.
        public var widened: [String] = []
        public var copied = 0
    }

    public static func merge(base: GGUFFile, config: DecoderConfig, adapters: [LoRAUse], type: GGMLType? = nil, to path: String,
                             progress: ((Int, Int, String) -> Void)? = nil) throws -> Report {
        guard !adapters.isEmpty else { throw LoRAError.mismatch("give at least one adapter to merge") }
        if let t = type, !Quantize.supportedTypes.contains(t) {
            throw LoRAError.unsupported("--type \(t) cannot be written here (supported: \(Quantize.supportedTypes.map(\.name).sorted().joined(separator: ", ")))")
        }
        var report = Report()
        let note = adapters.map { "\($0.adapter.name) (\($0.adapter.format), rank \($0.adapter.rank), scale \($0.scale))" }.joined(separator: "; ")
        try GGUFRewrite.write(base, to: path, extraMetadata: [("steward.merged_adapters", .string(note))], plan: { info in
            let updates = LoRATarget.ofGGUFWeight(info.name).map { w in adapters.compactMap { u in u.adapter.pair(layer: w.layer, w.target).map { (u, $0) } } } ?? []
            guard !updates.isEmpty else { report.copied += 1; return nil }
            let cols = info.dims[0], rows = info.dims.count > 1 ? info.dims[1] : 1
            for (use, p) in updates where p.outDim != rows || p.inDim != cols {
                throw LoRAError.mismatch("\(info.name) is \(rows)×\(cols) but \(use.adapter.name)'s pair is \(p.outDim)×\(p.inDim)")
            }
            var outType = type ?? info.type
            if !Quantize.supportedTypes.contains(outType) {
                outType = .q8_0
                report.widened.append(info.name)
            }
            // A K-quant asked for rows that are not whole super-blocks: the 32-block fallback.
            if cols % outType.blockSize != 0 { outType = QuantizeRecipe.fallback(outType) }
            report.merged.append((info.name, outType))
            return GGUFRewrite.Step(type: outType) { values in
                for (use, p) in updates { addLowRank(&values, p, k: use.scale * use.adapter.scaling, rows: rows, cols: cols) }
            }
        }, progress: progress)
        return report
    }

    /// values (rows × cols) += k · B·A.
    static func addLowRank(_ values: inout [Float], _ p: LoRAPair, k: Float, rows: Int, cols: Int) {
        values.withUnsafeMutableBufferPointer { wv in
            p.a.withUnsafeBufferPointer { a in
                p.b.withUnsafeBufferPointer { b in
                    for o in 0..<rows {
                        let row = wv.baseAddress! + o * cols
                        for j in 0..<p.rank {
                            let c = k * b[o * p.rank + j]
                            if c == 0 { continue }
                            let aj = a.baseAddress! + j * cols
                            for x in 0..<cols { row[x] += c * aj[x] }
                        }
                    }
                }
            }
        }
    }
}
