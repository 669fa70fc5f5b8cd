// A read-only hash table from UTF-8 byte strings to token ids. WordPiece looks up many
// candidate substrings per word; keying by bytes lets it probe a slice of a reused buffer
// without building a String for every candidate.
struct WordPieceByteTable: Sendable {
    private var bytes: [UInt8] = []
    private var starts: [Int32] = []
    private var lengths: [Int32] = []
    private var ids: [Int32] = []
    private var slots: [Int32] = []  // index into starts/lengths/ids, or -1 for an empty slot
    private var mask = 0
    /// Length in bytes of the longest key: no longer candidate can match.
    private(set) var maxKeyLength = 0

    init(_ entries: [(key: [UInt8], id: Int32)]) {
        var capacity = 16
        while capacity < entries.count * 2 { capacity <<= 1 }
        slots = [Int32](repeating: -1, count: capacity)
        mask = capacity - 1
        for (key, id) in entries {
            insert(key, id: id)
        }
    }

    private mutating func insert(_ key: [UInt8], id: Int32) {
        var slot = key.withUnsafeBufferPointer { Self.hash($0.baseAddress, $0.count) } & mask
        while true {
            let entry = Int(slots[slot])
            if entry < 0 { break }
            if Int(lengths[entry]) == key.count
                && bytes[Int(starts[entry])..<Int(starts[entry]) + key.count].elementsEqual(key) {
                ids[entry] = id  // a repeated key keeps the last id, as a JSON object would
                return
            }
            slot = (slot + 1) & mask
        }
        slots[slot] = Int32(starts.count)
        starts.append(Int32(bytes.count))
        lengths.append(Int32(key.count))
        ids.append(id)
        bytes.append(contentsOf: key)
        maxKeyLength = max(maxKeyLength, key.count)
    }

    @inline(__always)
    private static func hash(_ p: UnsafePointer<UInt8>?, _ count: Int) -> Int {
        // FNV-1a, 64-bit.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        guard let p else { return Int(truncatingIfNeeded: h) }
        for i in 0..<count {
            h = (h ^ UInt64(p[i])) &* 0x0000_0100_0000_01B3
        }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// The id of the key equal to `count` bytes at `p`, or -1.
    @inline(__always)
    func find(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
        if count > maxKeyLength { return -1 }
        var slot = Self.hash(p, count) & mask
        return bytes.withUnsafeBufferPointer { store in
            while true {
                let entry = Int(slots[slot])
                if entry < 0 { return -1 }
                if Int(lengths[entry]) == count {
                    let start = Int(starts[entry])
                    var equal = true
                    for i in 0..<count where store[start + i] != p[i] {
                        equal = false
                        break
                    }
                    if equal { return ids[entry] }
                }
                slot = (slot + 1) & mask
            }
        }
    }
}
