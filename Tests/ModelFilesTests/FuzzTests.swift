import Foundation
import XCTest
import ModelFiles
import TestSupport

/// Mutation fuzzing of the GGUF and safetensors readers plus hand-written hostile files. Every
/// input must either parse (with every tensor inside the file) or throw ModelFileError: never
/// crash, never hang. The PRNG is seeded, so a failure reproduces; the failing bytes are saved.
final class FuzzTests: XCTestCase {
    #if DEBUG
    static let iterations = 2000
    #else
    static let iterations = 10000
    #endif

    var dir = ""
    override func setUpWithError() throws { dir = try makeTempDirectory("fuzz") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    // MARK: - Seeds

    /// Shortens long strings and arrays so the seed stays a few KB (fast to mutate and re-parse)
    /// while keeping every key and value type of the real file.
    static func shrink(_ v: GGUFValue) -> GGUFValue {
        switch v {
        case let .string(s): return .string(String(s.prefix(40)))
        case let .array(t, a): return .array(t, a.prefix(6).map(shrink))
        default: return v
        }
    }

    /// A small valid GGUF with the real model's metadata and one tiny tensor per type it uses.
    func seedGGUF(model: String) throws -> [UInt8] {
        let real = try GGUFFile(path: try TestPaths.model(model))
        var w = GGUFWriter(metadata: real.metadataPairs.map { ($0.key, Self.shrink($0.value)) })
        var rng = SplitMix64(seed: 99)
        var seenTypes = Set<GGMLType>()
        for t in real.tensors where seenTypes.insert(t.type).inserted {
            let dims = t.dims.count == 1 ? [t.type.blockSize] : [t.type.blockSize, 2]
            let n = t.type.byteCount(elements: dims.reduce(1, *))!
            w.addTensor(name: t.name, type: t.type, dims: dims,
                        bytes: TensorBytes((0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }))
        }
        let path = dir + "/seed-\(model).gguf"
        try w.write(to: path)
        return try fileBytes(path)
    }

    /// A small valid safetensors file with MiniLM's first tensors (names, dtypes, ranks) shrunk.
    func seedSafetensors() throws -> [UInt8] {
        let real = try SafetensorsFile(path: try TestPaths.model("all-minilm-l6-v2") + "/model.safetensors")
        var w = SafetensorsWriter(metadata: real.metadata)
        var rng = SplitMix64(seed: 5)
        for t in real.tensors.prefix(10) {
            let shape = t.shape.map { min($0, 3) }
            let n = shape.reduce(1, *) * t.dtype.elementSize
            w.addTensor(name: t.name, dtype: t.dtype, shape: shape,
                        bytes: TensorBytes((0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }))
        }
        w.addTensor(name: "extra.half", dtype: .f16, shape: [3], bytes: TensorBytes([0, 0x3c, 0, 0xc0, 0xff, 0x7b]))
        let path = dir + "/seed.safetensors"
        try w.write(to: path)
        return try fileBytes(path)
    }

    /// Offsets and widths of the GGUF's structural fields (counts, lengths, type tags, dims,
    /// tensor offsets), so mutations can aim at the numbers a hostile file would lie about.
    static func structuralFields(ofValidGGUF b: [UInt8]) -> [(offset: Int, width: Int)] {
        var fields: [(Int, Int)] = [(4, 4), (8, 8), (16, 8)]
        var o = 24
        func u32() -> Int { let v = b[o..<(o + 4)].reversed().reduce(0) { $0 << 8 | Int($1) }; o += 4; return v }
        func u64() -> Int { let v = b[o..<(o + 8)].reversed().reduce(0) { $0 << 8 | Int($1) }; o += 8; return v }
        func field(_ w: Int) -> Int { fields.append((o, w)); return w == 4 ? u32() : u64() }
        func value(_ type: Int) {
            switch type {
            case 0, 1, 7: o += 1
            case 2, 3: o += 2
            case 4, 5, 6: o += 4
            case 10, 11, 12: o += 8
            case 8: o += field(8)
            case 9:
                let et = field(4)
                let n = field(8)
                for _ in 0..<n { value(et) }
            default: break
            }
        }
        let nTensors = b[8..<16].reversed().reduce(0) { $0 << 8 | Int($1) }
        let nKV = b[16..<24].reversed().reduce(0) { $0 << 8 | Int($1) }
        for _ in 0..<nKV {
            o += field(8)
            value(field(4))
        }
        for _ in 0..<nTensors {
            o += field(8)
            let nd = field(4)
            for _ in 0..<nd { _ = field(8) }
            _ = field(4)
            _ = field(8)
        }
        return fields
    }

    // MARK: - Mutation

    static let interesting: [UInt64] = [
        0, 1, 2, 0x7f, 0x80, 0xff, 0xffff, UInt64(Int32.max), UInt64(UInt32.max), 1 << 32, 1 << 40,
        UInt64(Int64.max), 1 << 63, UInt64.max, UInt64.max - 7, 100_000_001,
    ]

    static func put(_ v: UInt64, width: Int, at o: Int, in b: inout [UInt8]) {
        for i in 0..<width where o + i < b.count { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }

    static func mutate(_ base: [UInt8], fields: [(offset: Int, width: Int)], rng: inout SplitMix64) -> [UInt8] {
        var b = base
        func r(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }
        for _ in 0...r(3) {
            guard !b.isEmpty else { break }
            let p = r(b.count)
            switch r(10) {
            case 0: b[p] ^= 1 << UInt8(r(8))
            case 1: b[p] = 0
            case 2: b[p] = 0xff
            case 3: b[p] = UInt8(r(256))
            case 4: b.removeSubrange(r(b.count)...)
            case 5, 6:
                // A lie in a count, length, type tag, dimension or offset.
                let f = fields.isEmpty ? (offset: p, width: 8) : fields[r(fields.count)]
                var v = interesting[r(interesting.count)]
                if r(3) == 0 { v = UInt64(b.count + r(64) - 32) }
                if r(4) == 0 { v = UInt64(r(16)) }
                put(v, width: f.width, at: f.offset, in: &b)
            case 7: b.insert(contentsOf: (0...r(16)).map { _ in UInt8(r(256)) }, at: p)
            case 8: b.removeSubrange(p..<min(b.count, p + 1 + r(16)))
            default:
                let w = [1, 2, 4, 8][r(4)]
                put(interesting[r(interesting.count)], width: w, at: p, in: &b)
            }
        }
        return b
    }

    /// JSON-aware mutations of a safetensors header: numbers, punctuation and the length prefix.
    static func mutateSafetensors(_ base: [UInt8], rng: inout SplitMix64) -> [UInt8] {
        var b = base
        func r(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }
        let headerEnd = min(b.count, 8 + Int(b[0]) + Int(b[1]) << 8 + Int(b[2]) << 16)
        switch r(6) {
        case 0:
            // Replace one number literal in the header.
            let digits = (8..<headerEnd).filter { (0x30...0x39).contains(b[$0]) && !(0x30...0x39).contains(b[$0 - 1]) }
            if let start = digits.isEmpty ? nil : digits[r(digits.count)] {
                var end = start
                while end < headerEnd, (0x30...0x39).contains(b[end]) { end += 1 }
                let repl = ["-1", "0", "18446744073709551615", "99999999999999999999999", "1e9", "2.5",
                            "4294967296", "9223372036854775807", "3", "\"3\"", "null", "[]"][r(12)]
                b.replaceSubrange(start..<end, with: Array(repl.utf8))
            }
        case 1:
            let p = 8 + r(headerEnd - 8)
            let punctuation = Array("{}[]\",:\\ 0-eu".utf8)
            if p < b.count { b[p] = punctuation[r(punctuation.count)] }
        case 2:
            let v = [0, 1, UInt64(headerEnd - 9), UInt64(headerEnd - 7), UInt64(b.count), UInt64.max, 100_000_001, UInt64(r(4096))][r(8)]
            put(v, width: 8, at: 0, in: &b)
        case 3:
            // Duplicate a chunk of the header inside itself (repeated keys, broken nesting).
            let s = 8 + r(headerEnd - 8), len = 1 + r(40)
            let chunk = Array(b[s..<min(headerEnd, s + len)])
            b.insert(contentsOf: chunk, at: 8 + r(headerEnd - 8))
        default:
            b = mutate(b, fields: [(0, 8)], rng: &rng)
        }
        return b
    }

    // MARK: - Checks

    struct Tally { var parsed = 0, rejected = 0, slowest = 0.0 }

    func save(_ bytes: [UInt8], _ name: String) throws -> String {
        // Unlink and create rather than truncate: ext4 flushes a truncated-and-rewritten file to
        // disk on close, which made each case cost milliseconds of I/O wait.
        let p = dir + "/" + name
        unlink(p)
        let fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TestSupportError.missing("cannot write \(p)") }
        defer { close(fd) }
        let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw TestSupportError.missing("short write to \(p)") }
        return p
    }

    func checkGGUF(_ bytes: [UInt8], _ tally: inout Tally, label: String) throws {
        let path = try save(bytes, "case.gguf")
        let start = Date()
        do {
            let f = try GGUFFile(path: path)
            for t in f.tensors {
                guard t.fileOffset >= f.dataOffset, t.fileOffset + t.byteCount <= f.mapped.count else {
                    let kept = try save(bytes, "failing-\(label).gguf")
                    return XCTFail("\(label): tensor \(t.name) lies outside the file (kept \(kept))")
                }
                if t.byteCount > 0 { _ = f.data(of: t).last }
            }
            for (k, _) in f.metadataPairs {
                _ = try? f.stringArray(k)
                _ = try? f.floatArray(k)
                _ = try? f.intArray(k)
                _ = f.string(k)
            }
            tally.parsed += 1
        } catch {
            XCTAssertFalse("\(error)".isEmpty)
            tally.rejected += 1
        }
        tally.slowest = max(tally.slowest, Date().timeIntervalSince(start))
    }

    func checkSafetensors(_ bytes: [UInt8], _ tally: inout Tally, label: String) throws {
        let path = try save(bytes, "case.safetensors")
        let start = Date()
        do {
            let f = try SafetensorsFile(path: path)
            for t in f.tensors {
                guard t.fileOffset >= f.dataOffset, t.fileOffset + t.byteCount <= f.mapped.count,
                      t.byteCount == t.shape.reduce(1, *) * t.dtype.elementSize else {
                    let kept = try save(bytes, "failing-\(label).safetensors")
                    return XCTFail("\(label): tensor \(t.name) is inconsistent (kept \(kept))")
                }
                if [.f32, .f16, .bf16, .f64].contains(t.dtype) { _ = try f.floats(named: t.name) }
            }
            tally.parsed += 1
        } catch {
            XCTAssertFalse("\(error)".isEmpty)
            tally.rejected += 1
        }
        tally.slowest = max(tally.slowest, Date().timeIntervalSince(start))
    }

    func fuzzGGUF(model: String, seed: UInt64) throws {
        let base = try seedGGUF(model: model)
        let fields = Self.structuralFields(ofValidGGUF: base)
        XCTAssertGreaterThan(fields.count, 50)
        var rng = SplitMix64(seed: seed)
        var tally = Tally()
        try checkGGUF(base, &tally, label: "seed")
        XCTAssertEqual(tally.parsed, 1, "the unmutated seed must parse")
        for i in 0..<Self.iterations {
            try checkGGUF(Self.mutate(base, fields: fields, rng: &rng), &tally, label: "\(model)-\(i)")
        }
        print("fuzz \(model): \(base.count)-byte seed, \(Self.iterations) mutations: \(tally.parsed) parsed, \(tally.rejected) rejected, slowest \(String(format: "%.1f", tally.slowest * 1000)) ms")
        // Both outcomes must occur, or the mutations are not exercising the reader.
        XCTAssertGreaterThan(tally.parsed, Self.iterations / 50)
        XCTAssertGreaterThan(tally.rejected, Self.iterations / 5)
        XCTAssertLessThan(tally.slowest, 1.0, "one file took over a second to parse")
    }

    func testFuzzGGUFSmolLM2() throws { try fuzzGGUF(model: "smollm2-135m-instruct", seed: 1) }
    func testFuzzGGUFGemma3() throws { try fuzzGGUF(model: "gemma-3-270m", seed: 2) }

    func testFuzzSafetensors() throws {
        let base = try seedSafetensors()
        var rng = SplitMix64(seed: 3)
        var tally = Tally()
        try checkSafetensors(base, &tally, label: "seed")
        XCTAssertEqual(tally.parsed, 1, "the unmutated seed must parse")
        for i in 0..<Self.iterations {
            try checkSafetensors(Self.mutateSafetensors(base, rng: &rng), &tally, label: "st-\(i)")
        }
        print("fuzz safetensors: \(base.count)-byte seed, \(Self.iterations) mutations: \(tally.parsed) parsed, \(tally.rejected) rejected, slowest \(String(format: "%.1f", tally.slowest * 1000)) ms")
        XCTAssertGreaterThan(tally.parsed, Self.iterations / 50)
        XCTAssertGreaterThan(tally.rejected, Self.iterations / 5)
        XCTAssertLessThan(tally.slowest, 1.0)
    }

    // MARK: - Hand-written hostile GGUF files

    /// Raw little-endian GGUF bytes, built field by field so each case can lie where it wants.
    struct Raw {
        var b: [UInt8] = []
        mutating func u8(_ v: UInt8) { b.append(v) }
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        mutating func str(_ s: String) { u64(UInt64(s.utf8.count)); b += Array(s.utf8) }
        static func header(version: UInt32 = 3, tensors: UInt64 = 0, kvs: UInt64) -> Raw {
            var r = Raw()
            r.b = Array("GGUF".utf8)
            r.u32(version); r.u64(tensors); r.u64(kvs)
            return r
        }
        /// A tensor info; `dims` in ggml order.
        mutating func tensor(_ name: String, dims: [UInt64], type: UInt32 = 0, offset: UInt64 = 0) {
            str(name); u32(UInt32(dims.count)); for d in dims { u64(d) }; u32(type); u64(offset)
        }
        mutating func pad(to align: Int = 32) { while b.count % align != 0 { b.append(0) } }
    }

    enum Kind { case truncated, corrupt, badMagic, version, tensorType, typeMismatch, cannotOpen }

    func expect(_ raw: Raw, _ kind: Kind, _ phrase: String, path existing: String? = nil, line: UInt = #line) throws {
        let path = try existing ?? save(raw.b, "hostile.gguf")
        XCTAssertThrowsError(try GGUFFile(path: path), line: line) { e in
            let ok: Bool
            switch (kind, e as? ModelFileError) {
            case (.truncated, .truncated?), (.corrupt, .corrupt?), (.badMagic, .badMagic?),
                 (.version, .unsupportedVersion?), (.tensorType, .unsupportedTensorType?),
                 (.typeMismatch, .typeMismatch?), (.cannotOpen, .cannotOpen?): ok = true
            default: ok = false
            }
            XCTAssertTrue(ok, "expected \(kind), got \(e)", line: line)
            XCTAssertTrue("\(e)".contains(phrase), "message '\(e)' should mention '\(phrase)'", line: line)
        }
    }

    func kv(_ key: String, type: UInt32, _ body: (inout Raw) -> Void, tensors: UInt64 = 0) -> Raw {
        var r = Raw.header(tensors: tensors, kvs: 1)
        r.str(key); r.u32(type); body(&r)
        return r
    }

    func testHostileGGUFFiles() throws {
        try expect(Raw(), .truncated, "empty")
        try expect(Raw(b: Array("GGU".utf8)), .truncated, "magic")
        try expect(Raw(b: Array("GGML0000000000000000000000000".utf8)), .badMagic, "GGML")
        try expect(Raw.header(version: 1, kvs: 0), .version, "version 1")
        try expect(Raw.header(version: 4, kvs: 0), .version, "version 4")
        try expect(Raw.header(kvs: UInt64.max), .corrupt, "metadata count")
        try expect(Raw.header(tensors: 1 << 62, kvs: 0), .corrupt, "tensor count")
        // Huge string lengths, in a key and in a value.
        var r = Raw.header(kvs: 1); r.u64(UInt64.max); r.b += Array("key".utf8) + [UInt8](repeating: 0, count: 16)
        try expect(r, .truncated, "string of 18446744073709551615 bytes")
        try expect(kv("k", type: 8) { $0.u64(1 << 40); $0.str("x") }, .truncated, "string of 1099511627776 bytes")
        // Huge array counts for every element size, including strings and nested arrays.
        for et: UInt32 in [0, 2, 4, 6, 7, 8, 9, 10, 12] {
            try expect(kv("a", type: 9) { $0.u32(et); $0.u64(UInt64.max / 2); $0.u64(0) }, .truncated, "cannot fit")
        }
        // Nested arrays: 8 levels parse, 9 are refused, a 100 000-deep chain does not overflow the stack.
        func nested(_ depth: Int) -> Raw {
            kv("n", type: 9) { r in
                for _ in 0..<(depth - 1) { r.u32(9); r.u64(1) }
                r.u32(0); r.u64(1); r.u8(7)
            }
        }
        XCTAssertNoThrow(try GGUFFile(path: try save(nested(8).b, "ok.gguf")))
        try expect(nested(9), .corrupt, "nests arrays deeper than 8")
        try expect(nested(100_000), .corrupt, "nests arrays deeper than 8")
        try expect(kv("b", type: 7) { $0.u8(2) }, .corrupt, "bool has value 2")
        try expect(kv("b", type: 9) { $0.u32(7); $0.u64(2); $0.u8(1); $0.u8(0xff) }, .corrupt, "bool has value 255")
        try expect(kv("u", type: 13) { $0.u64(0) }, .corrupt, "unknown value type 13")
        try expect(kv("u", type: UInt32.max) { $0.u64(0) }, .corrupt, "unknown value type 4294967295")
        try expect(kv("u", type: 9) { $0.u32(99); $0.u64(1); $0.u64(0) }, .corrupt, "unknown element type 99")
        var dup = Raw.header(kvs: 2)
        dup.str("k"); dup.u32(0); dup.u8(1)
        dup.str("k"); dup.u32(0); dup.u8(2)
        try expect(dup, .corrupt, "'k' appears twice")
        // Alignment that is not a power-of-two u32.
        try expect(kv("general.alignment", type: 10) { $0.u64(32) }, .typeMismatch, "general.alignment")
        for a: UInt32 in [0, 3, 48, 1 << 30] {
            try expect(kv("general.alignment", type: 4) { $0.u32(a) }, .corrupt, "general.alignment \(a)")
        }

        func withTensors(_ infos: (inout Raw) -> Void, count: UInt64 = 1, data: Int = 64) -> Raw {
            var r = Raw.header(tensors: count, kvs: 0)
            infos(&r)
            r.pad()
            r.b += [UInt8](repeating: 0, count: data)
            return r
        }
        XCTAssertNoThrow(try GGUFFile(path: try save(withTensors { $0.tensor("t", dims: [16]) }.b, "ok.gguf")))
        try expect(withTensors { $0.tensor("t", dims: [16], offset: 64) }, .truncated, "runs past the end")
        try expect(withTensors { $0.tensor("t", dims: [16], offset: UInt64.max - 31) }, .truncated, "runs past the end")
        try expect(withTensors { $0.tensor("t", dims: [17]) }, .truncated, "runs past the end")
        try expect(withTensors { $0.tensor("t", dims: [4], offset: 8) }, .corrupt, "offset 8 is not aligned to 32")
        let maxDim = UInt64(Int32.max)
        try expect(withTensors { $0.tensor("t", dims: [maxDim, maxDim, maxDim, maxDim]) }, .corrupt, "element count overflows")
        try expect(withTensors { $0.tensor("t", dims: [1 << 20, 1 << 20, 1 << 20]) }, .corrupt, "element count overflows")
        try expect(withTensors { $0.tensor("t", dims: [0]) }, .corrupt, "dimension 0 is 0")
        try expect(withTensors { $0.tensor("t", dims: [UInt64.max]) }, .corrupt, "dimension 0 is 18446744073709551615")
        try expect(withTensors { $0.tensor("t", dims: []) }, .corrupt, "0 dimensions")
        try expect(withTensors { $0.tensor("t", dims: [1, 1, 1, 1, 1]) }, .corrupt, "5 dimensions")
        try expect(withTensors { $0.str("t"); $0.u32(UInt32.max) }, .corrupt, "4294967295 dimensions")
        try expect(withTensors { $0.tensor("t", dims: [32], type: 4) }, .tensorType, "type 4")
        try expect(withTensors { $0.tensor("t", dims: [32], type: 1000) }, .tensorType, "type 1000")
        try expect(withTensors { $0.tensor("t", dims: [33], type: 8) }, .corrupt, "not a whole number of Q8_0 blocks")
        try expect(withTensors({ $0.tensor("t", dims: [1]); $0.tensor("t", dims: [1], offset: 32) }, count: 2), .corrupt, "'t' appears twice")
        // Tensor infos promise data but the file ends at the infos.
        var noData = Raw.header(tensors: 1, kvs: 0)
        noData.tensor("t", dims: [1])
        try expect(noData, .truncated, "beyond the end")
        // Truncation inside each part of a valid file: every prefix is an error, never a crash.
        let valid = withTensors { $0.tensor("t", dims: [16]) }
        for n in 1..<(valid.b.count - 64 + 4 * 16) {
            XCTAssertThrowsError(try GGUFFile(path: try save(Array(valid.b.prefix(n)), "prefix.gguf")), "prefix \(n)")
        }
    }

    /// A 4 GB sparse file whose array claims 4 billion bools: the count fits in the file, so the
    /// reader must not reserve 4 billion values up front (32 GB, more than the machine has) before
    /// the first bad element stops it.
    func testHugeArrayCountInHugeSparseFile() throws {
        var r = kv("a", type: 9) { $0.u32(7); $0.u64(4_000_000_000); $0.u8(2) }
        r.b += [0]
        let path = try save(r.b, "sparse.gguf")
        XCTAssertEqual(truncate(path, 4_100_000_000), 0)
        defer { unlink(path) }
        try expect(r, .corrupt, "bool has value 2", path: path)
    }

    func testNonRegularFilesAreRefused() throws {
        try expect(Raw(), .truncated, "empty")
        XCTAssertThrowsError(try GGUFFile(path: dir)) { e in XCTAssertTrue("\(e)".contains("not a regular file"), "\(e)") }
        XCTAssertThrowsError(try SafetensorsFile(path: dir)) { e in XCTAssertTrue("\(e)".contains("not a regular file"), "\(e)") }
    }
}
