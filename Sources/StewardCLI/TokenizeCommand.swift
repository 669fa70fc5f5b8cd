import Foundation
import ModelFiles
import Tokenization

struct TokenizeCommand: Command {
    let spec = CommandSpec(
        name: "tokenize",
        summary: "Print the token ids of a text (text from the argument or standard input).",
        usage: "steward tokenize --model MODEL [--no-bos] [--special] [--json] [TEXT]",
        options: [
            .value("--model", "-m", valueName: "MODEL", help: "Model file, WordPiece model directory, or fetched model name."),
            .flag("--no-bos", help: "Do not add the BOS token even if the model adds one (WordPiece: no [CLS]/[SEP])."),
            .flag("--special", help: "Parse special tokens written in the text (e.g. <|im_start|>)."),
            .flag("--json", help: "Print a JSON array of ids instead of id/piece lines."),
        ],
        discussion: "WordPiece tokenizers (tokenizer.json) always match their special tokens in the text, as Hugging Face's tokenizers does."
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        let modelArg = try a.require("--model")
        guard a.positionals.count <= 1 else { throw UsageError("give the text as one argument (quote it) or on standard input") }
        let text: String
        if let t = a.positionals.first {
            text = t
        } else {
            if console.inputIsTerminal { throw UsageError("give TEXT or pipe it on standard input") }
            text = console.readAllInput()
        }
        let tok = try CLITokenizer.load(modelArg)
        let ids = tok.encode(text, addSpecial: !a.flag("--no-bos"), parseSpecial: a.flag("--special"))
        if a.flag("--json") {
            console.out("[" + ids.map(String.init).joined(separator: ", ") + "]\n")
        } else {
            for id in ids {
                console.out("\(id)\t\(tok.tokenText(id).debugDescription)\n")
            }
        }
        return ExitCode.ok
    }
}
