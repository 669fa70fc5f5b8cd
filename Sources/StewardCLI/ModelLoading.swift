import Foundation
import ModelFiles
import Models
import Tokenization
import Templates
import Generation
import Server

/// A model ready to generate: file, weights, tokenizer and its chat template (if any).
struct LoadedModel {
    let path: String
    let file: GGUFFile
    let model: DecoderModel
    let tokenizer: Tokenizer
    let templateSource: String?
    let loadSeconds: Double

    static func load(_ argument: String, threads: Int?) throws -> LoadedModel {
        let t0 = Date()
        let path = try ModelLocator.resolve(argument)
        let file = try GGUFFile(path: path)
        let model = try DecoderModel(file: file, threads: threads)
        let tokenizer = try Tokenizer(gguf: file)
        return LoadedModel(path: path, file: file, model: model, tokenizer: tokenizer,
                           templateSource: file.string("tokenizer.chat_template"),
                           loadSeconds: Date().timeIntervalSince(t0))
    }

    /// The chat template to use: `--template` (a built-in name or a file) or the model's own.
    /// A model without one is an error that says what to do, never a silent guess.
    func chatTemplate(override: String?, modelName: String) throws -> ChatTemplate {
        if let o = override {
            if let builtin = BuiltinTemplates.source(named: o) { return try ChatTemplate(source: builtin) }
            guard FileManager.default.fileExists(atPath: o) else {
                throw UsageError("--template \(o): not a built-in template (\(BuiltinTemplates.names.joined(separator: ", "))) nor a file")
            }
            return try ChatTemplate(source: String(contentsOfFile: o, encoding: .utf8))
        }
        guard let src = templateSource else {
            throw UsageError("\(modelName) has no chat template: use --raw for a plain completion, or --template NAME with a built-in template (\(BuiltinTemplates.names.joined(separator: ", "))) or a .jinja file")
        }
        return try ChatTemplate(source: src)
    }

    /// Renders a conversation and tokenizes it. Special tokens in the rendered prompt are parsed;
    /// BOS is added by the model's rule unless the template already wrote it.
    func encodeChat(_ template: ChatTemplate, messages: [[String: String]]) throws -> [Int32] {
        try ChatPrompt.encode(template, tokenizer: tokenizer, messages: messages.map { ($0["role"] ?? "", $0["content"] ?? "") })
    }
}

/// Named templates for models that ship none: shared with the server.
typealias BuiltinTemplates = BuiltinChatTemplates

/// `--adapter PATH[:SCALE]` (repeatable): LoRA adapters applied at run time over the base model.
enum AdapterOptions {
    static let spec = OptionSpec.repeated("--adapter", valueName: "PATH[:SCALE]",
                                          help: "LoRA adapter (PEFT folder or GGUF LoRA) applied at run time, scale default 1; repeatable.")

    /// Splits "PATH:SCALE" (the scale is what follows the last ':' when it is a number).
    static func parse(_ text: String) throws -> (path: String, scale: Float) {
        if let i = text.lastIndex(of: ":"), let scale = Float(text[text.index(after: i)...]) {
            guard scale.isFinite, abs(scale) <= 100 else { throw UsageError("--adapter \(text): the scale must be a finite number within ±100") }
            return (String(text[..<i]), scale)
        }
        return (text, 1)
    }

    static func load(_ a: ParsedArguments, for model: DecoderModel, console: Console? = nil) throws -> [LoRAUse] {
        try a.values("--adapter").map { text in
            let (path, scale) = try parse(text)
            let adapter = try LoRAAdapter.load(path, for: model.config)
            console?.err("adapter \(adapter.name): \(adapter.format), rank \(adapter.rank), alpha \(adapter.alpha), \(adapter.targets.map(\.peftName).joined(separator: ",")), scale \(scale)\n")
            return LoRAUse(adapter, scale: scale)
        }
    }
}
