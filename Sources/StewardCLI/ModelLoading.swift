import Foundation
import ModelFiles
import Models
import Tokenization
import Templates
import Generation

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
        let msgs = TemplateValue.array(messages.map { m in
            // role first, then content: the order a client would send
            TemplateValue.object(TemplateObject(m.sorted { $0.key == "role" && $1.key != "role" }.map { ($0.key, TemplateValue.string($0.value)) }))
        })
        let (bos, eos) = tokenizer.templateSpecialTokens
        let text = try template.render(messages: msgs, tools: nil, addGenerationPrompt: true, bosToken: bos, eosToken: eos)
        let startsWithBOS = !bos.isEmpty && text.hasPrefix(bos)
        return tokenizer.encode(text, addBOS: startsWithBOS ? false : nil, parseSpecial: true)
    }
}

/// Named templates for models that ship none (the user picks one; we never guess).
enum BuiltinTemplates {
    static let all: [(String, String)] = [
        ("chatml", """
        {% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}
        """),
        ("gemma", """
        {{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}{% set msgs = messages[1:] %}{% else %}{% set first = '' %}{% set msgs = messages %}{% endif %}{% for message in msgs %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}{{ '<start_of_turn>' + role + '\n' + (first if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}
        """),
    ]
    static var names: [String] { all.map(\.0) }
    static func source(named n: String) -> String? { all.first { $0.0 == n }?.1 }
}
