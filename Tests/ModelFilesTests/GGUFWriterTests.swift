import Foundation
import XCTest
import ModelFiles
import TestSupport

/// A fresh directory under the system temp dir, removed by the caller.
func makeTempDirectory(_ label: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("steward-\(label)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

func fileBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

func fileMode(_ path: String) throws -> Int {
    let attrs = try FileManager.default.attributesOfItem(atPath: path)
    return (attrs[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

final class GGUFWriterTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try makeTempDirectory("gguf-writer") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Re-writes every metadata pair and tensor of `source` with GGUFWriter.
    func rewrite(_ source: GGUFFile, to path: String) throws {
        var w = GGUFWriter(metadata: source.metadataPairs)
        for t in source.tensors {
            w.addTensor(name: t.name, type: t.type, dims: t.dims,
                        bytes: TensorBytes(borrowing: source.data(of: t), keepingAlive: source))
        }
        try w.write(to: path)
    }

    func assertSameContent(_ a: GGUFFile, _ b: GGUFFile, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.metadataPairs.map(\.key), b.metadataPairs.map(\.key), file: file, line: line)
        for (x, y) in zip(a.metadataPairs, b.metadataPairs) {
            XCTAssertEqual(x.value, y.value, "metadata '\(x.key)'", file: file, line: line)
        }
        XCTAssertEqual(a.alignment, b.alignment, file: file, line: line)
        XCTAssertEqual(a.tensors.count, b.tensors.count, file: file, line: line)
        for (x, y) in zip(a.tensors, b.tensors) {
            XCTAssertEqual(x.name, y.name, file: file, line: line)
            XCTAssertEqual(x.type, y.type, x.name, file: file, line: line)
            XCTAssertEqual(x.dims, y.dims, x.name, file: file, line: line)
            XCTAssertEqual(x.byteCount, y.byteCount, x.name, file: file, line: line)
            XCTAssertEqual(x.fileOffset - a.dataOffset, y.fileOffset - b.dataOffset, "data offset of \(x.name)", file: file, line: line)
            let (dx, dy) = (a.data(of: x), b.data(of: y))
            XCTAssertTrue(dx.count == dy.count && memcmp(dx.baseAddress!, dy.baseAddress!, dx.count) == 0,
                          "bytes of \(x.name) differ", file: file, line: line)
        }
    }

    func testRoundTripsSmolLM2ByteForByte() throws {
        let srcPath = try TestPaths.model("smollm2-135m-instruct")
        let src = try GGUFFile(path: srcPath)
        let out = dir + "/smollm2-copy.gguf"
        try rewrite(src, to: out)
        let copy = try GGUFFile(path: out)
        assertSameContent(src, copy)
        XCTAssertEqual(try fileMode(out), 0o644)
        // The source was written by llama.cpp's tools, whose layout we follow, so the copy should be
        // the same file, not just the same content.
        XCTAssertEqual(src.mapped.count, copy.mapped.count)
        XCTAssertEqual(FileDigest.sha256(src.mapped.bytes), FileDigest.sha256(copy.mapped.bytes),
                       "re-written SmolLM2 is not byte-identical to the original")
        // Only the finished file is left: the temporary file was renamed, not copied.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["smollm2-copy.gguf"])
        // Dev hook: keep the copy for scripts/check-gguf-with-reference compare.
        if let keep = ProcessInfo.processInfo.environment["STEWARD_KEEP_GGUF_ROUNDTRIP"], !keep.isEmpty {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(atPath: out, toPath: keep)
        }
    }

    /// Gemma 3 is 250 MB, so instead of writing a copy we check that our header is the original's
    /// first `dataOffset` bytes and that the original's layout (tensor offsets, zero padding, file
    /// length) is exactly the one our writer produces; together that means a copy is identical.
    func testGemma3HeaderAndLayoutMatchOriginal() throws {
        let src = try GGUFFile(path: try TestPaths.model("gemma-3-270m"))
        var w = GGUFWriter(metadata: src.metadataPairs)
        for t in src.tensors {
            w.addTensor(name: t.name, type: t.type, dims: t.dims, bytes: TensorBytes(borrowing: src.data(of: t), keepingAlive: src))
        }
        let header = try w.headerBytes()
        XCTAssertEqual(header.count, src.dataOffset)
        XCTAssertTrue(header.withUnsafeBytes { memcmp($0.baseAddress!, src.mapped.base, header.count) == 0 }, "header bytes differ")
        var offset = src.dataOffset
        let raw = src.mapped.bytes
        for t in src.tensors {
            XCTAssertEqual(t.fileOffset, offset, t.name)
            let end = t.fileOffset + t.byteCount
            offset = (end + src.alignment - 1) / src.alignment * src.alignment
            XCTAssertTrue(raw[end..<offset].allSatisfy { $0 == 0 }, "padding after \(t.name)")
        }
        XCTAssertEqual(offset, src.mapped.count)
    }

    /// gguf-py's own GGUFWriter made this file (scripts/check-gguf-with-reference make-fixture) with
    /// every value type, alignment 64 and tensors that need padding; we must produce the same bytes.
    func testMatchesReferenceWriterByteForByte() throws {
        let refPath = TestPaths.fixture("files/gguf-py-written.gguf")
        let ref = try GGUFFile(path: refPath)
        XCTAssertEqual(ref.alignment, 64)
        XCTAssertEqual(ref.metadata["test.nested"], .array(.array, [.array(.int32, [.int32(1), .int32(2)]), .array(.int32, [.int32(3)])]))
        XCTAssertEqual(ref.string("test.string"), "héllo, 世界 \"quoted\"\n")
        XCTAssertEqual(ref.metadata["test.u64"], .uint64(18_000_000_000_000_000_000))
        let out = dir + "/copy.gguf"
        try rewrite(ref, to: out)
        XCTAssertEqual(try fileBytes(out), try fileBytes(refPath))
    }

    /// A file exercising what the writer can express, checked two ways: its bytes must not drift
    /// from the committed fixture, and gguf-py's GGUFReader (its view is committed as JSON by
    /// scripts/check-gguf-with-reference describe) must see what our reader sees.
    func makeSampleWriter() -> GGUFWriter {
        var w = GGUFWriter()
        w.addMetadata("general.architecture", .string("llama"))
        w.addMetadata("general.name", .string("Steward writer sample ✓"))
        w.addMetadata("sample.u8", .uint8(255))
        w.addMetadata("sample.i8", .int8(-128))
        w.addMetadata("sample.u16", .uint16(65535))
        w.addMetadata("sample.i16", .int16(-32768))
        w.addMetadata("sample.u32", .uint32(UInt32.max))
        w.addMetadata("sample.i32", .int32(Int32.min))
        w.addMetadata("sample.u64", .uint64(UInt64.max))
        w.addMetadata("sample.i64", .int64(Int64.min))
        w.addMetadata("sample.f32", .float32(-Float.infinity))
        w.addMetadata("sample.f32_tiny", .float32(Float.leastNonzeroMagnitude))
        w.addMetadata("sample.f64", .float64(-0.0))
        w.addMetadata("sample.true", .bool(true))
        w.addMetadata("sample.string", .string("line1\nline2\t\"q\" \\ 🦙"))
        w.addMetadata("sample.empty_array", .array(.uint32, []))
        w.addMetadata("sample.tokens", .array(.string, ["<s>", "</s>", "Ġthe", ""].map(GGUFValue.string)))
        w.addMetadata("sample.scores", .array(.float32, [0, -1.5, 1e-30].map(GGUFValue.float32)))
        w.addMetadata("sample.bools", .array(.bool, [.bool(false), .bool(true)]))
        w.addMetadata("sample.u64s", .array(.uint64, [.uint64(0), .uint64(1 << 63)]))
        w.addMetadata("sample.nested", .array(.array, [.array(.uint8, [.uint8(1), .uint8(2)]), .array(.uint8, [])]))
        var rng = SplitMix64(seed: 42)
        func bytes(_ n: Int) -> TensorBytes { TensorBytes((0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }) }
        w.addTensor(name: "a.f32", type: .f32, dims: [3], bytes: TensorBytes(elements: [Float(1), -2, 0.5]))
        w.addTensor(name: "b.f16", type: .f16, dims: [5, 3], bytes: bytes(30))
        w.addTensor(name: "c.bf16", type: .bf16, dims: [7], bytes: bytes(14))
        w.addTensor(name: "d.q4_0", type: .q4_0, dims: [64, 2], bytes: bytes(4 * 18))
        w.addTensor(name: "e.q4_1", type: .q4_1, dims: [32], bytes: bytes(20))
        w.addTensor(name: "f.q8_0", type: .q8_0, dims: [32, 3], bytes: bytes(3 * 34))
        w.addTensor(name: "g.q4_K", type: .q4_K, dims: [256], bytes: bytes(144))
        w.addTensor(name: "h.q6_K", type: .q6_K, dims: [256, 1, 2], bytes: bytes(2 * 210))
        w.addTensor(name: "i.i8", type: .i8, dims: [1, 2, 3, 4], bytes: bytes(24))
        return w
    }

    func testSampleFileMatchesReferenceReader() throws {
        let fixture = TestPaths.fixture("files/steward-written.gguf")
        let out = dir + "/sample.gguf"
        try makeSampleWriter().write(to: out)
        if ProcessInfo.processInfo.environment["STEWARD_UPDATE_FIXTURES"] == "1" {
            try? FileManager.default.removeItem(atPath: fixture)
            try FileManager.default.copyItem(atPath: out, toPath: fixture)
        }
        XCTAssertEqual(try fileBytes(out), try fileBytes(fixture), "writer output drifted from the committed fixture")

        let f = try GGUFFile(path: out)
        let ref = try XCTUnwrap(TestPaths.loadJSON(TestPaths.fixture("files/steward-written.reference.json")) as? [String: Any])
        XCTAssertEqual(ref["alignment"] as? Int, f.alignment)
        XCTAssertEqual(ref["file_size"] as? Int, f.mapped.count)
        let kv = try XCTUnwrap(ref["kv"] as? [[String: Any]])
        XCTAssertEqual(kv.map { $0["key"] as? String }, f.metadataPairs.map(\.key))
        for (entry, pair) in zip(kv, f.metadataPairs) {
            let types = try XCTUnwrap(entry["types"] as? [String])
            let values = try XCTUnwrap(entry["values"] as? [Any])
            XCTAssertEqual(types, referenceTypeNames(pair.value), pair.key)
            let leaves = flatten(pair.value)
            XCTAssertEqual(values.count, leaves.count, pair.key)
            for (rv, leaf) in zip(values, leaves) {
                XCTAssertTrue(matches(reference: rv, leaf), "\(pair.key): gguf-py read \(rv), we read \(leaf)")
            }
        }
        let tensors = try XCTUnwrap(ref["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors.count, f.tensors.count)
        for (rt, t) in zip(tensors, f.tensors) {
            XCTAssertEqual(rt["name"] as? String, t.name)
            XCTAssertEqual(rt["type"] as? String, t.type.name)
            XCTAssertEqual(rt["dims"] as? [Int], t.dims, t.name)
            XCTAssertEqual(rt["data_offset"] as? Int, t.fileOffset, t.name)
            XCTAssertEqual(rt["n_bytes"] as? Int, t.byteCount, t.name)
            XCTAssertEqual(rt["sha256"] as? String, FileDigest.sha256(f.data(of: t)), t.name)
        }
    }

    func referenceTypeNames(_ v: GGUFValue) -> [String] {
        let names: [GGUFValueType: String] = [
            .uint8: "UINT8", .int8: "INT8", .uint16: "UINT16", .int16: "INT16", .uint32: "UINT32",
            .int32: "INT32", .float32: "FLOAT32", .bool: "BOOL", .string: "STRING", .array: "ARRAY",
            .uint64: "UINT64", .int64: "INT64", .float64: "FLOAT64",
        ]
        // gguf-py lists the outer type, then the types along the first element (none for an
        // empty array).
        var out = [names[v.type]!]
        var cur = v
        while case let .array(t, a) = cur, let first = a.first {
            out.append(names[t]!)
            cur = first
        }
        return out
    }

    func flatten(_ v: GGUFValue) -> [GGUFValue] {
        if case let .array(_, a) = v { return a.flatMap(flatten) }
        return [v]
    }

    func matches(reference: Any, _ v: GGUFValue) -> Bool {
        switch v {
        case let .string(s): return reference as? String == s
        case let .bool(b): return reference as? Bool == b
        case let .float32(x):
            guard let s = reference as? String, let d = Double(s) else { return false }
            return d.bitPattern == Double(x).bitPattern
        case let .float64(x):
            guard let s = reference as? String, let d = Double(s) else { return false }
            return d.bitPattern == x.bitPattern
        case let .uint64(x): return reference as? String == String(x)
        case let .int64(x): return reference as? String == String(x)
        default:
            guard let s = reference as? String, let i = v.intValue else { return false }
            return s == String(i)
        }
    }

    func testHonoursCustomAlignmentAndZeroesPadding() throws {
        var w = GGUFWriter(metadata: [("general.alignment", .uint32(128))])
        w.addTensor(name: "x", type: .f32, dims: [3], bytes: TensorBytes(elements: [Float](repeating: 1, count: 3)))
        w.addTensor(name: "y", type: .i8, dims: [5], bytes: TensorBytes([UInt8](repeating: 0xAB, count: 5)))
        w.addTensor(name: "z", type: .f16, dims: [1], bytes: TensorBytes([0xFF, 0xFF]))
        let out = dir + "/aligned.gguf"
        try w.write(to: out)
        let f = try GGUFFile(path: out)
        XCTAssertEqual(f.alignment, 128)
        XCTAssertEqual(f.dataOffset % 128, 0)
        XCTAssertEqual(f.tensors.map { $0.fileOffset - f.dataOffset }, [0, 128, 256])
        // Every byte that is not header or tensor data is zero padding.
        let raw = try fileBytes(out)
        XCTAssertEqual(raw.count, f.dataOffset + 3 * 128)
        var covered = [Bool](repeating: false, count: raw.count)
        for t in f.tensors { for i in t.fileOffset..<(t.fileOffset + t.byteCount) { covered[i] = true } }
        let headerEnd = try w.headerBytes().count
        XCTAssertEqual(headerEnd, f.dataOffset)
        for i in headerEnd..<raw.count where !covered[i] { XCTAssertEqual(raw[i], 0, "padding byte \(i)") }
        XCTAssertEqual(Array(raw[f.tensors[1].fileOffset..<(f.tensors[1].fileOffset + 5)]), [UInt8](repeating: 0xAB, count: 5))
    }

    func testDefaultAlignmentIs32AndEmptyFileReadsBack() throws {
        let out = dir + "/empty.gguf"
        try GGUFWriter(metadata: [("general.architecture", .string("none"))]).write(to: out)
        let f = try GGUFFile(path: out)
        XCTAssertEqual(f.alignment, 32)
        XCTAssertEqual(f.tensors.count, 0)
        XCTAssertEqual(f.string("general.architecture"), "none")
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.mapped.count % 32, 0)
    }

    func testReplacesExistingFileAtomicallyWithMode0644() throws {
        let out = dir + "/model.gguf"
        try Data("old contents".utf8).write(to: URL(fileURLWithPath: out))
        chmod(out, 0o600)
        let old = umask(0o077)
        defer { umask(old) }
        try GGUFWriter(metadata: [("k", .uint8(1))]).write(to: out)
        XCTAssertEqual(try GGUFFile(path: out).int("k"), 1)
        XCTAssertEqual(try fileMode(out), 0o644)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["model.gguf"])
    }

    func testWriteIntoMissingDirectoryIsClearError() {
        let out = dir + "/no/such/dir/model.gguf"
        XCTAssertThrowsError(try GGUFWriter().write(to: out)) { e in
            guard case ModelFileError.writeFailed = e else { return XCTFail("expected writeFailed, got \(e)") }
            XCTAssertTrue("\(e)".contains("/no/such/dir"), "\(e)")
        }
    }

    func expectInvalid(_ w: GGUFWriter, mentioning phrase: String, file: StaticString = #filePath, line: UInt = #line) {
        let out = dir + "/invalid.gguf"
        XCTAssertThrowsError(try w.write(to: out), file: file, line: line) { e in
            guard case ModelFileError.invalidArgument = e else { return XCTFail("expected invalidArgument, got \(e)", file: file, line: line) }
            XCTAssertTrue("\(e)".contains(phrase), "message '\(e)' should mention '\(phrase)'", file: file, line: line)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), file: file, line: line)
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: dir))?.count, 0, "no temporary file left", file: file, line: line)
    }

    func testRejectsInvalidInput() {
        func t(_ name: String = "t", _ type: GGMLType = .f32, dims: [Int], _ n: Int) -> GGUFWriter.Tensor {
            .init(name: name, type: type, dims: dims, bytes: TensorBytes([UInt8](repeating: 0, count: n)))
        }
        expectInvalid(GGUFWriter(tensors: [t(dims: [4], 15)]), mentioning: "needs 16 bytes but was given 15")
        expectInvalid(GGUFWriter(tensors: [t(dims: [2, 2], 17)]), mentioning: "needs 16 bytes")
        expectInvalid(GGUFWriter(tensors: [t(dims: [1], 4), t(dims: [1], 4)]), mentioning: "'t' is given twice")
        expectInvalid(GGUFWriter(tensors: [t(dims: [], 4)]), mentioning: "0 dimensions")
        expectInvalid(GGUFWriter(tensors: [t(dims: [1, 1, 1, 1, 1], 4)]), mentioning: "5 dimensions")
        expectInvalid(GGUFWriter(tensors: [t(dims: [0], 0)]), mentioning: "dimension 0 is 0")
        expectInvalid(GGUFWriter(tensors: [t(dims: [-1], 0)]), mentioning: "dimension 0 is -1")
        expectInvalid(GGUFWriter(tensors: [t(dims: [1 << 31], 0)]), mentioning: "dimension 0 is 2147483648")
        expectInvalid(GGUFWriter(tensors: [t(dims: [1 << 30, 1 << 30], 0)]), mentioning: "too many elements")
        expectInvalid(GGUFWriter(tensors: [t("q", .q8_0, dims: [33], 34)]), mentioning: "not a whole number of Q8_0 blocks")
        expectInvalid(GGUFWriter(tensors: [t("", .f32, dims: [1], 4)]), mentioning: "empty")
        expectInvalid(GGUFWriter(tensors: [t(String(repeating: "n", count: 64), .f32, dims: [1], 4)]), mentioning: "at most 63")
        expectInvalid(GGUFWriter(metadata: [("a", .uint8(1)), ("a", .uint8(2))]), mentioning: "'a' is given twice")
        expectInvalid(GGUFWriter(metadata: [("", .uint8(1))]), mentioning: "key is empty")
        expectInvalid(GGUFWriter(metadata: [("general.alignment", .uint64(32))]), mentioning: "must be a u32")
        expectInvalid(GGUFWriter(metadata: [("general.alignment", .uint32(48))]), mentioning: "power of two")
        expectInvalid(GGUFWriter(metadata: [("general.alignment", .uint32(0))]), mentioning: "power of two")
        expectInvalid(GGUFWriter(metadata: [("arr", .array(.uint32, [.uint32(1), .int32(2)]))]), mentioning: "element 1 is i32")
        var deep = GGUFValue.array(.uint8, [])
        for _ in 0..<9 { deep = .array(.array, [deep]) }
        expectInvalid(GGUFWriter(metadata: [("deep", deep)]), mentioning: "nests arrays deeper")
    }

    func testDeepestAllowedNestingRoundTrips() throws {
        var deep = GGUFValue.array(.int16, [.int16(-7)])
        for _ in 0..<7 { deep = .array(.array, [deep]) }  // 8 levels, the reader's limit
        let out = dir + "/nested.gguf"
        try GGUFWriter(metadata: [("deep", deep)]).write(to: out)
        XCTAssertEqual(try GGUFFile(path: out).metadata["deep"], deep)
    }
}

