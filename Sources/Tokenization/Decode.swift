extension Tokenizer {
    /// Bytes a token decodes to (llama.cpp's token_to_piece). With `special` false, control and
    /// unknown tokens decode to nothing.
    func pieceBytes(_ id: Int32, special: Bool) -> [UInt8] {
        guard valid(id) else { return [] }
        let a = attrs[Int(id)]
        if !special && a & (TokenAttr.unknown | TokenAttr.control) != 0 { return [] }
        let text = table.bytes(of: Int(id))
        if a & (TokenAttr.unknown | TokenAttr.control | TokenAttr.userDefined) != 0 { return Array(text) }
        if a & TokenAttr.normal != 0 {
            switch model {
            case .sentencePiece:
                return Self.unescapeSpaces(text)
            case .bytePairEncoding:
                return Self.byteLevelDecode(text)
            }
        }
        if a & TokenAttr.byte != 0 {
            // "<0xXX>"
            if text.count == 6, let hi = Self.hexValue(text[text.startIndex + 3]), let lo = Self.hexValue(text[text.startIndex + 4]) {
                return [hi << 4 | lo]
            }
            return []
        }
        return []
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    /// "▁" → " ".
    static func unescapeSpaces(_ t: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(t.count)
        var i = t.startIndex
        while i < t.endIndex {
            if t[i] == 0xE2 && i + 2 < t.endIndex && t[i + 1] == 0x96 && t[i + 2] == 0x81 {
                out.append(0x20); i += 3
            } else {
                out.append(t[i]); i += 1
            }
        }
        return out
    }

    /// Byte-level characters back to bytes (llama_decode_text); a character outside the
    /// mapping is written out as llama.cpp does, "[UNK_BYTE_0x…]".
    static func byteLevelDecode(_ t: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(t.count)
        for s in String(decoding: t, as: UTF8.self).unicodeScalars {
            let v = s.value
            if v < 0x144, ByteLevel.codepointToByte[Int(v)] >= 0 {
                out.append(UInt8(ByteLevel.codepointToByte[Int(v)]))
            } else {
                let hex = Array(String(s).utf8).map { b -> String in
                    let h = String(b, radix: 16)
                    return h.count == 1 ? "0" + h : h
                }.joined()
                out += Array("[UNK_BYTE_0x\(hex)\(String(decoding: t, as: UTF8.self))]".utf8)
            }
        }
        return out
    }

    /// Bytes of a token's text when decoded (special tokens included). A byte token is one byte,
    /// which may be part of a multi-byte character.
    public func tokenBytes(_ id: Int32) -> [UInt8] { pieceBytes(id, special: true) }

    /// A token's decoded text (special tokens included); incomplete UTF-8 shows as U+FFFD.
    public func piece(_ id: Int32) -> String {
        String(decoding: pieceBytes(id, special: true), as: UTF8.self)
    }

    /// Text of token ids (llama.cpp's detokenize with remove_special = false).
    ///
    /// - Parameter skipSpecial: leave out control and unknown tokens (BOS, EOS, chat markers).
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
        String(decoding: decodeBytes(ids, skipSpecial: skipSpecial), as: UTF8.self)
    }

    public func decodeBytes(_ ids: [Int32], skipSpecial: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        // SentencePiece's prefix space comes off the first token's text.
        var removeSpace = addsSpacePrefix
        for id in ids {
            var p = pieceBytes(id, special: !skipSpecial)
            if removeSpace, p.first == 0x20 { p.removeFirst() }
            removeSpace = false
            out += p
        }
        if cleansSpaces { out = Self.cleanUpSpaces(out) }
        return out
    }

    /// clean_up_tokenization_spaces, as llama.cpp's detokenize applies it: " ?" " !" " ." " ,"
    /// lose the space, " ' " loses both, " 's" " 'm" " 're" " 've" lose the space.
    static func cleanUpSpaces(_ t: [UInt8]) -> [UInt8] {
        if t.count < 2 { return t }
        var a: [UInt8] = [t[0]]
        for i in 1..<t.count {
            let x = t[i]
            if t[i - 1] == 0x20 && (x == 0x3F || x == 0x21 || x == 0x2E || x == 0x2C) { a.removeLast() }
            a.append(x)
        }
        var b: [UInt8] = [a[0]]
        var i = 1
        while i < a.count {
            let x = a[i]
            if x == 0x27 && i + 1 < a.count && a[i - 1] == 0x20 && a[i + 1] == 0x20 {
                b.removeLast()
                b.append(x)
                i += 2
                continue
            }
            b.append(x)
            i += 1
        }
        if b.count < 2 { return b }
        var c: [UInt8] = [b[0]]
        for i in 1..<b.count {
            let x = b[i]
            if b[i - 1] == 0x20 && x == 0x27 && i + 1 < b.count {
                let x1 = b[i + 1]
                if x1 == 0x73 || x1 == 0x6D {  // 's 'm
                    c.removeLast()
                } else if i + 2 < b.count {
                    let x2 = b[i + 2]
                    if (x1 == 0x72 && x2 == 0x65) || (x1 == 0x76 && x2 == 0x65) { c.removeLast() }  // 're 've
                }
            }
            c.append(x)
        }
        return c
    }
}

/// Turns token ids into text one at a time while generating: returns only whole UTF-8
/// characters, holding back the bytes of a character split across byte tokens until it is
/// complete. Call `flush()` at the end for anything left.
public struct StreamingDecoder: Sendable {
    public let tokenizer: Tokenizer
    public let skipSpecial: Bool
    private var pending: [UInt8] = []
    private var first = true

    public init(tokenizer: Tokenizer, skipSpecial: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecial = skipSpecial
    }

    /// The text that became complete with this token (often empty for a partial character).
    public mutating func feed(_ id: Int32) -> String {
        var p = tokenizer.pieceBytes(id, special: !skipSpecial)
        if first && tokenizer.addsSpacePrefix && p.first == 0x20 { p.removeFirst() }
        first = false
        pending += p
        let k = completeUTF8PrefixLength(pending)
        if k == 0 { return "" }
        let s = String(decoding: pending[..<k], as: UTF8.self)
        pending.removeFirst(k)
        return s
    }

    /// Whatever is held back (an incomplete character comes out as U+FFFD).
    public mutating func flush() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }
}
