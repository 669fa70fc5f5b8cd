/// Errors from reading or writing model files. Each message names the file and what is wrong,
/// so a user can tell a truncated download from a hostile or unsupported file.
public enum ModelFileError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case truncated(path: String, what: String)
    case badMagic(path: String, found: String)
    case unsupportedVersion(path: String, version: UInt32)
    case corrupt(path: String, what: String)
    case unsupportedTensorType(path: String, tensor: String, type: UInt32)
    case missingKey(path: String, key: String)
    case typeMismatch(path: String, key: String, expected: String, found: String)
    case tensorNotFound(path: String, name: String)
    case writeFailed(path: String, reason: String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "cannot open \(path): \(reason)"
        case let .truncated(path, what):
            return "\(path) is truncated or corrupt: \(what). Re-download the file (scripts/fetch-models verifies digests)."
        case let .badMagic(path, found):
            return "\(path) is not a GGUF or safetensors file (starts with \(found))"
        case let .unsupportedVersion(path, version):
            return "\(path): GGUF version \(version) is not supported (supported: 2 and 3)"
        case let .corrupt(path, what):
            return "\(path) is corrupt: \(what)"
        case let .unsupportedTensorType(path, tensor, type):
            return "\(path): tensor '\(tensor)' has unsupported ggml type \(type)"
        case let .missingKey(path, key):
            return "\(path): metadata key '\(key)' is missing"
        case let .typeMismatch(path, key, expected, found):
            return "\(path): metadata key '\(key)' should be \(expected) but is \(found)"
        case let .tensorNotFound(path, name):
            return "\(path): no tensor named '\(name)'"
        case let .writeFailed(path, reason):
            return "cannot write \(path): \(reason)"
        case let .invalidArgument(what):
            return what
        }
    }
}
