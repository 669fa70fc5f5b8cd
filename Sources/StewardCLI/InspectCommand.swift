import Foundation
import ModelFiles

struct InspectCommand: Command {
    let spec = CommandSpec(
        name: "inspect",
        summary: "Describe a model file: architecture, size, tensor types, tokenizer, licence, digest, memory.",
        usage: "steward inspect MODEL [--ctx N] [--json] [--no-digest]",
        options: [
            .value("--ctx", valueName: "N", help: "Context size for the memory estimate (default: the model's)."),
            .flag("--json", help: "Print one JSON object instead of text."),
            .flag("--no-digest", help: "Skip the SHA-256 of the file (faster on large files)."),
        ],
        discussion: "MODEL is a file path or a fetched model name (smollm2-135m-instruct, gemma-3-270m, all-minilm-l6-v2)."
    )

    func run(_ args: ParsedArguments, console: Console) throws -> Int32 {
        guard args.positionals.count == 1 else { throw UsageError("expected exactly one MODEL") }
        let path = try ModelLocator.resolve(args.positionals[0])
        let ctx = try args.int("--ctx")
        if let ctx, ctx <= 0 { throw UsageError("--ctx must be positive") }
        let report = try ModelReport.make(path: path, context: ctx, digest: !args.flag("--no-digest"))
        console.out(args.flag("--json") ? Format.json(report.json) + "\n" : report.text)
        return ExitCode.ok
    }
}

/// What `steward inspect` reports, gathered once and printed as text or JSON.
struct ModelReport {
    var rows: [(String, String)] = []
    var json: [String: Any] = [:]

    mutating func add(_ label: String, _ text: String, key: String, _ value: Any) {
        rows.append((label, text))
        json[key] = value
    }

    var text: String {
        rows.map { $0.0.padding(toLength: 15, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n") + "\n"
    }

    static func make(path: String, context: Int?, digest: Bool) throws -> ModelReport {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        if isDir.boolValue {
            throw ModelFileError.invalidArgument("\(path) is a directory; safetensors model directories are described once the safetensors reader lands")
        }
        return try gguf(path: path, context: context, digest: digest)
    }

    static func gguf(path: String, context: Int?, digest: Bool) throws -> ModelReport {
        let f = try GGUFFile(path: path)
        var r = ModelReport()
        r.add("file", path, key: "file", path)
        r.add("format", "GGUF v\(f.version)", key: "format", "gguf")
        r.json["gguf_version"] = Int(f.version)
        r.add("size", "\(Format.bytes(f.mapped.count)) (\(f.mapped.count) bytes)", key: "size_bytes", f.mapped.count)
        if digest {
            let d = FileDigest.sha256(f.mapped.bytes)
            r.add("sha256", d, key: "sha256", d)
        }
        let arch = f.architecture ?? "unknown"
        r.add("architecture", arch, key: "architecture", arch)
        if let n = f.string("general.name") { r.add("name", n, key: "name", n) }

        let params = f.tensors.reduce(0) { $0 + $1.elementCount }
        r.add("parameters", "\(Format.count(params)) (\(params))", key: "parameters", params)
        var byType: [GGMLType: (count: Int, bytes: Int)] = [:]
        for t in f.tensors { byType[t.type, default: (0, 0)].count += 1; byType[t.type, default: (0, 0)].bytes += t.byteCount }
        let sortedTypes = byType.sorted { $0.value.bytes > $1.value.bytes }
        let typeText = sortedTypes.map { "\($0.key) ×\($0.value.count) (\(Format.bytes($0.value.bytes)))" }.joined(separator: ", ")
        r.add("tensors", "\(f.tensors.count): \(typeText)", key: "tensor_types",
              Dictionary(uniqueKeysWithValues: sortedTypes.map { ($0.key.name, ["count": $0.value.count, "bytes": $0.value.bytes]) }))
        r.json["tensor_count"] = f.tensors.count

        let k = { (s: String) in "\(arch).\(s)" }
        let trainedCtx = f.int(k("context_length"))
        let layers = f.int(k("block_count"))
        let hidden = f.int(k("embedding_length"))
        let heads = f.int(k("attention.head_count"))
        let kvHeads = f.int(k("attention.head_count_kv")) ?? heads
        let headDim = f.int(k("attention.key_length")) ?? ((hidden != nil && heads != nil && heads! > 0) ? hidden! / heads! : nil)
        let valueDim = f.int(k("attention.value_length")) ?? headDim
        let window = f.int(k("attention.sliding_window"))
        if let trainedCtx { r.add("context", "\(trainedCtx) tokens (trained)", key: "context_length", trainedCtx) }
        var shape: [String] = []
        if let hidden { shape.append("embedding \(hidden)"); r.json["embedding_length"] = hidden }
        if let layers { shape.append("layers \(layers)"); r.json["block_count"] = layers }
        if let heads { shape.append("heads \(heads) (kv \(kvHeads ?? heads))"); r.json["head_count"] = heads; r.json["head_count_kv"] = kvHeads ?? heads }
        if let ffn = f.int(k("feed_forward_length")) { shape.append("ffn \(ffn)"); r.json["feed_forward_length"] = ffn }
        if let window { shape.append("sliding window \(window)"); r.json["sliding_window"] = window }
        if !shape.isEmpty { r.rows.append(("shape", shape.joined(separator: ", "))) }

        let tokModel = f.string("tokenizer.ggml.model") ?? "none"
        let vocab = (try? f.stringArray("tokenizer.ggml.tokens"))??.count ?? 0
        var tokText = "\(tokModel == "gpt2" ? "byte-level BPE" : tokModel == "llama" ? "SentencePiece" : tokModel) (\(tokModel)"
        if let pre = f.string("tokenizer.ggml.pre") { tokText += ", pre \(pre)" }
        tokText += "), \(vocab) tokens"
        if let b = f.int("tokenizer.ggml.bos_token_id") { tokText += ", bos \(b)" }
        if let e = f.int("tokenizer.ggml.eos_token_id") { tokText += ", eos \(e)" }
        r.add("tokenizer", tokText, key: "tokenizer", ["model": tokModel, "pre": f.string("tokenizer.ggml.pre") ?? NSNull(), "vocab_size": vocab] as [String: Any])

        if let tpl = f.string("tokenizer.chat_template") {
            r.add("chat template", "yes (\(tpl.count) characters)", key: "chat_template", true)
        } else {
            r.add("chat template", "none: use raw completion (--raw) or a named built-in template", key: "chat_template", false)
        }
        let licence = f.string("general.license") ?? "not stated in metadata"
        r.add("licence", licence, key: "license", f.string("general.license") ?? NSNull())

        // Memory: weights are mmapped (page cache, shared), plus the KV cache at the chosen
        // context in f16, plus the logits buffer. Sliding-window layers keep only the window
        // (Gemma 3: every 6th layer is global, the rest local, as llama.cpp's SWA cache does).
        let weightBytes = f.tensors.reduce(0) { $0 + $1.byteCount }
        var memory: [String: Any] = ["weights_bytes": weightBytes]
        var memText = "weights \(Format.bytes(weightBytes)) (mmap)"
        if let layers, let kvHeads, let headDim, let valueDim {
            let n = context ?? trainedCtx ?? 2048
            var kv = 0
            for il in 0..<layers {
                var cells = n
                if let window, arch == "gemma3", (il + 1) % 6 != 0 { cells = min(n, window) }
                kv += cells * kvHeads * (headDim + valueDim) * 2
            }
            let logits = vocab * 4
            memText += " + KV cache \(Format.bytes(kv)) at \(n) tokens (f16) + logits \(Format.bytes(logits)) ≈ \(Format.bytes(weightBytes + kv + logits))"
            memory["context"] = n
            memory["kv_cache_bytes"] = kv
            memory["total_bytes"] = weightBytes + kv + logits
        }
        r.add("memory", memText, key: "memory", memory)
        return r
    }
}
