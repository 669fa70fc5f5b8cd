/// Float → block quantization, ports of ggml's reference quantizers (quantize_row_*_ref in
/// ggml-quants.c) with the same float operations and rounding: `roundf` (halves away from zero)
/// for Q8_0/Q8_1, truncation of `x + 8.5` style offsets for Q4/Q5, and `nearest_int` (ties to
/// even) for Q8_K. The kernels use Q8_0/Q8_K to quantize activations, as llama.cpp does.
/// The K-quant weight types (Q4_K, Q5_K, Q6_K) are our own searches, in QuantizeKRows.swift.
///
/// Non-finite inputs never trap: a quant that would come from NaN or ±inf is clamped into range
/// (ggml leaves that case undefined).

public enum Quantize {
    /// Types `rows` can produce.
    public static let supportedTypes: Set<GGMLType> = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .q4_K, .q5_K, .q6_K, .q8_K]

    /// Quantizes `src` (a whole number of `type` blocks) into `dst`, which must be exactly
    /// `type.byteCount(elements: src.count)` bytes.
    public static func rows(_ type: GGMLType, _ src: UnsafeBufferPointer<Float>,
                            into dst: UnsafeMutableRawBufferPointer) throws(ModelFileError) {
        guard supportedTypes.contains(type) else {
            throw .invalidArgument("quantizing to \(type) is not supported (supported: \(supportedTypes.map(\.name).sorted().joined(separator: ", ")))")
        }
        let count = src.count
        guard count % type.blockSize == 0, let need = type.byteCount(elements: count) else {
            throw .invalidArgument("cannot quantize \(count) values to \(type): \(type) stores values in blocks of \(type.blockSize)")
        }
        guard need == dst.count else {
            throw .invalidArgument("cannot quantize \(count) values to \(type): they take \(need) bytes but the destination has \(dst.count)")
        }
        guard count > 0, let x = src.baseAddress, let y = dst.baseAddress else { return }
        let blocks = count / type.blockSize
        switch type {
        case .f32:
            for i in 0..<count { y.storeBytes(of: x[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        case .f16:
            for i in 0..<count { y.storeBytes(of: halfFromFloat(x[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        case .bf16:
            for i in 0..<count { y.storeBytes(of: bf16FromFloat(x[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        case .q4_0: q4_0(x, blocks, y)
        case .q4_1: q4_1(x, blocks, y)
        case .q5_0: q5_0(x, blocks, y)
        case .q5_1: q5_1(x, blocks, y)
        case .q8_0: q8_0(x, blocks, y)
        case .q8_1: q8_1(x, blocks, y)
        case .q4_K: q4_K(x, blocks, y)
        case .q5_K: q5_K(x, blocks, y)
        case .q6_K: q6_K(x, blocks, y)
        case .q8_K: q8_K(x, blocks, y)
        default: break  // excluded by supportedTypes above
        }
    }

    // MARK: helpers

    /// Truncates toward zero (C's float → int cast) and clamps into `lo...hi`; NaN gives `lo`.
    @inline(__always)
    static func truncClamped(_ v: Float, _ lo: Int32, _ hi: Int32) -> Int32 {
        if !(v > Float(lo)) { return lo }
        if !(v < Float(hi)) { return hi }
        return Int32(v)
    }

    /// C's roundf (halves away from zero), clamped into -128...127; NaN gives 0.
    @inline(__always)
    static func roundToInt8(_ v: Float) -> Int8 {
        if v.isNaN { return 0 }
        let r = v.rounded(.toNearestOrAwayFromZero)
        return Int8(max(-128, min(127, r)))
    }

    @inline(__always)
    static func storeF16(_ y: UnsafeMutableRawPointer, _ offset: Int, _ v: Float) {
        y.storeBytes(of: halfFromFloat(v).littleEndian, toByteOffset: offset, as: UInt16.self)
    }

    /// The value with the largest magnitude (first one on ties), as ggml's `amax < fabsf(v)` scan.
    @inline(__always)
    static func signedAbsMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var amax: Float = 0, max: Float = 0
        for j in 0..<n where amax < abs(x[j]) {
            amax = abs(x[j])
            max = x[j]
        }
        return max
    }

    // MARK: 32-weight blocks

    /// quantize_row_q4_0_ref: d = max / -8 (max = the signed value of largest magnitude),
    /// q = min(15, trunc(x / d + 8.5)).
    static func q4_0(_ x: UnsafePointer<Float>, _ blocks: Int, _ y: UnsafeMutableRawPointer) {
        typealias B = BlockQ4_0
        for i in 0..<blocks {
            let xb = x + i * B.elements, b = y + i * B.byteCount
            let d = signedAbsMax(xb, 32) / -8
            let id: Float = d != 0 ? 1 / d : 0
            storeF16(b, B.d, d)
            for j in 0..<16 {
                let q0 = truncClamped(xb[j] * id + 8.5, 0, 15)
                let q1 = truncClamped(xb[j + 16] * id + 8.5, 0, 15)
                b.storeBytes(of: UInt8(q0) | UInt8(q1) << 4, toByteOffset: B.qs + j, as: UInt8.self)
            }
        }
    }

    /// quantize_row_q4_1_ref: d = (max - min) / 15, m = min, q = min(15, trunc((x - min) / d + 0.5)).
    static func q4_1(_ x: UnsafePointer<Float>, _ blocks: Int, _ y: UnsafeMutableRawPointer) {
        typealias B = BlockQ4_1
        for i in 0..<blocks {
            let xb = x + i * B.elements, b = y + i * B.byteCount
            var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
            for j in 0..<32 {
                if xb[j] < lo { lo = xb[j] }
                if xb[j] > hi { hi = xb[j] }
            }
            let d = (hi - lo) / 15
            let id: Float = d != 0 ? 1 / d : 0
            storeF16(b, B.d, d)
            storeF16(b, B.m, lo)
            for j in 0..<16 {
                let q0 = truncClamped((xb[j] - lo) * id + 0.5, 0, 15)
                let q1 = truncClamped((xb[j + 16] - lo) * id + 0.5, 0, 15)
                b.storeBytes(of: UInt8(q0) | UInt8(q1) << 4, toByteOffset: B.qs + j, as: UInt8.self)
            }
        }
    }

    /// quantize_row_q5_0_ref: d = max / -16, q = min(31, trunc(x / d + 16.5)); bit 4 of weight j
    /// goes to bit j of qh.
    static func q5_0(_ x: UnsafePointer<Float>, _ blocks: Int, _ y: UnsafeMutableRawPointer) {
        typealias B = BlockQ5_0
        for i in 0..<blocks {
            let xb = x + i * B.elements, b = y + i * B.byteCount
            let d = signedAbsMax(xb, 32) / -16
            let id: Float = d != 0 ? 1 / d : 0
            storeF16(b, B.d, d)
            var qh: UInt32 = 0
            for j in 0..<16 {
                let q0 = UInt32(truncClamped(xb[j] * id + 16.5, 0, 31))
                let q1 = UInt32(truncClamped(xb[j + 16] * id + 16.5, 0, 31))
                b.storeBytes(of: UInt8((q0 & 0x0F) | (q1 & 0x0F) << 4), toByteOffset: B.qs + j, as: UInt8.self)
                qh |= ((q0 & 0x10) >> 4) << UInt32(j)
                qh |= ((q1 & 0x10) >> 4) << UInt32(j + 16)
            }
            b.storeBytes(of: qh.littleEndian, toByteOffset: B.qh, as: UInt32.self)
        }
    }

    /// quantize_row_q5_1_ref: d = (max - min) / 31, m = min, q = min(31, trunc((x - min) / d + 0.5)).
    static func q5_1(_ x: UnsafePointer<Float>, _ blocks: Int, _ y: UnsafeMutableRawPointer) {
        typealias B = BlockQ5_1
        for i in 0..<blocks {
            let xb = x + i * B.elements, b = y + i * B.byteCount
            var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
            for j in 0..<32 {
                if xb[j] < lo { lo = xb[j] }
                if xb[j] > hi { hi = xb[j] }
            }
            let d = (hi - lo) / 31
            let id: Float = d != 0 ? 1 / d : 0
            storeF16(b, B.d, d)
            storeF16(b, B.m, lo)
            var qh: UInt32 = 0
            for j in 0..<16 {
                let q0 = UInt32(truncClamped((xb[j] - lo) * id + 0.5, 0, 31))
                let q1 = UInt32(truncClamped((xb[j + 16] - lo) * id + 0.5, 0, 31))
                b.storeBytes(of: UInt8((q0 & 0x0F) | (q1 & 0x0F) << 4), toByteOffset: B.qs + j, as: UInt8.self)
                qh |= ((q0 & 0x10) >> 4) << UInt32(j)
                qh |= ((q1 & 0x10) >> 4) << UInt32(j + 16)
            }
            b.storeBytes(of: qh.littleEndian, toByteOffset: B.qh, as: UInt32.self)
        }
    }

    /// max |x| over a block, as ggml's `amax = MAX(amax, fabsf(v))`.
    @inline(__always)
    static func absMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var amax: Float = 0
        for j in 0..<n { let a = abs(x[j]); amax = amax > a ? amax : a }
        return amax
    }

    /// quantize_row_q8_0_ref: d = max|x| / 127, q = roundf(x / d).
    static func q8_0(_ x: UnsafePointer<Float>, _ blocks: Int, _ y: UnsafeMutableRawPointer) {
        typealias B = BlockQ8_0
        for i in 0..<blocks {
            let xb = x + i * B.elements, b = y + i * B.byteCount
            let d = absMax(xb, 32) / 127
            let id: Float = d != 0 ? 1 / d : 0
            storeF16(b, B.d, d)
            for j in 0..<32 {
                b.storeBytes(of: roundToInt8(xb[j] * id), toByteOffset: B.qs + j, as: Int8.self)
            }
        }
    }

    /// quantize_row_q8_1_ref: as Q8_0, plus s = sum(q) * d (with the f32 d, before rounding to f16).
    static func q8_1(_ x: UnsafePointer<Float>, _ blocks: Int, _ y: UnsafeMutableRawPointer) {
        typealias B = BlockQ8_1
        for i in 0..<blocks {
            let xb = x + i * B.elements, b = y + i * B.byteCount
            let d = absMax(xb, 32) / 127
            let id: Float = d != 0 ? 1 / d : 0
            storeF16(b, B.d, d)
            var sum: Int32 = 0
            for j in 0..<32 {
                let q = roundToInt8(xb[j] * id)
                sum += Int32(q)
                b.storeBytes(of: q, toByteOffset: B.qs + j, as: Int8.self)
            }
            storeF16(b, B.s, Float(sum) * d)
        }
    }

    // MARK: Q8_K

    /// quantize_row_q8_K_ref: iscale = -127 / max (max = signed value of largest magnitude, first
    /// on ties, via `ax > amax`), q = min(127, nearest_int(iscale * x)) with ties to even,
    /// d = 1 / iscale, bsums = sums of q over each 16. An all-zero block stores d = 0, q = 0 and
    /// (unlike ggml, which leaves them unwritten) bsums = 0.
    static func q8_K(_ x: UnsafePointer<Float>, _ blocks: Int, _ y: UnsafeMutableRawPointer) {
        typealias B = BlockQ8_K
        for i in 0..<blocks {
            let xb = x + i * B.elements, b = y + i * B.byteCount
            var amax: Float = 0, max: Float = 0
            for j in 0..<256 where abs(xb[j]) > amax {
                amax = abs(xb[j])
                max = xb[j]
            }
            if amax == 0 {
                (b + B.d).initializeMemory(as: UInt8.self, repeating: 0, count: B.byteCount)
                continue
            }
            let iscale = -127 / max
            for g in 0..<16 {
                var sum: Int32 = 0
                for l in 0..<16 {
                    let j = 16 * g + l
                    let v = (iscale * xb[j]).rounded(.toNearestOrEven)
                    // nearest_int's range is ±4194303; clamp (NaN → -128) so odd input cannot trap.
                    let q: Int8 = v.isNaN ? -128 : Int8(Swift.max(-128, Swift.min(127, v)))
                    sum += Int32(q)
                    b.storeBytes(of: q, toByteOffset: B.qs + j, as: Int8.self)
                }
                b.storeBytes(of: Int16(sum).littleEndian, toByteOffset: B.bsums + 2 * g, as: Int16.self)
            }
            b.storeBytes(of: (1 / iscale).bitPattern.littleEndian, toByteOffset: B.d, as: UInt32.self)
        }
    }
}

/// `values` quantized to `type` as new bytes (see `Quantize.rows`).
public func quantize(_ type: GGMLType, _ values: [Float]) throws(ModelFileError) -> [UInt8] {
    guard values.count % type.blockSize == 0, let n = type.byteCount(elements: values.count) else {
        throw .invalidArgument("cannot quantize \(values.count) values to \(type): \(type) stores values in blocks of \(type.blockSize)")
    }
    var out = [UInt8](repeating: 0, count: n)
    var failure: ModelFileError?
    values.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBytes { dst in
            do throws(ModelFileError) { try Quantize.rows(type, src, into: dst) } catch { failure = error }
        }
    }
    if let failure { throw failure }
    return out
}
