import Foundation

// BERT text normalization and pre-tokenization, ported to match Hugging Face `tokenizers`
// (normalizers/bert.rs, pre_tokenizers/bert.rs) character for character.
//
// One subtlety decides many edge cases: `tokenizers` classifies characters (control, punctuation,
// non-spacing mark) with the `unicode_categories` crate, whose tables are Unicode 8.0. A character
// assigned after 8.0 is therefore neither removed, nor split off as punctuation, nor stripped as
// an accent, even when today's Unicode says it should be. `unicode8Category` reproduces that;
// Tests/Fixtures/tokenization/wordpiece-charclasses.json checks it over every Unicode scalar.
// Whitespace and lowercasing use Rust's standard library (current Unicode), as Swift does here.

enum BertCharacters {
    static let control: UInt8 = 1, whitespace: UInt8 = 2, punctuation: UInt8 = 4,
        nonspacingMark: UInt8 = 8, changesWhenLowercased: UInt8 = 16

    /// The classes above for every Basic Multilingual Plane scalar, computed on first use
    /// (about 40 ms): the stdlib's property lookups dominate encoding non-Latin text otherwise.
    static let bmpFlags: [UInt8] = (0..<0x10000).map { v in
        guard let s = Unicode.Scalar(UInt32(v)) else { return 0 }
        return computeFlags(s)
    }

    static func computeFlags(_ s: Unicode.Scalar) -> UInt8 {
        var flags: UInt8 = 0
        let v = s.value
        if v < 0x80 {
            if (v < 0x20 && v != 9 && v != 10 && v != 13) || v == 0x7F { flags |= control }
            if v == 0x20 || (v >= 0x09 && v <= 0x0D) { flags |= whitespace }
            if (v >= 33 && v <= 47) || (v >= 58 && v <= 64) || (v >= 91 && v <= 96) || (v >= 123 && v <= 126) {
                flags |= punctuation
            }
            if v >= 0x41 && v <= 0x5A { flags |= changesWhenLowercased }
            return flags
        }
        switch unicode8Category(s) {
        case .control, .format, .privateUse, .surrogate:
            flags |= control
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            flags |= punctuation
        case .nonspacingMark:
            flags |= nonspacingMark
        default:
            break
        }
        if s.properties.isWhitespace { flags |= whitespace }
        if s.properties.changesWhenLowercased { flags |= changesWhenLowercased }
        return flags
    }

    @inline(__always)
    static func flags(_ s: Unicode.Scalar) -> UInt8 {
        s.value < 0x10000 ? bmpFlags[Int(s.value)] : computeFlags(s)
    }

    /// General category as the Unicode 8.0 tables give it, or nil when the scalar was not yet
    /// assigned in 8.0 (what `unicode_categories` reports as "not any category we know").
    static func unicode8Category(_ s: Unicode.Scalar) -> Unicode.GeneralCategory? {
        switch s.value {
        // Scalars whose category changed after Unicode 8.0; found by comparing every scalar
        // with `tokenizers` (scripts/make-wordpiece-reference writes the comparison data).
        case 0x166D, 0x111C9: return .otherPunctuation  // now So / Mn
        case 0x1734, 0x1171E: return .nonspacingMark  // now Mc
        case 0x1885, 0x1886: return .otherLetter  // now Mn
        case 0xA9BD: return .spacingMark  // now Mn
        default: break
        }
        guard let age = s.properties.age, age.major < 8 || (age.major == 8 && age.minor == 0) else {
            return nil
        }
        return s.properties.generalCategory
    }

    /// `is_control` of normalizers/bert.rs: Cc, Cf, Co (and Cs) except tab, newline, return.
    @inline(__always)
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x80 { return (v < 0x20 && v != 9 && v != 10 && v != 13) || v == 0x7F }
        return flags(s) & control != 0
    }

    /// Rust's `char::is_whitespace` (the White_Space property), which includes \t \n \r.
    @inline(__always)
    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x80 { return v == 0x20 || (v >= 0x09 && v <= 0x0D) }
        return flags(s) & whitespace != 0
    }

    /// `is_bert_punc` of pre_tokenizers/bert.rs: ASCII punctuation or any P* category.
    @inline(__always)
    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x80 {
            return (v >= 33 && v <= 47) || (v >= 58 && v <= 64) || (v >= 91 && v <= 96) || (v >= 123 && v <= 126)
        }
        return flags(s) & punctuation != 0
    }

    /// The CJK blocks that normalizers/bert.rs pads with spaces (not Hangul, Hiragana, Katakana).
    @inline(__always)
    static func isChinese(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    @inline(__always)
    static func isNonspacingMark(_ s: Unicode.Scalar) -> Bool {
        s.value >= 0x300 && flags(s) & nonspacingMark != 0
    }

    /// `unicode-normalization-alignments` (the NFD used by `tokenizers`) predates this Unicode 13
    /// decomposition, so it leaves the scalar whole.
    @inline(__always)
    static func hasNoDecompositionInTokenizers(_ s: Unicode.Scalar) -> Bool {
        s.value == 0x11938
    }
}

/// The `BertNormalizer` of Hugging Face `tokenizers`: optional control-character cleanup,
/// spaces around CJK ideographs, accent stripping (NFD, then drop non-spacing marks) and
/// lowercasing, applied in that order.
public struct BertNormalizer: Sendable, Equatable {
    public var cleanText: Bool
    public var handleChineseChars: Bool
    /// nil follows `lowercase`, as in `tokenizers`.
    public var stripAccents: Bool?
    public var lowercase: Bool

    public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil,
                lowercase: Bool = true) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents
        self.lowercase = lowercase
    }

    public func normalize(_ text: String) -> String {
        var stage = [Unicode.Scalar]()
        var out = [Unicode.Scalar]()
        normalize(text.unicodeScalars, scratch: &stage, into: &out)
        var view = String.UnicodeScalarView()
        view.append(contentsOf: out)
        return String(view)
    }

    /// Normalizes `input` into `out` (cleared first). `scratch` is reused between calls so that
    /// encoding a long text does not allocate per word.
    func normalize<S: Sequence>(_ input: S, scratch stage: inout [Unicode.Scalar],
                                into out: inout [Unicode.Scalar]) where S.Element == Unicode.Scalar {
        out.removeAll(keepingCapacity: true)
        stage.removeAll(keepingCapacity: true)
        let strip = stripAccents ?? lowercase
        // Stage 1: clean text and pad Chinese characters (both work one scalar at a time).
        var sawNonASCII = false
        for s in input {
            let v = s.value
            if v < 0x80 {
                if cleanText {
                    if v == 0 || BertCharacters.isControl(s) { continue }
                    if v >= 0x09 && v <= 0x0D { stage.append(" "); continue }
                }
                stage.append(s)
                continue
            }
            sawNonASCII = true
            if cleanText {
                if v == 0xFFFD || BertCharacters.isControl(s) { continue }
                if BertCharacters.isWhitespace(s) { stage.append(" "); continue }
            }
            if handleChineseChars && BertCharacters.isChinese(s) {
                stage.append(" ")
                stage.append(s)
                stage.append(" ")
            } else {
                stage.append(s)
            }
        }
        if !sawNonASCII {
            // ASCII needs neither NFD nor Unicode case mapping.
            if lowercase {
                out.reserveCapacity(stage.count)
                for s in stage {
                    let v = s.value
                    out.append(v >= 0x41 && v <= 0x5A ? Unicode.Scalar(UInt8(v + 32)) : s)
                }
            } else {
                swap(&stage, &out)
            }
            return
        }
        // Stage 2: strip accents, then stage 3: lowercase. NFD only reorders marks between two
        // starters, and every ASCII scalar is a starter that never decomposes, so decomposing the
        // non-ASCII runs separately gives the same result as decomposing the whole text.
        var i = 0
        let n = stage.count
        while i < n {
            let s = stage[i]
            if s.value < 0x80 || !strip || BertCharacters.hasNoDecompositionInTokenizers(s) {
                appendLowercased(s, to: &out)
                i += 1
                continue
            }
            var j = i + 1
            while j < n && stage[j].value >= 0x80 && !BertCharacters.hasNoDecompositionInTokenizers(stage[j]) {
                j += 1
            }
            var run = String.UnicodeScalarView()
            run.append(contentsOf: stage[i..<j])
            for d in String(run).decomposedStringWithCanonicalMapping.unicodeScalars
            where !BertCharacters.isNonspacingMark(d) {
                appendLowercased(d, to: &out)
            }
            i = j
        }
    }

    /// Rust's `char::to_lowercase`: the context-free per-character mapping (Σ always → σ).
    @inline(__always)
    private func appendLowercased(_ s: Unicode.Scalar, to out: inout [Unicode.Scalar]) {
        guard lowercase else { out.append(s); return }
        let v = s.value
        if v < 0x80 {
            out.append(v >= 0x41 && v <= 0x5A ? Unicode.Scalar(UInt8(v + 32)) : s)
        } else if BertCharacters.flags(s) & BertCharacters.changesWhenLowercased != 0 {
            out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
        } else {
            out.append(s)
        }
    }
}

/// The `BertPreTokenizer` of Hugging Face `tokenizers`: split on whitespace (dropped), then
/// isolate every punctuation character as its own word.
public struct BertPreTokenizer: Sendable {
    public init() {}

    public func split(_ text: String) -> [String] {
        var words = [String]()
        var current = String.UnicodeScalarView()
        let scalars = Array(text.unicodeScalars)
        forEachWord(in: scalars[...]) { range in
            current.removeAll()
            current.append(contentsOf: scalars[range])
            words.append(String(current))
        }
        return words
    }

    /// Calls `body` with the index range of each word of `scalars`, in order.
    @inline(__always)
    func forEachWord(in scalars: ArraySlice<Unicode.Scalar>, _ body: (Range<Int>) -> Void) {
        var start = scalars.startIndex
        var i = start
        let end = scalars.endIndex
        while i < end {
            let s = scalars[i]
            if BertCharacters.isWhitespace(s) {
                if start < i { body(start..<i) }
                start = i + 1
            } else if BertCharacters.isPunctuation(s) {
                if start < i { body(start..<i) }
                body(i..<(i + 1))
                start = i + 1
            }
            i += 1
        }
        if start < end { body(start..<end) }
    }
}
