/// Byte trie over the special tokens' texts, to find every occurrence in one pass.
struct SpecialTokenTrie: Sendable {
    /// (node << 8 | byte) → child node.
    let edges: UInt64Map
    /// Index into `specials` (its priority) of the token ending at each node, or -1.
    let terminal: [Int32]
    /// Whether any special token starts with this byte (skips most positions at once).
    let firstByte: [Bool]

    init(specials: [Int32], table: ByteStringTable) {
        var edges = UInt64Map(expectedCount: 1024)
        var terminal: [Int32] = [-1]
        var first = [Bool](repeating: false, count: 256)
        var nodes: [UInt64: Int32] = [:]
        for (rank, id) in specials.enumerated() {
            let bytes = table.bytes(of: Int(id))
            guard let b0 = bytes.first else { continue }
            first[Int(b0)] = true
            var node: Int32 = 0
            for b in bytes {
                let key = UInt64(node) << 8 | UInt64(b)
                if let c = nodes[key] {
                    node = c
                } else {
                    let c = Int32(terminal.count)
                    terminal.append(-1)
                    nodes[key] = c
                    edges.insertIfAbsent(key, UInt64(c))
                    node = c
                }
            }
            if terminal[Int(node)] < 0 { terminal[Int(node)] = Int32(rank) }
        }
        self.edges = edges
        self.terminal = terminal
        self.firstByte = first
    }
}

/// A piece of the input: raw text to tokenize, or a special token split out of it.
enum Fragment {
    case text(Range<Int>)
    case token(Int32)
}

struct BPEBigram: HeapOrdered {
    var rank: Int32
    var left: Int32
    var right: Int32
    var leftLength: Int32
    var rightLength: Int32
    // Lowest rank first; among equal ranks the leftmost (llm_bigram_bpe::comparator).
    @inline(__always) static func precedes(_ a: Self, _ b: Self) -> Bool {
        a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
    }
}

struct SPMBigram: HeapOrdered {
    var score: Float
    var left: Int32
    var right: Int32
    var size: Int32
    // Highest score first; among equal scores the leftmost (llm_bigram_spm::comparator).
    @inline(__always) static func precedes(_ a: Self, _ b: Self) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }
}

extension Tokenizer {
    /// Token ids of `text`.
    ///
    /// - Parameters:
    ///   - addBOS: nil adds BOS (and EOS) as the model's metadata says; true always adds BOS (EOS
    ///     as the model says); false adds neither.
    ///   - parseSpecial: also recognise control tokens written in the text (e.g. `<|im_start|>`).
    ///     User-defined tokens are always recognised, as in llama.cpp.
    public func encode(_ text: String, addBOS: Bool? = nil, parseSpecial: Bool = false) -> [Int32] {
        var utf8 = Array(text.utf8)
        let wantBOS = addBOS ?? addsBOS
        let wantEOS = addBOS != false && addsEOS
        var out: [Int32] = []
        out.reserveCapacity(utf8.count / 3 + 2)
        utf8.withUnsafeMutableBufferPointer { buf in
            let bytes = UnsafeBufferPointer(buf)
            let fragments = partition(bytes, parseSpecial: parseSpecial)
            if wantBOS, let b = bosID { out.append(b) }
            switch model {
            case .bytePairEncoding:
                var scratch = BPEScratch()
                for f in fragments {
                    switch f {
                    case let .token(t): out.append(t)
                    case let .text(r): encodeBPE(UnsafeBufferPointer(rebasing: bytes[r]), &scratch, into: &out)
                    }
                }
            case .sentencePiece:
                var prevSpecial = true
                for f in fragments {
                    switch f {
                    case let .token(t):
                        out.append(t)
                        prevSpecial = true
                    case let .text(r):
                        // Escape spaces as ▁ (and prefix one where SentencePiece would).
                        var escaped: [UInt8] = []
                        escaped.reserveCapacity(r.count + r.count / 2 + 3)
                        if addsSpacePrefix && prevSpecial { escaped += [0xE2, 0x96, 0x81] }
                        for i in r {
                            let b = bytes[i]
                            if b == 0x20 { escaped += [0xE2, 0x96, 0x81] } else { escaped.append(b) }
                        }
                        escaped.withUnsafeBufferPointer { encodeSPM($0, into: &out) }
                        prevSpecial = false
                    }
                }
            }
            if wantEOS, let e = eosID { out.append(e) }
        }
        return out
    }

    /// Splits special tokens out of the text, as llama.cpp's tokenizer_st_partition does: tokens
    /// are taken longest first, each at its leftmost non-overlapping occurrences within the text
    /// not yet claimed. We find all occurrences with a trie and replay that order.
    func partition(_ bytes: UnsafeBufferPointer<UInt8>, parseSpecial: Bool) -> [Fragment] {
        let n = bytes.count
        if n == 0 { return [] }
        struct Hit { var rank: Int32; var start: Int; var length: Int }
        var hits: [Hit] = []
        let trie = specialTrie
        for i in 0..<n where trie.firstByte[Int(bytes[i])] {
            var node: UInt64 = 0
            var k = i
            while k < n, let c = trie.edges.get(node << 8 | UInt64(bytes[k])) {
                node = c
                k += 1
                let rank = trie.terminal[Int(node)]
                if rank >= 0 {
                    let id = specials[Int(rank)]
                    // Without special parsing, only user-defined tokens are split out.
                    if parseSpecial || attrs[Int(id)] & (TokenAttr.control | TokenAttr.unknown) == 0 {
                        hits.append(Hit(rank: rank, start: i, length: k - i))
                    }
                }
            }
        }
        if hits.isEmpty { return [.text(0 ..< n)] }
        hits.sort { $0.rank != $1.rank ? $0.rank < $1.rank : $0.start < $1.start }
        var claimed = [Bool](repeating: false, count: n)
        var accepted: [Hit] = []
        for h in hits {
            var free = true
            for j in h.start ..< h.start + h.length where claimed[j] { free = false; break }
            if !free { continue }
            for j in h.start ..< h.start + h.length { claimed[j] = true }
            accepted.append(h)
        }
        accepted.sort { $0.start < $1.start }
        var out: [Fragment] = []
        var pos = 0
        for h in accepted {
            if h.start > pos { out.append(.text(pos ..< h.start)) }
            out.append(.token(specials[Int(h.rank)]))
            pos = h.start + h.length
        }
        if pos < n { out.append(.text(pos ..< n)) }
        return out
    }

    // MARK: Byte-level BPE (llama.cpp's llm_tokenizer_bpe_session)

    struct BPEScratch {
        var ids: [Int32] = []
        var lengths: [Int32] = []
        var prev: [Int32] = []
        var next: [Int32] = []
        var heap = Heap<BPEBigram>()
        var encoded: [UInt8] = []
    }

    func encodeBPE(_ text: UnsafeBufferPointer<UInt8>, _ s: inout BPEScratch, into out: inout [Int32]) {
        guard let pre = preTokenizer else { return }
        for r in pre.wordByteRanges(text) {
            encodeWord(UnsafeBufferPointer(rebasing: text[r]), &s, into: &out)
        }
    }

    @inline(__always)
    private func bigram(_ s: inout BPEScratch, _ l: Int32, _ r: Int32) {
        if l < 0 || r < 0 { return }
        let key = UInt64(UInt32(bitPattern: s.ids[Int(l)])) << 32 | UInt64(UInt32(bitPattern: s.ids[Int(r)]))
        guard let v = merges.get(key) else { return }
        s.heap.push(BPEBigram(rank: Int32(truncatingIfNeeded: v >> 32), left: l, right: r,
                              leftLength: s.lengths[Int(l)], rightLength: s.lengths[Int(r)]))
    }

    func encodeWord(_ w: UnsafeBufferPointer<UInt8>, _ s: inout BPEScratch, into out: inout [Int32]) {
        let n = w.count
        if n == 0 { return }
        if ignoresMerges {
            s.encoded.removeAll(keepingCapacity: true)
            for b in w { s.encoded += ByteLevel.byteToUTF8[Int(b)] }
            let t = table.lookup(s.encoded)
            if t >= 0 { out.append(t); return }
        }
        if n == 1 {
            emit(byteSymbol[Int(w[0])], into: &out)
            return
        }
        s.ids.removeAll(keepingCapacity: true)
        s.lengths.removeAll(keepingCapacity: true)
        s.prev.removeAll(keepingCapacity: true)
        s.next.removeAll(keepingCapacity: true)
        s.heap.removeAll()
        for i in 0..<n {
            s.ids.append(byteSymbol[Int(w[i])])
            s.lengths.append(1)
            s.prev.append(Int32(i - 1))
            s.next.append(i + 1 < n ? Int32(i + 1) : -1)
        }
        for i in 1..<n { bigram(&s, Int32(i - 1), Int32(i)) }
        while let b = s.heap.pop() {
            let l = Int(b.left), r = Int(b.right)
            // Skip bigrams made stale by an earlier merge.
            if s.lengths[l] == 0 || s.lengths[r] == 0 || s.lengths[l] != b.leftLength || s.lengths[r] != b.rightLength { continue }
            let key = UInt64(UInt32(bitPattern: s.ids[l])) << 32 | UInt64(UInt32(bitPattern: s.ids[r]))
            guard let v = merges.get(key) else { continue }
            s.ids[l] = Int32(truncatingIfNeeded: v & 0xFFFF_FFFF)
            s.lengths[l] += s.lengths[r]
            s.lengths[r] = 0
            let nx = s.next[r]
            s.next[l] = nx
            if nx >= 0 { s.prev[Int(nx)] = Int32(l) }
            bigram(&s, s.prev[l], Int32(l))
            bigram(&s, Int32(l), nx)
        }
        var i: Int32 = 0
        while i >= 0 {
            emit(s.ids[Int(i)], into: &out)
            i = s.next[Int(i)]
        }
    }

    /// A finished symbol: its token, or — if its text is not a token — the one-byte tokens of
    /// its text's bytes, as llama.cpp falls back.
    @inline(__always)
    private func emit(_ sym: Int32, into out: inout [Int32]) {
        if sym >= 0 && Int(sym) < vocabSize { out.append(sym); return }
        guard sym >= 0 else { return }
        for b in extraTexts[Int(sym) - vocabSize] {
            let t = table.lookup([b])
            if t >= 0 { out.append(t) }
        }
    }

    // MARK: SentencePiece (llama.cpp's llm_tokenizer_spm_session)

    func encodeSPM(_ text: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        let n = text.count
        guard n > 0, let base = text.baseAddress else { return }
        // One symbol per UTF-8 character.
        var start: [Int32] = [], len: [Int32] = [], prev: [Int32] = [], next: [Int32] = []
        start.reserveCapacity(n); len.reserveCapacity(n); prev.reserveCapacity(n); next.reserveCapacity(n)
        var off = 0
        var idx: Int32 = 0
        while off < n {
            let b = text[off]
            let cl = b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4
            let l = min(cl, n - off)
            start.append(Int32(off)); len.append(Int32(l))
            prev.append(idx - 1)
            off += l
            next.append(off == n ? -1 : idx + 1)
            idx += 1
        }
        var heap = Heap<SPMBigram>()
        func tryAdd(_ l: Int32, _ r: Int32) {
            if l < 0 || r < 0 { return }
            let size = len[Int(l)] + len[Int(r)]
            let t = table.lookup(base + Int(start[Int(l)]), Int(size))
            if t < 0 { return }
            heap.push(SPMBigram(score: scores[Int(t)], left: l, right: r, size: size))
        }
        for i in 1..<Int(idx) { tryAdd(Int32(i - 1), Int32(i)) }
        while let bg = heap.pop() {
            let l = Int(bg.left), r = Int(bg.right)
            if len[l] == 0 || len[r] == 0 || len[l] + len[r] != bg.size { continue }
            len[l] += len[r]
            len[r] = 0
            let nx = next[r]
            next[l] = nx
            if nx >= 0 { prev[Int(nx)] = Int32(l) }
            tryAdd(prev[l], Int32(l))
            tryAdd(Int32(l), nx)
        }
        var i: Int32 = 0
        while i >= 0 {
            let s = Int(start[Int(i)]), l = Int(len[Int(i)])
            let t = table.lookup(base + s, l)
            if t >= 0 {
                out.append(t)
            } else {
                // Byte fallback: <0xXX> per byte.
                for k in s ..< s + l where byteToken[Int(text[k])] >= 0 { out.append(byteToken[Int(text[k])]) }
            }
            i = next[Int(i)]
        }
    }
}
