import Foundation
import ModelFiles

/// Converts a Hugging Face checkpoint folder of a `LlamaForCausalLM` (config.json, one or more
/// *.safetensors, tokenizer.json, tokenizer_config.json) to GGUF v3 the way llama.cpp's
/// convert_hf_to_gguf.py does for that architecture: the same metadata keys, tensor names, q/k
/// row permutation (HF rotate-half → llama.cpp adjacent-pair RoPE, `LoRAAdapter.permuteRows`),
/// byte-level BPE vocabulary with token types, merges, special token ids and chat template.
public enum HFConvert {
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let message: String
        public init(_ m: String) { message = m }
        public var description: String { message }
    }

    public struct Report: Sendable {
        public var tensors: Int
        public var permuted: Int
        public var preTokenizer: String
        public var vocabSize: Int
    }

    static func readJSON(_ path: String, what: String) throws(Error) -> [String: Any] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw Error("\(path) is missing: a Hugging Face model folder needs \(what)")
        }
        guard let data = FileManager.default.contents(atPath: path),
              let any = try? JSONSerialization.jsonObject(with: data), let o = any as? [String: Any] else {
            throw Error("\(path) is not a JSON object")
        }
        return o
    }

    /// The checkpoint's weight files: the shards model.safetensors.index.json names, else
    /// model.safetensors, else every *.safetensors in the folder.
    static func weightFiles(_ dir: String) throws(Error) -> [String] {
        let index = dir + "/model.safetensors.index.json"
        if FileManager.default.fileExists(atPath: index) {
            let o = try readJSON(index, what: "a shard index")
            guard let map = o["weight_map"] as? [String: String], !map.isEmpty else {
                throw Error("\(index) has no weight_map")
            }
            let files = Set(map.values).sorted()
            for f in files where !FileManager.default.fileExists(atPath: dir + "/" + f) {
                throw Error("\(index) names shard \(f), which is missing from \(dir)")
            }
            return files.map { dir + "/" + $0 }
        }
        if FileManager.default.fileExists(atPath: dir + "/model.safetensors") { return [dir + "/model.safetensors"] }
        let all = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
        guard !all.isEmpty else { throw Error("\(dir) holds no *.safetensors weights") }
        return all.map { dir + "/" + $0 }
    }

    /// `tokenizer.ggml.pre` for a tokenizer.json pre_tokenizer, recognised by structure (the
    /// regex families `PreTokenizer` implements); nil when it is none we know.
    static func preTokenizerName(_ pre: Any?, cleanSpaces: Bool) -> String? {
        guard let p = pre as? [String: Any], let type = p["type"] as? String else { return nil }
        func isByteLevel(_ o: [String: Any], regex: Bool) -> Bool {
            o["type"] as? String == "ByteLevel" && (o["use_regex"] as? Bool ?? true) == regex && (o["add_prefix_space"] as? Bool ?? false) == false
        }
        if type == "ByteLevel" { return isByteLevel(p, regex: true) ? "gpt-2" : nil }
        guard type == "Sequence", let items = p["pretokenizers"] as? [[String: Any]] else { return nil }
        if items.count == 2, items[0]["type"] as? String == "Digits", items[0]["individual_digits"] as? Bool == true,
           isByteLevel(items[1], regex: true) {
            // StarCoder's and SmolLM's split; llama.cpp's "smollm" differs only in not cleaning spaces.
            return cleanSpaces ? "starcoder" : "smollm"
        }
        if items.count == 2, items[0]["type"] as? String == "Split", isByteLevel(items[1], regex: false),
           let pattern = (items[0]["pattern"] as? [String: Any])?["Regex"] as? String {
            let llama3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
            if pattern == llama3 { return "llama-bpe" }
            if pattern == llama3.replacingOccurrences(of: "\\p{N}{1,3}", with: "\\p{N}") { return "qwen2" }
        }
        return nil
    }

    /// The tokenizer metadata (tokenizer.ggml.*, tokenizer.chat_template) of a folder.
    static func tokenizerMetadata(dir: String, config: [String: Any], vocabSize: Int) throws(Error) -> (pairs: [(String, GGUFValue)], pre: String) {
        let tj = try readJSON(dir + "/tokenizer.json", what: "tokenizer.json (only fast tokenizers are converted)")
        let tc = (try? readJSON(dir + "/tokenizer_config.json", what: "tokenizer_config.json")) ?? [:]
        guard let model = tj["model"] as? [String: Any], model["type"] as? String == "BPE" else {
            throw Error("\(dir)/tokenizer.json: model type '\((tj["model"] as? [String: Any])?["type"] ?? "none")' is not supported; only byte-level BPE (tokenizer.ggml.model gpt2) is converted")
        }
        if model["byte_fallback"] as? Bool == true {
            throw Error("\(dir)/tokenizer.json: a BPE with byte_fallback is a SentencePiece-style vocabulary, which convert does not support yet")
        }
        let clean = tc["clean_up_tokenization_spaces"] as? Bool ?? true
        guard let pre = preTokenizerName(tj["pre_tokenizer"], cleanSpaces: clean) else {
            let shown = (try? JSONSerialization.data(withJSONObject: tj["pre_tokenizer"] ?? NSNull(), options: [.fragmentsAllowed, .sortedKeys]))
                .map { String(decoding: $0.prefix(300), as: UTF8.self) } ?? "?"
            throw Error("\(dir)/tokenizer.json: pre_tokenizer \(shown) is not one Steward recognises (known: ByteLevel → gpt-2; Digits+ByteLevel → smollm/starcoder; Llama 3 and Qwen2 Split regexes); refusing to guess tokenizer.ggml.pre")
        }
        guard let vocab = model["vocab"] as? [String: Int] else { throw Error("\(dir)/tokenizer.json has no model.vocab") }
        let added = (tj["added_tokens"] as? [[String: Any]]) ?? []
        var byID: [Int: String] = [:]
        for (t, i) in vocab { byID[i] = t }
        var types = [Int32](repeating: 1, count: vocabSize)
        for a in added {
            guard let id = a["id"] as? Int, let content = a["content"] as? String else { continue }
            byID[id] = content
            if id < vocabSize { types[id] = (a["special"] as? Bool ?? false) ? 3 : 4 }
        }
        guard let maxID = byID.keys.max(), maxID < vocabSize else {
            throw Error("tokenizer.json has token ids up to \(byID.keys.max() ?? -1) but config.json vocab_size is \(vocabSize)")
        }
        // Ids the tokenizer does not fill (a padded embedding) become [PADn], as llama.cpp writes them.
        var tokens: [GGUFValue] = []
        tokens.reserveCapacity(vocabSize)
        for i in 0..<vocabSize {
            if let t = byID[i] { tokens.append(.string(t)) } else { tokens.append(.string("[PAD\(i)]")); types[i] = 5 }
        }
        var merges: [GGUFValue] = []
        for m in (model["merges"] as? [Any]) ?? [] {
            if let s = m as? String { merges.append(.string(s)) }
            else if let pair = m as? [String], pair.count == 2 {
                // The list form may hold spaces; encode them as U+0120 like gguf-py does.
                let enc = pair.map { String($0.map { $0 == " " ? "\u{120}" : $0 }) }
                merges.append(.string(enc.joined(separator: " ")))
            } else { throw Error("\(dir)/tokenizer.json: merges entry in an unknown format") }
        }
        var pairs: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .array(.string, tokens)),
            ("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0) })),
            ("tokenizer.ggml.merges", .array(.string, merges)),
        ]
        /// tokenizer_config's text of a special token ("bos_token": "<s>" or {"content": "<s>", …}).
        func tokenText(_ typ: String) -> String? { tc["\(typ)_token"] as? String ?? (tc["\(typ)_token"] as? [String: Any])?["content"] as? String }
        // Special token ids: tokenizer_config's token texts first, then config.json's ids (gguf-py's SpecialVocab order).
        var ids: [String: Int] = [:]
        for (typ, key) in [("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id"), ("sep", "seperator_token_id"), ("pad", "padding_token_id")] {
            if let text = tokenText(typ), let id = added.first(where: { $0["content"] as? String == text })?["id"] as? Int, id < vocabSize { ids[key] = id }
            if ids[key] == nil, let id = config["\(typ)_token_id"] as? Int, id >= 0, id < vocabSize { ids[key] = id }
        }
        for key in ["bos_token_id", "eos_token_id", "unknown_token_id", "seperator_token_id", "padding_token_id"] {
            if let id = ids[key] { pairs.append(("tokenizer.ggml.\(key)", .uint32(UInt32(id)))) }
        }
        // Whether encoding adds BOS/EOS: gguf-py reads a TemplateProcessing post-processor of
        // more than one piece ("<bos> $A"), then lets tokenizer_config's add_*_token override it.
        var add: [String: Bool] = [:]
        let post = tj["post_processor"] as? [String: Any]
        for proc in (post?["processors"] as? [[String: Any]]) ?? post.map { [$0] } ?? [] where proc["type"] as? String == "TemplateProcessing" {
            guard let single = proc["single"] as? [[String: Any]], single.count > 1 else { continue }
            func special(_ o: [String: Any]?) -> String? { (o?["SpecialToken"] as? [String: Any])?["id"] as? String }
            if let first = special(single.first) { add["bos"] = first == tokenText("bos") }
            if let last = special(single.last) { add["eos"] = last == tokenText("eos") }
        }
        // llama.cpp's Llama converter copies tokenizer_config's add_prefix_space.
        if let b = tc["add_prefix_space"] as? Bool { pairs.append(("tokenizer.ggml.add_space_prefix", .bool(b))) }
        for typ in ["bos", "eos"] {
            if let b = tc["add_\(typ)_token"] as? Bool { add[typ] = b }
            if let b = add[typ] { pairs.append(("tokenizer.ggml.add_\(typ)_token", .bool(b))) }
        }
        if let t = tc["chat_template"] as? String { pairs.append(("tokenizer.chat_template", .string(t))) }
        return (pairs, pre)
    }

    /// gguf-py's size label: the parameter count in K/M/B/T with at least two significant
    /// digits ("3.2M", "135M", "1.7B").
    static func sizeLabel(_ params: Int) -> String {
        let p = Double(params)
        let (scaled, suffix) = p > 1e12 ? (p * 1e-12, "T") : p > 1e9 ? (p * 1e-9, "B") : p > 1e6 ? (p * 1e-6, "M") : (p * 1e-3, "K")
        let digits = String(Int(scaled.rounded(.toNearestOrEven))).drop { $0 == "0" }.count
        return String(format: "%.\(max(2 - digits, 0))f", scaled) + suffix
    }

    /// Converts `dir` to a GGUF at `path` (written atomically). `type` is for 2-D weights; norms stay F32.
    @discardableResult
    public static func convert(dir: String, to path: String, type: GGMLType = .f16, name: String? = nil,
                               extraMetadata: [(String, GGUFValue)] = [],
                               progress: ((Int, Int, String) -> Void)? = nil) throws -> Report {
        guard [.f32, .f16, .bf16, .q8_0].contains(type) else { throw Error("--type \(type.name) is not written by convert (f32, f16, bf16, q8_0)") }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw Error("\(dir) is not a folder; give a Hugging Face model folder (config.json, *.safetensors, tokenizer.json)")
        }
        let config = try readJSON(dir + "/config.json", what: "config.json")
        let archs = (config["architectures"] as? [String]) ?? []
        guard archs.first == "LlamaForCausalLM" else {
            throw Error("architecture \(archs.first.map { "'\($0)'" } ?? "(none in config.json)") is not supported by convert (supported: LlamaForCausalLM)")
        }
        func int(_ k: String) throws(Error) -> Int {
            guard let v = config[k] as? Int, v > 0 else { throw Error("config.json: \(k) is missing or not a positive integer") }
            return v
        }
        let hidden = try int("hidden_size"), layers = try int("num_hidden_layers"), heads = try int("num_attention_heads")
        let kvHeads = (config["num_key_value_heads"] as? Int) ?? heads
        let ffn = try int("intermediate_size"), vocab = try int("vocab_size"), ctx = try int("max_position_embeddings")
        let headDim = (config["head_dim"] as? Int) ?? hidden / heads
        guard kvHeads > 0, heads % kvHeads == 0, headDim % 2 == 0, headDim * heads == hidden || config["head_dim"] != nil else {
            throw Error("config.json: heads \(heads), kv heads \(kvHeads), head_dim \(headDim) do not fit hidden_size \(hidden)")
        }
        let eps = (config["rms_norm_eps"] as? Double) ?? 1e-5
        let theta = (config["rope_theta"] as? Double) ?? 10000
        var ropeScaling: Double?
        if let rs = config["rope_scaling"] as? [String: Any] {
            let t = (rs["rope_type"] ?? rs["type"]) as? String ?? "?"
            guard t == "linear", let f = rs["factor"] as? Double else {
                throw Error("config.json: rope_scaling type '\(t)' is not supported by convert (only linear)")
            }
            ropeScaling = f
        }
        for k in ["attention_bias", "mlp_bias"] where config[k] as? Bool == true {
            throw Error("config.json: \(k) is true; Llama with biases is not supported by convert")
        }
        let tied = (config["tie_word_embeddings"] as? Bool) ?? false
        let tok = try tokenizerMetadata(dir: dir, config: config, vocabSize: vocab)

        // Tensors from every shard.
        let files = try weightFiles(dir)
        var source: [String: (SafetensorsFile, SafetensorsTensorInfo)] = [:]
        for f in files {
            let st: SafetensorsFile
            do { st = try SafetensorsFile(path: f) } catch { throw Error("\(f): \(error)") }
            for t in st.tensors { source[t.name] = (st, t) }
        }
        // (HF name, GGUF name, HF shape [out, in] or [n], permute heads)
        var plan: [(String, String, [Int], Int?)] = [("model.embed_tokens.weight", "token_embd.weight", [vocab, hidden], nil)]
        for l in 0..<layers {
            let p = "model.layers.\(l)."
            plan += [
                (p + "input_layernorm.weight", "blk.\(l).attn_norm.weight", [hidden], nil),
                (p + "self_attn.q_proj.weight", "blk.\(l).attn_q.weight", [heads * headDim, hidden], heads),
                (p + "self_attn.k_proj.weight", "blk.\(l).attn_k.weight", [kvHeads * headDim, hidden], kvHeads),
                (p + "self_attn.v_proj.weight", "blk.\(l).attn_v.weight", [kvHeads * headDim, hidden], nil),
                (p + "self_attn.o_proj.weight", "blk.\(l).attn_output.weight", [hidden, heads * headDim], nil),
                (p + "post_attention_layernorm.weight", "blk.\(l).ffn_norm.weight", [hidden], nil),
                (p + "mlp.gate_proj.weight", "blk.\(l).ffn_gate.weight", [ffn, hidden], nil),
                (p + "mlp.up_proj.weight", "blk.\(l).ffn_up.weight", [ffn, hidden], nil),
                (p + "mlp.down_proj.weight", "blk.\(l).ffn_down.weight", [hidden, ffn], nil),
            ]
        }
        plan.append(("model.norm.weight", "output_norm.weight", [hidden], nil))
        if !tied { plan.append(("lm_head.weight", "output.weight", [vocab, hidden], nil)) }
        let used = Set(plan.map(\.0)).union(tied ? ["lm_head.weight"] : [])
        let unused = source.keys.filter { !used.contains($0) && !$0.hasSuffix("rotary_emb.inv_freq") }.sorted()
        guard unused.isEmpty else {
            throw Error("the checkpoint has \(unused.count) tensor(s) a LlamaForCausalLM does not use (\(unused.prefix(4).joined(separator: ", "))); refusing to convert what we might drop")
        }
        for (hf, _, shape, _) in plan {
            guard let (_, t) = source[hf] else { throw Error("the checkpoint lacks tensor \(hf)") }
            guard t.shape == shape else { throw Error("tensor \(hf) has shape \(t.shape), expected \(shape) from config.json") }
            guard [.f32, .f16, .bf16].contains(t.dtype) else { throw Error("tensor \(hf) has dtype \(t.dtype); convert reads F32, F16 and BF16") }
        }

        var w = GGUFWriter()
        let md: [(String, GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("general.type", .string("model")),
            ("general.name", .string(name ?? (dir as NSString).lastPathComponent)),
            ("llama.block_count", .uint32(UInt32(layers))),
            ("llama.context_length", .uint32(UInt32(ctx))),
            ("llama.embedding_length", .uint32(UInt32(hidden))),
            ("llama.feed_forward_length", .uint32(UInt32(ffn))),
            ("llama.attention.head_count", .uint32(UInt32(heads))),
            ("llama.attention.head_count_kv", .uint32(UInt32(kvHeads))),
            ("llama.rope.freq_base", .float32(Float(theta))),
            ("llama.attention.layer_norm_rms_epsilon", .float32(Float(eps))),
            ("general.file_type", .uint32(QuantizeRecipe(.uniform(type)).fileType)),
            ("llama.vocab_size", .uint32(UInt32(vocab))),
            ("llama.rope.dimension_count", .uint32(UInt32(headDim))),
        ]
        for (k, v) in md { w.addMetadata(k, v) }
        w.addMetadata("llama.attention.key_length", .uint32(UInt32(headDim)))
        w.addMetadata("llama.attention.value_length", .uint32(UInt32(headDim)))
        w.addMetadata("general.size_label", .string(sizeLabel(plan.reduce(0) { $0 + $1.2.reduce(1, *) })))
        if let f = ropeScaling {
            w.addMetadata("llama.rope.scaling.type", .string("linear"))
            w.addMetadata("llama.rope.scaling.factor", .float32(Float(f)))
        }
        for (k, v) in tok.pairs { w.addMetadata(k, v) }
        for (k, v) in extraMetadata { w.addMetadata(k, v) }
        w.addMetadata("general.quantization_version", .uint32(2))  // llama.cpp writes it for every type

        // Each tensor is read, permuted and converted when the writer reaches it: one tensor in
        // memory at a time, whatever the model's size.
        var permuted = 0
        for (i, (hf, gg, shape, permHeads)) in plan.enumerated() {
            let (st, _) = source[hf]!
            let dims = Array(shape.reversed())
            var t: GGMLType = shape.count == 1 ? .f32 : type
            if t.blockSize > 1, dims[0] % t.blockSize != 0 { t = .f16 }  // llama.cpp falls back too
            guard let size = t.byteCount(elements: shape.reduce(1, *)) else { throw Error("tensor \(hf): \(shape) does not fit \(t.name) blocks") }
            if permHeads != nil { permuted += 1 }
            let outType = t
            w.addTensor(name: gg, type: t, dims: dims, bytes: TensorBytes(count: size) {
                progress?(i + 1, plan.count, gg)
                var values = try st.floats(named: hf)
                if let h = permHeads { values = LoRAAdapter.permuteRows(values, rows: shape[0], cols: shape[1], heads: h) }
                return try quantize(outType, values)
            })
        }
        try w.write(to: path)
        return Report(tensors: plan.count, permuted: permuted, preTokenizer: tok.pre, vocabSize: vocab)
    }
}
