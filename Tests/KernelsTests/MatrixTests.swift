import CKernels
import Foundation
import Kernels
import ModelFiles
import TestSupport
import XCTest

final class MatrixTests: XCTestCase {
    func makeMatrix(_ type: GGMLType, rows: Int, cols: Int, _ r: inout Rand) -> ([UInt8], [[UInt8]]) {
        let rowsBytes = (0..<rows).map { _ in randomRow(type, cols, &r) }
        return (rowsBytes.flatMap { $0 }, rowsBytes)
    }

    /// matvec and matmul equal the single-row dots up to summation order (their kernels take
    /// 4 rows or 4 tokens at a time); results don't depend on the thread count.
    func testMatvecAndMatmulAgreeWithRowDots() throws {
        var r = Rand(11)
        let one = Compute(threads: 1), two = Compute(threads: 2)
        for type in [GGMLType.q4_1, .q8_0, .q4_K, .q6_K, .q5_0, .q2_K, .f16, .f32] {
            let cols = type.blockSize == 256 ? 512 : 96, rows = 75
            let (all, rowBytes) = makeMatrix(type, rows: rows, cols: cols, &r)
            let wd = rowBytes.map { dequantize(type, $0, cols) }
            try all.withUnsafeBytes { buf in
                let m = try QuantizedMatrix(type: type, rows: rows, cols: cols, bytes: buf)
                for tokens in [1, 3, 37] {
                    let x = r.floats(tokens * cols, scale: 2)
                    let y1 = try one.matmul(m, x: x, tokens: tokens)
                    let y2 = try two.matmul(m, x: x, tokens: tokens)
                    XCTAssertEqual(y1, y2, "\(type) tokens \(tokens): thread count changed the result")
                    for t in 0..<tokens {
                        let xt = Array(x[(t * cols)..<((t + 1) * cols)])
                        let a = quantizeActivation(for: type, xt, simd: true)
                        let ad = type.blockSize == 1 ? xt : dequantize(activationType(type), a, cols)
                        let yv = try two.matvec(m, x: xt)
                        for row in 0..<rows {
                            let want = dotDispatch(type, cols, rowBytes[row], a)
                            let bound = zip(wd[row], ad).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                            XCTAssertEqual(Double(yv[row]), Double(want), accuracy: 2e-6 * bound + 1e-30, "\(type) matvec row \(row)")
                            XCTAssertEqual(Double(y1[t * rows + row]), Double(want), accuracy: 2e-6 * bound + 1e-30,
                                           "\(type) token \(t) row \(row)")
                        }
                    }
                }
            }
        }
    }

    /// A real SmolLM2 Q4_1 projection and a Gemma Q6_K one against float products of the
    /// dequantized weights, within the activation-quantization error.
    func testRealModelMatvecsMatchFloatProducts() throws {
        let c = Compute(threads: 2)
        let cases = [("smollm2-135m-instruct", "blk.0.attn_q.weight"), ("gemma-3-270m", "blk.0.ffn_down.weight"),
                     ("gemma-3-270m", "blk.0.attn_output.weight"), ("gemma-3-270m", "blk.0.attn_k.weight")]
        var r = Rand(1)
        for (model, name) in cases {
            let f = try GGUFFile(path: try TestPaths.model(model))
            let m = try QuantizedMatrix(file: f, tensor: name)
            let x = r.floats(m.cols)
            let y = try c.matvec(m, x: x)
            var worst = 0.0
            for row in 0..<m.rows {
                let w = m.dequantizeRow(row)
                let exact = zip(w, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let scale = zip(w, x).reduce(0.0) { $0 + abs(Double($1.0)) } * (1.0 / 127)  // Σ|w|·amax/127
                worst = max(worst, abs(Double(y[row]) - exact) / scale)
            }
            XCTAssertLessThan(worst, 0.5, "\(name): error beyond half a quantization step")
        }
    }

    func testRejectsBadShapes() throws {
        let bytes = [UInt8](repeating: 0, count: 100)
        try bytes.withUnsafeBytes { buf in
            XCTAssertThrowsError(try QuantizedMatrix(type: .q4_1, rows: 1, cols: 33, bytes: buf))
            XCTAssertThrowsError(try QuantizedMatrix(type: .q4_1, rows: 10, cols: 32, bytes: buf))  // 200 bytes needed
            XCTAssertThrowsError(try QuantizedMatrix(type: .i32, rows: 1, cols: 4, bytes: buf))
            XCTAssertNoThrow(try QuantizedMatrix(type: .q4_1, rows: 5, cols: 32, bytes: buf))
            let m = try QuantizedMatrix(type: .q4_1, rows: 5, cols: 32, bytes: buf)
            XCTAssertThrowsError(try Compute(threads: 1).matvec(m, x: [1, 2, 3]))
        }
    }

    func testThreadPoolCoversEveryIndexOnce() {
        for threads in [1, 2, 3] {
            let pool = ThreadPool(threads: threads)
            XCTAssertEqual(pool.threadCount, threads)
            for (n, chunk) in [(1, 1), (10, 3), (1000, 7), (5, 100)] {
                let counts = UnsafeMutablePointer<Int>.allocate(capacity: n)
                counts.initialize(repeating: 0, count: n)
                pool.parallelFor(n, chunk: chunk) { range, thread in
                    precondition(thread >= 0 && thread < threads)
                    for i in range { counts[i] += 1 }
                }
                XCTAssertEqual(Array(UnsafeBufferPointer(start: counts, count: n)), [Int](repeating: 1, count: n))
                counts.deallocate()
            }
        }
    }

    /// Workers that went to sleep wake up for the next job.
    func testThreadPoolWakesSleepingWorkers() {
        let pool = ThreadPool(threads: 2)
        pool.setSpin(microseconds: 0)
        let seen = UnsafeMutablePointer<Int>.allocate(capacity: 2)
        defer { seen.deallocate() }
        seen.initialize(repeating: 0, count: 2)
        for _ in 0..<50 {
            usleep(200)
            pool.parallelFor(64, chunk: 1) { _, t in seen[t] += 1; usleep(10) }
        }
        XCTAssertEqual(seen[0] + seen[1], 64 * 50)
        XCTAssertGreaterThan(seen[1], 0, "worker never ran")
    }
}
