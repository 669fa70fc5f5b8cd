import ModelFiles

/// A token's type as GGUF's `tokenizer.ggml.token_type` gives it (llama.cpp's llama_token_type).
public enum TokenType: Int32, Sendable {
    case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

/// Token attribute bits, as llama.cpp's llama_token_attr uses them (a token can gain CONTROL or
/// UNUSED on top of its file type, e.g. an end-of-turn token stored as normal).
struct TokenAttr {
    static let normal: UInt8 = 1
    static let unknown: UInt8 = 2
    static let control: UInt8 = 4
    static let userDefined: UInt8 = 8
    static let unused: UInt8 = 16
    static let byte: UInt8 = 32
}

/// Tokenizer of a GGUF model, built from its `tokenizer.ggml.*` metadata, encoding and decoding
/// the way llama.cpp (llama-vocab.cpp) does.
///
/// - `tokenizer.ggml.model = gpt2`: byte-level BPE with a pre-tokenizer chosen by
///   `tokenizer.ggml.pre` (see `PreTokenizer`).
/// - `tokenizer.ggml.model = llama`: SentencePiece-style merging by score with byte fallback.
public final class Tokenizer: Sendable {
    public enum Model: String, Sendable {
        case bytePairEncoding = "gpt2"
        case sentencePiece = "llama"
    }

    public let path: String
    public let model: Model
    /// nil for SentencePiece.
    public let preTokenizer: PreTokenizer?
    public let vocabSize: Int

    public let bosID: Int32?
    public let eosID: Int32?
    /// End of turn (`<|im_end|>`, `<end_of_turn>`, `<|eot_id|>` …), from metadata or found by text.
    public let eotID: Int32?
    public let eomID: Int32?
    public let unknownID: Int32?
    public let paddingID: Int32?
    public let separatorID: Int32?
    /// Tokens that end generation, as llama.cpp determines them (sorted).
    public let eogIDs: [Int32]

    /// Whether encoding adds BOS / EOS by default (`tokenizer.ggml.add_bos_token` …).
    public let addsBOS: Bool
    public let addsEOS: Bool
    /// SentencePiece: prefix a space to text at the start or after a special token.
    public let addsSpacePrefix: Bool
    /// llama.cpp's clean_up_tokenization_spaces pass when decoding.
    public let cleansSpaces: Bool
    /// Llama 3 style: a pre-tokenized word that is itself a token skips merging.
    let ignoresMerges: Bool

    let table: ByteStringTable
    let attrs: [UInt8]
    let scores: [Float]
    let eogSet: Set<Int32>
    /// Tokens split out of text before tokenizing, longest first (llama.cpp's cache_special_tokens).
    let specials: [Int32]
    let specialTrie: SpecialTokenTrie

    // Byte-level BPE
    /// Merge (left id, right id) → rank << 32 | merged id. Ids ≥ vocabSize are texts that are not
    /// tokens but occur in merges (see `extraTexts`).
    let merges: UInt64Map
    /// Symbol id of each byte's byte-level character.
    let byteSymbol: [Int32]
    /// Texts of symbol ids ≥ vocabSize.
    let extraTexts: [[UInt8]]

    // SentencePiece
    /// Token for each raw byte (`<0xXX>`, else the one-byte text), for byte fallback.
    let byteToken: [Int32]

    public convenience init(path: String) throws {
        try self.init(gguf: GGUFFile(path: path))
    }

    public init(gguf: GGUFFile) throws {
        let path = gguf.path
        self.path = path
        guard let modelName = gguf.string("tokenizer.ggml.model") else {
            throw TokenizerError.missingMetadata(path: path, key: "tokenizer.ggml.model")
        }
        guard let model = Model(rawValue: modelName) else {
            throw TokenizerError.unsupportedModel(path: path, model: modelName)
        }
        self.model = model
        guard let tokens = try gguf.stringArray("tokenizer.ggml.tokens") else {
            throw TokenizerError.missingMetadata(path: path, key: "tokenizer.ggml.tokens")
        }
        let n = tokens.count
        guard n > 0, n < Int(Int32.max) / 2 else {
            throw TokenizerError.invalidMetadata(path: path, key: "tokenizer.ggml.tokens", problem: "it has \(n) tokens")
        }
        vocabSize = n

        var scores = [Float](repeating: 0, count: n)
        if let s = try gguf.floatArray("tokenizer.ggml.scores") {
            guard s.count >= n else {
                throw TokenizerError.invalidMetadata(path: path, key: "tokenizer.ggml.scores", problem: "\(s.count) scores for \(n) tokens")
            }
            scores = Array(s.prefix(n))
        }
        self.scores = scores

        var attrs = [UInt8](repeating: TokenAttr.normal, count: n)
        if let types = try gguf.intArray("tokenizer.ggml.token_type") {
            guard types.count >= n else {
                throw TokenizerError.invalidMetadata(path: path, key: "tokenizer.ggml.token_type", problem: "\(types.count) types for \(n) tokens")
            }
            for i in 0..<n {
                switch types[i] {
                case 1: attrs[i] = TokenAttr.normal
                case 2: attrs[i] = TokenAttr.unknown
                case 3: attrs[i] = TokenAttr.control
                case 4: attrs[i] = TokenAttr.userDefined
                case 5: attrs[i] = TokenAttr.unused
                case 6: attrs[i] = TokenAttr.byte
                default: attrs[i] = 0
                }
            }
        }

        // Vocabulary text → id. An empty token gets a placeholder text, and a repeated text keeps
        // its first id, as in llama.cpp's loader.
        var totalBytes = 0
        for t in tokens { totalBytes += t.utf8.count }
        var table = ByteStringTable(expectedCount: n, expectedBytes: totalBytes + 64)
        func add(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) {
            if b.isEmpty {
                Array("[EMPTY_\(i)]".utf8).withUnsafeBufferPointer { e in
                    if !table.insert(e).inserted { table.appendUnindexed(e) }
                }
            } else if !table.insert(b).inserted {
                table.appendUnindexed(b)
            }
        }
        for (i, t) in tokens.enumerated() {
            if t.utf8.withContiguousStorageIfAvailable({ add($0, i) }) == nil {
                Array(t.utf8).withUnsafeBufferPointer { add($0, i) }
            }
        }
        self.table = table
        func id(_ text: String) -> Int32? {
            let v = table.lookup(Array(text.utf8))
            return v >= 0 ? v : nil
        }

        // Defaults by model, then metadata (llama_vocab::impl::load).
        var bos: Int32?, eos: Int32?, unk: Int32?
        var addBOS: Bool, addEOS = false, addSpacePrefix: Bool, cleanSpaces: Bool
        var ignoreMerges = false
        var pre: PreTokenizer?
        switch model {
        case .sentencePiece:
            bos = 1; eos = 2; unk = 0
            addBOS = true; addSpacePrefix = true; cleanSpaces = false
        case .bytePairEncoding:
            bos = 11; eos = 11; unk = nil
            addBOS = false; addSpacePrefix = false; cleanSpaces = true
            let preName = gguf.string("tokenizer.ggml.pre") ?? ""
            guard let p = PreTokenizer(ggmlName: preName) else {
                throw TokenizerError.unsupportedPreTokenizer(path: path, name: preName)
            }
            pre = p
            switch p.kind {
            case .llama3:
                if preName != "glm4" && preName != "chatglm-bpe" && preName != "dbrx" && preName != "smaug-bpe" {
                    ignoreMerges = true; addBOS = true
                }
                if preName == "glm4" || preName == "chatglm-bpe" { bos = nil }
            case .deepseekLLM, .qwen2:
                cleanSpaces = preName == "stablelm2" || preName == "megrez"
            case .smollm:
                cleanSpaces = !(preName == "smollm" || preName == "command-r")
            case .gpt2, .defaultBPE:
                break
            }
        }
        preTokenizer = pre
        if let b = gguf.bool("tokenizer.ggml.add_space_prefix") { addSpacePrefix = b }

        func special(_ key: String, _ fallback: Int32?) -> Int32? {
            var v = fallback
            if let d = v, d >= n { v = nil }
            if let m = gguf.int("tokenizer.ggml." + key), m >= 0, m < n { v = Int32(m) }
            return v
        }
        bos = special("bos_token_id", bos)
        eos = special("eos_token_id", eos)
        var eot = special("eot_token_id", nil)
        var eom = special("eom_token_id", nil)
        unk = special("unknown_token_id", unk)
        separatorID = special("seperator_token_id", nil)
        paddingID = special("padding_token_id", nil)
        var fimPad = special("fim_pad_token_id", nil)
        var fimRep = special("fim_rep_token_id", nil)
        var fimSep = special("fim_sep_token_id", nil)
        if let b = gguf.bool("tokenizer.ggml.add_bos_token") { addBOS = b }
        if let b = gguf.bool("tokenizer.ggml.add_eos_token") { addEOS = b }
        if addBOS && bos == nil {
            throw TokenizerError.invalidMetadata(path: path, key: "tokenizer.ggml.add_bos_token", problem: "it is true but there is no BOS token id")
        }
        if addEOS && eos == nil {
            throw TokenizerError.invalidMetadata(path: path, key: "tokenizer.ggml.add_eos_token", problem: "it is true but there is no EOS token id")
        }

        // Find end-of-turn and fill-in-the-middle tokens by their text when metadata lacks them,
        // and mark them control (llama.cpp does this "until convert scripts provide them"). Where
        // llama.cpp takes whichever its hash map yields first, we take the first name listed.
        func findByText(_ names: [String]) -> Int32? {
            for name in names { if let i = id(name) { return i } }
            return nil
        }
        func markControl(_ t: Int32?) { if let t { attrs[Int(t)] |= TokenAttr.control } }
        if eot == nil {
            eot = findByText(["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                              "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"])
            markControl(eot)
        }
        if eom == nil { eom = findByText(["<|eom_id|>"]); markControl(eom) }
        let fimPre = findByText(["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>"])
        markControl(fimPre)
        markControl(findByText(["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>"]))
        markControl(findByText(["<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>"]))
        if fimPad == nil { fimPad = findByText(["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]); markControl(fimPad) }
        if fimRep == nil { fimRep = findByText(["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]); markControl(fimRep) }
        if fimSep == nil { fimSep = findByText(["<|file_sep|>"]); markControl(fimSep) }

        // Control tokens named "unused…" are unused.
        for i in 0..<n where attrs[i] & TokenAttr.control != 0 {
            let b = table.bytes(of: i)
            if b.count >= 6, String(decoding: b, as: UTF8.self).contains("unused") { attrs[i] |= TokenAttr.unused }
        }

        // End-of-generation set (llama.cpp's special_eog_ids).
        var eog = Set<Int32>()
        for t in [fimPad, fimRep, fimSep] { if let t { eog.insert(t) } }
        for name in ["<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
                     "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
                     "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
                     "<｜end▁of▁sentence｜>", "[e~["] {
            if let t = id(name) { eog.insert(t); attrs[Int(t)] |= TokenAttr.control }
        }
        for t in [eos, eot, eom] { if let t { eog.insert(t) } }
        // gpt-oss / solar-open: "<|end|>" ends a message, not the generation.
        let has = { (s: String) in id(s).map { eog.contains($0) } ?? false }
        if let end = id("<|end|>"), eog.contains(end),
           (has("<|return|>") && has("<|call|>")) || ((has("<|call|>") || has("<|calls|>")) && has("<|flush|>")) {
            eog.remove(end); attrs[Int(end)] = TokenAttr.userDefined
        }
        // Gemma 4 / PaddleOCR: "</s>" is not an end of generation when "<|tool_response>" exists.
        if has("<|tool_response>"), let s = id("</s>"), eog.contains(s) {
            eog.remove(s); attrs[Int(s)] = TokenAttr.normal
        }

        self.bosID = bos
        self.eosID = eos
        self.eotID = eot
        self.eomID = eom
        self.unknownID = unk
        self.addsBOS = addBOS
        self.addsEOS = addEOS
        self.addsSpacePrefix = addSpacePrefix
        self.cleansSpaces = cleanSpaces
        self.ignoresMerges = ignoreMerges
        self.eogSet = eog
        self.eogIDs = eog.sorted()
        self.attrs = attrs

        // Special tokens, longest first (ties by id so the order is reproducible).
        var sp: [Int32] = []
        for i in 0..<n where attrs[i] & (TokenAttr.control | TokenAttr.userDefined | TokenAttr.unknown) != 0 {
            sp.append(Int32(i))
        }
        sp.sort { a, b in
            let la = table.length(of: Int(a)), lb = table.length(of: Int(b))
            return la != lb ? la > lb : a < b
        }
        specials = sp
        specialTrie = SpecialTokenTrie(specials: sp, table: table)

        switch model {
        case .bytePairEncoding:
            let built = try Self.buildMerges(gguf: gguf, table: table, vocabSize: n)
            merges = built.merges
            byteSymbol = built.byteSymbol
            extraTexts = built.extraTexts
            byteToken = []
        case .sentencePiece:
            merges = UInt64Map(expectedCount: 0)
            byteSymbol = []
            extraTexts = []
            var bt = [Int32](repeating: -1, count: 256)
            let hex = Array("0123456789ABCDEF".utf8)
            for b in 0..<256 {
                var t = table.lookup([UInt8(ascii: "<"), UInt8(ascii: "0"), UInt8(ascii: "x"), hex[b >> 4], hex[b & 15], UInt8(ascii: ">")])
                if t < 0 { t = table.lookup([UInt8(b)]) }
                bt[b] = t >= 0 ? t : (unk ?? -1)
            }
            byteToken = bt
        }
    }

    /// Parses `tokenizer.ggml.merges` ("left right", rank = position) into id pairs.
    private static func buildMerges(gguf: GGUFFile, table: ByteStringTable, vocabSize n: Int) throws
        -> (merges: UInt64Map, byteSymbol: [Int32], extraTexts: [[UInt8]])
    {
        guard let lines = try gguf.stringArray("tokenizer.ggml.merges") else {
            throw TokenizerError.missingMetadata(path: gguf.path, key: "tokenizer.ggml.merges")
        }
        // Texts that are not tokens get ids from n upwards so every reachable symbol has an id.
        var extraIndex: [[UInt8]: Int32] = [:]
        var extraTexts: [[UInt8]] = []
        func symbolID(_ bytes: [UInt8]) -> Int32 {
            let t = table.lookup(bytes)
            if t >= 0 { return t }
            if let e = extraIndex[bytes] { return e }
            let e = Int32(n + extraTexts.count)
            extraTexts.append(bytes)
            extraIndex[bytes] = e
            return e
        }
        var byteSymbol = [Int32](repeating: -1, count: 256)
        for b in 0..<256 { byteSymbol[b] = symbolID(ByteLevel.byteToUTF8[b]) }

        var map = UInt64Map(expectedCount: lines.count)
        for (rank, line) in lines.enumerated() {
            let u = Array(line.utf8)
            // Split at the first space after the first byte (a merge's left side may be " ").
            guard u.count >= 3, let sp = u[1...].firstIndex(of: 0x20) else { continue }
            let left = Array(u[..<sp]), right = Array(u[(sp + 1)...])
            if right.isEmpty { continue }
            let l = symbolID(left), r = symbolID(right)
            let m = symbolID(left + right)
            let key = UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))
            map.insertIfAbsent(key, UInt64(rank) << 32 | UInt64(UInt32(bitPattern: m)))
        }
        return (map, byteSymbol, extraTexts)
    }

    // MARK: - Vocabulary

    @inline(__always) func valid(_ id: Int32) -> Bool { id >= 0 && Int(id) < vocabSize }

    /// The token's text as stored in the vocabulary (e.g. "Ġthe", "▁the", "<0x0A>").
    public func tokenText(_ id: Int32) -> String {
        guard valid(id) else { return "" }
        return String(decoding: table.bytes(of: Int(id)), as: UTF8.self)
    }

    /// The BOS and EOS token texts a chat template receives as `bos_token` / `eos_token`
    /// (empty when the model has none).
    public var templateSpecialTokens: (bos: String, eos: String) {
        (bosID.map(tokenText) ?? "", eosID.map(tokenText) ?? "")
    }

    /// The id of a vocabulary text, if it is a token.
    public func tokenID(forText text: String) -> Int32? {
        let t = table.lookup(Array(text.utf8))
        return t >= 0 ? t : nil
    }

    public func tokenType(_ id: Int32) -> TokenType {
        guard valid(id) else { return .undefined }
        let a = attrs[Int(id)]
        if a & TokenAttr.byte != 0 { return .byte }
        if a & TokenAttr.unused != 0 { return .unused }
        if a & TokenAttr.userDefined != 0 { return .userDefined }
        if a & TokenAttr.control != 0 { return .control }
        if a & TokenAttr.unknown != 0 { return .unknown }
        if a & TokenAttr.normal != 0 { return .normal }
        return .undefined
    }

    public func score(_ id: Int32) -> Float { valid(id) ? scores[Int(id)] : 0 }

    /// Control tokens (BOS, EOS, chat markers …), which decoding can skip.
    public func isControl(_ id: Int32) -> Bool { valid(id) && attrs[Int(id)] & TokenAttr.control != 0 }

    /// End of generation: EOS, end of turn, end of message and the others llama.cpp recognises.
    public func isEOG(_ id: Int32) -> Bool { eogSet.contains(id) }
}
