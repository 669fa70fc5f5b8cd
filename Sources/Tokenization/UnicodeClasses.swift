/// Codepoint classes as llama.cpp's unicode.cpp sees them (its table comes from Python's `regex`
/// module: `\p{N}`, `\p{L}`, `\p{M}`, `\p{P}`, `\p{S}`, `\p{Z}`, `\p{C}` and `\s`). We derive the
/// same classes from Swift's Unicode general categories and the White_Space property.
enum CodepointClass {
    static let number: UInt8 = 1
    static let letter: UInt8 = 2
    static let whitespace: UInt8 = 4
    static let mark: UInt8 = 8
    static let punctuation: UInt8 = 16
    static let symbol: UInt8 = 32
    static let separator: UInt8 = 64
    /// \p{C}: control, format, surrogate, private use and unassigned codepoints.
    static let other: UInt8 = 128

    /// Table for the first three planes (where nearly all text lives); computed once, ~20 ms.
    static let tableLimit: UInt32 = 0x30000
    static let table: [UInt8] = {
        var t = [UInt8](repeating: 0, count: Int(tableLimit))
        for cp in 0..<tableLimit { t[Int(cp)] = compute(cp) }
        return t
    }()

    @inline(__always)
    static func of(_ cp: UInt32) -> UInt8 {
        cp < tableLimit ? table[Int(cp)] : compute(cp)
    }

    static func compute(_ cp: UInt32) -> UInt8 {
        guard let s = Unicode.Scalar(cp) else { return other }  // surrogates
        let p = s.properties
        var f: UInt8
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            f = letter
        case .nonspacingMark, .spacingMark, .enclosingMark:
            f = mark
        case .decimalNumber, .letterNumber, .otherNumber:
            f = number
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            f = punctuation
        case .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            f = symbol
        case .spaceSeparator, .lineSeparator, .paragraphSeparator:
            f = separator
        default:
            f = other
        }
        if p.isWhitespace { f |= whitespace }
        return f
    }
}

/// GPT-2's reversible byte ↔ printable-character mapping (bytes_to_unicode), which byte-level
/// BPE vocabularies are written in: printable Latin-1 bytes map to themselves, the other 68
/// bytes to U+0100 onwards in byte order.
public enum ByteLevel {
    /// The codepoint each byte is written as.
    public static let byteToCodepoint: [UInt32] = {
        var map = [UInt32](repeating: 0, count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                map[b] = UInt32(b)
            } else {
                map[b] = 256 + n
                n += 1
            }
        }
        return map
    }()

    /// UTF-8 of each byte's character (1 or 2 bytes).
    static let byteToUTF8: [[UInt8]] = byteToCodepoint.map { Array(String(Unicode.Scalar($0)!).utf8) }

    /// Byte for codepoints below 0x144 (the largest mapped one), or -1.
    static let codepointToByte: [Int16] = {
        var t = [Int16](repeating: -1, count: 0x144)
        for (b, cp) in byteToCodepoint.enumerated() { t[Int(cp)] = Int16(b) }
        return t
    }()

    /// Text as byte-level BPE vocabularies spell it (e.g. " the" → "Ġthe").
    public static func encode(_ text: String) -> String {
        var s = String.UnicodeScalarView()
        for b in text.utf8 { s.append(Unicode.Scalar(byteToCodepoint[Int(b)])!) }
        return String(s)
    }
}
