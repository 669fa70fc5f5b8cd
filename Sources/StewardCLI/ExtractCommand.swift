import Documents
import Foundation
import Generation

/// `steward extract`: one JSON object per document, valid under a JSON schema by construction
/// (generation is constrained by the schema's grammar).
struct ExtractCommand: Command {
    let spec = CommandSpec(
        name: "extract",
        summary: "Extract a JSON object per document, valid under a JSON schema (JSON lines).",
        usage: "steward extract --model MODEL --schema FILE.json [--out FILE.jsonl [--resume]] [options] PATH...",
        options: [
            .value("--schema", "-s", valueName: "FILE", help: "JSON schema each document's object must satisfy."),
        ] + DocumentOptions.specs + DocumentOptions.generationSpecs(maxTokensHelp: "Tokens per JSON object at most (default 512)."),
        discussion: """
            Each line is {"source": PATH, "data": {...}} or {"source": PATH, "error": "..."}.
            A document too long for the context is refused with an error, never cut: a partial
            extraction would silently miss data. Raise --ctx or split such documents.
            --max-tokens (default 512) bounds each object; an object cut short by it is an error.
            """ + "\n\n" + DocumentOptions.discussion
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        _ = try a.require("--model")
        let schemaPath = try a.require("--schema")
        guard let schemaData = FileManager.default.contents(atPath: schemaPath) else { throw UsageError("cannot read \(schemaPath)") }
        let schema: OrderedJSON
        var request = try DocumentOptions.request(a, defaultMaxTokens: 512)
        do {
            schema = try OrderedJSON.parse([UInt8](schemaData))
            request.grammar = try JSONSchemaGrammar.grammar(schema: schema)
        } catch {
            throw UsageError("\(schemaPath): \(error)")
        }
        let schemaText = schema.jsonText
        let batch = try DocumentRun(command: spec.name, a, console: console)
        if batch.pending.isEmpty { return batch.run { _, _ in [] } }
        let dm = try DocumentModel.load(a)
        return batch.run { doc, _ in
            let prompt = try dm.chat(system: DocumentPrompts.extractSystem,
                                     user: DocumentPrompts.extractUser(schema: schemaText, document: doc.text))
            if prompt.count + request.maxTokens > dm.contextLength {
                throw dm.tooLong(promptTokens: prompt.count, outputTokens: request.maxTokens,
                                 what: "extract does not cut documents (a partial extraction would silently miss data).")
            }
            let result = try dm.session.generate(prompt: prompt, request)
            switch result.finishReason {
            case .stop: break
            case .length:
                throw DocumentError("the JSON object was cut short at --max-tokens \(request.maxTokens); raise --max-tokens")
            case .grammarDeadEnd, .cancelled:
                throw DocumentError("generation ended before the JSON object was complete (\(result.finishReason.rawValue))")
            }
            let data: OrderedJSON
            do { data = try OrderedJSON.parse(result.text) } catch {
                // The grammar makes this unreachable; if it happens it is our bug, not the document's.
                throw DocumentError("the model's output is not valid JSON (\(error)); please report this as a bug")
            }
            return [OrderedJSON.Member("data", data)]
        }
    }
}
