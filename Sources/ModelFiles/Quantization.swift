/// Dequantization of ggml tensor data to Float, matching ggml's dequantize_row_* (ggml-quants.c)
/// bit for bit: the same float operations in the same order, so results equal ggml's and gguf-py's
/// exactly. Block layouts are in QuantBlocks.swift.

public enum Dequantize {
    /// Converts `count` values of `type` stored in `src` to Float into `dst` (room for `count`).
    /// Every `GGMLType` converts; the integer and F64 types convert by value.
    /// `src.count` must be exactly the bytes `count` values take, and `count` a whole number of
    /// blocks; anything else throws without touching `dst`.
    public static func rows(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int,
                            into dst: UnsafeMutablePointer<Float>) throws(ModelFileError) {
        try checkSize(type, src, count: count)
        guard count > 0, let p = src.baseAddress else { return }
        convert(type, p, count: count, into: dst)
    }

    /// Throws unless `src` holds exactly `count` values of `type` in whole blocks.
    static func checkSize(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int) throws(ModelFileError) {
        guard count >= 0, count % type.blockSize == 0 else {
            throw .invalidArgument("cannot dequantize \(count) values of \(type): \(type) stores values in blocks of \(type.blockSize)")
        }
        guard let need = type.byteCount(elements: count), need == src.count else {
            let need = type.byteCount(elements: count).map { "\($0) bytes" } ?? "more bytes than fit in memory"
            throw .invalidArgument("cannot dequantize \(count) values of \(type): they take \(need) but \(src.count) were given")
        }
    }

    /// The conversion proper; sizes already checked.
    static func convert(_ type: GGMLType, _ p: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        let blocks = count / type.blockSize
        switch type {
        case .f32:
            for i in 0..<count { dst[i] = p.f32(4 * i) }
        case .f16:
            for i in 0..<count { dst[i] = p.f16(2 * i) }
        case .bf16:
            for i in 0..<count { dst[i] = floatFromBF16(p.u16(2 * i)) }
        case .f64:
            for i in 0..<count { dst[i] = Float(Double(bitPattern: p.u64(8 * i))) }
        case .i8:
            for i in 0..<count { dst[i] = Float(p.i8(i)) }
        case .i16:
            for i in 0..<count { dst[i] = Float(Int16(bitPattern: p.u16(2 * i))) }
        case .i32:
            for i in 0..<count { dst[i] = Float(Int32(bitPattern: p.u32(4 * i))) }
        case .i64:
            for i in 0..<count { dst[i] = Float(Int64(bitPattern: p.u64(8 * i))) }
        case .q4_0: q4_0(p, blocks, dst)
        case .q4_1: q4_1(p, blocks, dst)
        case .q5_0: q5_0(p, blocks, dst)
        case .q5_1: q5_1(p, blocks, dst)
        case .q8_0: q8_0(p, blocks, dst)
        case .q8_1: q8_1(p, blocks, dst)
        case .q2_K: q2_K(p, blocks, dst)
        case .q3_K: q3_K(p, blocks, dst)
        case .q4_K: q4_K(p, blocks, dst)
        case .q5_K: q5_K(p, blocks, dst)
        case .q6_K: q6_K(p, blocks, dst)
        case .q8_K: q8_K(p, blocks, dst)
        }
    }

    // MARK: 32-weight blocks (ggml dequantize_row_q4_0 … q8_0)

    static func q4_0(_ src: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        typealias B = BlockQ4_0
        for i in 0..<blocks {
            let b = src + i * B.byteCount
            let out = y + i * B.elements
            let d = b.f16(B.d)
            for j in 0..<16 {
                let q = b.u8(B.qs + j)
                out[j] = Float(Int32(q & 0x0F) - 8) * d
                out[j + 16] = Float(Int32(q >> 4) - 8) * d
            }
        }
    }

    static func q4_1(_ src: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        typealias B = BlockQ4_1
        for i in 0..<blocks {
            let b = src + i * B.byteCount
            let out = y + i * B.elements
            let d = b.f16(B.d), m = b.f16(B.m)
            for j in 0..<16 {
                let q = b.u8(B.qs + j)
                out[j] = Float(q & 0x0F) * d + m
                out[j + 16] = Float(q >> 4) * d + m
            }
        }
    }

    static func q5_0(_ src: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        typealias B = BlockQ5_0
        for i in 0..<blocks {
            let b = src + i * B.byteCount
            let out = y + i * B.elements
            let d = b.f16(B.d)
            let qh = b.u32(B.qh)
            for j in 0..<16 {
                let q = UInt32(b.u8(B.qs + j))
                let h0 = ((qh >> UInt32(j)) & 1) << 4
                let h1 = ((qh >> UInt32(j + 16)) & 1) << 4
                out[j] = Float(Int32((q & 0x0F) | h0) - 16) * d
                out[j + 16] = Float(Int32((q >> 4) | h1) - 16) * d
            }
        }
    }

    static func q5_1(_ src: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        typealias B = BlockQ5_1
        for i in 0..<blocks {
            let b = src + i * B.byteCount
            let out = y + i * B.elements
            let d = b.f16(B.d), m = b.f16(B.m)
            let qh = b.u32(B.qh)
            for j in 0..<16 {
                let q = UInt32(b.u8(B.qs + j))
                let h0 = ((qh >> UInt32(j)) & 1) << 4
                let h1 = ((qh >> UInt32(j + 16)) & 1) << 4
                out[j] = Float((q & 0x0F) | h0) * d + m
                out[j + 16] = Float((q >> 4) | h1) * d + m
            }
        }
    }

    static func q8_0(_ src: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        typealias B = BlockQ8_0
        for i in 0..<blocks {
            let b = src + i * B.byteCount
            let out = y + i * B.elements
            let d = b.f16(B.d)
            for j in 0..<32 { out[j] = Float(b.i8(B.qs + j)) * d }
        }
    }

    /// ggml has no dequantize_row_q8_1 (Q8_1 only holds activations); this is the same w = d * q.
    static func q8_1(_ src: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        typealias B = BlockQ8_1
        for i in 0..<blocks {
            let b = src + i * B.byteCount
            let out = y + i * B.elements
            let d = b.f16(B.d)
            for j in 0..<32 { out[j] = Float(b.i8(B.qs + j)) * d }
        }
    }

    // MARK: k-quants (256-weight super-blocks)

    /// ggml dequantize_row_q2_K: for each half (128 weights, 32 bytes of qs), four 2-bit planes;
    /// each plane covers two groups of 16 with their own scale/min.
    static func q2_K(_ src: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        typealias B = BlockQ2_K
        for i in 0..<blocks {
            let b = src + i * B.byteCount
            var out = y + i * B.elements
            let d = b.f16(B.d), dmin = b.f16(B.dmin)
            var group = 0
            for half in 0..<2 {
                let q = B.qs + 32 * half
                for plane in 0..<4 {
                    let shift = UInt8(2 * plane)
                    for part in 0..<2 {
                        let sc = b.u8(B.scales + group)
                        group += 1
                        let dl = d * Float(sc & 0x0F)
                        let ml = dmin * Float(sc >> 4)
                        for l in 0..<16 {
                            out[l] = dl * Float((b.u8(q + 16 * part + l) >> shift) & 3) - ml
                        }
                        out += 16
                    }
                }
            }
        }
    }

    /// The 16 six-bit Q3_K scales: low 4 bits from bytes 0…7 (low nibble for groups 0…7, high
    /// nibble for 8…15), high 2 bits from bytes 8…11 (byte 8 + g % 4, bit pair g / 4).
    @inline(__always)
    static func q3_KScale(_ b: UnsafeRawPointer, _ g: Int) -> Int32 {
        let s = BlockQ3_K.scales
        let low = g < 8 ? b.u8(s + g) & 0x0F : b.u8(s + g - 8) >> 4
        let high = (b.u8(s + 8 + g % 4) >> UInt8(2 * (g / 4))) & 3
        return Int32(low | high << 4) - 32
    }

    /// ggml dequantize_row_q3_K: like Q2_K's plane order; the hmask bit (bit `plane + 4 * half`
    /// of hmask[l]) set means q = low bits, clear means low bits - 4.
    static func q3_K(_ src: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        typealias B = BlockQ3_K
        for i in 0..<blocks {
            let b = src + i * B.byteCount
            var out = y + i * B.elements
            let d = b.f16(B.d)
            var group = 0
            var mask: UInt8 = 1
            for half in 0..<2 {
                let q = B.qs + 32 * half
                for plane in 0..<4 {
                    let shift = UInt8(2 * plane)
                    for part in 0..<2 {
                        let dl = d * Float(q3_KScale(b, group))
                        group += 1
                        for l in 0..<16 {
                            let k = 16 * part + l
                            let low = Int32((b.u8(q + k) >> shift) & 3)
                            let high: Int32 = b.u8(B.hmask + k) & mask != 0 ? 0 : 4
                            out[l] = dl * Float(low - high)
                        }
                        out += 16
                    }
                    mask <<= 1
                }
            }
        }
    }

    /// ggml get_scale_min_k4: 6-bit scale and min of group `j` (0…7) of a Q4_K/Q5_K block.
    @inline(__always)
    static func kScaleMin(_ b: UnsafeRawPointer, _ scales: Int, _ j: Int) -> (Float, Float) {
        if j < 4 {
            return (Float(b.u8(scales + j) & 63), Float(b.u8(scales + j + 4) & 63))
        }
        let sc = (b.u8(scales + j + 4) & 0x0F) | ((b.u8(scales + j - 4) >> 6) << 4)
        let m = (b.u8(scales + j + 4) >> 4) | ((b.u8(scales + j) >> 6) << 4)
        return (Float(sc), Float(m))
    }

    /// ggml dequantize_row_q4_K: 4 chunks of 64 weights; chunk c uses 32 bytes of qs, low nibbles
    /// for group 2c and high nibbles for group 2c + 1.
    static func q4_K(_ src: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        typealias B = BlockQ4_K
        for i in 0..<blocks {
            let b = src + i * B.byteCount
            let out = y + i * B.elements
            let d = b.f16(B.d), dmin = b.f16(B.dmin)
            for c in 0..<4 {
                let (sc1, m1) = kScaleMin(b, B.scales, 2 * c)
                let (sc2, m2) = kScaleMin(b, B.scales, 2 * c + 1)
                let d1 = d * sc1, dm1 = dmin * m1
                let d2 = d * sc2, dm2 = dmin * m2
                let q = B.qs + 32 * c
                let o = out + 64 * c
                for l in 0..<32 {
                    let v = b.u8(q + l)
                    o[l] = d1 * Float(v & 0x0F) - dm1
                    o[l + 32] = d2 * Float(v >> 4) - dm2
                }
            }
        }
    }

    /// ggml dequantize_row_q5_K: as Q4_K, plus bit 2c (low group) / 2c + 1 (high group) of qh[l]
    /// adds 16.
    static func q5_K(_ src: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        typealias B = BlockQ5_K
        for i in 0..<blocks {
            let b = src + i * B.byteCount
            let out = y + i * B.elements
            let d = b.f16(B.d), dmin = b.f16(B.dmin)
            for c in 0..<4 {
                let (sc1, m1) = kScaleMin(b, B.scales, 2 * c)
                let (sc2, m2) = kScaleMin(b, B.scales, 2 * c + 1)
                let d1 = d * sc1, dm1 = dmin * m1
                let d2 = d * sc2, dm2 = dmin * m2
                let q = B.qs + 32 * c
                let u1 = UInt8(1) << UInt8(2 * c), u2 = UInt8(2) << UInt8(2 * c)
                let o = out + 64 * c
                for l in 0..<32 {
                    let v = b.u8(q + l), h = b.u8(B.qh + l)
                    o[l] = d1 * Float((v & 0x0F) + (h & u1 != 0 ? 16 : 0)) - dm1
                    o[l + 32] = d2 * Float((v >> 4) + (h & u2 != 0 ? 16 : 0)) - dm2
                }
            }
        }
    }

    /// ggml dequantize_row_q6_K: two halves of 128 weights (64 bytes ql, 32 bytes qh, 8 scales
    /// each); within a half, position l feeds weights l, l+32, l+64, l+96.
    static func q6_K(_ src: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        typealias B = BlockQ6_K
        for i in 0..<blocks {
            let b = src + i * B.byteCount
            let out = y + i * B.elements
            let d = b.f16(B.d)
            for half in 0..<2 {
                let ql = B.ql + 64 * half, qh = B.qh + 32 * half, sc = B.scales + 8 * half
                let o = out + 128 * half
                for s in 0..<2 {
                    // ggml computes d * scale * q left to right, i.e. (d * scale) * q, so taking
                    // d * scale once per group of 16 gives identical results.
                    let d1 = d * Float(b.i8(sc + s)), d2 = d * Float(b.i8(sc + s + 2))
                    let d3 = d * Float(b.i8(sc + s + 4)), d4 = d * Float(b.i8(sc + s + 6))
                    for l in (16 * s)..<(16 * s + 16) {
                        let h = b.u8(qh + l)
                        let lo = b.u8(ql + l), hi = b.u8(ql + l + 32)
                        o[l] = d1 * Float(Int32((lo & 0x0F) | ((h & 3) << 4)) - 32)
                        o[l + 32] = d2 * Float(Int32((hi & 0x0F) | (((h >> 2) & 3) << 4)) - 32)
                        o[l + 64] = d3 * Float(Int32((lo >> 4) | (((h >> 4) & 3) << 4)) - 32)
                        o[l + 96] = d4 * Float(Int32((hi >> 4) | (((h >> 6) & 3) << 4)) - 32)
                    }
                }
            }
        }
    }

    /// ggml dequantize_row_q8_K: w = d * q with an f32 d.
    static func q8_K(_ src: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        typealias B = BlockQ8_K
        for i in 0..<blocks {
            let b = src + i * B.byteCount
            let out = y + i * B.elements
            let d = b.f32(B.d)
            for j in 0..<256 { out[j] = d * Float(b.i8(B.qs + j)) }
        }
    }
}

/// `count` values of `type` from `src` as a new Float array (see `Dequantize.rows`).
public func dequantize(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int) throws(ModelFileError) -> [Float] {
    try Dequantize.checkSize(type, src, count: count)
    guard count > 0, let p = src.baseAddress else { return [] }
    return [Float](unsafeUninitializedCapacity: count) { buf, initialized in
        if let base = buf.baseAddress { Dequantize.convert(type, p, count: count, into: base) }
        initialized = count
    }
}

extension GGUFFile {
    /// Throws unless `info` is one of this file's tensors (an info from another file would point
    /// outside this mapping).
    func checkOwnTensor(_ info: GGUFTensorInfo) throws(ModelFileError) {
        guard let i = tensorIndex[info.name], tensors[i] == info else {
            throw .invalidArgument("tensor '\(info.name)' does not belong to \(path)")
        }
    }

    /// The whole tensor as Float (row-major, `dims[0]` contiguous).
    public func dequantized(_ info: GGUFTensorInfo) throws(ModelFileError) -> [Float] {
        try checkOwnTensor(info)
        do {
            return try dequantize(info.type, data(of: info), count: info.elementCount)
        } catch {
            throw .corrupt(path: path, what: "tensor '\(info.name)': \(error)")
        }
    }

    public func dequantized(tensorNamed name: String) throws(ModelFileError) -> [Float] {
        guard let t = tensor(named: name) else { throw .tensorNotFound(path: path, name: name) }
        return try dequantized(t)
    }

    /// Rows `rows` of a tensor (a row is `dims[0]` values) into `dst`, which has room for
    /// `rows.count * dims[0]` values. Lets callers convert a huge tensor in pieces.
    public func dequantizeRows(of info: GGUFTensorInfo, _ rows: Range<Int>,
                               into dst: UnsafeMutablePointer<Float>) throws(ModelFileError) {
        try checkOwnTensor(info)
        // The reader guarantees at least one dimension, each ≥ 1, and rows of whole blocks.
        guard let rowLength = info.dims.first, rowLength > 0,
              let rowBytes = info.type.byteCount(elements: rowLength) else {
            throw .corrupt(path: path, what: "tensor '\(info.name)' rows of \(info.dims.first ?? 0) values are not whole \(info.type) blocks")
        }
        let totalRows = info.elementCount / rowLength
        guard rows.lowerBound >= 0, rows.upperBound <= totalRows else {
            throw .invalidArgument("rows \(rows) are outside tensor '\(info.name)', which has \(totalRows) rows")
        }
        let all = data(of: info)
        let slice = UnsafeRawBufferPointer(rebasing: all[(rows.lowerBound * rowBytes)..<(rows.upperBound * rowBytes)])
        try Dequantize.rows(info.type, slice, count: rows.count * rowLength, into: dst)
    }
}
