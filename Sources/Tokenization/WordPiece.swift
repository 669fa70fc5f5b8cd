import Foundation

/// Errors from loading or using a WordPiece tokenizer. Each message says what is wrong and
/// what to do about it.
public enum WordPieceError: Error, CustomStringConvertible, Equatable {
    case cannotRead(path: String, reason: String)
    case invalidJSON(String)
    case missingField(String)
    case unsupported(component: String, type: String)
    case invalidValue(field: String, reason: String)
    case tooLong(count: Int, maxLength: Int)

    public var description: String {
        switch self {
        case let .cannotRead(path, reason):
            return "cannot read tokenizer file \(path): \(reason)"
        case let .invalidJSON(reason):
            return "tokenizer.json is not valid JSON (\(reason)); re-download the model's tokenizer.json"
        case let .missingField(field):
            return "tokenizer.json has no '\(field)'; it does not look like a Hugging Face WordPiece tokenizer file"
        case let .unsupported(component, type):
            return "tokenizer.json uses \(component) '\(type)', which this WordPiece tokenizer does not support "
                + "(supported: BertNormalizer, BertPreTokenizer, WordPiece model, TemplateProcessing or "
                + "BertProcessing post-processor, WordPiece decoder)"
        case let .invalidValue(field, reason):
            return "tokenizer.json field '\(field)' is invalid: \(reason)"
        case let .tooLong(count, maxLength):
            return "input is \(count) tokens but the model accepts at most \(maxLength); "
                + "shorten the text or split it into chunks (nothing is truncated silently)"
        }
    }
}

/// A WordPiece (BERT-style) tokenizer read from a Hugging Face `tokenizer.json`, producing the
/// same ids as the `tokenizers` library: added/special tokens matched in the raw text, then
/// `BertNormalizer`, `BertPreTokenizer`, greedy longest-match-first WordPiece, and the
/// post-processor template ([CLS] $A [SEP], [CLS] $A [SEP] $B [SEP]).
///
/// The truncation and padding settings in tokenizer.json are deliberately not applied: callers
/// check the length with `checkLength` (which throws) and pad themselves with `padID`.
public final class WordPieceTokenizer: Sendable {
    /// Number of distinct tokens, added tokens included (`get_vocab_size(with_added_tokens=True)`).
    public let vocabSize: Int
    public let clsID: Int32
    public let sepID: Int32
    public let padID: Int32
    public let unkID: Int32
    /// Longest sequence, special tokens included, that the model accepts (BERT's 512 positions
    /// unless the caller says otherwise).
    public let modelMaxLength: Int

    private let normalizer: BertNormalizer?
    private let usesBertPreTokenizer: Bool
    private let words: WordPieceByteTable
    private let continuations: WordPieceByteTable
    private let maxInputCharsPerWord: Int
    private let idToToken: [String?]
    /// Added tokens with normalized=true decode to their normalized form, as in `tokenizers`
    /// (`AddedVocabulary::simple_id_to_token`).
    private let decodeForms: [Int32: String]
    private let tokenToID: [String: Int32]
    private let addedTokens: [WordPieceAddedToken]
    private let rawMatcher: WordPieceAddedTokenMatcher?
    private let normalizedMatcher: WordPieceAddedTokenMatcher?
    /// Contents of special added tokens; decode skips tokens by text, as `tokenizers` does.
    private let specialContents: Set<String>
    private let singleTemplate: [WordPieceTemplatePiece]
    private let pairTemplate: [WordPieceTemplatePiece]
    private let decoder: WordPieceDecoder?

    public convenience init(tokenizerJSON path: String, modelMaxLength: Int = 512) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw WordPieceError.cannotRead(path: path, reason: error.localizedDescription)
        }
        try self.init(data: data, modelMaxLength: modelMaxLength)
    }

    public init(data: Data, modelMaxLength: Int = 512) throws {
        let root: [String: Any]
        do {
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw WordPieceError.invalidJSON("the top level is not an object")
            }
            root = object
        } catch let error as WordPieceError {
            throw error
        } catch {
            throw WordPieceError.invalidJSON(error.localizedDescription)
        }
        guard modelMaxLength > 0 else {
            throw WordPieceError.invalidValue(field: "modelMaxLength", reason: "must be positive")
        }
        self.modelMaxLength = modelMaxLength

        // Model.
        guard let model = root["model"] as? [String: Any] else { throw WordPieceError.missingField("model") }
        let modelType = try WordPieceJSON.optionalString(model["type"], "model.type")
        if let modelType, modelType != "WordPiece" {
            throw WordPieceError.unsupported(component: "model", type: modelType)
        }
        guard let vocabObject = model["vocab"] as? [String: Any] else {
            throw WordPieceError.missingField("model.vocab")
        }
        let prefix = try WordPieceJSON.optionalString(model["continuing_subword_prefix"], "model.continuing_subword_prefix") ?? "##"
        guard let unkToken = try WordPieceJSON.optionalString(model["unk_token"], "model.unk_token") else {
            throw WordPieceError.missingField("model.unk_token")
        }
        let maxChars = try WordPieceJSON.optionalInt(model["max_input_chars_per_word"], "model.max_input_chars_per_word") ?? 100
        guard maxChars >= 0 else {
            throw WordPieceError.invalidValue(field: "model.max_input_chars_per_word", reason: "is negative")
        }
        maxInputCharsPerWord = maxChars

        var tokenToID = [String: Int32](minimumCapacity: vocabObject.count)
        var wordEntries = [(key: [UInt8], id: Int32)]()
        var continuationEntries = [(key: [UInt8], id: Int32)]()
        wordEntries.reserveCapacity(vocabObject.count)
        let prefixBytes = Array(prefix.utf8)
        for (token, value) in vocabObject {
            let id = try WordPieceJSON.tokenID(value, "model.vocab[\"\(token)\"]")
            tokenToID[token] = id
            let bytes = Array(token.utf8)
            wordEntries.append((bytes, id))
            if !prefixBytes.isEmpty, bytes.count > prefixBytes.count, bytes.starts(with: prefixBytes) {
                continuationEntries.append((Array(bytes[prefixBytes.count...]), id))
            }
        }
        guard let unk = tokenToID[unkToken] else {
            throw WordPieceError.invalidValue(field: "model.unk_token", reason: "'\(unkToken)' is not in model.vocab")
        }
        unkID = unk
        words = WordPieceByteTable(wordEntries)
        if prefixBytes.isEmpty {
            // Without a prefix, continuing pieces are looked up like word starts.
            continuations = words
        } else {
            continuations = WordPieceByteTable(continuationEntries)
        }

        // Added tokens.
        var added = [WordPieceAddedToken]()
        if let list = root["added_tokens"], !(list is NSNull) {
            guard let list = list as? [[String: Any]] else {
                throw WordPieceError.invalidValue(field: "added_tokens", reason: "is not a list of objects")
            }
            for (i, item) in list.enumerated() {
                let field = "added_tokens[\(i)]"
                guard let content = try WordPieceJSON.optionalString(item["content"], field + ".content"), !content.isEmpty else {
                    throw WordPieceError.invalidValue(field: field + ".content", reason: "is missing or empty")
                }
                guard let rawID = item["id"] else { throw WordPieceError.missingField(field + ".id") }
                let id = try WordPieceJSON.tokenID(rawID, field + ".id")
                let special = try WordPieceJSON.optionalBool(item["special"], field + ".special") ?? false
                added.append(WordPieceAddedToken(
                    content: content, id: id, special: special,
                    singleWord: try WordPieceJSON.optionalBool(item["single_word"], field + ".single_word") ?? false,
                    lstrip: try WordPieceJSON.optionalBool(item["lstrip"], field + ".lstrip") ?? false,
                    rstrip: try WordPieceJSON.optionalBool(item["rstrip"], field + ".rstrip") ?? false,
                    normalized: try WordPieceJSON.optionalBool(item["normalized"], field + ".normalized") ?? !special))
                tokenToID[content] = id
            }
        }
        addedTokens = added
        specialContents = Set(added.filter(\.special).map(\.content))

        // id → token, added tokens taking precedence as in `AddedVocabulary::simple_id_to_token`.
        let maxID = tokenToID.values.max() ?? -1
        // Ids index a dense table; real vocabularies stay well under a million entries.
        guard maxID < 4_000_000 else {
            throw WordPieceError.invalidValue(field: "model.vocab", reason: "token id \(maxID) is implausibly large (over 4,000,000)")
        }
        var idToToken = [String?](repeating: nil, count: Int(maxID) + 1)
        for (token, id) in vocabObject {
            if let id = try? WordPieceJSON.tokenID(id, "") { idToToken[Int(id)] = token }
        }
        for token in added { idToToken[Int(token.id)] = token.content }
        self.idToToken = idToToken
        self.tokenToID = tokenToID
        vocabSize = tokenToID.count

        // Normalizer.
        let normalizerObject = try WordPieceJSON.optionalObject(root["normalizer"], "normalizer")
        if let n = normalizerObject {
            let type = try WordPieceJSON.optionalString(n["type"], "normalizer.type") ?? "(no type)"
            guard type == "BertNormalizer" else { throw WordPieceError.unsupported(component: "normalizer", type: type) }
            normalizer = BertNormalizer(
                cleanText: try WordPieceJSON.optionalBool(n["clean_text"], "normalizer.clean_text") ?? true,
                handleChineseChars: try WordPieceJSON.optionalBool(n["handle_chinese_chars"], "normalizer.handle_chinese_chars") ?? true,
                stripAccents: try WordPieceJSON.optionalBool(n["strip_accents"], "normalizer.strip_accents"),
                lowercase: try WordPieceJSON.optionalBool(n["lowercase"], "normalizer.lowercase") ?? true)
        } else {
            normalizer = nil
        }
        // Added tokens with normalized=true are matched, in their normalized form, in normalized text.
        rawMatcher = WordPieceAddedTokenMatcher(added.enumerated().filter { !$0.element.normalized }
            .map { (Array($0.element.content.utf8), $0.offset) })
        let normalizer = self.normalizer
        var decodeForms = [Int32: String]()
        normalizedMatcher = WordPieceAddedTokenMatcher(added.enumerated().filter { $0.element.normalized }
            .compactMap { item -> ([UInt8], Int)? in
                let form = normalizer?.normalize(item.element.content) ?? item.element.content
                decodeForms[item.element.id] = form
                return form.isEmpty ? nil : (Array(form.utf8), item.offset)
            })
        self.decodeForms = decodeForms

        // Pre-tokenizer.
        if let p = try WordPieceJSON.optionalObject(root["pre_tokenizer"], "pre_tokenizer") {
            let type = try WordPieceJSON.optionalString(p["type"], "pre_tokenizer.type") ?? "(no type)"
            guard type == "BertPreTokenizer" else { throw WordPieceError.unsupported(component: "pre_tokenizer", type: type) }
            usesBertPreTokenizer = true
        } else {
            usesBertPreTokenizer = false
        }

        // Post-processor.
        let templates = try WordPiecePostProcessor.parse(
            try WordPieceJSON.optionalObject(root["post_processor"], "post_processor"), tokenToID: tokenToID)
        singleTemplate = templates.single
        pairTemplate = templates.pair

        // Decoder.
        if let d = try WordPieceJSON.optionalObject(root["decoder"], "decoder") {
            let type = try WordPieceJSON.optionalString(d["type"], "decoder.type") ?? "(no type)"
            guard type == "WordPiece" else { throw WordPieceError.unsupported(component: "decoder", type: type) }
            decoder = WordPieceDecoder(
                prefix: try WordPieceJSON.optionalString(d["prefix"], "decoder.prefix") ?? "##",
                cleanup: try WordPieceJSON.optionalBool(d["cleanup"], "decoder.cleanup") ?? true)
        } else {
            decoder = nil
        }

        // Well-known ids: from the post-processor's special tokens when it has them, else the vocab.
        func find(_ names: [String], _ what: String) throws -> Int32 {
            for name in names { if let id = tokenToID[name] { return id } }
            throw WordPieceError.invalidValue(field: "added_tokens", reason: "no \(what) token (looked for \(names.joined(separator: ", ")))")
        }
        clsID = try templates.cls ?? find(["[CLS]"], "classifier")
        sepID = try templates.sep ?? find(["[SEP]"], "separator")
        var pad: Int32?
        if let padding = try WordPieceJSON.optionalObject(root["padding"], "padding"), let raw = padding["pad_id"] {
            pad = try WordPieceJSON.tokenID(raw, "padding.pad_id")
        }
        padID = try pad ?? find(["[PAD]"], "padding")
    }

    // MARK: Encoding

    /// Token ids of `text`, with the post-processor's special tokens ([CLS] … [SEP]) unless
    /// `addSpecialTokens` is false. Never truncates: see `checkLength`.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int32] {
        var ids = [Int32]()
        var workspace = Workspace()
        for piece in singleTemplate {
            switch piece {
            case let .special(specialIDs, _):
                if addSpecialTokens { ids.append(contentsOf: specialIDs) }
            case .sequence:
                encodeSequence(text, into: &ids, workspace: &workspace)
            }
        }
        return ids
    }

    /// Ids and token type ids (segment ids) of a sentence pair, laid out by the post-processor's
    /// pair template ([CLS] A [SEP] B [SEP], type 0 for A's part and 1 for B's).
    public func encodePair(_ a: String, _ b: String, addSpecialTokens: Bool = true) -> (ids: [Int32], typeIDs: [Int32]) {
        var workspace = Workspace()
        var first = [Int32](), second = [Int32]()
        encodeSequence(a, into: &first, workspace: &workspace)
        encodeSequence(b, into: &second, workspace: &workspace)
        var ids = [Int32](), typeIDs = [Int32]()
        for piece in pairTemplate {
            switch piece {
            case let .special(specialIDs, typeID):
                if addSpecialTokens {
                    ids.append(contentsOf: specialIDs)
                    typeIDs.append(contentsOf: repeatElement(typeID, count: specialIDs.count))
                }
            case let .sequence(isB, typeID):
                let part = isB ? second : first
                ids.append(contentsOf: part)
                typeIDs.append(contentsOf: repeatElement(typeID, count: part.count))
            }
        }
        return (ids, typeIDs)
    }

    /// Throws `WordPieceError.tooLong` when `ids` is longer than the model accepts
    /// (`maxLength`, default `modelMaxLength`).
    public func checkLength(_ ids: [Int32], maxLength: Int? = nil) throws {
        let limit = min(maxLength ?? modelMaxLength, modelMaxLength)
        if ids.count > limit { throw WordPieceError.tooLong(count: ids.count, maxLength: limit) }
    }

    /// `encode` followed by `checkLength`.
    public func encodeChecked(_ text: String, addSpecialTokens: Bool = true, maxLength: Int? = nil) throws -> [Int32] {
        let ids = encode(text, addSpecialTokens: addSpecialTokens)
        try checkLength(ids, maxLength: maxLength)
        return ids
    }

    public func token(forID id: Int32) -> String? {
        guard id >= 0, Int(id) < idToToken.count else { return nil }
        return idToToken[Int(id)]
    }

    public func id(forToken token: String) -> Int32? { tokenToID[token] }

    /// Buffers reused across the words of one call.
    private struct Workspace {
        var stage: [Unicode.Scalar] = []
        var normalized: [Unicode.Scalar] = []
        var word: [UInt8] = []
    }

    /// The ids of one sequence, without special tokens: the `tokenizers` pipeline of
    /// AddedVocabulary::extract_and_normalize, pre-tokenizer, then the WordPiece model.
    private func encodeSequence(_ text: String, into ids: inout [Int32], workspace: inout Workspace) {
        guard let rawMatcher, rawMatcher.mightMatch(text) else {
            encodeUnmatched(text.unicodeScalars, into: &ids, workspace: &workspace)
            return
        }
        let bytes = Array(text.utf8)
        for split in rawMatcher.splits(bytes, tokens: addedTokens) {
            if let token = split.token {
                ids.append(addedTokens[token].id)
            } else {
                let segment = String(decoding: bytes[split.range], as: UTF8.self)
                encodeUnmatched(segment.unicodeScalars, into: &ids, workspace: &workspace)
            }
        }
    }

    /// Normalizes a stretch of text that holds no raw added token, then extracts the normalized
    /// added tokens and tokenizes the rest.
    private func encodeUnmatched<S: Sequence>(_ scalars: S, into ids: inout [Int32], workspace: inout Workspace)
    where S.Element == Unicode.Scalar {
        if let normalizer {
            normalizer.normalize(scalars, scratch: &workspace.stage, into: &workspace.normalized)
        } else {
            workspace.normalized.removeAll(keepingCapacity: true)
            workspace.normalized.append(contentsOf: scalars)
        }
        guard let normalizedMatcher else {
            let normalized = workspace.normalized
            tokenizeWords(normalized[...], into: &ids, workspace: &workspace)
            return
        }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: workspace.normalized)
        let bytes = Array(String(view).utf8)
        for split in normalizedMatcher.splits(bytes, tokens: addedTokens) {
            if let token = split.token {
                ids.append(addedTokens[token].id)
            } else {
                let piece = Array(String(decoding: bytes[split.range], as: UTF8.self).unicodeScalars)
                tokenizeWords(piece[...], into: &ids, workspace: &workspace)
            }
        }
    }

    private func tokenizeWords(_ scalars: ArraySlice<Unicode.Scalar>, into ids: inout [Int32], workspace: inout Workspace) {
        if usesBertPreTokenizer {
            BertPreTokenizer().forEachWord(in: scalars) { range in
                appendWordPieces(scalars[range], into: &ids, buffer: &workspace.word)
            }
        } else if !scalars.isEmpty {
            appendWordPieces(scalars, into: &ids, buffer: &workspace.word)
        }
    }

    /// Greedy longest-match-first WordPiece of one word, per `WordPiece::tokenize` in
    /// `tokenizers`: a word longer than max_input_chars_per_word, or with any stretch that no
    /// vocabulary piece covers, becomes a single unknown token.
    private func appendWordPieces(_ word: ArraySlice<Unicode.Scalar>, into ids: inout [Int32], buffer: inout [UInt8]) {
        if word.count > maxInputCharsPerWord {
            ids.append(unkID)
            return
        }
        buffer.removeAll(keepingCapacity: true)
        for s in word { Self.appendUTF8(s, to: &buffer) }
        let mark = ids.count
        let ok = buffer.withUnsafeBufferPointer { b -> Bool in
            guard let base = b.baseAddress else { return true }
            let n = b.count
            var start = 0
            while start < n {
                let first = start == 0
                var end = min(n, start + (first ? words.maxKeyLength : continuations.maxKeyLength))
                // Candidates end on character boundaries, never inside a UTF-8 sequence.
                while end > start && end < n && base[end] & 0xC0 == 0x80 { end -= 1 }
                var found: Int32 = -1
                while end > start {
                    found = first ? words.find(base + start, end - start) : continuations.find(base + start, end - start)
                    if found >= 0 { break }
                    end -= 1
                    while end > start && base[end] & 0xC0 == 0x80 { end -= 1 }
                }
                if found < 0 { return false }
                ids.append(found)
                start = end
            }
            return true
        }
        if !ok {
            ids.removeSubrange(mark...)
            ids.append(unkID)
        }
    }

    @inline(__always)
    private static func appendUTF8(_ s: Unicode.Scalar, to out: inout [UInt8]) {
        let v = s.value
        if v < 0x80 {
            out.append(UInt8(v))
        } else if v < 0x800 {
            out.append(UInt8(0xC0 | (v >> 6)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        } else if v < 0x10000 {
            out.append(UInt8(0xE0 | (v >> 12)))
            out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        } else {
            out.append(UInt8(0xF0 | (v >> 18)))
            out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        }
    }

    // MARK: Decoding

    /// Text of `ids`, per `Tokenizer::decode` in `tokenizers`: ids with no token are dropped,
    /// special added tokens too when `skipSpecial`, then the WordPiece decoder joins pieces
    /// ("##" glues to the previous piece) and tidies spaces before punctuation.
    public func decode(_ ids: [Int32], skipSpecial: Bool = true) -> String {
        var tokens = [String]()
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let token = decodeForms[id] ?? token(forID: id) else { continue }
            if skipSpecial && specialContents.contains(token) { continue }
            tokens.append(token)
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decode(tokens)
    }
}

// MARK: - Added tokens

struct WordPieceAddedToken: Sendable {
    var content: String
    var id: Int32
    var special: Bool
    var singleWord: Bool
    var lstrip: Bool
    var rstrip: Bool
    var normalized: Bool
}

/// Finds added tokens in text the way `AddedVocabulary::find_matches` does: leftmost-longest
/// non-overlapping matches, then the single_word / lstrip / rstrip rules of each token.
struct WordPieceAddedTokenMatcher: Sendable {
    private let patterns: [(bytes: [UInt8], token: Int)]
    private let firstBytes: [Bool]

    init?(_ patterns: [([UInt8], Int)]) {
        let usable = patterns.filter { !$0.0.isEmpty }
        if usable.isEmpty { return nil }
        self.patterns = usable.map { (bytes: $0.0, token: $0.1) }
        var first = [Bool](repeating: false, count: 256)
        for p in usable { first[Int(p.0[0])] = true }
        firstBytes = first
    }

    /// Whether `text` contains a byte that could start a match (a cheap pre-check).
    func mightMatch(_ text: String) -> Bool {
        text.utf8.contains { firstBytes[Int($0)] }
    }

    func splits(_ s: [UInt8], tokens: [WordPieceAddedToken]) -> [(range: Range<Int>, token: Int?)] {
        if s.isEmpty { return [(0..<0, nil)] }
        var result = [(range: Range<Int>, token: Int?)]()
        var startOffset = 0
        var position = 0
        while position < s.count {
            // Leftmost match, longest among those starting there.
            var matchStart = -1, matchLength = 0, matchToken = -1
            var i = position
            while i < s.count && matchStart < 0 {
                if firstBytes[Int(s[i])] {
                    for p in patterns where p.bytes.count > matchLength && i + p.bytes.count <= s.count
                        && s[i..<(i + p.bytes.count)].elementsEqual(p.bytes) {
                        matchStart = i
                        matchLength = p.bytes.count
                        matchToken = p.token
                    }
                }
                i += 1
            }
            if matchStart < 0 { break }
            var start = matchStart
            var stop = matchStart + matchLength
            position = stop
            let token = tokens[matchToken]
            if token.singleWord {
                let startSpace = start == 0 || !Self.isWordCharacter(Self.lastScalar(s, before: start))
                let stopSpace = stop == s.count || !Self.isWordCharacter(Self.firstScalar(s, at: stop))
                if !startSpace || !stopSpace { continue }
            }
            if token.lstrip {
                var newStart = start
                while newStart > 0, let scalar = Self.lastScalar(s, before: newStart), BertCharacters.isWhitespace(scalar) {
                    newStart -= Self.utf8Length(scalar)
                }
                start = max(newStart, startOffset)
            }
            if token.rstrip {
                while stop < s.count, let scalar = Self.firstScalar(s, at: stop), BertCharacters.isWhitespace(scalar) {
                    stop += Self.utf8Length(scalar)
                }
            }
            if startOffset < start { result.append((startOffset..<start, nil)) }
            result.append((start..<stop, matchToken))
            startOffset = stop
        }
        if startOffset != s.count { result.append((startOffset..<s.count, nil)) }
        return result
    }

    /// `\w` of Rust's regex crate: alphabetic, marks, decimal digits, connector punctuation, joiners.
    private static func isWordCharacter(_ s: Unicode.Scalar?) -> Bool {
        guard let s else { return false }
        let p = s.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    private static func utf8Length(_ s: Unicode.Scalar) -> Int {
        s.value < 0x80 ? 1 : s.value < 0x800 ? 2 : s.value < 0x10000 ? 3 : 4
    }

    private static func firstScalar(_ s: [UInt8], at i: Int) -> Unicode.Scalar? {
        guard i < s.count else { return nil }
        var j = i + 1
        while j < s.count && s[j] & 0xC0 == 0x80 { j += 1 }
        return String(decoding: s[i..<j], as: UTF8.self).unicodeScalars.first
    }

    private static func lastScalar(_ s: [UInt8], before i: Int) -> Unicode.Scalar? {
        guard i > 0 else { return nil }
        var j = i - 1
        while j > 0 && s[j] & 0xC0 == 0x80 { j -= 1 }
        return String(decoding: s[j..<i], as: UTF8.self).unicodeScalars.first
    }
}

// MARK: - Post-processor

enum WordPieceTemplatePiece: Sendable {
    case special(ids: [Int32], typeID: Int32)
    case sequence(isB: Bool, typeID: Int32)
}

enum WordPiecePostProcessor {
    static func parse(_ object: [String: Any]?, tokenToID: [String: Int32])
        throws -> (single: [WordPieceTemplatePiece], pair: [WordPieceTemplatePiece], cls: Int32?, sep: Int32?) {
        guard let object else {
            // No post-processor: sequences as they are; the second one gets type id 1.
            return ([.sequence(isB: false, typeID: 0)],
                    [.sequence(isB: false, typeID: 0), .sequence(isB: true, typeID: 1)], nil, nil)
        }
        let type = try WordPieceJSON.optionalString(object["type"], "post_processor.type") ?? "(no type)"
        switch type {
        case "TemplateProcessing":
            guard let specials = object["special_tokens"] as? [String: Any] else {
                throw WordPieceError.missingField("post_processor.special_tokens")
            }
            var specialIDs = [String: [Int32]]()
            for (name, value) in specials {
                guard let entry = value as? [String: Any], let ids = entry["ids"] as? [Any] else {
                    throw WordPieceError.invalidValue(field: "post_processor.special_tokens.\(name)", reason: "has no 'ids' list")
                }
                specialIDs[name] = try ids.map { try WordPieceJSON.tokenID($0, "post_processor.special_tokens.\(name).ids") }
            }
            let single = try template(object["single"], "post_processor.single", specialIDs, pair: false)
            let pair = try template(object["pair"], "post_processor.pair", specialIDs, pair: true)
            return (single, pair, specialIDs["[CLS]"]?.first, specialIDs["[SEP]"]?.first)
        case "BertProcessing":
            func token(_ key: String) throws -> Int32 {
                guard let pair = object[key] as? [Any], pair.count == 2 else {
                    throw WordPieceError.invalidValue(field: "post_processor.\(key)", reason: "should be [token, id]")
                }
                return try WordPieceJSON.tokenID(pair[1], "post_processor.\(key)")
            }
            let cls = try token("cls"), sep = try token("sep")
            return ([.special(ids: [cls], typeID: 0), .sequence(isB: false, typeID: 0), .special(ids: [sep], typeID: 0)],
                    [.special(ids: [cls], typeID: 0), .sequence(isB: false, typeID: 0), .special(ids: [sep], typeID: 0),
                     .sequence(isB: true, typeID: 1), .special(ids: [sep], typeID: 1)], cls, sep)
        default:
            throw WordPieceError.unsupported(component: "post_processor", type: type)
        }
    }

    private static func template(_ value: Any?, _ field: String, _ specials: [String: [Int32]], pair: Bool)
        throws -> [WordPieceTemplatePiece] {
        guard let items = value as? [[String: Any]] else {
            throw WordPieceError.invalidValue(field: field, reason: "is not a list of template pieces")
        }
        var pieces = [WordPieceTemplatePiece]()
        var sawA = false, sawB = false
        for item in items {
            if let special = item["SpecialToken"] as? [String: Any] {
                guard let name = special["id"] as? String, let ids = specials[name] else {
                    throw WordPieceError.invalidValue(field: field, reason: "names a special token missing from special_tokens")
                }
                let typeID = try WordPieceJSON.optionalInt(special["type_id"], field + ".type_id") ?? 0
                pieces.append(.special(ids: ids, typeID: Int32(clamping: typeID)))
            } else if let sequence = item["Sequence"] as? [String: Any] {
                let name = special(sequence["id"])
                guard name == "A" || name == "B" else {
                    throw WordPieceError.invalidValue(field: field, reason: "sequence id should be A or B")
                }
                sawA = sawA || name == "A"
                sawB = sawB || name == "B"
                let typeID = try WordPieceJSON.optionalInt(sequence["type_id"], field + ".type_id") ?? 0
                pieces.append(.sequence(isB: name == "B", typeID: Int32(clamping: typeID)))
            } else {
                throw WordPieceError.invalidValue(field: field, reason: "piece is neither SpecialToken nor Sequence")
            }
        }
        // As `tokenizers` requires: $A in both templates, $B only (and always) in the pair one.
        guard sawA else { throw WordPieceError.invalidValue(field: field, reason: "has no $A sequence") }
        guard sawB == pair else {
            throw WordPieceError.invalidValue(field: field, reason: pair ? "has no $B sequence" : "must not use $B")
        }
        return pieces
    }

    private static func special(_ value: Any?) -> String? { value as? String }
}

// MARK: - Decoder

/// The WordPiece decoder of `tokenizers` (decoders/wordpiece.rs).
struct WordPieceDecoder: Sendable {
    var prefix: String
    var cleanup: Bool

    func decode(_ tokens: [String]) -> String {
        var out = [UInt8]()
        let prefixBytes = Array(prefix.utf8)
        for (i, token) in tokens.enumerated() {
            var piece = Array(token.utf8)
            if i != 0 {
                if piece.starts(with: prefixBytes) {
                    piece.removeFirst(prefixBytes.count)
                } else {
                    piece.insert(0x20, at: 0)
                }
            }
            // `cleanup` runs on each piece separately, as in `tokenizers`.
            if cleanup { piece = Self.cleanUp(piece) }
            out.append(contentsOf: piece)
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let replacements: [([UInt8], [UInt8])] = [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
        (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ].map { (Array($0.0.utf8), Array($0.1.utf8)) }

    /// Byte-exact replace-all (Foundation's search would treat canonically equivalent text as equal).
    private static func cleanUp(_ input: [UInt8]) -> [UInt8] {
        var text = input
        for (pattern, replacement) in replacements {
            guard text.count >= pattern.count else { continue }
            var result = [UInt8]()
            var i = 0
            var changed = false
            while i < text.count {
                if i + pattern.count <= text.count && text[i..<(i + pattern.count)].elementsEqual(pattern) {
                    result.append(contentsOf: replacement)
                    i += pattern.count
                    changed = true
                } else {
                    result.append(text[i])
                    i += 1
                }
            }
            if changed { text = result }
        }
        return text
    }
}

// MARK: - JSON helpers

enum WordPieceJSON {
    static func optionalString(_ value: Any?, _ field: String) throws -> String? {
        guard let value, !(value is NSNull) else { return nil }
        guard let s = value as? String else { throw WordPieceError.invalidValue(field: field, reason: "should be a string") }
        return s
    }

    static func optionalBool(_ value: Any?, _ field: String) throws -> Bool? {
        guard let value, !(value is NSNull) else { return nil }
        if let b = value as? Bool { return b }
        throw WordPieceError.invalidValue(field: field, reason: "should be true or false")
    }

    static func optionalInt(_ value: Any?, _ field: String) throws -> Int? {
        guard let value, !(value is NSNull) else { return nil }
        if let n = value as? NSNumber {
            let d = n.doubleValue
            if d == d.rounded(), abs(d) < 9e15 { return Int(d) }
        } else if let i = value as? Int {
            return i
        }
        throw WordPieceError.invalidValue(field: field, reason: "should be an integer")
    }

    static func optionalObject(_ value: Any?, _ field: String) throws -> [String: Any]? {
        guard let value, !(value is NSNull) else { return nil }
        guard let object = value as? [String: Any] else {
            throw WordPieceError.invalidValue(field: field, reason: "should be an object or null")
        }
        return object
    }

    static func tokenID(_ value: Any, _ field: String) throws -> Int32 {
        guard let i = try optionalInt(value, field), i >= 0, i <= Int(Int32.max) else {
            throw WordPieceError.invalidValue(field: field, reason: "should be a non-negative token id")
        }
        return Int32(i)
    }
}
