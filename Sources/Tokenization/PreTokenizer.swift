/// Splits text into words before byte-level BPE, the way llama.cpp's `unicode_regex_split` does
/// for each `tokenizer.ggml.pre` (llama-vocab.cpp's llm_tokenizer_bpe regex lists).
///
/// llama.cpp runs the regexes of a pre-tokenizer one after another, each splitting the pieces
/// the previous one produced (text between matches stays a piece too). The GPT-2 and Llama 3
/// regexes have hand-written scanners there; the others go through std::regex. We scan every
/// one by hand over codepoint classes, reproducing the regex semantics without a regex engine.
public struct PreTokenizer: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
        case gpt2
        /// `\p{N}` (each digit alone), then the GPT-2 regex (StarCoder, SmolLM, Command-R…).
        case smollm
        /// The Llama 3 regex: contractions, `[^\r\n\p{L}\p{N}]?\p{L}+`, `\p{N}{1,3}`, …
        case llama3
        /// As Llama 3 but with single digits (`\p{N}`).
        case qwen2
        /// DeepSeek LLM's list: `[\r\n]`, letter runs, ASCII/CJK punctuation runs, trailing
        /// whitespace, CJK runs, number runs.
        case deepseekLLM = "deepseek-llm"
        /// llama.cpp's fallback for `tokenizer.ggml.pre = default`: punctuation runs, GPT-2,
        /// number runs, then groups of three ASCII digits.
        case defaultBPE = "default"
    }

    public let kind: Kind

    public init(kind: Kind) { self.kind = kind }

    /// The pre-tokenizer for a `tokenizer.ggml.pre` value, or nil if we do not implement it.
    public init?(ggmlName: String) {
        guard let k = Self.kind(forGGMLName: ggmlName) else { return nil }
        kind = k
    }

    /// Name groups follow llama-vocab.cpp's mapping of `tokenizer.ggml.pre` to regex lists.
    static func kind(forGGMLName name: String) -> Kind? {
        switch name {
        case "", "default": return .defaultBPE
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
             "dbrx", "smaug-bpe", "glm4", "chatglm-bpe":
            return .llama3
        case "deepseek-llm": return .deepseekLLM
        case "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b":
            return .smollm
        case "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
             "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais",
             "trillion", "granite-docling", "exaone4":
            return .gpt2
        case "qwen2", "deepseek-r1-qwen", "kormo", "megrez", "stablelm2", "hunyuan", "solar-open":
            return .qwen2
        default: return nil
        }
    }

    /// The pieces of `text`, before byte-level encoding.
    public func split(_ text: String) -> [String] {
        let bytes = Array(text.utf8)
        let ranges = bytes.withUnsafeBufferPointer { wordByteRanges($0) }
        return ranges.map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    /// Byte ranges of the words of a UTF-8 buffer (which must be valid UTF-8).
    func wordByteRanges(_ utf8: UnsafeBufferPointer<UInt8>) -> [Range<Int>] {
        let text = DecodedText(utf8)
        var segs = [text.count]
        if text.count == 0 { return [] }
        switch kind {
        case .gpt2:
            segs = text.gpt2(segs)
        case .smollm:
            segs = text.isolate(segs) { t, p, end in t.nextRun(p, end, single: true) { t.cls[$0] & CodepointClass.number != 0 } }
            segs = text.gpt2(segs)
        case .llama3:
            segs = text.llama3(segs, maxDigits: 3)
        case .qwen2:
            segs = text.llama3(segs, maxDigits: 1)
        case .deepseekLLM:
            segs = text.isolate(segs) { t, p, end in t.nextRun(p, end, single: true) { t.cps[$0] == 0x0D || t.cps[$0] == 0x0A } }
            segs = text.isolate(segs) { t, p, end in t.nextSpaceThenRun(p, end) { !t.isWS($0) && DeepSeekClasses.letters.contains(t.cps[$0]) } }
            segs = text.isolate(segs) { t, p, end in t.nextSpaceThenRun(p, end) { !t.isWS($0) && DeepSeekClasses.punctuation.contains(t.cps[$0]) } }
            segs = text.isolate(segs) { t, p, end in t.trailingWhitespace(p, end) }
            segs = text.isolate(segs) { t, p, end in t.nextRun(p, end, single: false) { !t.isWS($0) && DeepSeekClasses.cjk.contains(t.cps[$0]) } }
            segs = text.isolate(segs) { t, p, end in t.nextRun(p, end, single: false) { t.cls[$0] & CodepointClass.number != 0 } }
        case .defaultBPE:
            segs = text.isolate(segs) { t, p, end in
                t.nextRun(p, end, single: false) {
                    let c = t.cps[$0]
                    // [\p{P}\$\+<=>\^~\|]+
                    return t.cls[$0] & CodepointClass.punctuation != 0
                        || c == 0x24 || c == 0x2B || c == 0x3C || c == 0x3D || c == 0x3E || c == 0x5E || c == 0x7E || c == 0x7C
                }
            }
            segs = text.gpt2(segs)
            segs = text.isolate(segs) { t, p, end in t.nextRun(p, end, single: false) { t.cls[$0] & CodepointClass.number != 0 } }
            segs = text.isolate(segs) { t, p, end in t.nextASCIIDigitTriple(p, end) }
        }
        var out: [Range<Int>] = []
        out.reserveCapacity(segs.count)
        var cp = 0
        for len in segs {
            out.append(text.byteOffset[cp] ..< text.byteOffset[cp + len])
            cp += len
        }
        return out
    }
}

/// Codepoints of a UTF-8 buffer with their classes and byte offsets.
struct DecodedText {
    var cps: [UInt32] = []
    var cls: [UInt8] = []
    /// Byte offset of each codepoint, plus the total length at the end.
    var byteOffset: [Int] = []
    var count: Int { cps.count }

    init(_ b: UnsafeBufferPointer<UInt8>) {
        cps.reserveCapacity(b.count)
        cls.reserveCapacity(b.count)
        byteOffset.reserveCapacity(b.count + 1)
        var i = 0
        let n = b.count
        while i < n {
            let c0 = UInt32(b[i])
            var cp: UInt32
            var len: Int
            if c0 < 0x80 { cp = c0; len = 1 }
            else if c0 < 0xE0 { len = 2; cp = c0 & 0x1F }
            else if c0 < 0xF0 { len = 3; cp = c0 & 0x0F }
            else { len = 4; cp = c0 & 0x07 }
            if i + len > n { len = n - i }  // cannot happen for valid UTF-8
            for k in 1..<max(len, 1) { cp = (cp << 6) | (UInt32(b[i + k]) & 0x3F) }
            cps.append(cp)
            cls.append(CodepointClass.of(cp))
            byteOffset.append(i)
            i += len
        }
        byteOffset.append(n)
    }

    @inline(__always) func isWS(_ p: Int) -> Bool { cls[p] & CodepointClass.whitespace != 0 }
    @inline(__always) func isL(_ p: Int) -> Bool { cls[p] & CodepointClass.letter != 0 }
    @inline(__always) func isN(_ p: Int) -> Bool { cls[p] & CodepointClass.number != 0 }

    /// Splits each segment around the matches `find` reports (each as (start, length), searching
    /// from a position up to the segment end), keeping the text between matches as segments —
    /// what llama.cpp's unicode_regex_split_stl does with a regex_iterator.
    func isolate(_ segs: [Int], _ find: (DecodedText, Int, Int) -> (Int, Int)?) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(segs.count * 2)
        var s = 0
        for len in segs {
            let end = s + len
            var gap = s
            var p = s
            while p < end, let (m, mlen) = find(self, p, end) {
                if m > gap { out.append(m - gap) }
                out.append(mlen)
                p = m + mlen
                gap = p
            }
            if end > gap { out.append(end - gap) }
            s = end
        }
        return out
    }

    /// Next run (or single codepoint) of a class at or after `p`.
    @inline(__always)
    func nextRun(_ p: Int, _ end: Int, single: Bool, _ inClass: (Int) -> Bool) -> (Int, Int)? {
        var i = p
        while i < end && !inClass(i) { i += 1 }
        if i == end { return nil }
        if single { return (i, 1) }
        var j = i + 1
        while j < end && inClass(j) { j += 1 }
        return (i, j - i)
    }

    /// `\s?[class]+`: leftmost match, taking one whitespace before the run when there is one.
    @inline(__always)
    func nextSpaceThenRun(_ p: Int, _ end: Int, _ inClass: (Int) -> Bool) -> (Int, Int)? {
        var i = p
        while i < end {
            if inClass(i) { break }
            if isWS(i) && i + 1 < end && inClass(i + 1) { break }
            i += 1
        }
        if i == end { return nil }
        var j = inClass(i) ? i + 1 : i + 2
        while j < end && inClass(j) { j += 1 }
        return (i, j - i)
    }

    /// `\s+$`: the whitespace that ends the segment.
    func trailingWhitespace(_ p: Int, _ end: Int) -> (Int, Int)? {
        var i = end
        while i > p && isWS(i - 1) { i -= 1 }
        return i < end ? (i, end - i) : nil
    }

    /// `[0-9][0-9][0-9]`
    func nextASCIIDigitTriple(_ p: Int, _ end: Int) -> (Int, Int)? {
        var i = p
        @inline(__always) func d(_ k: Int) -> Bool { cps[k] >= 0x30 && cps[k] <= 0x39 }
        while i + 3 <= end {
            if d(i) && d(i + 1) && d(i + 2) { return (i, 3) }
            i += 1
        }
        return nil
    }

    /// GPT-2's regex, scanned as llama.cpp's unicode_regex_split_custom_gpt2 does:
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    func gpt2(_ segs: [Int]) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(segs.count + count / 3)
        var s = 0
        for len in segs {
            let end = s + len
            // Classes outside the segment read as 0 (no class), as in llama.cpp.
            @inline(__always) func f(_ k: Int) -> UInt8 { k < end ? cls[k] : 0 }
            @inline(__always) func c(_ k: Int) -> UInt32 { k < end ? cps[k] : 0xFFFF_FFFF }
            var pos = s
            var prev = s
            @inline(__always) func emit(_ e: Int) { if e > prev { out.append(e - prev) }; prev = e }
            while pos < end {
                let cpt = cps[pos]
                if cpt == 0x27 && pos + 1 < end {  // '
                    let n1 = cps[pos + 1]
                    if n1 == 0x73 || n1 == 0x74 || n1 == 0x6D || n1 == 0x64 {  // s t m d
                        pos += 2; emit(pos); continue
                    }
                    if pos + 2 < end {
                        let n2 = cps[pos + 2]
                        if (n1 == 0x72 && n2 == 0x65) || (n1 == 0x76 && n2 == 0x65) || (n1 == 0x6C && n2 == 0x6C) {
                            pos += 3; emit(pos); continue
                        }
                    }
                }
                var f2 = cpt == 0x20 ? f(pos + 1) : cls[pos]
                let L = CodepointClass.letter, N = CodepointClass.number, W = CodepointClass.whitespace
                if f2 & L != 0 {
                    if cpt == 0x20 { pos += 1 }
                    while f2 & L != 0 { pos += 1; f2 = f(pos) }
                    emit(pos); continue
                }
                if f2 & N != 0 {
                    if cpt == 0x20 { pos += 1 }
                    while f2 & N != 0 { pos += 1; f2 = f(pos) }
                    emit(pos); continue
                }
                if f2 & (W | L | N) == 0 && f2 != 0 {
                    if cpt == 0x20 { pos += 1 }
                    while f2 & (W | L | N) == 0 && f2 != 0 { pos += 1; f2 = f(pos) }
                    emit(pos); continue
                }
                var nws = 0
                while f(pos + nws) & W != 0 { nws += 1 }
                if nws > 1 && c(pos + nws) != 0xFFFF_FFFF {  // \s+(?!\S)
                    pos += nws - 1; emit(pos); continue
                }
                if nws > 0 { pos += nws; emit(pos); continue }
                pos += 1; emit(pos)
            }
            s = end
        }
        return out
    }

    /// Llama 3's regex, scanned as llama.cpp's unicode_regex_split_custom_llama3 does:
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// With `maxDigits` 1 it is Qwen2's regex (`\p{N}` instead of `\p{N}{1,3}`).
    func llama3(_ segs: [Int], maxDigits: Int) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(segs.count + count / 3)
        var s = 0
        let L = CodepointClass.letter, N = CodepointClass.number, W = CodepointClass.whitespace
        for len in segs {
            let end = s + len
            @inline(__always) func f(_ k: Int) -> UInt8 { k < end ? cls[k] : 0 }
            @inline(__always) func c(_ k: Int) -> UInt32 { k < end ? cps[k] : 0xFFFF_FFFF }
            @inline(__always) func lower(_ x: UInt32) -> UInt32 { (x >= 0x41 && x <= 0x5A) ? x + 32 : x }
            var pos = s
            var prev = s
            @inline(__always) func emit(_ e: Int) { if e > prev { out.append(e - prev) }; prev = e }
            while pos < end {
                let cpt = cps[pos]
                let fl = cls[pos]
                if cpt == 0x27 && pos + 1 < end {
                    let n1 = lower(cps[pos + 1])
                    if n1 == 0x73 || n1 == 0x74 || n1 == 0x6D || n1 == 0x64 {
                        pos += 2; emit(pos); continue
                    }
                    if pos + 2 < end {
                        let n2 = lower(cps[pos + 2])
                        if (n1 == 0x72 && n2 == 0x65) || (n1 == 0x76 && n2 == 0x65) || (n1 == 0x6C && n2 == 0x6C) {
                            pos += 3; emit(pos); continue
                        }
                    }
                }
                // [^\r\n\p{L}\p{N}]?\p{L}+
                if !(cpt == 0x0D || cpt == 0x0A || fl & N != 0) {
                    if fl & L != 0 || f(pos + 1) & L != 0 {
                        pos += 1
                        while f(pos) & L != 0 { pos += 1 }
                        emit(pos); continue
                    }
                }
                // \p{N}{1,3}
                if fl & N != 0 {
                    var ini = pos
                    while f(pos) & N != 0 {
                        pos += 1
                        if pos - ini >= maxDigits { emit(pos); ini = pos }
                    }
                    emit(pos); continue
                }
                //  ?[^\s\p{L}\p{N}]+[\r\n]*
                var f2 = cpt == 0x20 ? f(pos + 1) : fl
                if f2 & (W | L | N) == 0 && fl != 0 {
                    if cpt == 0x20 { pos += 1 }
                    while f2 & (W | L | N) == 0 && f2 != 0 { pos += 1; f2 = f(pos) }
                    while c(pos) == 0x0D || c(pos) == 0x0A { pos += 1 }
                    emit(pos); continue
                }
                var nws = 0
                var lastNL = 0
                while f(pos + nws) & W != 0 {
                    let c2 = cps[pos + nws]
                    if c2 == 0x0D || c2 == 0x0A { lastNL = pos + nws + 1 }
                    nws += 1
                }
                if lastNL > 0 { pos = lastNL; emit(pos); continue }  // \s*[\r\n]+
                if nws > 1 && c(pos + nws) != 0xFFFF_FFFF { pos += nws - 1; emit(pos); continue }
                if nws > 0 { pos += nws; emit(pos); continue }
                pos += 1; emit(pos)
            }
            s = end
        }
        return out
    }
}

/// The literal character classes of DeepSeek LLM's pre-tokenizer regexes (llama-vocab.cpp,
/// LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_LLM), parsed from their regex class text into codepoint ranges.
enum DeepSeekClasses {
    struct RangeSet: Sendable {
        let starts: [UInt32]
        /// Largest end among ranges 0...k, so overlapping ranges (`ࠀ-一`, `一-龥`) need no merging.
        let maxEnds: [UInt32]
        init(_ cls: String) {
            let s = Array(cls.unicodeScalars).map { $0.value }
            var r: [(UInt32, UInt32)] = []
            var i = 0
            while i < s.count {
                if i + 2 < s.count && s[i + 1] == 0x2D {  // a-b
                    r.append((s[i], s[i + 2])); i += 3
                } else {
                    r.append((s[i], s[i])); i += 1
                }
            }
            r.sort { $0.0 < $1.0 }
            starts = r.map { $0.0 }
            var m: [UInt32] = []
            var best: UInt32 = 0
            for x in r { best = max(best, x.1); m.append(best) }
            maxEnds = m
        }
        @inline(__always) func contains(_ c: UInt32) -> Bool {
            var lo = 0, hi = starts.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if starts[mid] <= c { lo = mid + 1 } else { hi = mid }
            }
            return lo > 0 && maxEnds[lo - 1] >= c
        }
    }

    static let letters = RangeSet("A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u{1F7D}ᾀ-ᾴᾶ-ᾼ\u{1FBE}ῂ-ῄῆ-ῌῐ-\u{1FD3}ῖ-\u{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u{2126}ℨ\u{212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃")
    static let punctuation = RangeSet("!-/:-~！-／：-～‘-‟　-。")
    static let cjk = RangeSet("一-龥ࠀ-一가-퟿")
}
