import Foundation
import ModelFiles
import TestSupport
import Tokenization

/// The two GGUF models, loaded once per test process.
enum Models {
    static let smollm: Result<Tokenizer, any Error> = Result {
        try Tokenizer(gguf: GGUFFile(path: TestPaths.model("smollm2-135m-instruct")))
    }
    static let gemma: Result<Tokenizer, any Error> = Result {
        try Tokenizer(gguf: GGUFFile(path: TestPaths.model("gemma-3-270m")))
    }

    /// Golden model key in llamacpp-reference.json → tokenizer.
    static func named(_ key: String) throws -> Tokenizer {
        switch key {
        case "smollm2-135m-instruct-q4_1": return try smollm.get()
        case "gemma-3-270m-q4_k_m": return try gemma.get()
        default: throw TestSupportError.missing("no tokenizer for golden model '\(key)'")
        }
    }

    struct Case {
        let text: String
        let withBOS: [Int32]
        let noBOS: [Int32]
    }

    /// The `tokenize` cases of the llama.cpp golden file, per model key.
    static func goldenCases() throws -> [(model: String, cases: [Case])] {
        let json = try TestPaths.loadJSON(TestPaths.golden + "/llamacpp-reference.json")
        guard let root = json as? [String: Any], let models = root["models"] as? [String: Any] else {
            throw TestSupportError.missing("llamacpp-reference.json has no 'models'")
        }
        var out: [(String, [Case])] = []
        for key in models.keys.sorted() {
            guard let m = models[key] as? [String: Any], let list = m["tokenize"] as? [[String: Any]] else { continue }
            let cases = list.compactMap { c -> Case? in
                guard let t = c["text"] as? String, let a = c["ids_with_default_bos"] as? [Int],
                      let b = c["ids_no_bos"] as? [Int] else { return nil }
                return Case(text: t, withBOS: a.map { Int32($0) }, noBOS: b.map { Int32($0) })
            }
            out.append((key, cases))
        }
        return out
    }
}
