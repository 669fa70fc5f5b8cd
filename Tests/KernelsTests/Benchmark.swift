import Foundation
import Kernels
import ModelFiles
import TestSupport
import XCTest

/// Kernel throughput, not a test: runs only with STEWARD_BENCH=1, in release:
///   swift build -c release --build-tests
///   STEWARD_BENCH=1 STEWARD_SHARED=/work/shared swift test -c release --skip-build --filter KernelsBenchmark
final class KernelsBenchmark: XCTestCase {
    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

    func cpuNow(_ clock: clockid_t = CLOCK_THREAD_CPUTIME_ID) -> Double {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Process CPU seconds per call in the last `time` (all threads, spinning included): on a
    /// shared machine, wall ≫ cpu/threads means the threads were waiting for a core.
    var lastProcessCPU = 0.0

    /// Seconds per call, best of a few rounds, for `body` repeated until ~0.15 s have passed.
    /// The machine may be shared, so with one thread the calling thread's CPU time is used
    /// (what the kernel costs when it has the core); with more, wall time.
    var useCPUTime = false
    func time(_ body: () -> Void) -> Double {
        body()
        var best = Double.infinity
        for _ in 0..<3 {
            var n = 0
            let t0 = now(), c0 = cpuNow(), p0 = cpuNow(CLOCK_PROCESS_CPUTIME_ID)
            repeat { body(); n += 1 } while now() - t0 < 0.15
            let t = ((useCPUTime ? cpuNow() - c0 : now() - t0)) / Double(n)
            if t < best {
                best = t
                lastProcessCPU = (cpuNow(CLOCK_PROCESS_CPUTIME_ID) - p0) / Double(n)
            }
        }
        return best
    }

    func line(_ s: String) { print("BENCH " + s) }

    func testBenchmark() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["STEWARD_BENCH"] == "1", "set STEWARD_BENCH=1 to run")
        let smol = try GGUFFile(path: try TestPaths.model("smollm2-135m-instruct"))
        let gemma = try GGUFFile(path: try TestPaths.model("gemma-3-270m"))
        let shapes: [(GGUFFile, String)] = [
            (smol, "blk.0.attn_q.weight"), (smol, "blk.0.ffn_up.weight"), (smol, "blk.0.ffn_down.weight"),
            (smol, "token_embd.weight"),
            (gemma, "blk.0.ffn_up.weight"), (gemma, "blk.0.attn_output.weight"), (gemma, "blk.0.ffn_down.weight"),
            (gemma, "blk.1.ffn_down.weight"), (gemma, "blk.0.attn_v.weight"), (gemma, "token_embd.weight"),
        ]
        var r = Rand(1)
        for threads in [1, 2] {
            let c = Compute(threads: threads)
            useCPUTime = threads == 1
            if threads == 1 { line("(1 thread: CPU time of the calling thread)") }
            line("--- matvec, \(threads) thread(s), same matrix repeated (cache-warm unless larger than L3)")
            for (f, name) in shapes {
                let m = try QuantizedMatrix(file: f, tensor: name)
                let x = r.floats(m.cols)
                var y = [Float](repeating: 0, count: m.rows)
                let t = time { c.matvec(m, x: x, y: &y) }
                let bytes = Double(m.rows * m.rowBytes)
                line(String(format: "%@ %@ %dx%d: %8.1f us  %6.1f GB/s  %6.1f GFLOP/s  (process CPU %.1f us)", m.type.name, name, m.rows, m.cols,
                            t * 1e6, bytes / t / 1e9, 2 * Double(m.rows * m.cols) / t / 1e9, lastProcessCPU * 1e6))
            }
            line("--- decode sweep, \(threads) thread(s): every 2-D weight of the model once, in file order")
            for (label, f) in [("SmolLM2-135M Q4_1", smol), ("Gemma-3-270M Q4_K_M", gemma)] {
                let ms = try f.tensors.filter { $0.dims.count == 2 && $0.dims[1] > 1 }.map { try QuantizedMatrix(file: f, tensor: $0.name) }
                let maxCols = ms.map(\.cols).max()!, maxRows = ms.map(\.rows).max()!
                let x = r.floats(maxCols)
                var y = [Float](repeating: 0, count: maxRows)
                let t = time { for m in ms { c.matvec(m, x: x, y: &y) } }
                let bytes = Double(ms.reduce(0) { $0 + $1.rows * $1.rowBytes })
                line(String(format: "%@: %d matvecs, %.1f MB: %7.2f ms/token  %5.1f GB/s  (process CPU %.2f ms)", label, ms.count, bytes / 1e6,
                            t * 1e3, bytes / t / 1e9, lastProcessCPU * 1e3))
            }
            line("--- matmul (prefill), \(threads) thread(s)")
            for (f, name) in [(smol, "blk.0.ffn_up.weight"), (smol, "blk.0.ffn_down.weight"), (gemma, "blk.0.ffn_up.weight"),
                              (gemma, "blk.0.attn_output.weight"), (gemma, "blk.0.ffn_down.weight"), (gemma, "blk.1.ffn_down.weight")] {
                let m = try QuantizedMatrix(file: f, tensor: name)
                for tokens in [64, 512] {
                    let x = r.floats(m.cols * tokens)
                    var y = [Float](repeating: 0, count: m.rows * tokens)
                    let t = time { c.matmul(m, x: x, tokens: tokens, y: &y) }
                    line(String(format: "%@ %@ %dx%d x %d tokens: %8.2f ms  %6.1f GFLOP/s  (process CPU %.2f ms)", m.type.name, name, m.rows, m.cols, tokens,
                                t * 1e3, 2 * Double(m.rows * m.cols * tokens) / t / 1e9, lastProcessCPU * 1e3))
                }
            }
        }
        // Pool overhead: an empty parallel job.
        let pool = ThreadPool(threads: 2)
        useCPUTime = false
        let t = time { pool.parallelFor(2, chunk: 1) { _, _ in } }
        line(String(format: "pool: empty 2-thread job %.2f us", t * 1e6))
    }
}
