import Foundation
import ModelFiles
import Tokenization
import Templates

struct TemplateCommand: Command {
    let spec = CommandSpec(
        name: "template",
        summary: "Chat templates: `steward template render` prints exactly the rendered prompt.",
        usage: "steward template render (--model MODEL | --template FILE) --messages FILE.json [--tools FILE.json] [--add-generation-prompt] [--bos-token T] [--eos-token T] [--now YYYY-MM-DD]",
        options: [
            .value("--model", "-m", valueName: "MODEL", help: "Use the model's chat template and special tokens."),
            .value("--template", valueName: "FILE|NAME", help: "A .jinja file or a built-in template (chatml, gemma)."),
            .value("--messages", valueName: "FILE", help: "JSON array of messages in OpenAI's shape ('-' for stdin)."),
            .value("--tools", valueName: "FILE", help: "JSON array of tool definitions."),
            .flag("--add-generation-prompt", help: "End with the assistant turn's opening."),
            .value("--bos-token", valueName: "T", help: "bos_token text (default: the model's, or empty)."),
            .value("--eos-token", valueName: "T", help: "eos_token text (default: the model's, or empty)."),
            .value("--now", valueName: "YYYY-MM-DD", help: "Fix the date strftime_now reads (reproducible renders)."),
        ]
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard a.positionals == ["render"] else { throw UsageError("expected the subcommand 'render'") }
        let modelArg = a.value("--model")
        let templateArg = a.value("--template")
        guard (modelArg == nil) != (templateArg == nil) else { throw UsageError("give exactly one of --model and --template") }
        let messagesPath = try a.require("--messages")

        var source: String
        var bos = "", eos = ""
        if let modelArg {
            let f = try GGUFFile(path: try ModelLocator.resolve(modelArg))
            guard let s = f.string("tokenizer.chat_template") else {
                throw UsageError("\(modelArg) has no chat template; pass --template FILE or a built-in name (\(BuiltinTemplates.names.joined(separator: ", ")))")
            }
            source = s
            let tok = try Tokenizer(gguf: f)
            (bos, eos) = tok.templateSpecialTokens
        } else {
            let t = templateArg!
            if let b = BuiltinTemplates.source(named: t), !FileManager.default.fileExists(atPath: t) {
                source = b
            } else {
                guard let d = FileManager.default.contents(atPath: t) else { throw UsageError("cannot read --template \(t)") }
                source = String(decoding: d, as: UTF8.self)
            }
        }
        if let b = a.value("--bos-token") { bos = b }
        if let e = a.value("--eos-token") { eos = e }

        func readJSON(_ path: String, _ what: String) throws -> TemplateValue {
            let data: Data
            if path == "-" {
                data = Data(console.readAllInput().utf8)
            } else {
                guard let d = FileManager.default.contents(atPath: path) else { throw UsageError("cannot read \(what) file \(path)") }
                data = d
            }
            do { return try TemplateValue.parseJSON(data) } catch { throw UsageError("\(what) file \(path) is not valid JSON: \(error)") }
        }
        let messages = try readJSON(messagesPath, "--messages")
        guard case .array = messages else { throw UsageError("--messages must hold a JSON array of messages") }
        let tools = try a.value("--tools").map { try readJSON($0, "--tools") }

        var now = Date()
        if let n = a.value("--now") {
            let fmt = DateFormatter()
            fmt.locale = Locale(identifier: "en_US_POSIX")
            fmt.timeZone = TimeZone.current
            fmt.dateFormat = "yyyy-MM-dd"
            guard let d = fmt.date(from: n) else { throw UsageError("--now expects YYYY-MM-DD, got '\(n)'") }
            now = d.addingTimeInterval(12 * 3600)  // midday, so no time zone shifts the date
        }
        let template = try ChatTemplate(source: source)
        let text = try template.render(messages: messages, tools: tools, addGenerationPrompt: a.flag("--add-generation-prompt"),
                                       bosToken: bos, eosToken: eos, now: now)
        console.out(text)
        return ExitCode.ok
    }
}
