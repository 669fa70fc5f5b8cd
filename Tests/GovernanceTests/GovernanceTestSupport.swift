import Foundation
import Governance
import ModelFiles
import XCTest

/// A temporary directory for one test, removed afterwards.
final class ScratchDirectory {
    let path: String
    init(_ tag: String) throws {
        path = NSTemporaryDirectory() + "steward-\(tag)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// A small valid GGUF (one F32 tensor) with the given metadata; a few KB.
    func gguf(_ name: String, license: String? = nil, architecture: String = "llama", fileType: UInt32 = 0, seed: Float = 1) throws -> String {
        var w = GGUFWriter()
        w.addMetadata("general.architecture", .string(architecture))
        w.addMetadata("general.name", .string(name))
        w.addMetadata("general.file_type", .uint32(fileType))
        if let license { w.addMetadata("general.license", .string(license)) }
        w.addTensor(name: "token_embd.weight", type: .f32, dims: [16, 8], bytes: TensorBytes(elements: (0..<128).map { Float($0) * seed }))
        let p = path + "/" + name + ".gguf"
        try w.write(to: p)
        return p
    }

    func write(_ rel: String, _ text: String) throws -> String {
        let p = path + "/" + rel
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }
}

/// Flips one byte of a file in place (same size), so only the digest can tell.
func flipByte(_ path: String, at offset: Int) throws {
    let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? h.close() }
    try h.seek(toOffset: UInt64(offset))
    let b = try h.read(upToCount: 1) ?? Data([0])
    try h.seek(toOffset: UInt64(offset))
    try h.write(contentsOf: Data([b[0] ^ 0xFF]))
}

func policy(_ json: String) throws -> DeploymentPolicy {
    try DeploymentPolicy.parse(Data(json.utf8))
}

/// The file's modification time with nanoseconds, and a way to put it back exactly (Foundation's
/// Date loses the nanoseconds, which the fast path compares).
func modificationTime(_ path: String) -> timespec {
    var st = stat()
    _ = stat(path, &st)
    return st.st_mtim
}

func setModificationTime(_ path: String, _ t: timespec) {
    var times = [t, t]
    _ = utimensat(AT_FDCWD, path, &times, 0)
}
