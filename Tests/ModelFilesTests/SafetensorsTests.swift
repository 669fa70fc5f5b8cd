import Foundation
import XCTest
import ModelFiles
import TestSupport

final class SafetensorsTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try makeTempDirectory("safetensors") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func miniLMPath() throws -> String { try TestPaths.model("all-minilm-l6-v2") + "/model.safetensors" }

    func testReadsMiniLM() throws {
        let f = try SafetensorsFile(path: try miniLMPath())
        XCTAssertEqual(f.metadata, ["format": "pt"])
        // BERT layout with 6 layers (config.json: num_hidden_layers 6, hidden_size 384,
        // intermediate_size 1536): 5 embedding weights + the position_ids buffer, 16 per layer
        // (q/k/v, attention output + LayerNorm, intermediate, output + LayerNorm; weight and bias
        // each), 2 pooler.
        XCTAssertEqual(f.tensors.count, 6 + 6 * 16 + 2)
        let config = try XCTUnwrap(TestPaths.loadJSON(try TestPaths.model("all-minilm-l6-v2") + "/config.json") as? [String: Any])
        let hidden = try XCTUnwrap(config["hidden_size"] as? Int)
        let vocab = try XCTUnwrap(config["vocab_size"] as? Int)
        let ffn = try XCTUnwrap(config["intermediate_size"] as? Int)
        let embd = try XCTUnwrap(f.tensor(named: "embeddings.word_embeddings.weight"))
        XCTAssertEqual(embd.dtype, .f32)
        XCTAssertEqual(embd.shape, [vocab, hidden])
        XCTAssertEqual(embd.shape, [30522, 384])
        XCTAssertEqual(embd.byteCount, 30522 * 384 * 4)
        XCTAssertEqual(f.tensor(named: "encoder.layer.5.intermediate.dense.weight")?.shape, [ffn, hidden])
        XCTAssertEqual(f.tensor(named: "encoder.layer.0.attention.self.query.bias")?.shape, [hidden])
        // position_ids is the I64 buffer arange(512).
        let pos = try XCTUnwrap(f.tensor(named: "embeddings.position_ids"))
        XCTAssertEqual(pos.dtype, .i64)
        XCTAssertEqual(pos.shape, [1, 512])
        let pb = f.data(of: pos)
        XCTAssertEqual((0..<512).map { Int64(littleEndian: pb.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }, (0..<512).map(Int64.init))
        // LayerNorm weights are trained values near 1, and all finite.
        let gamma = try f.floats(named: "embeddings.LayerNorm.weight")
        XCTAssertEqual(gamma.count, hidden)
        XCTAssertTrue(gamma.allSatisfy { $0.isFinite && $0 > 0 && $0 < 3 })
        // The reference writer packs tensors back to back from offset 0 to the end of the file.
        var next = f.dataOffset
        for t in f.tensors {
            XCTAssertEqual(t.fileOffset, next, t.name)
            XCTAssertEqual(t.fileOffset % t.dtype.elementSize, 0, "\(t.name) is aligned to its element size")
            next += t.byteCount
        }
        XCTAssertEqual(next, f.mapped.count)
        XCTAssertThrowsError(try f.data(named: "no.such.tensor")) { e in
            guard case ModelFileError.tensorNotFound = e else { return XCTFail("\(e)") }
        }
    }

    /// The MiniLM file was written by the reference `safetensors` library; re-writing its tensors
    /// and metadata must give the same bytes (same order, same JSON, same padding).
    func testRewritesMiniLMByteForByte() throws {
        let srcPath = try miniLMPath()
        let src = try SafetensorsFile(path: srcPath)
        var w = SafetensorsWriter(metadata: src.metadata)
        // Add in a scrambled order: the writer must impose its own deterministic order.
        for t in src.tensors.reversed() {
            w.addTensor(name: t.name, dtype: t.dtype, shape: t.shape, bytes: TensorBytes(borrowing: src.data(of: t), keepingAlive: src))
        }
        let out = dir + "/model.safetensors"
        try w.write(to: out)
        XCTAssertEqual(try fileMode(out), 0o644)
        let copy = try SafetensorsFile(path: out)
        XCTAssertEqual(copy.tensors, src.tensors)
        XCTAssertEqual(copy.metadata, src.metadata)
        XCTAssertEqual(FileDigest.sha256(copy.mapped.bytes), FileDigest.sha256(src.mapped.bytes))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["model.safetensors"])
    }

    /// The byte layout the safetensors format README and reference tests describe.
    func testHeaderLayoutMatchesFormat() throws {
        var w = SafetensorsWriter()
        w.addTensor(name: "attn.0", dtype: .f32, shape: [1, 2, 3], bytes: TensorBytes(elements: [Float(0), 1, 2, 3, 4, 5]))
        let json = #"{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}"#
        XCTAssertEqual(json.utf8.count, 64)
        XCTAssertEqual(try w.headerBytes(), [64, 0, 0, 0, 0, 0, 0, 0] + Array(json.utf8))

        var short = SafetensorsWriter()
        short.addTensor(name: "attn0", dtype: .f32, shape: [1, 1, 2, 3], bytes: TensorBytes(elements: [Float](repeating: 0, count: 6)))
        let json2 = #"{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}"#  // 65 bytes
        XCTAssertEqual(try short.headerBytes(), [72, 0, 0, 0, 0, 0, 0, 0] + Array(json2.utf8) + Array(repeating: 0x20, count: 7))

        XCTAssertEqual(try SafetensorsWriter().headerBytes(), [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
        let meta = #"{"__metadata__":{"framework":"pt"}}"#
        XCTAssertEqual(try SafetensorsWriter(metadata: ["framework": "pt"]).headerBytes(),
                       [40, 0, 0, 0, 0, 0, 0, 0] + Array(meta.utf8) + Array(repeating: 0x20, count: 5))
    }

    func testEveryDTypeRoundTrips() throws {
        var rng = SplitMix64(seed: 7)
        var w = SafetensorsWriter(metadata: ["format": "pt", "note": "every dtype"])
        var expected: [String: (SafetensorsDType, [Int], [UInt8])] = [:]
        let shapes: [[Int]] = [[3], [2, 3], [], [1, 5, 1], [0, 4], [7]]
        for (i, dtype) in SafetensorsDType.allCases.enumerated() {
            let shape = shapes[i % shapes.count]
            let n = shape.reduce(1, *) * dtype.elementSize
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let name = "t\(i).\(dtype.rawValue.lowercased())"
            expected[name] = (dtype, shape, bytes)
            w.addTensor(name: name, dtype: dtype, shape: shape, bytes: TensorBytes(bytes))
        }
        let out = dir + "/all.safetensors"
        try w.write(to: out)
        let f = try SafetensorsFile(path: out)
        XCTAssertEqual(f.metadata, ["format": "pt", "note": "every dtype"])
        XCTAssertEqual(f.tensors.count, expected.count)
        for t in f.tensors {
            let (dtype, shape, bytes) = try XCTUnwrap(expected[t.name])
            XCTAssertEqual(t.dtype, dtype, t.name)
            XCTAssertEqual(t.shape, shape, t.name)
            XCTAssertEqual(Array(f.data(of: t)), bytes, t.name)
            XCTAssertEqual(t.fileOffset % dtype.elementSize, 0, "\(t.name) aligned")
        }
        // Writing the same tensors again, in any order, gives the same file.
        var again = SafetensorsWriter(metadata: ["note": "every dtype", "format": "pt"])
        for name in expected.keys.sorted().reversed() {
            let (dtype, shape, bytes) = expected[name]!
            again.addTensor(name: name, dtype: dtype, shape: shape, bytes: TensorBytes(bytes))
        }
        let out2 = dir + "/again.safetensors"
        try again.write(to: out2)
        XCTAssertEqual(try fileBytes(out), try fileBytes(out2))
    }

    func testFloatConversions() throws {
        var w = SafetensorsWriter()
        w.addTensor(name: "h", dtype: .f16, shape: [6], bytes: TensorBytes(elements: [UInt16(0x3C00), 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00]))
        w.addTensor(name: "b", dtype: .bf16, shape: [2], bytes: TensorBytes(elements: [UInt16(0x3F80), 0xC040]))
        w.addTensor(name: "d", dtype: .f64, shape: [2], bytes: TensorBytes(elements: [0.25, -1e300]))
        w.addTensor(name: "f", dtype: .f32, shape: [2], bytes: TensorBytes(elements: [Float(1.5), -0]))
        w.addTensor(name: "i", dtype: .i32, shape: [1], bytes: TensorBytes(elements: [Int32(3)]))
        let out = dir + "/floats.safetensors"
        try w.write(to: out)
        let f = try SafetensorsFile(path: out)
        XCTAssertEqual(try f.floats(named: "h"), [1, -2, 65504, 0x1p-24, -0.0, .infinity])
        XCTAssertEqual(try f.floats(named: "b"), [1, -3])
        XCTAssertEqual(try f.floats(named: "d"), [0.25, -.infinity])
        XCTAssertEqual(try f.floats(named: "f"), [1.5, 0])
        XCTAssertThrowsError(try f.floats(named: "i"))
    }

    func testNamesAndMetadataWithEscapesRoundTrip() throws {
        let odd = "we\"ird\\name\n\u{1}/é🦙"
        var w = SafetensorsWriter(metadata: [odd: "tab\there", "empty": ""])
        w.addTensor(name: odd, dtype: .u8, shape: [2], bytes: TensorBytes([1, 2]))
        let out = dir + "/odd.safetensors"
        try w.write(to: out)
        let f = try SafetensorsFile(path: out)
        XCTAssertEqual(f.metadata, [odd: "tab\there", "empty": ""])
        XCTAssertEqual(f.tensors.map(\.name), [odd])
        XCTAssertEqual(Array(try f.data(named: odd)), [1, 2])
        // Control characters are escaped as serde_json does.
        let header = String(decoding: try fileBytes(out).dropFirst(8), as: UTF8.self)
        XCTAssertTrue(header.contains(#""we\"ird\\name\n\u0001/é🦙""#), header)
    }

    func testWriterRejectsInvalidInput() {
        func expectInvalid(_ w: SafetensorsWriter, _ phrase: String, line: UInt = #line) {
            XCTAssertThrowsError(try w.write(to: dir + "/bad.safetensors"), line: line) { e in
                guard case ModelFileError.invalidArgument = e else { return XCTFail("\(e)", line: line) }
                XCTAssertTrue("\(e)".contains(phrase), "\(e)", line: line)
            }
            XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: dir))?.count, 0, line: line)
        }
        var w = SafetensorsWriter()
        w.addTensor(name: "a", dtype: .f32, shape: [2], bytes: TensorBytes([0, 0, 0, 0]))
        expectInvalid(w, "needs 8 bytes but was given 4")
        w = SafetensorsWriter()
        w.addTensor(name: "a", dtype: .u8, shape: [1], bytes: TensorBytes([0]))
        w.addTensor(name: "a", dtype: .u8, shape: [1], bytes: TensorBytes([0]))
        expectInvalid(w, "given twice")
        w = SafetensorsWriter()
        w.addTensor(name: "__metadata__", dtype: .u8, shape: [1], bytes: TensorBytes([0]))
        expectInvalid(w, "reserved")
        w = SafetensorsWriter()
        w.addTensor(name: "neg", dtype: .u8, shape: [-1], bytes: TensorBytes([]))
        expectInvalid(w, "negative dimension")
        w = SafetensorsWriter()
        w.addTensor(name: "big", dtype: .u8, shape: [Int.max, 2], bytes: TensorBytes([]))
        expectInvalid(w, "overflows")
    }

    // MARK: - Corrupt files

    func write(_ bytes: [UInt8], _ name: String = "bad.safetensors") throws -> String {
        let p = dir + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// A file with the given header JSON (length prefix computed) followed by `data`.
    func file(header: String, data: [UInt8] = [UInt8](repeating: 0, count: 16)) throws -> String {
        let h = Array(header.utf8)
        var len = UInt64(h.count).littleEndian
        let prefix = withUnsafeBytes(of: &len) { Array($0) }
        return try write(prefix + h + data)
    }

    func expectError(_ path: String, _ phrase: String, line: UInt = #line) {
        XCTAssertThrowsError(try SafetensorsFile(path: path), line: line) { e in
            guard e is ModelFileError else { return XCTFail("not a ModelFileError: \(e)", line: line) }
            XCTAssertTrue("\(e)".contains(phrase), "message '\(e)' should mention '\(phrase)'", line: line)
            XCTAssertTrue("\(e)".contains(path), "message names the file", line: line)
        }
    }

    func testRejectsCorruptHeaders() throws {
        func t(_ body: String) -> String { #"{"t":"# + body + "}" }
        expectError(try write([1, 2, 3]), "needs 8 bytes")
        expectError(try write([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7b]), "over the 100000000-byte limit")
        expectError(try write([0, 0xe1, 0xf5, 0x05, 0, 0, 0, 0, 0x7b]), "runs past the end")  // exactly the limit
        expectError(try write([2, 0, 0, 0, 0, 0, 0, 0, 0x7b]), "runs past the end")
        expectError(try write([0, 0, 0, 0, 0, 0, 0, 0, 0x7b]), "instead of a JSON object")
        expectError(try file(header: "[1,2]"), "instead of a JSON object")
        expectError(try file(header: "{"), "unexpected end")
        expectError(try file(header: "{} x"), "unexpected text after")
        expectError(try file(header: #"{"a":1,}"#), "expected a string key")
        expectError(try file(header: #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}, "t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#), "names 't' twice")
        expectError(try file(header: t(#"{"dtype":"F32","shape":[2],"data_offsets":[0,12]}"#)), "needs 8 bytes but data_offsets [0, 12] span 12")
        expectError(try file(header: t(#"{"dtype":"F32","shape":[2],"data_offsets":[12,20]}"#)), "run past the end of the 16-byte data section")
        expectError(try file(header: t(#"{"dtype":"F32","shape":[2],"data_offsets":[8,0]}"#)), "end before they begin")
        expectError(try file(header: t(#"{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}"#)), "not a non-negative integer")
        expectError(try file(header: t(#"{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}"#)), "not a non-negative integer")
        expectError(try file(header: t(#"{"dtype":"F32","shape":[1e1],"data_offsets":[0,8]}"#)), "not a non-negative integer")
        expectError(try file(header: t(#"{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}"#)), "not a non-negative integer")
        expectError(try file(header: t(#"{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}"#)), "not a non-negative integer")
        expectError(try file(header: t(#"{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,8]}"#)), "overflows")
        expectError(try file(header: t(#"{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}"#)), "byte size overflows")
        expectError(try file(header: t(#"{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551616]}"#)), "data_offsets")
        expectError(try file(header: t(#"{"dtype":"F32","shape":[2],"data_offsets":[0]}"#)), "data_offsets")
        expectError(try file(header: t(#"{"dtype":"F4","shape":[2],"data_offsets":[0,8]}"#)), "dtype 'F4'")
        expectError(try file(header: t(#"{"shape":[2],"data_offsets":[0,8]}"#)), "no string \"dtype\"")
        expectError(try file(header: t(#"{"dtype":"F32","data_offsets":[0,8]}"#)), "no \"shape\" array")
        expectError(try file(header: t("[]")), "not a JSON object")
        expectError(try file(header: #"{"__metadata__":{"a":1}}"#), "not a string")
        expectError(try file(header: #"{"__metadata__":[]}"#), "not a JSON object of strings")
        expectError(try file(header: "{\"a\u{1}\":1}"), "control character")
        expectError(try file(header: #"{"\ud800":1}"#), "unpaired surrogate")
        expectError(try file(header: #"{"\udc00":1}"#), "unpaired surrogate")
        expectError(try file(header: #"{"\u12":1}"#), "bad hex digit")
        expectError(try file(header: #"{"\q":1}"#), "unknown escape")
        expectError(try file(header: #"{"a":01}"#), "leading zero")
        expectError(try file(header: #"{"a":-}"#), "malformed number")
        expectError(try file(header: #"{"a":tru}"#), "expected 'true'")
        expectError(try file(header: "{\"a\":" + String(repeating: "[", count: 100_000) + "}"), "nesting deeper than")
        expectError(try file(header: "{\"a\":[" + Array(repeating: "0", count: 70_000).joined(separator: ",") + "]}"), "array longer than 65536 items")
        // Invalid UTF-8 inside a string.
        var raw = Array(#"{"a":"xx"}"#.utf8)
        raw[6] = 0xff
        var len = UInt64(raw.count).littleEndian
        expectError(try write(withUnsafeBytes(of: &len) { Array($0) } + raw), "not valid UTF-8")
    }

    func testAcceptsValidEdgeCases() throws {
        // Unknown fields are ignored, whitespace and \u escapes are fine, a scalar has shape [].
        let header = #"{"s" : {"dtype":"I32", "shape":[], "data_offsets":[4,8], "extra":{"x":[null,true,false,-1.5e-3]}},\#n "\u00e9\ud83e\udd99":{"dtype":"BOOL","shape":[0],"data_offsets":[16,16]}}   "#
        let f = try SafetensorsFile(path: try file(header: header, data: [0, 0, 0, 0, 42, 0, 0, 0] + [UInt8](repeating: 0, count: 8)))
        XCTAssertEqual(f.tensors.map(\.name), ["s", "é🦙"])
        XCTAssertEqual(Array(try f.data(named: "s")), [42, 0, 0, 0])
        XCTAssertEqual(f.tensor(named: "é🦙")?.byteCount, 0)
    }
}
