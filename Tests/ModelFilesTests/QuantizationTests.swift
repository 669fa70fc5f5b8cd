import Foundation
import XCTest
import ModelFiles
import TestSupport

/// Checks dequantization and quantization against Tests/Fixtures/quant/*.json, written by
/// scripts/make-quant-reference from PyPI's `gguf` package (gguf.quants), an implementation
/// independent of ours. Dequantized values must match EXACTLY (bit for bit, 0 == -0): we perform
/// ggml's float operations in ggml's order, so any difference is a bug, not rounding.
final class QuantizationTests: XCTestCase {

    // MARK: fixtures

    struct Stats { var sum = 0.0, sumAbs = 0.0, sumSquares = 0.0 }

    static func object(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(TestPaths.loadJSON(TestPaths.fixture(path)) as? [String: Any], "\(path) is not a JSON object")
    }

    static func floats(_ any: Any?) throws -> [Float] {
        let numbers = try XCTUnwrap(any as? [NSNumber], "expected an array of numbers")
        return numbers.map { Float($0.doubleValue) }
    }

    static func bytes(hex: String) throws -> [UInt8] {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0 else { throw TestSupportError.missing("odd-length hex") }
        func nibble(_ c: UInt8) throws -> UInt8 {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            default: throw TestSupportError.missing("bad hex digit \(c)")
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        for i in stride(from: 0, to: chars.count, by: 2) {
            out.append(try nibble(chars[i]) << 4 | nibble(chars[i + 1]))
        }
        return out
    }

    static func type(named name: String) throws -> GGMLType {
        try XCTUnwrap(GGMLType.allCases.first { $0.name == name }, "unknown type \(name)")
    }

    /// First index where `got` and `want` differ (nil when equal), for readable failures.
    func assertSameValues(_ got: ArraySlice<Float>, _ want: ArraySlice<Float>, _ what: String,
                          file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, "\(what): count", file: file, line: line)
        for (k, (g, w)) in zip(got, want).enumerated() where !(g == w) {
            XCTFail("\(what): value \(k) is \(g), reference \(w)", file: file, line: line)
            return
        }
    }

    // MARK: layouts and scalars

    func testEveryBlockLayoutMatchesBlockBytes() throws {
        var declared: Set<GGMLType> = []
        for layout in QuantBlocks.all {
            let t = layout.type
            declared.insert(t)
            XCTAssertEqual(layout.byteCount, t.blockBytes, "\(t) declared size")
            XCTAssertEqual(layout.elements, t.blockSize, "\(t) elements per block")
            var offset = 0
            for f in layout.fields {
                XCTAssertEqual(f.offset, offset, "\(t) field \(f) should follow the previous field with no gap")
                XCTAssertGreaterThan(f.byteCount, 0)
                offset += f.byteCount
            }
            XCTAssertEqual(offset, layout.byteCount, "\(t) fields \(layout.fields) add up to the declared size")
            XCTAssertTrue(QuantBlocks.layout(of: t).map { ObjectIdentifier($0) } == ObjectIdentifier(layout))
        }
        let quantized = Set(GGMLType.allCases.filter { $0.blockSize > 1 })
        XCTAssertEqual(declared, quantized, "every block type has exactly one declared layout")
        XCTAssertEqual(QuantBlocks.all.count, quantized.count)
        // The sizes ggml-common.h static_asserts.
        XCTAssertEqual(BlockQ4_K.byteCount, 2 * 2 + 12 + 256 / 2)
        XCTAssertEqual(BlockQ6_K.byteCount, 2 + 256 / 16 + 3 * 256 / 4)
        XCTAssertEqual(BlockQ8_K.byteCount, 4 + 256 + 2 * 256 / 16)
    }

    func testHalfConversionsMatchFloat16ForEveryBitPattern() throws {
        #if !(os(macOS) && arch(x86_64))
        for bits in 0...UInt16.max {
            let ours = floatFromHalf(bits)
            let swift = Float(Float16(bitPattern: bits))
            if swift.isNaN {
                XCTAssertTrue(ours.isNaN, "half \(bits)")
                XCTAssertTrue(halfFromFloat(ours) & 0x7C00 == 0x7C00 && halfFromFloat(ours) & 0x3FF != 0)
            } else {
                XCTAssertEqual(ours.bitPattern, swift.bitPattern, "half \(String(bits, radix: 16))")
                XCTAssertEqual(halfFromFloat(ours), bits, "round trip of half \(String(bits, radix: 16))")
            }
        }
        // Float → half rounding (ties to even, overflow, subnormals) against Swift's Float16.
        var rng = QuantTestRNG(seed: 42)
        var probes: [Float] = [0, -0, 65504, 65519.99, 65520, 65536, 1e-8, 2.98e-8, 2.99e-8, 6.1e-5, 6.0e-5,
                               .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1 + 0x1p-11,
                               1 + 0x1p-11 + 0x1p-23, 1 + 3 * 0x1p-11, 0x1p-14 - 0x1p-25, 0x1p-24 * 1.5, 0x1p-24 * 2.5]
        for _ in 0..<200_000 {
            probes.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())))
        }
        for _ in 0..<200_000 {  // dense near the half range
            probes.append(Float(bitPattern: 0x3300_0000 + UInt32(truncatingIfNeeded: rng.next() % 0x1500_0000)))
        }
        for f in probes where !f.isNaN {
            XCTAssertEqual(halfFromFloat(f), Float16(f).bitPattern, "halfFromFloat(\(f))")
            XCTAssertEqual(halfFromFloat(-f), Float16(-f).bitPattern, "halfFromFloat(\(-f))")
        }
        #endif
        XCTAssertEqual(floatFromHalf(0x3C00), 1)
        XCTAssertEqual(floatFromHalf(0xC000), -2)
        XCTAssertEqual(floatFromHalf(0x0001), 0x1p-24)
        XCTAssertEqual(floatFromHalf(0x7BFF), 65504)
        XCTAssertEqual(halfFromFloat(.nan) & 0x7E00, 0x7E00)
    }

    func testBF16Conversions() {
        XCTAssertEqual(floatFromBF16(0x3F80), 1)
        XCTAssertEqual(floatFromBF16(0xC040), -3)
        XCTAssertEqual(bf16FromFloat(1), 0x3F80)
        // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even → 1.
        XCTAssertEqual(bf16FromFloat(1 + 0x1p-8), 0x3F80)
        XCTAssertEqual(bf16FromFloat(1 + 0x1p-8 + 0x1p-20), 0x3F81)
        XCTAssertEqual(bf16FromFloat(1 + 3 * 0x1p-8), 0x3F82)  // tie, odd below → rounds up
        XCTAssertEqual(bf16FromFloat(.infinity), 0x7F80)
        let nan = bf16FromFloat(Float(bitPattern: 0x7F80_0001))
        XCTAssertTrue(floatFromBF16(nan).isNaN, "a signalling NaN stays NaN (quieted)")
        for bits: UInt16 in [0, 0x8000, 1, 0x7F7F, 0xFF7F, 0x0080] {
            XCTAssertEqual(bf16FromFloat(floatFromBF16(bits)), bits)
        }
    }

    // MARK: dequantize vs gguf-py

    func testSyntheticBlocksMatchReference() throws {
        let root = try Self.object("quant/synthetic.json")
        let entries = try XCTUnwrap(root["entries"] as? [[String: Any]])
        var seen: Set<GGMLType> = []
        for e in entries {
            let type = try Self.type(named: try XCTUnwrap(e["type"] as? String))
            let count = try XCTUnwrap(e["count"] as? Int)
            let raw = try Self.bytes(hex: try XCTUnwrap(e["hex"] as? String))
            let want = try Self.floats(e["values"])
            XCTAssertEqual(want.count, count)
            XCTAssertEqual(raw.count, type.byteCount(elements: count), "\(type) fixture size")
            let got = try raw.withUnsafeBytes { try dequantize(type, $0, count: count) }
            assertSameValues(got[...], want[...], "\(type) synthetic")

            // Same bytes at an odd address: blocks in files are not aligned.
            let shifted = [UInt8](repeating: 0xEE, count: 3) + raw
            let got2 = try shifted.withUnsafeBytes { buf in
                try dequantize(type, UnsafeRawBufferPointer(rebasing: buf[3...]), count: count)
            }
            assertSameValues(got2[...], want[...], "\(type) synthetic at an unaligned address")
            seen.insert(type)
        }
        let expected: Set<GGMLType> = [.f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1,
                                       .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K]
        XCTAssertEqual(seen, expected)
    }

    func testPlainTypesConvertByValue() throws {
        let values: [Float] = [0, -1.5, 3.25e-3, 1e30, -0x1p-140]
        var raw: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { raw += $0 } }
        XCTAssertEqual(try raw.withUnsafeBytes { try dequantize(.f32, $0, count: 5) }, values)
        var raw64: [UInt8] = []
        for v in [1.5, -2.0e10] as [Double] { withUnsafeBytes(of: v.bitPattern.littleEndian) { raw64 += $0 } }
        XCTAssertEqual(try raw64.withUnsafeBytes { try dequantize(.f64, $0, count: 2) }, [1.5, -2.0e10])
        let i16: [UInt8] = [0xFF, 0xFF, 0x34, 0x12]
        XCTAssertEqual(try i16.withUnsafeBytes { try dequantize(.i16, $0, count: 2) }, [-1, 0x1234])
        let i8: [UInt8] = [0x80, 0x7F]
        XCTAssertEqual(try i8.withUnsafeBytes { try dequantize(.i8, $0, count: 2) }, [-128, 127])
    }

    func testWrongSizesThrow() throws {
        let raw = [UInt8](repeating: 0, count: 2 * BlockQ4_0.byteCount)
        try raw.withUnsafeBytes { buf in
            XCTAssertNoThrow(try dequantize(.q4_0, buf, count: 64))
            // One byte short, one byte long, a partial block, a negative count.
            XCTAssertThrowsError(try dequantize(.q4_0, UnsafeRawBufferPointer(rebasing: buf.dropLast()), count: 64))
            XCTAssertThrowsError(try dequantize(.q4_0, buf, count: 32))
            XCTAssertThrowsError(try dequantize(.q4_0, buf, count: 48))
            XCTAssertThrowsError(try dequantize(.q4_0, buf, count: -32))
            var out = [Float](repeating: 7, count: 64)
            XCTAssertThrowsError(try out.withUnsafeMutableBufferPointer { try Dequantize.rows(.q4_K, buf, count: 64, into: $0.baseAddress!) }) { e in
                XCTAssertTrue("\(e)".contains("blocks of 256"), "\(e)")
            }
            XCTAssertEqual(out, [Float](repeating: 7, count: 64), "a failed call leaves the output alone")
            XCTAssertEqual(try dequantize(.q4_0, UnsafeRawBufferPointer(rebasing: buf[0..<0]), count: 0), [])
        }
    }

    // MARK: real models

    func testRealModelTensorsMatchReference() throws {
        let root = try Self.object("quant/models.json")
        let models = try XCTUnwrap(root["models"] as? [String: Any])
        XCTAssertEqual(Set(models.keys), ["smollm2-135m-instruct", "gemma-3-270m"])
        var typesSeen: Set<GGMLType> = []
        for (name, value) in models.sorted(by: { $0.key < $1.key }) {
            let model = try XCTUnwrap(value as? [String: Any])
            let file = try GGUFFile(path: try TestPaths.model(name))
            for s in try XCTUnwrap(model["samples"] as? [[String: Any]]) {
                let tensor = try XCTUnwrap(s["tensor"] as? String)
                let type = try Self.type(named: try XCTUnwrap(s["type"] as? String))
                let info = try XCTUnwrap(file.tensor(named: tensor))
                XCTAssertEqual(info.type, type)
                let values = try file.dequantized(tensorNamed: tensor)
                XCTAssertEqual(values.count, try XCTUnwrap(s["elements"] as? Int))
                let head = try Self.floats(s["head"]), tail = try Self.floats(s["tail"])
                assertSameValues(values.prefix(head.count), head[...], "\(name) \(tensor) first values")
                assertSameValues(values.suffix(tail.count), tail[...], "\(name) \(tensor) last values")
                var st = Stats()
                for v in values { let d = Double(v); st.sum += d; st.sumAbs += abs(d); st.sumSquares += d * d }
                try assertStats(st, s, "\(name) \(tensor)")
                typesSeen.insert(type)
            }
        }
        XCTAssertEqual(typesSeen, [.f32, .q4_1, .q8_0, .q4_K, .q5_0, .q6_K])
    }

    /// Sums in float64 of a whole tensor. The values are bit-exact, so the only difference is
    /// float64 summation order (numpy pairwise vs our per-row sums): far below 1e-9 of Σ|x|,
    /// while one wrong weight in even the largest tensor (1.7e8 values) moves the sum by ~6e-9 Σ|x|.
    func assertStats(_ st: Stats, _ ref: [String: Any], _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) throws {
        let sum = try XCTUnwrap(ref["sum"] as? Double)
        let sumAbs = try XCTUnwrap(ref["sumAbs"] as? Double)
        let sumSquares = try XCTUnwrap(ref["sumSquares"] as? Double)
        let tol = 1e-10 * sumAbs + 1e-12
        XCTAssertEqual(st.sum, sum, accuracy: tol, "\(what) sum", file: file, line: line)
        XCTAssertEqual(st.sumAbs, sumAbs, accuracy: tol, "\(what) sum of |x|", file: file, line: line)
        XCTAssertEqual(st.sumSquares, sumSquares, accuracy: 1e-10 * sumSquares + 1e-12, "\(what) sum of squares", file: file, line: line)
    }

    /// Every tensor of both models, converted in row chunks, against gguf-py's whole-tensor sums.
    /// This is also the check that all of Gemma's (and SmolLM2's) tensors dequantize without error.
    func testEveryTensorOfBothModelsMatchesReferenceSums() throws {
        let root = try Self.object("quant/models.json")
        let models = try XCTUnwrap(root["models"] as? [String: Any])
        // Time spent in dequantization alone, per type, printed for the record (not asserted).
        var seconds: [GGMLType: Double] = [:], elements: [GGMLType: Int] = [:]
        for (name, value) in models.sorted(by: { $0.key < $1.key }) {
            let model = try XCTUnwrap(value as? [String: Any])
            let refs = try XCTUnwrap(model["tensors"] as? [[String: Any]])
            let file = try GGUFFile(path: try TestPaths.model(name))
            XCTAssertEqual(refs.count, file.tensors.count, "\(name) tensor count")
            var buffer = [Float](repeating: 0, count: 1 << 20)
            for ref in refs {
                let tensorName = try XCTUnwrap(ref["tensor"] as? String)
                let info = try XCTUnwrap(file.tensor(named: tensorName), "\(name): \(tensorName)")
                XCTAssertEqual(info.type.name, ref["type"] as? String)
                XCTAssertEqual(info.elementCount, ref["elements"] as? Int)
                let rowLength = info.dims[0]
                let rows = info.elementCount / rowLength
                let chunk = max(1, buffer.count / rowLength)
                var st = Stats()
                var r = 0
                while r < rows {
                    let n = min(chunk, rows - r)
                    try buffer.withUnsafeMutableBufferPointer { out in
                        let start = DispatchTime.now().uptimeNanoseconds
                        try file.dequantizeRows(of: info, r..<(r + n), into: out.baseAddress!)
                        seconds[info.type, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                        elements[info.type, default: 0] += n * rowLength
                        for row in 0..<n {
                            var s = 0.0, a = 0.0, q = 0.0
                            for k in (row * rowLength)..<((row + 1) * rowLength) {
                                let d = Double(out[k]); s += d; a += abs(d); q += d * d
                            }
                            st.sum += s; st.sumAbs += a; st.sumSquares += q
                        }
                    }
                    r += n
                }
                try assertStats(st, ref, "\(name) \(tensorName)")
            }
        }
        for (type, secs) in seconds.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            let n = elements[type] ?? 0
            print("dequantize \(type.name): \(n) values in \(String(format: "%.3f", secs)) s = \(Int(Double(n) / secs / 1e6)) M values/s")
        }
    }

    func testTensorLookupErrors() throws {
        let file = try GGUFFile(path: try TestPaths.model("smollm2-135m-instruct"))
        XCTAssertThrowsError(try file.dequantized(tensorNamed: "no.such.tensor")) { e in
            XCTAssertEqual(e as? ModelFileError, .tensorNotFound(path: file.path, name: "no.such.tensor"))
        }
        // A tensor description from another file (same name, other shape and offset) is refused
        // rather than read out of bounds.
        let gemma = try GGUFFile(path: try TestPaths.model("gemma-3-270m"))
        let foreign = try XCTUnwrap(gemma.tensor(named: "token_embd.weight"))
        XCTAssertThrowsError(try file.dequantized(foreign)) { e in
            XCTAssertTrue("\(e)".contains("does not belong"), "\(e)")
        }
        let info = try XCTUnwrap(file.tensor(named: "blk.0.attn_k.weight"))
        var out = [Float](repeating: 0, count: 576)
        XCTAssertThrowsError(try out.withUnsafeMutableBufferPointer { buf in
            try file.dequantizeRows(of: info, 192..<193, into: buf.baseAddress!)
        })
        // Row r of a chunked read equals row r of the whole tensor.
        let whole = try file.dequantized(info)
        try out.withUnsafeMutableBufferPointer { buf in
            try file.dequantizeRows(of: info, 191..<192, into: buf.baseAddress!)
        }
        XCTAssertEqual(out[...], whole[(191 * 576)...])
    }

    // MARK: quantize

    func testQuantizeMatchesReferenceBytes() throws {
        let root = try Self.object("quant/quantize.json")
        let input = try Self.floats(root["input"])
        var seen: Set<GGMLType> = []
        for e in try XCTUnwrap(root["entries"] as? [[String: Any]]) {
            let type = try Self.type(named: try XCTUnwrap(e["type"] as? String))
            let want = try Self.bytes(hex: try XCTUnwrap(e["hex"] as? String))
            let got = try quantize(type, input)
            XCTAssertEqual(got.count, want.count, "\(type) size")
            if got != want {
                let k = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1
                XCTFail("\(type): first differing byte \(k) (block \(k / type.blockBytes), offset \(k % type.blockBytes)) of \(want.count)")
            }
            seen.insert(type)
        }
        XCTAssertEqual(seen, [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .q8_K, .bf16, .f16])
    }

    func testQuantizeRoundTripErrorBounds() throws {
        var rng = QuantTestRNG(seed: 1234)
        var x = [Float](repeating: 0, count: 4096)
        for i in x.indices {
            // Mixed block scales so small and large blocks both occur.
            let scale = Float(1 << (i / 256 % 8)) * 0.01
            x[i] = (Float(rng.next() % 2_000_001) / 1_000_000 - 1) * scale
        }
        for type in [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .q8_K] {
            let q = try quantize(type, x)
            let y = try q.withUnsafeBytes { try dequantize(type, $0, count: x.count) }
            let n = type.blockSize
            for b in 0..<(x.count / n) {
                let block = x[(b * n)..<((b + 1) * n)]
                let amax = block.map(abs).max()!, lo = block.min()!, hi = block.max()!
                // Half a step, plus what rounding the scale (and min) to f16 adds over the range.
                let bound: Float
                switch type {
                case .q4_0: bound = amax / 8 * 1.01       // the top code (+8) is clipped to 7: one step
                case .q5_0: bound = amax / 16 * 1.01
                case .q4_1: bound = (hi - lo) / 15 * 0.51 + abs(lo) * 0x1p-11 + (hi - lo) * 0x1p-11
                case .q5_1: bound = (hi - lo) / 31 * 0.51 + abs(lo) * 0x1p-11 + (hi - lo) * 0x1p-11
                case .q8_K: bound = amax / 127 * 0.5001
                default: bound = amax / 127 * 0.5 + amax * 0x1p-11
                }
                for k in block.indices {
                    XCTAssertLessThanOrEqual(abs(y[k] - x[k]), bound, "\(type) block \(b) value \(k)")
                }
            }
            if type == .q8_K {
                try checkQ8KBlockSums(q, blocks: x.count / 256)
            }
        }
    }

    func checkQ8KBlockSums(_ q: [UInt8], blocks: Int) throws {
        for b in 0..<blocks {
            let base = b * BlockQ8_K.byteCount
            for g in 0..<16 {
                var sum = 0
                for l in 0..<16 { sum += Int(Int8(bitPattern: q[base + BlockQ8_K.qs + 16 * g + l])) }
                let lo = q[base + BlockQ8_K.bsums + 2 * g], hi = q[base + BlockQ8_K.bsums + 2 * g + 1]
                XCTAssertEqual(Int(Int16(bitPattern: UInt16(lo) | UInt16(hi) << 8)), sum, "block \(b) bsum \(g)")
            }
        }
    }

    func testQuantizeArgumentChecksAndOddInput() throws {
        XCTAssertThrowsError(try quantize(.q2_K, [Float](repeating: 0, count: 256))) { e in
            XCTAssertTrue("\(e)".contains("not supported"), "\(e)")
        }
        XCTAssertThrowsError(try quantize(.q8_0, [Float](repeating: 0, count: 33)))
        var dst = [UInt8](repeating: 0, count: 33)
        let src = [Float](repeating: 1, count: 32)
        XCTAssertThrowsError(try src.withUnsafeBufferPointer { s in
            try dst.withUnsafeMutableBytes { d in try Quantize.rows(.q8_0, s, into: d) }
        })
        // NaN and infinities must not trap (their output is unspecified, as in ggml).
        var odd = [Float](repeating: 0.5, count: 256)
        odd[3] = .nan; odd[40] = .infinity; odd[41] = -.infinity; odd[100] = .nan
        for type in Quantize.supportedTypes {
            _ = try quantize(type, odd)
        }
        // All zeros quantize to zeros and come back as zeros.
        let zeros = [Float](repeating: 0, count: 256)
        for type in Quantize.supportedTypes {
            let q = try quantize(type, zeros)
            XCTAssertEqual(try q.withUnsafeBytes { try dequantize(type, $0, count: 256) }, zeros, "\(type)")
        }
    }
}

/// The shared deterministic generator, so the tests do not depend on the platform's random source.
private typealias QuantTestRNG = SplitMix64
