import Foundation
import Generation

struct ChatCommand: Command {
    let spec = CommandSpec(
        name: "chat",
        summary: "Chat with a model in the terminal (/reset clears the history, /exit quits).",
        usage: "steward chat --model MODEL [--system TEXT] [--template NAME|FILE] [options]",
        options: [
            .value("--model", "-m", valueName: "MODEL", help: "Model file or fetched model name."),
            .value("--system", valueName: "TEXT", help: "System message."),
            .value("--template", valueName: "NAME|FILE", help: "Chat template: a built-in (chatml, gemma) or a .jinja file."),
        ] + GenerationOptions.specs + [AdapterOptions.spec]
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        let modelArg = try a.require("--model")
        var request = try GenerationOptions.request(a, defaultMaxTokens: 512)
        let lm = try LoadedModel.load(modelArg, threads: try GenerationOptions.threads(a))
        request.adapters = try AdapterOptions.load(a, for: lm.model, console: console)
        let template = try lm.chatTemplate(override: a.value("--template"), modelName: modelArg)
        let session = try Session(model: lm.model, tokenizer: lm.tokenizer, contextLength: try a.int("--ctx"))
        let system = a.value("--system").map { [["role": "system", "content": $0]] } ?? []
        var history: [[String: String]] = []
        console.err("steward chat: \(modelArg) (\(session.contextLength) tokens of context). /reset clears, /exit quits.\n")
        while true {
            console.out("> ")
            guard let line = readLine(strippingNewline: true) else { console.out("\n"); break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/exit" || text == "/quit" { break }
            if text == "/reset" {
                history = []
                console.out("(history cleared)\n")
                continue
            }
            history.append(["role": "user", "content": line])
            let ids = try lm.encodeChat(template, messages: system + history)
            do {
                let result = try session.generate(prompt: ids, request, reusePrefix: true) { chunk in
                    console.out(chunk.text)
                    return true
                }
                console.out("\n")
                history.append(["role": "assistant", "content": result.text])
            } catch let e as GenerationError {
                // Context full: say so and keep the session usable.
                history.removeLast()
                console.err("\(e)\nUse /reset to start over.\n")
            }
        }
        return ExitCode.ok
    }
}
