import Foundation

/// Resolves a MODEL argument: a file path, or the name of a model fetched by scripts/fetch-models
/// into `$STEWARD_HOME/models` (default `~/.cache/steward/models`).
public enum ModelLocator {
    public struct Known: Sendable {
        public let name: String
        /// Path relative to the models directory: a file, or a directory (safetensors models).
        public let relativePath: String
    }

    public static let known: [Known] = [
        Known(name: "smollm2-135m-instruct", relativePath: "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"),
        Known(name: "gemma-3-270m", relativePath: "gemma-3-270m/gemma-3-270m-Q4_K_M.gguf"),
        Known(name: "all-minilm-l6-v2", relativePath: "all-minilm-l6-v2"),
    ]

    public static var home: String {
        if let h = ProcessInfo.processInfo.environment["STEWARD_HOME"], !h.isEmpty { return h }
        return NSHomeDirectory() + "/.cache/steward"
    }

    public static var modelsDirectory: String { home + "/models" }

    /// The path of a known model name (whether or not it has been fetched).
    public static func path(forName name: String) -> String? {
        known.first { $0.name == name }.map { modelsDirectory + "/" + $0.relativePath }
    }

    public static func resolve(_ argument: String) throws(ModelFileError) -> String {
        let fm = FileManager.default
        if fm.fileExists(atPath: argument) { return argument }
        if let p = path(forName: argument) {
            if fm.fileExists(atPath: p) { return p }
            throw .cannotOpen(path: p, reason: "model '\(argument)' is not fetched yet; run scripts/fetch-models (or make models)")
        }
        let names = known.map(\.name).joined(separator: ", ")
        throw .cannotOpen(path: argument, reason: "no such file, and not a known model name (known: \(names))")
    }
}
