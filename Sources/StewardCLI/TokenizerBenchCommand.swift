import Foundation
import ModelFiles
import Tokenization

/// The tokenizer of a MODEL argument: a GGUF file's (BPE or SentencePiece, as llama.cpp) or a
/// Hugging Face directory's / tokenizer.json's WordPiece.
enum CLITokenizer {
    case gguf(Tokenizer)
    case wordPiece(WordPieceTokenizer, path: String)

    static func load(_ argument: String) throws -> CLITokenizer {
        let path = try ModelLocator.resolve(argument)
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        if isDir.boolValue || path.hasSuffix(".json") {
            let json = isDir.boolValue ? path + "/tokenizer.json" : path
            guard FileManager.default.fileExists(atPath: json) else {
                throw ModelFileError.cannotOpen(path: json, reason: "no tokenizer.json in the model directory; give a GGUF file or a directory with a WordPiece tokenizer.json")
            }
            return .wordPiece(try WordPieceTokenizer(tokenizerJSON: json), path: json)
        }
        return .gguf(try Tokenizer(gguf: GGUFFile(path: path)))
    }

    var kind: String {
        switch self {
        case let .gguf(t): return t.model == .bytePairEncoding ? "byte-level BPE" : "SentencePiece"
        case .wordPiece: return "WordPiece"
        }
    }

    /// `addSpecial`: BOS by the model's rule for GGUF ([CLS] … [SEP] for WordPiece).
    /// `parseSpecial`: GGUF only; WordPiece always matches its added tokens in the text, as the
    /// `tokenizers` library does.
    func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [Int32] {
        switch self {
        case let .gguf(t): return t.encode(text, addBOS: addSpecial ? nil : false, parseSpecial: parseSpecial)
        case let .wordPiece(t, _): return t.encode(text, addSpecialTokens: addSpecial)
        }
    }

    func tokenText(_ id: Int32) -> String {
        switch self {
        case let .gguf(t): return t.tokenText(id)
        case let .wordPiece(t, _): return t.token(forID: id) ?? "<unknown \(id)>"
        }
    }
}

struct TokenizerBenchCommand: Command {
    static let defaultFile = "/usr/share/common-licenses/GPL-3"

    let spec = CommandSpec(
        name: "bench-tokenize",
        summary: "Tokenizer encoding speed (tokens/s) on about 1 MiB of text.",
        usage: "steward bench-tokenize --model MODEL [--file FILE] [--bytes N] [--repeats R] [--json]",
        options: [
            .value("--model", "-m", valueName: "MODEL", help: "GGUF model, or a directory / tokenizer.json with a WordPiece tokenizer."),
            .value("--file", "-f", valueName: "FILE", help: "UTF-8 text, repeated up to --bytes (default \(Self.defaultFile))."),
            .value("--bytes", valueName: "N", help: "Repeat the file to at least N bytes; 0 = the file as it is (default 1048576)."),
            .value("--repeats", "-r", valueName: "R", help: "Encode R times and report the fastest (default 3)."),
            .flag("--json", help: "Print one JSON object."),
        ],
        discussion: "The whole text is encoded in one call, without BOS or [CLS]/[SEP] and without parsing special tokens."
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        let modelArg = try a.require("--model")
        guard a.positionals.isEmpty else { throw UsageError("unexpected argument '\(a.positionals[0])'") }
        let file = a.value("--file") ?? Self.defaultFile
        let target = try a.int("--bytes") ?? (1 << 20)
        let repeats = try a.int("--repeats") ?? 3
        guard target >= 0 else { throw UsageError("--bytes must be ≥ 0") }
        guard repeats >= 1 else { throw UsageError("--repeats must be ≥ 1") }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw UsageError("cannot read --file \(file)")
        }
        let once = String(decoding: data, as: UTF8.self)
        guard !once.isEmpty else { throw UsageError("--file \(file) is empty") }
        var text = once
        if target > 0 {
            text.reserveCapacity(target + once.utf8.count)
            while text.utf8.count < target { text += once }
        }
        let tok = try CLITokenizer.load(modelArg)
        let result: (bytes: Int, tokens: Int, seconds: Double)
        switch tok {
        case let .gguf(t):
            let r = TokenizerBenchmark.encode(t, text: text, repeats: repeats)
            result = (r.bytes, r.tokens, r.seconds)
        case let .wordPiece(t, _):
            // The same best-of-R timing as TokenizerBenchmark.encode, for the WordPiece tokenizer.
            var best = Double.infinity
            var count = 0
            for _ in 0..<repeats {
                let t0 = DispatchTime.now().uptimeNanoseconds
                count = t.encode(text, addSpecialTokens: false).count
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            result = (text.utf8.count, count, best)
        }
        let tokensPerSecond = Double(result.tokens) / max(result.seconds, 1e-9)
        let mibPerSecond = Double(result.bytes) / 1_048_576 / max(result.seconds, 1e-9)
        if a.flag("--json") {
            let obj: [String: Any] = [
                "model": modelArg, "tokenizer": tok.kind, "file": file, "bytes": result.bytes,
                "tokens": result.tokens, "seconds": result.seconds, "repeats": repeats,
                "tokens_per_second": tokensPerSecond, "mib_per_second": mibPerSecond,
            ]
            console.out(Format.json(obj) + "\n")
        } else {
            console.out(String(format: "%@ (%@): %d bytes → %d tokens, best of %d: %.3f s, %.0f tokens/s, %.2f MiB/s\n",
                               modelArg, tok.kind, result.bytes, result.tokens, repeats, result.seconds,
                               tokensPerSecond, mibPerSecond))
        }
        return ExitCode.ok
    }
}
