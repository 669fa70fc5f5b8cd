/// Open-addressing hash table from byte strings to dense ids (0, 1, 2, … in insertion order).
///
/// Token lookups happen for every candidate merge in BPE and SentencePiece, so they must not
/// allocate: callers pass a pointer and a length into their own buffers. Strings are stored
/// back to back in one array, which also serves `bytes(of:)`.
struct ByteStringTable: Sendable {
    private(set) var storage: [UInt8] = []
    /// `offsets[i] ..< offsets[i + 1]` is string i in `storage`.
    private(set) var offsets: [Int] = [0]
    /// Each slot: hash tag (high 32 bits) and id + 1 (low 32 bits); 0 is empty. The tag lets a
    /// probe skip non-matching entries without touching `offsets` and `storage`.
    private var slots: [UInt64]
    private var mask: Int

    var count: Int { offsets.count - 1 }

    init(expectedCount: Int, expectedBytes: Int = 0) {
        var cap = 16
        while cap < expectedCount * 2 { cap <<= 1 }
        slots = [UInt64](repeating: 0, count: cap)
        mask = cap - 1
        storage.reserveCapacity(expectedBytes)
        offsets.reserveCapacity(expectedCount + 1)
    }

    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
        // FNV-1a, 64-bit, with a final mix so low bits depend on every byte.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 0..<n {
            h = (h ^ UInt64(p[i])) &* 0x0000_0100_0000_01b3
        }
        h ^= h >> 29
        h = h &* 0xbf58_476d_1ce4_e5b9
        h ^= h >> 32
        return Int(truncatingIfNeeded: h)
    }

    /// The id of the string at `p ..< p + n`, or -1.
    @inline(__always)
    func lookup(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32 {
        let h = Self.hash(p, n)
        let tag = UInt64(truncatingIfNeeded: h) & 0xFFFF_FFFF_0000_0000
        var i = h & mask
        return storage.withUnsafeBufferPointer { s in
            offsets.withUnsafeBufferPointer { o in
                slots.withUnsafeBufferPointer { sl in
                    while true {
                        let e = sl[i]
                        if e == 0 { return -1 }
                        if e & 0xFFFF_FFFF_0000_0000 == tag {
                            let id = Int(e & 0xFFFF_FFFF) - 1
                            let a = o[id], b = o[id + 1]
                            if b - a == n && (n == 0 || memcmpBytes(s.baseAddress! + a, p, n)) { return Int32(id) }
                        }
                        i = (i + 1) & mask
                    }
                }
            }
        }
    }

    func lookup(_ bytes: [UInt8]) -> Int32 {
        bytes.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return lookupEmpty() }
            return lookup(base, b.count)
        }
    }

    private func lookupEmpty() -> Int32 {
        var z: UInt8 = 0
        return withUnsafePointer(to: &z) { lookup($0, 0) }
    }

    /// Adds `bytes` as the next id, or returns the existing id (second value false) if present.
    @discardableResult
    mutating func insert(_ bytes: UnsafeBufferPointer<UInt8>) -> (id: Int32, inserted: Bool) {
        var z: UInt8 = 0
        let existing: Int32 = bytes.baseAddress.map { lookup($0, bytes.count) }
            ?? withUnsafePointer(to: &z) { lookup($0, 0) }
        if existing >= 0 { return (existing, false) }
        if (count + 1) * 2 > slots.count { grow() }
        let id = Int32(count)
        storage.append(contentsOf: bytes)
        offsets.append(storage.count)
        place(id)
        return (id, true)
    }

    @discardableResult
    mutating func insert(_ bytes: [UInt8]) -> (id: Int32, inserted: Bool) {
        bytes.withUnsafeBufferPointer { insert($0) }
    }

    /// Appends a string without making it findable (used for a duplicate vocabulary entry, whose
    /// id must exist but whose text already maps to the earlier id, as in llama.cpp).
    mutating func appendUnindexed(_ bytes: UnsafeBufferPointer<UInt8>) {
        storage.append(contentsOf: bytes)
        offsets.append(storage.count)
    }

    private mutating func place(_ id: Int32) {
        let a = offsets[Int(id)], n = offsets[Int(id) + 1] - a
        let h: Int = storage.withUnsafeBufferPointer { s in
            var z: UInt8 = 0
            if n == 0 { return withUnsafePointer(to: &z) { Self.hash($0, 0) } }
            return Self.hash(s.baseAddress! + a, n)
        }
        var i = h & mask
        while slots[i] != 0 { i = (i + 1) & mask }
        slots[i] = (UInt64(truncatingIfNeeded: h) & 0xFFFF_FFFF_0000_0000) | UInt64(id + 1)
    }

    private mutating func grow() {
        let old = slots
        slots = [UInt64](repeating: 0, count: old.count * 2)
        mask = slots.count - 1
        for e in old where e != 0 { place(Int32(e & 0xFFFF_FFFF) - 1) }
    }

    func bytes(of id: Int) -> ArraySlice<UInt8> {
        storage[offsets[id] ..< offsets[id + 1]]
    }

    func length(of id: Int) -> Int { offsets[id + 1] - offsets[id] }
}

@inline(__always)
func memcmpBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    var i = 0
    while i + 8 <= n {
        if UnsafeRawPointer(a + i).loadUnaligned(as: UInt64.self) != UnsafeRawPointer(b + i).loadUnaligned(as: UInt64.self) { return false }
        i += 8
    }
    while i < n {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}
