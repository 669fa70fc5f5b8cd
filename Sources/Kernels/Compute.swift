import CKernels
import Foundation

/// Matrix products over quantized weights on a thread pool, with the scratch memory for
/// quantized activations. One caller at a time (an engine owns one Compute per generation loop).
public final class Compute: @unchecked Sendable {
    public let pool: ThreadPool
    private var scratch: UnsafeMutableRawPointer?
    private var scratchBytes = 0

    public init(pool: ThreadPool = ThreadPool()) {
        self.pool = pool
    }

    public convenience init(threads: Int) {
        self.init(pool: ThreadPool(threads: threads))
    }

    deinit { scratch?.deallocate() }

    private func scratch(for w: QuantizedMatrix, tokens: Int) -> UnsafeMutableRawPointer {
        let need = max(64, ck_matmul_scratch_bytes(Int32(w.type.rawValue), Int64(w.cols), Int64(tokens)))
        if need > scratchBytes {
            scratch?.deallocate()
            scratch = UnsafeMutableRawPointer.allocate(byteCount: need, alignment: 64)
            scratchBytes = need
        }
        return scratch!
    }

    /// y (rows) = W · x (cols).
    public func matvec(_ w: QuantizedMatrix, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        matmul(w, x: x, tokens: 1, y: y)
    }

    /// Y (tokens × rows) = X (tokens × cols) · Wᵀ, both row-major.
    public func matmul(_ w: QuantizedMatrix, x: UnsafePointer<Float>, tokens: Int, y: UnsafeMutablePointer<Float>) {
        guard tokens > 0, w.rows > 0 else { return }
        let s = scratch(for: w, tokens: tokens)
        let rc = ck_matmul(pool.raw, Int32(w.type.rawValue), w.data, Int64(w.rows), Int64(w.cols), x,
                           Int64(tokens), y, s)
        // QuantizedMatrix's initializer already checked type and shape.
        assert(rc == 0, "ck_matmul rejected a checked matrix")
    }

    /// ys[i] (tokens × ws[i].rows) = X (tokens × cols) · W_iᵀ for several matrices over the same
    /// input (q/k/v, gate/up): the input is quantized once and all rows share one parallel loop.
    /// Matrices of different widths, or more than eight, fall back to one product at a time.
    public func matmul(_ ws: [QuantizedMatrix], x: UnsafePointer<Float>, tokens: Int, ys: [UnsafeMutablePointer<Float>]) {
        let n = min(ws.count, ys.count)
        guard tokens > 0, n > 0 else { return }
        let cols = ws[0].cols
        guard n <= Int(CK_MATMUL_MANY_MAX), ws.prefix(n).allSatisfy({ $0.cols == cols }) else {
            for i in 0..<n { matmul(ws[i], x: x, tokens: tokens, y: ys[i]) }
            return
        }
        var need = 64
        for w in ws.prefix(n) { need = max(need, ck_matmul_scratch_bytes(Int32(w.type.rawValue), Int64(cols), Int64(tokens))) }
        if need > scratchBytes {
            scratch?.deallocate()
            scratch = UnsafeMutableRawPointer.allocate(byteCount: need, alignment: 64)
            scratchBytes = need
        }
        let types = ws.prefix(n).map { Int32($0.type.rawValue) }
        let datas: [UnsafeRawPointer?] = ws.prefix(n).map { $0.data }
        let rows = ws.prefix(n).map { Int64($0.rows) }
        let outs: [UnsafeMutablePointer<Float>?] = Array(ys.prefix(n))
        let rc = ck_matmul_many(pool.raw, Int32(n), types, datas, rows, Int64(cols), x, Int64(tokens), outs, scratch)
        assert(rc == 0, "ck_matmul_many rejected checked matrices")
    }

    public func matvec(_ w: QuantizedMatrix, x: [Float]) throws(KernelError) -> [Float] {
        try matmul(w, x: x, tokens: 1)
    }

    public func matmul(_ w: QuantizedMatrix, x: [Float], tokens: Int) throws(KernelError) -> [Float] {
        guard tokens >= 0, x.count == tokens * w.cols else {
            throw .badShape("matmul: \(x.count) inputs for \(tokens) tokens of \(w.cols) columns")
        }
        var y = [Float](repeating: 0, count: tokens * w.rows)
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                if let xp = xb.baseAddress, let yp = yb.baseAddress { matmul(w, x: xp, tokens: tokens, y: yp) }
            }
        }
        return y
    }
}

/// Switches the AVX2 paths off and on (for tests and benchmarks). Returns whether they are on.
@discardableResult
public func setSIMDEnabled(_ on: Bool) -> Bool {
    ck_set_simd_enabled(on ? 1 : 0)
    return ck_simd_enabled() != 0
}

/// Whether this CPU has the AVX2/FMA/F16C fast paths.
public var cpuHasAVX2: Bool { ck_cpu_has_avx2() != 0 }
