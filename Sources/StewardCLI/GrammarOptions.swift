import Foundation
import Generation

/// `--json-schema FILE` / `--grammar FILE`: constrain the output (see docs/structured-output.md).
enum GrammarOptions {
    static let specs: [OptionSpec] = [
        .value("--json-schema", valueName: "FILE", help: "Output must be JSON valid under this JSON schema file."),
        .value("--grammar", valueName: "FILE", help: "Output must match this GBNF grammar file (llama.cpp syntax)."),
    ]

    static func load(_ a: ParsedArguments) throws -> Grammar? {
        let schemaPath = a.value("--json-schema"), grammarPath = a.value("--grammar")
        if schemaPath != nil && grammarPath != nil { throw UsageError("give --json-schema or --grammar, not both") }
        func read(_ path: String) throws -> String {
            guard let d = FileManager.default.contents(atPath: path) else { throw UsageError("cannot read \(path)") }
            return String(decoding: d, as: UTF8.self)
        }
        if let p = schemaPath {
            do { return try JSONSchemaGrammar.grammar(schemaJSON: try read(p)) } catch let e as JSONSchemaError {
                throw UsageError("\(p): \(e)")
            }
        }
        if let p = grammarPath {
            do { return try Grammar(gbnf: try read(p)) } catch let e as GrammarError {
                throw UsageError("\(p): \(e)")
            }
        }
        return nil
    }
}
