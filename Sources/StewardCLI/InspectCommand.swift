import Foundation
import ModelFiles
import Tokenization

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
        discussion: """
        MODEL is a GGUF file, a .safetensors file or a Hugging Face model directory (config.json,
        tokenizer.json, *.safetensors), or a fetched model name (smollm2-135m-instruct,
        gemma-3-270m, all-minilm-l6-v2).
        """
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
        if isDir.boolValue || path.hasSuffix(".safetensors") {
            return try safetensors(path: path, isDirectory: isDir.boolValue, context: context, digest: digest)
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

        // Memory for one sequence at the chosen context (default: the trained one), as
        // `steward plan` computes it: weights mmapped (page cache, shared), the f16 KV cache the
        // engine allocates (every layer at full context, sliding-window layers included),
        // scratch, logits and runtime. `steward plan` adds parallel sequences and the verdict.
        let weightBytes = f.tensors.reduce(0) { $0 + $1.byteCount }
        var memory: [String: Any] = ["weights_bytes": weightBytes]
        var memText = "weights \(Format.bytes(weightBytes)) (mmap)"
        if let shape = DecoderShape(lenient: f) {
            let n = context ?? shape.trainedContext
            let m = DecoderMemory(shape: shape, weightBytes: f.mapped.count, context: n, parallel: 1,
                                  threads: ProcessInfo.processInfo.activeProcessorCount)
            let buffers = m.scratchBytes + m.logitsBytes + m.runtimeBytes
            memText += " + KV cache \(Format.bytes(m.kvBytes)) at \(n) tokens (f16) + buffers \(Format.bytes(buffers)) ≈ \(Format.bytes(m.totalBytes)) for one sequence (see steward plan)"
            memory["context"] = n
            memory["kv_cache_bytes"] = m.kvBytes
            memory["buffers_bytes"] = buffers
            memory["total_bytes"] = m.totalBytes
        }
        r.add("memory", memText, key: "memory", memory)
        return r
    }
}

// MARK: - safetensors model directories (Hugging Face layout)

extension ModelReport {
    /// A Hugging Face model directory, or one .safetensors file (whose directory is searched for
    /// config.json, tokenizer.json and a model card). Architecture and shape come from
    /// config.json, the tokenizer from tokenizer.json, the licence from the model card's YAML
    /// front matter (`license:`), as the Hub shows them.
    static func safetensors(path: String, isDirectory: Bool, context: Int?, digest: Bool) throws -> ModelReport {
        let fm = FileManager.default
        let dir = isDirectory ? path : (path as NSString).deletingLastPathComponent
        let weightFiles: [String]
        if isDirectory {
            let single = dir + "/model.safetensors"
            if fm.fileExists(atPath: single) {
                weightFiles = [single]
            } else {
                // Sharded checkpoints (model-00001-of-00002.safetensors …) are described together.
                let names = (try? fm.contentsOfDirectory(atPath: dir)) ?? []
                weightFiles = names.filter { $0.hasSuffix(".safetensors") }.sorted().map { dir + "/" + $0 }
            }
            guard !weightFiles.isEmpty else {
                throw ModelFileError.cannotOpen(path: path, reason: "a directory without model.safetensors or any *.safetensors file; give a GGUF file or a Hugging Face model directory")
            }
        } else {
            weightFiles = [path]
        }
        let files = try weightFiles.map { try SafetensorsFile(path: $0) }
        let tensors = files.flatMap(\.tensors)
        let config = try readJSONObject(dir + "/config.json")

        var r = ModelReport()
        r.add("file", path, key: "file", path)
        r.add("format", "safetensors" + (files.count > 1 ? " (\(files.count) shards)" : ""), key: "format", "safetensors")
        r.json["weight_files"] = weightFiles.map { ($0 as NSString).lastPathComponent }
        let size = files.reduce(0) { $0 + $1.mapped.count }
        r.add("size", "\(Format.bytes(size)) (\(size) bytes)", key: "size_bytes", size)
        if digest {
            let digests = files.map { FileDigest.sha256($0.mapped.bytes) }
            if digests.count == 1 {
                r.add("sha256", "\(digests[0])  \((weightFiles[0] as NSString).lastPathComponent)", key: "sha256", digests[0])
            } else {
                r.add("sha256", zip(weightFiles, digests).map { "\($1)  \(($0 as NSString).lastPathComponent)" }.joined(separator: "\n" + String(repeating: " ", count: 15)),
                      key: "sha256", Dictionary(uniqueKeysWithValues: zip(weightFiles.map { ($0 as NSString).lastPathComponent }, digests)))
            }
        }

        let architectures = (config?["architectures"] as? [Any])?.compactMap { $0 as? String } ?? []
        let modelType = config?["model_type"] as? String
        var archText = architectures.first ?? modelType ?? "unknown (no config.json)"
        if let modelType, !architectures.isEmpty { archText += " (\(modelType))" }
        r.add("architecture", archText, key: "architecture", (architectures.first ?? modelType).map { $0 as Any } ?? NSNull())
        r.json["model_type"] = modelType.map { $0 as Any } ?? NSNull()

        // Floating-point tensors are the parameters; integer tensors are buffers such as BERT's
        // position_ids (PyTorch's num_parameters() leaves them out too).
        let floatTypes: Set<SafetensorsDType> = [.f32, .f16, .bf16, .f64, .f8e4m3, .f8e5m2]
        let params = tensors.filter { floatTypes.contains($0.dtype) }.reduce(0) { $0 + $1.elementCount }
        r.add("parameters", "\(Format.count(params)) (\(params))", key: "parameters", params)
        var byType: [SafetensorsDType: (count: Int, bytes: Int)] = [:]
        for t in tensors { byType[t.dtype, default: (0, 0)].count += 1; byType[t.dtype, default: (0, 0)].bytes += t.byteCount }
        let sortedTypes = byType.sorted { ($0.value.bytes, $0.key.rawValue) > ($1.value.bytes, $1.key.rawValue) }
        let typeText = sortedTypes.map { "\($0.key) ×\($0.value.count) (\(Format.bytes($0.value.bytes)))" }.joined(separator: ", ")
        r.add("tensors", "\(tensors.count): \(typeText)", key: "tensor_types",
              Dictionary(uniqueKeysWithValues: sortedTypes.map { ($0.key.rawValue, ["count": $0.value.count, "bytes": $0.value.bytes]) }))
        r.json["tensor_count"] = tensors.count

        func int(_ key: String) -> Int? { (config?[key] as? NSNumber)?.intValue }
        let hidden = int("hidden_size") ?? int("d_model")
        let layers = int("num_hidden_layers") ?? int("n_layer")
        let heads = int("num_attention_heads") ?? int("n_head")
        let ffn = int("intermediate_size")
        let positions = int("max_position_embeddings")
        if let positions { r.add("context", "\(positions) positions", key: "max_position_embeddings", positions) }
        var shape: [String] = []
        if let hidden { shape.append("hidden \(hidden)"); r.json["hidden_size"] = hidden }
        if let layers { shape.append("layers \(layers)"); r.json["num_hidden_layers"] = layers }
        if let heads { shape.append("heads \(heads)"); r.json["num_attention_heads"] = heads }
        if let ffn { shape.append("ffn \(ffn)"); r.json["intermediate_size"] = ffn }
        if !shape.isEmpty { r.rows.append(("shape", shape.joined(separator: ", "))) }

        let tokenizerPath = dir + "/tokenizer.json"
        if fm.fileExists(atPath: tokenizerPath) {
            let tj = try readJSONObject(tokenizerPath)
            let type = (tj?["model"] as? [String: Any])?["type"] as? String ?? "unknown"
            if type == "WordPiece" {
                // Load it with our tokenizer: the vocabulary size is then the one encoding uses.
                let wp = try WordPieceTokenizer(tokenizerJSON: tokenizerPath)
                let lower = ((tj?["normalizer"] as? [String: Any])?["lowercase"] as? Bool) == true
                r.add("tokenizer", "WordPiece\(lower ? " (uncased)" : ""), \(wp.vocabSize) tokens, [CLS] \(wp.clsID), [SEP] \(wp.sepID), [PAD] \(wp.padID), [UNK] \(wp.unkID)",
                      key: "tokenizer", ["model": "WordPiece", "vocab_size": wp.vocabSize, "lowercase": lower,
                                         "cls": Int(wp.clsID), "sep": Int(wp.sepID), "pad": Int(wp.padID), "unk": Int(wp.unkID)] as [String: Any])
            } else {
                let vocab = ((tj?["model"] as? [String: Any])?["vocab"] as? [String: Any])?.count ?? 0
                r.add("tokenizer", "\(type) (tokenizer.json), \(vocab) tokens; Steward reads only WordPiece tokenizer.json files",
                      key: "tokenizer", ["model": type, "vocab_size": vocab] as [String: Any])
            }
        } else {
            r.add("tokenizer", "none (no tokenizer.json)", key: "tokenizer", NSNull())
        }

        let licence = modelCardLicence(directory: dir)
        r.add("licence", licence ?? "not stated (no model card with a license: line)", key: "license", licence.map { $0 as Any } ?? NSNull())

        // Memory: weights (mmapped) plus one sequence's activations (EmbedderMemory).
        let weightBytes = tensors.reduce(0) { $0 + $1.byteCount }
        var memory: [String: Any] = ["weights_bytes": weightBytes]
        var memText = "weights \(Format.bytes(weightBytes)) (mmap)"
        if let hidden, let heads {
            let n = context ?? positions ?? 512
            let activations = EmbedderMemory.activations(sequence: n, hidden: hidden, heads: heads, ffn: ffn)
            memText += " + activations \(Format.bytes(activations)) for one \(n)-token sequence (f32) ≈ \(Format.bytes(weightBytes + activations))"
            memory["sequence_length"] = n
            memory["activation_bytes"] = activations
            memory["total_bytes"] = weightBytes + activations
        }
        r.add("memory", memText, key: "memory", memory)
        return r
    }

    /// A JSON object file, nil when the file is absent; unreadable or malformed is an error.
    static func readJSONObject(_ path: String) throws -> [String: Any]? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelFileError.cannotOpen(path: path, reason: "not readable")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelFileError.corrupt(path: path, what: "not a JSON object; re-download the model's files")
        }
        return obj
    }

    /// The `license:` of a model card's YAML front matter (README.md as on the Hub), written
    /// either inline (`license: apache-2.0`) or as a list (`license:` then `- mit`).
    static func modelCardLicence(directory: String) -> String? {
        for name in ["README.md", "MODEL_CARD.md", "model_card.md"] {
            guard let data = FileManager.default.contents(atPath: directory + "/" + name) else { continue }
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
            guard lines.first?.trimmingCharacters(in: .whitespaces) == "---" else { continue }
            var i = 1
            while i < lines.count, lines[i].trimmingCharacters(in: .whitespaces) != "---" {
                let line = lines[i]
                if line.hasPrefix("license:") {
                    var v = String(line.dropFirst("license:".count)).trimmingCharacters(in: .whitespaces)
                    if v.isEmpty, i + 1 < lines.count {
                        let next = lines[i + 1].trimmingCharacters(in: .whitespaces)
                        if next.hasPrefix("- ") { v = String(next.dropFirst(2)).trimmingCharacters(in: .whitespaces) }
                    }
                    if v.count >= 2, let f = v.first, f == "\"" || f == "'", v.last == f { v = String(v.dropFirst().dropLast()) }
                    if !v.isEmpty { return v }
                }
                i += 1
            }
        }
        return nil
    }
}
