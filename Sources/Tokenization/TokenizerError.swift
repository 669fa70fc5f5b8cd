/// Why a tokenizer could not be built from a model file. Messages name the file and the key.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case missingMetadata(path: String, key: String)
    case invalidMetadata(path: String, key: String, problem: String)
    case unsupportedModel(path: String, model: String)
    case unsupportedPreTokenizer(path: String, name: String)

    public var description: String {
        switch self {
        case let .missingMetadata(path, key):
            return "\(path): metadata key '\(key)' is missing, so the tokenizer cannot be built. The file may not be a language model, or was converted without its vocabulary."
        case let .invalidMetadata(path, key, problem):
            return "\(path): metadata '\(key)' is unusable: \(problem). Re-convert or re-download the model."
        case let .unsupportedModel(path, model):
            return "\(path): tokenizer.ggml.model '\(model)' is not supported (supported: 'gpt2' byte-level BPE, 'llama' SentencePiece)."
        case let .unsupportedPreTokenizer(path, name):
            let known = PreTokenizer.Kind.allCases.map(\.rawValue).joined(separator: ", ")
            return "\(path): tokenizer.ggml.pre '\(name)' is not supported (supported families: \(known))."
        }
    }
}
