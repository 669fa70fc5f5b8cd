/// Open-addressing map from UInt64 keys to UInt64 values (BPE merge pairs, special-token trie
/// edges). Keys must not be `UInt64.max`, which marks an empty slot.
struct UInt64Map: Sendable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private var mask: Int
    private(set) var count = 0
    private static let empty = UInt64.max

    init(expectedCount: Int) {
        var cap = 16
        while cap < expectedCount * 2 { cap <<= 1 }
        keys = [UInt64](repeating: Self.empty, count: cap)
        values = [UInt64](repeating: 0, count: cap)
        mask = cap - 1
    }

    @inline(__always)
    private static func slot(_ k: UInt64) -> Int {
        var h = k &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 31
        return Int(truncatingIfNeeded: h)
    }

    @inline(__always)
    func get(_ k: UInt64) -> UInt64? {
        var i = Self.slot(k) & mask
        return keys.withUnsafeBufferPointer { ks in
            while true {
                let x = ks[i]
                if x == k { return values[i] }
                if x == Self.empty { return nil }
                i = (i + 1) & mask
            }
        }
    }

    /// Inserts unless the key is present (the first value wins, like std::unordered_map::emplace).
    mutating func insertIfAbsent(_ k: UInt64, _ v: UInt64) {
        if (count + 1) * 2 > keys.count { grow() }
        var i = Self.slot(k) & mask
        while true {
            if keys[i] == k { return }
            if keys[i] == Self.empty {
                keys[i] = k; values[i] = v; count += 1
                return
            }
            i = (i + 1) & mask
        }
    }

    private mutating func grow() {
        let oldK = keys, oldV = values
        keys = [UInt64](repeating: Self.empty, count: oldK.count * 2)
        values = [UInt64](repeating: 0, count: oldK.count * 2)
        mask = keys.count - 1
        count = 0
        for (i, k) in oldK.enumerated() where k != Self.empty { insertIfAbsent(k, oldV[i]) }
    }
}

protocol HeapOrdered {
    /// True when `a` must come out of the heap before `b`.
    static func precedes(_ a: Self, _ b: Self) -> Bool
}

/// Binary heap of work items (BPE and SentencePiece bigrams).
struct Heap<Element: HeapOrdered> {
    private(set) var items: [Element] = []

    init() {}

    var isEmpty: Bool { items.isEmpty }

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if !Element.precedes(items[i], items[p]) { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && Element.precedes(items[l], items[m]) { m = l }
                if r < n && Element.precedes(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

/// Length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence which
/// could still be completed by more bytes.
func completeUTF8PrefixLength(_ bytes: [UInt8]) -> Int {
    let n = bytes.count
    var back = 1
    while back <= min(3, n) {
        let b = bytes[n - back]
        if b & 0xC0 != 0x80 {  // a lead (or ASCII) byte
            let need: Int
            if b < 0x80 { need = 1 } else if b >= 0xF0 && b < 0xF8 { need = 4 } else if b >= 0xE0 { need = 3 } else if b >= 0xC0 { need = 2 } else { need = 1 }
            return need > back ? n - back : n
        }
        back += 1
    }
    return n
}
