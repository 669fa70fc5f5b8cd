import XCTest
import ModelFiles
import Kernels
import TestSupport

/// A (row, token) product must not depend on how we split the work (threads, tiles, 4-row
/// groups, remainder rows): it must be what llama.cpp's AVX2 backend computes for a batch of that
/// size. For most types that is the decode result for every batch. llama.cpp itself rounds two
/// types differently in batches, and we follow it (PeerParityTests holds the bits against the
/// peer's): Q4_K sums each whole 4-token group from the first token with its repack gemm, the last
/// tokens % 4 tokens with the decode gemv; Q6_K batches of 8+ tokens go through its tiled path.
/// So here: tokens llama.cpp sums as decode must equal decode, and the others must equal the
/// same token in another batch of the same kind (a lone 4-token group; the batch reversed).
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
            func tokenRows(_ t: Int) -> ArraySlice<Float> { x[(t * w.cols)..<((t + 1) * w.cols)] }
            let grouped = w.type == .q4_K ? tokens - tokens % 4 : 0
            let tiled = w.type == .q6_K && tokens >= 8
            // the reversed batch: Q6_K tiled tokens must not depend on their position
            let reversed = tiled ? try compute.matmul(w, x: (0..<tokens).reversed().flatMap { tokenRows($0) }, tokens: tokens) : []
            for t in 0..<tokens {
                let want: [Float]
                let path: String
                if t < grouped {
                    let g = t / 4 * 4
                    want = Array(try compute.matmul(w, x: Array(x[(g * w.cols)..<((g + 4) * w.cols)]), tokens: 4)[((t - g) * rows)..<((t - g + 1) * rows)])
                    path = "its 4-token group alone"
                } else if tiled {
                    let rt = tokens - 1 - t
                    want = Array(reversed[(rt * rows)..<((rt + 1) * rows)])
                    path = "the reversed batch"
                } else {
                    want = try compute.matvec(w, x: Array(tokenRows(t)))
                    path = "single"
                }
                for r in 0..<rows where want[r] != batch[t * rows + r] {
                    XCTFail("\(model) \(tensor) (\(w.type)): \(tokens)-token batch, token \(t), row \(r): \(batch[t * rows + r]) vs \(path) \(want[r])")
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
