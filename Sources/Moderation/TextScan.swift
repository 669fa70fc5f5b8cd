import Foundation

/// Byte-level helpers for the detectors: they work on a text's UTF-8 bytes (ASCII decides
/// every pattern they look for; other bytes only ever end a token).
struct ScanText {
    let bytes: [UInt8]
    /// ASCII-lowercased copy, for case-insensitive context words.
    let lower: [UInt8]
    init(_ s: String) {
        bytes = Array(s.utf8)
        lower = bytes.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }
    }
    var count: Int { bytes.count }
    subscript(i: Int) -> UInt8 { bytes[i] }
    /// The byte at `i`, or 0 outside the text (so boundary checks need no range test).
    @inline(__always) func at(_ i: Int) -> UInt8 { i >= 0 && i < bytes.count ? bytes[i] : 0 }

    /// True when `word` (lowercase ASCII) occurs in lower[from..<to].
    func contains(_ word: [UInt8], from: Int, to: Int) -> Bool {
        let lo = max(0, from), hi = min(count, to)
        guard hi - lo >= word.count, let first = word.first else { return false }
        var i = lo
        while i <= hi - word.count {
            if lower[i] == first {
                var j = 1
                while j < word.count && lower[i + j] == word[j] { j += 1 }
                if j == word.count { return true }
            }
            i += 1
        }
        return false
    }

    /// Any of `words` within `window` bytes before `pos`.
    func contextBefore(_ pos: Int, window: Int, _ words: [[UInt8]]) -> Bool {
        words.contains { contains($0, from: pos - window, to: pos) }
    }

    /// Occurrences of `needle` (exact bytes) in the text.
    func occurrences(of needle: [UInt8], caseInsensitive: Bool = false) -> [Int] {
        let hay = caseInsensitive ? lower : bytes
        guard let first = needle.first, needle.count <= hay.count else { return [] }
        var out: [Int] = []
        var i = 0
        let last = hay.count - needle.count
        while i <= last {
            if hay[i] == first {
                var j = 1
                while j < needle.count && hay[i + j] == needle[j] { j += 1 }
                if j == needle.count { out.append(i) }
            }
            i += 1
        }
        return out
    }
}

@inline(__always) func isDigit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }
@inline(__always) func isUpper(_ b: UInt8) -> Bool { b >= 65 && b <= 90 }
@inline(__always) func isLower(_ b: UInt8) -> Bool { b >= 97 && b <= 122 }
@inline(__always) func isAlpha(_ b: UInt8) -> Bool { isUpper(b) || isLower(b) }
@inline(__always) func isAlnum(_ b: UInt8) -> Bool { isDigit(b) || isAlpha(b) }
@inline(__always) func isHex(_ b: UInt8) -> Bool { isDigit(b) || (b >= 65 && b <= 70) || (b >= 97 && b <= 102) }
@inline(__always) func isSpace(_ b: UInt8) -> Bool { b == 32 || b == 9 || b == 10 || b == 13 }

extension Array where Element == UInt8 {
    init(ascii s: StaticString) { self = Array(UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)) }
}

func bytesOf(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Distinct byte values in a slice: placeholders ("XXXX…", "xxxx…") have very few.
func distinctCount(_ b: ArraySlice<UInt8>) -> Int {
    var seen = [Bool](repeating: false, count: 256)
    var n = 0
    for x in b where !seen[Int(x)] { seen[Int(x)] = true; n += 1 }
    return n
}

/// A raw detection: a byte range and a score (1 for validated matches).
struct RawMatch: Equatable {
    var start: Int
    var end: Int
    var score: Double = 1
}
