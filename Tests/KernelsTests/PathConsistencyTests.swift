import XCTest
import ModelFiles
import Kernels
import TestSupport

/// Batched prefill must compute exactly what token-by-token decode computes: every kernel path
/// (4-row decode, 4-token prefill, single row) has to sum in the same order, or greedy output
/// would depend on how a prompt was batched.
final class PathConsistencyTests: XCTestCase {
    func check(model: String, tensor: String) throws {
        let f = try GGUFFile(path: try TestPaths.model(model))
        let full = try QuantizedMatrix(file: f, tensor: tensor)
        let rows = min(full.rows, 67)   // not a multiple of 4: exercises the remainder rows too
        let w = try QuantizedMatrix(type: full.type, rows: rows, cols: full.cols,
                                    bytes: UnsafeRawBufferPointer(start: full.data, count: rows * full.rowBytes), name: tensor)
        let compute = Compute(threads: 2)
        var rng = SystemRandomNumberGenerator()
        for tokens in [1, 2, 3, 4, 5, 7, 8, 9, 17] {
            let x = (0..<(tokens * w.cols)).map { _ in Float.random(in: -2...2, using: &rng) }
            let batch = try compute.matmul(w, x: x, tokens: tokens)
            for t in 0..<tokens {
                let one = try compute.matvec(w, x: Array(x[(t * w.cols)..<((t + 1) * w.cols)]))
                for r in 0..<rows where one[r] != batch[t * rows + r] {
                    XCTFail("\(model) \(tensor) (\(w.type)): \(tokens)-token batch, token \(t), row \(r): \(batch[t * rows + r]) vs single \(one[r])")
                    return
                }
            }
        }
    }

    func testSmolLM2Paths() throws {
        try check(model: "smollm2-135m-instruct", tensor: "blk.0.ffn_up.weight")      // Q4_1
        try check(model: "smollm2-135m-instruct", tensor: "token_embd.weight")        // Q8_0
    }

    func testGemma3Paths() throws {
        try check(model: "gemma-3-270m", tensor: "blk.0.attn_q.weight")               // Q5_0
        try check(model: "gemma-3-270m", tensor: "blk.0.attn_output.weight")          // Q4_K
        try check(model: "gemma-3-270m", tensor: "blk.0.ffn_down.weight")             // Q6_K
        try check(model: "gemma-3-270m", tensor: "blk.0.attn_v.weight")               // Q8_0
    }
}
