/// Float → K-quant blocks (Q4_K, Q5_K, Q6_K): super-blocks of 256 weights whose sub-block
/// scales are themselves quantized against one f16 super-scale. The layouts are the ones
/// `Dequantize` reads (QuantBlocks.swift), which are ggml's.
///
/// The sub-block fits are searches, not closed forms: for each sub-block a handful of candidate
/// scales is tried, each candidate's integer assignment gets its weighted least-squares scale
/// (and offset), and the one with the smallest weighted squared error wins. Weights favour the
/// large-magnitude values, which matter most to a matrix product. After the sub-block scales
/// are quantized, every value is re-assigned against the scale the decoder will really use
/// (the f16 super-scale times the 6- or 8-bit sub-scale), so the rounding of the scales is
/// not paid twice.
///
/// Non-finite inputs never trap: they are treated as 0 in the fits and land inside the range.

extension Quantize {
    /// Rounds to the nearest integer (ties away from zero) and clamps into `lo...hi`; NaN gives 0
    /// clamped into the range.
    @inline(__always)
    static func nearestClamped(_ v: Float, _ lo: Int32, _ hi: Int32) -> Int32 {
        guard v.isFinite else { return v.isNaN ? max(lo, min(hi, 0)) : (v > 0 ? hi : lo) }
        let r = v.rounded(.toNearestOrAwayFromZero)
        if r <= Float(lo) { return lo }
        if r >= Float(hi) { return hi }
        return Int32(r)
    }

    @inline(__always)
    static func finite(_ v: Float) -> Float { v.isFinite ? v : 0 }

    /// Weighted fit of `x ≈ scale·q − offset` with integer q in 0...nmax, scale ≥ 0, offset ≥ 0
    /// (the K-quants store a positive minimum that is subtracted). Returns (scale, offset).
    static func fitAffine(_ x: UnsafePointer<Float>, _ n: Int, nmax: Int32, _ q: UnsafeMutablePointer<Int32>) -> (Float, Float) {
        var lo = Float(0), hi = -Float.greatestFiniteMagnitude, sumSq = Float(0)
        for i in 0..<n {
            let v = finite(x[i])
            lo = min(lo, v); hi = max(hi, v); sumSq += v * v
        }
        if hi <= lo { return (0, -lo) }
        let rms = (sumSq / Float(n)).squareRoot()
        var w = [Float](repeating: 0, count: n)
        for i in 0..<n { w[i] = rms + abs(finite(x[i])) }

        func error(_ s: Float, _ b: Float, _ assign: UnsafeMutablePointer<Int32>) -> Float {
            var e = Float(0)
            for i in 0..<n { let d = s * Float(assign[i]) + b - finite(x[i]); e += w[i] * d * d }
            return e
        }
        // Start: the plain min–max grid.
        var bestS = (hi - lo) / Float(nmax), bestB = lo
        for i in 0..<n { q[i] = nearestClamped((finite(x[i]) - lo) / bestS, 0, nmax) }
        var bestE = error(bestS, bestB, q)
        var trial = [Int32](repeating: 0, count: n)
        trial.withUnsafeMutableBufferPointer { tq in
            guard let t = tq.baseAddress else { return }
            for step in 0...20 {
                let iscale = (Float(nmax) - 1 + 0.1 * Float(step)) / (hi - lo)
                var sw = Float(0), swq = Float(0), swqq = Float(0), swx = Float(0), swqx = Float(0)
                for i in 0..<n {
                    let v = finite(x[i])
                    let l = nearestClamped(iscale * (v - lo), 0, nmax)
                    t[i] = l
                    let fl = Float(l), wi = w[i]
                    sw += wi; swq += wi * fl; swqq += wi * fl * fl; swx += wi * v; swqx += wi * fl * v
                }
                // Normal equations of min Σ w (s·q + b − x)².
                let det = sw * swqq - swq * swq
                guard det > 0 else { continue }
                var s = (sw * swqx - swq * swx) / det
                var b = (swqq * swx - swq * swqx) / det
                if b > 0 {  // the offset must be ≤ 0 (a subtracted positive minimum)
                    b = 0
                    s = swqq > 0 ? swqx / swqq : 0
                }
                guard s > 0, s.isFinite else { continue }
                let e = error(s, b, t)
                if e < bestE {
                    bestE = e; bestS = s; bestB = b
                    for i in 0..<n { q[i] = t[i] }
                }
            }
        }
        return (bestS, -bestB)
    }

    /// Weighted fit of `x ≈ scale·q` with integer q in −nmax...nmax−1 (the scale may be negative,
    /// which puts the extra negative level on the side of the largest magnitude). Returns scale.
    static func fitSymmetric(_ x: UnsafePointer<Float>, _ n: Int, nmax: Int32) -> Float {
        var amax = Float(0), peak = Float(0)
        for i in 0..<n where abs(finite(x[i])) > amax { amax = abs(finite(x[i])); peak = finite(x[i]) }
        if amax == 0 { return 0 }
        var best = Float(0), bestE = Float.greatestFiniteMagnitude
        for step in -9...9 {
            let iscale = -(Float(nmax) + 0.1 * Float(step)) / peak
            var sxq = Float(0), sqq = Float(0)
            for i in 0..<n {
                let v = finite(x[i])
                let l = Float(nearestClamped(iscale * v, -nmax, nmax - 1))
                let w = v * v
                sxq += w * v * l; sqq += w * l * l
            }
            guard sqq > 0 else { continue }
            let s = sxq / sqq
            var e = Float(0)
            for i in 0..<n {
                let v = finite(x[i])
                let d = s * Float(nearestClamped(v / s, -nmax, nmax - 1)) - v
                e += v * v * d * d
            }
            if e < bestE { bestE = e; best = s }
        }
        return best
    }

    /// Packs eight 6-bit (scale, min) pairs the way `Dequantize.kScaleMin` reads them.
    static func packScaleMins(_ sc: [UInt8], _ m: [UInt8], into b: UnsafeMutableRawPointer, at offset: Int) {
        var out = [UInt8](repeating: 0, count: 12)
        for j in 0..<8 {
            if j < 4 {
                out[j] |= sc[j] & 63
                out[j + 4] |= m[j] & 63
            } else {
                out[j + 4] = (sc[j] & 0x0F) | ((m[j] & 0x0F) << 4)
                out[j - 4] |= (sc[j] >> 4) << 6
                out[j] |= (m[j] >> 4) << 6
            }
        }
        for j in 0..<12 { b.storeBytes(of: out[j], toByteOffset: offset + j, as: UInt8.self) }
    }

    /// Q4_K (`bits` 4) and Q5_K (`bits` 5): 8 sub-blocks of 32, each an affine fit; the scales and
    /// minimums quantized to 6 bits against the f16 `d` and `dmin`.
    static func qK_affine(_ x: UnsafePointer<Float>, _ blocks: Int, _ y: UnsafeMutableRawPointer, bits: Int) {
        let nmax = Int32((1 << bits) - 1)
        let (dOff, dminOff, scOff, qsOff, qhOff, size) = bits == 4
            ? (BlockQ4_K.d, BlockQ4_K.dmin, BlockQ4_K.scales, BlockQ4_K.qs, -1, BlockQ4_K.byteCount)
            : (BlockQ5_K.d, BlockQ5_K.dmin, BlockQ5_K.scales, BlockQ5_K.qs, BlockQ5_K.qh, BlockQ5_K.byteCount)
        var q = [Int32](repeating: 0, count: 256)
        var scales = [Float](repeating: 0, count: 8), mins = [Float](repeating: 0, count: 8)
        for i in 0..<blocks {
            let xb = x + 256 * i, b = y + size * i
            q.withUnsafeMutableBufferPointer { qb in
                for g in 0..<8 { (scales[g], mins[g]) = fitAffine(xb + 32 * g, 32, nmax: nmax, qb.baseAddress! + 32 * g) }
            }
            let maxScale = scales.max() ?? 0, maxMin = mins.max() ?? 0
            let d = floatFromHalf(halfFromFloat(maxScale / 63)), dmin = floatFromHalf(halfFromFloat(maxMin / 63))
            var sc = [UInt8](repeating: 0, count: 8), mq = [UInt8](repeating: 0, count: 8)
            for g in 0..<8 {
                sc[g] = d > 0 ? UInt8(nearestClamped(scales[g] / d, 0, 63)) : 0
                mq[g] = dmin > 0 ? UInt8(nearestClamped(mins[g] / dmin, 0, 63)) : 0
            }
            storeF16(b, dOff, d)
            storeF16(b, dminOff, dmin)
            packScaleMins(sc, mq, into: b, at: scOff)
            // Re-assign every value against the scale and minimum the decoder uses.
            for g in 0..<8 {
                let ds = d * Float(sc[g]), dm = dmin * Float(mq[g])
                for j in 0..<32 {
                    q[32 * g + j] = ds > 0 ? nearestClamped((finite(xb[32 * g + j]) + dm) / ds, 0, nmax) : 0
                }
            }
            if bits == 5 { for l in 0..<32 { b.storeBytes(of: UInt8(0), toByteOffset: qhOff + l, as: UInt8.self) } }
            for c in 0..<4 {
                for l in 0..<32 {
                    let lo = q[64 * c + l], hi = q[64 * c + 32 + l]
                    b.storeBytes(of: UInt8(lo & 0x0F) | UInt8(hi & 0x0F) << 4, toByteOffset: qsOff + 32 * c + l, as: UInt8.self)
                    if bits == 5 {
                        var h = b.load(fromByteOffset: qhOff + l, as: UInt8.self)
                        if lo > 15 { h |= UInt8(1) << UInt8(2 * c) }
                        if hi > 15 { h |= UInt8(2) << UInt8(2 * c) }
                        b.storeBytes(of: h, toByteOffset: qhOff + l, as: UInt8.self)
                    }
                }
            }
        }
    }

    static func q4_K(_ x: UnsafePointer<Float>, _ blocks: Int, _ y: UnsafeMutableRawPointer) { qK_affine(x, blocks, y, bits: 4) }
    static func q5_K(_ x: UnsafePointer<Float>, _ blocks: Int, _ y: UnsafeMutableRawPointer) { qK_affine(x, blocks, y, bits: 5) }

    /// Q6_K: 16 sub-blocks of 16, each a symmetric 6-bit fit; the sub-scales quantized to int8
    /// against the f16 `d` (d = −max/128, so the largest sub-scale lands on −128).
    static func q6_K(_ x: UnsafePointer<Float>, _ blocks: Int, _ y: UnsafeMutableRawPointer) {
        typealias B = BlockQ6_K
        var scales = [Float](repeating: 0, count: 16)
        var q = [UInt8](repeating: 0, count: 256)
        for i in 0..<blocks {
            let xb = x + 256 * i, b = y + B.byteCount * i
            var peak = Float(0)
            for g in 0..<16 {
                scales[g] = fitSymmetric(xb + 16 * g, 16, nmax: 32)
                if abs(scales[g]) > abs(peak) { peak = scales[g] }
            }
            let d = peak != 0 ? floatFromHalf(halfFromFloat(-peak / 128)) : 0
            storeF16(b, B.d, d)
            for g in 0..<16 {
                let s = d != 0 ? Int8(nearestClamped(scales[g] / d, -128, 127)) : 0
                b.storeBytes(of: s, toByteOffset: B.scales + g, as: Int8.self)
                let ds = d * Float(s)
                for j in 0..<16 {
                    let l = ds != 0 ? nearestClamped(finite(xb[16 * g + j]) / ds, -32, 31) : 0
                    q[16 * g + j] = UInt8(l + 32)
                }
            }
            for half in 0..<2 {
                let o = 128 * half
                for l in 0..<32 {
                    let q1 = q[o + l], q2 = q[o + l + 32], q3 = q[o + l + 64], q4 = q[o + l + 96]
                    b.storeBytes(of: (q1 & 0x0F) | (q3 & 0x0F) << 4, toByteOffset: B.ql + 64 * half + l, as: UInt8.self)
                    b.storeBytes(of: (q2 & 0x0F) | (q4 & 0x0F) << 4, toByteOffset: B.ql + 64 * half + l + 32, as: UInt8.self)
                    let h = (q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6
                    b.storeBytes(of: h, toByteOffset: B.qh + 32 * half + l, as: UInt8.self)
                }
            }
        }
    }
}
