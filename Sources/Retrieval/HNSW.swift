import Foundation
import Governance
import Kernels

/// Approximate nearest neighbours by a hierarchical navigable small-world graph, after Malkov &
/// Yashunin, "Efficient and robust approximate nearest neighbor search using Hierarchical
/// Navigable Small World graphs" (2016/2018): layers drawn with probability exp(-l/mL), greedy
/// descent through the upper layers, a beam of `efSearch` on layer 0, and neighbours chosen by
/// the paper's heuristic (algorithm 4) so clusters stay connected to each other.
///
/// Similarity is the dot product (vectors are expected L2-normalised, so it is the cosine).
/// The graph is only ever added to; the store rebuilds a collection's index after a deletion
/// rather than keeping tombstones, so an erased document's vector is not left in the file.
public struct HNSWIndex: Sendable {
    public struct Parameters: Sendable, Equatable {
        /// Links per node on the upper layers (2·M on layer 0).
        public var m: Int
        /// Beam width while inserting.
        public var efConstruction: Int
        /// Beam width while searching (at least k is used).
        public var efSearch: Int
        public var seed: UInt64

        public init(m: Int = 16, efConstruction: Int = 100, efSearch: Int = 64, seed: UInt64 = 42) {
            self.m = max(2, min(m, 128))
            self.efConstruction = max(1, efConstruction)
            self.efSearch = max(1, efSearch)
            self.seed = seed
        }
    }

    public let dimension: Int
    public var parameters: Parameters
    /// A caller's tag saved with the file (the store's collection generation), to tell a stale file.
    public var tag: UInt64 = 0
    public private(set) var ids: [Int64] = []
    private var vectors: [Float] = []
    private var levels: [Int32] = []
    /// Layer 0: `maxLinks0` slots per node, counts apart.
    private var links0: [Int32] = []
    private var count0: [Int32] = []
    /// Upper layers per node: upper[node][level - 1] (empty for the many layer-0-only nodes).
    private var upper: [[[Int32]]] = []
    private var entry: Int32 = -1
    private var maxLevel: Int32 = -1
    private var rng: UInt64
    private var visitMark: [UInt32] = []
    private var visitEpoch: UInt32 = 0

    var maxLinks0: Int { 2 * parameters.m }
    public var count: Int { ids.count }

    public init(dimension: Int, parameters: Parameters = Parameters()) {
        self.dimension = dimension
        self.parameters = parameters
        rng = parameters.seed &+ 0x9E37_79B9_7F4A_7C15
    }

    /// Builds an index over a vector set.
    public init(_ set: VectorSet, parameters: Parameters = Parameters(), progress: ((Int) -> Void)? = nil) {
        self.init(dimension: set.dimension, parameters: parameters)
        reserve(set.count)
        set.values.withUnsafeBufferPointer { v in
            for i in 0..<set.count {
                add(id: set.ids[i], vector: UnsafeBufferPointer(rebasing: v[(i * set.dimension)..<((i + 1) * set.dimension)]))
                if let progress, (i + 1) % 10_000 == 0 { progress(i + 1) }
            }
        }
    }

    public mutating func reserve(_ n: Int) {
        ids.reserveCapacity(n); vectors.reserveCapacity(n * dimension); levels.reserveCapacity(n)
        links0.reserveCapacity(n * maxLinks0); count0.reserveCapacity(n); upper.reserveCapacity(n)
    }

    /// Approximate bytes held (vectors and links), for the benchmark.
    public var memoryBytes: Int {
        var b = vectors.count * 4 + ids.count * 8 + levels.count * 4 + links0.count * 4 + count0.count * 4 + upper.count * 24
        for u in upper where !u.isEmpty { b += u.count * (32 + parameters.m * 4) }
        return b
    }

    // MARK: Building

    private mutating func randomLevel() -> Int32 {
        // splitmix64
        rng &+= 0x9E37_79B9_7F4A_7C15
        var z = rng
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        let u = (Double(z >> 11) + 0.5) / Double(1 << 53)
        let mL = 1 / log(Double(parameters.m))
        return Int32(min(16, Int(-log(u) * mL)))
    }

    public mutating func add(id: Int64, vector: [Float]) throws(VectorIndexError) {
        guard vector.count == dimension else { throw .dimensionMismatch(expected: dimension, got: vector.count) }
        vector.withUnsafeBufferPointer { add(id: id, vector: $0) }
    }

    mutating func add(id: Int64, vector: UnsafeBufferPointer<Float>) {
        let node = Int32(ids.count)
        let level = randomLevel()
        ids.append(id)
        vectors.append(contentsOf: vector)
        levels.append(level)
        links0.append(contentsOf: repeatElement(-1, count: maxLinks0))
        count0.append(0)
        upper.append(level > 0 ? Array(repeating: [], count: Int(level)) : [])
        visitMark.append(0)
        guard entry >= 0 else { entry = node; maxLevel = level; return }

        let q = Array(vector)
        var ep = entry
        var epSim = sim(q, ep)
        var l = maxLevel
        while l > level {
            (ep, epSim) = greedy(q, from: ep, sim: epSim, level: l)
            l -= 1
        }
        var eps = [(epSim, ep)]
        l = min(level, maxLevel)
        while l >= 0 {
            let found = searchLayer(q, entries: eps, ef: parameters.efConstruction, level: l)
            let chosen = selectNeighbours(found, limit: parameters.m)
            setLinks(node, level: l, chosen.map(\.1))
            let cap = l == 0 ? maxLinks0 : parameters.m
            for (_, e) in chosen { connect(e, to: node, level: l, cap: cap) }
            eps = found
            l -= 1
        }
        if level > maxLevel { entry = node; maxLevel = level }
    }

    /// Adds `node` to `e`'s links on `level`; a full list is re-chosen by the heuristic.
    private mutating func connect(_ e: Int32, to node: Int32, level: Int32, cap: Int) {
        var current = neighbours(e, level: level)
        if current.count < cap {
            current.append(node)
            setLinks(e, level: level, current)
            return
        }
        let ev = vector(e)
        var cands = current.map { (dot(ev, $0), $0) }
        cands.append((dot(ev, node), node))
        cands.sort { $0.0 > $1.0 }
        setLinks(e, level: level, selectNeighbours(cands, limit: cap, base: e).map(\.1))
    }

    /// The paper's heuristic: take candidates best first, keeping one only if it is closer to the
    /// base than to every one kept so far. `cands` are sorted by similarity to the base, best first.
    private func selectNeighbours(_ cands: [(Float, Int32)], limit: Int, base: Int32? = nil) -> [(Float, Int32)] {
        guard cands.count > limit else { return cands }
        var kept: [(Float, Int32)] = []
        kept.reserveCapacity(limit)
        for c in cands {
            let cv = vector(c.1)
            var good = true
            for r in kept where dot(cv, r.1) > c.0 { good = false; break }
            if good { kept.append(c); if kept.count == limit { break } }
        }
        return kept
    }

    private mutating func setLinks(_ node: Int32, level: Int32, _ list: [Int32]) {
        if level == 0 {
            let base = Int(node) * maxLinks0
            let n = min(list.count, maxLinks0)
            for i in 0..<n { links0[base + i] = list[i] }
            count0[Int(node)] = Int32(n)
        } else {
            upper[Int(node)][Int(level) - 1] = Array(list.prefix(parameters.m))
        }
    }

    private func neighbours(_ node: Int32, level: Int32) -> [Int32] {
        if level == 0 {
            let base = Int(node) * maxLinks0
            return Array(links0[base..<(base + Int(count0[Int(node)]))])
        }
        return upper[Int(node)][Int(level) - 1]
    }

    // MARK: Searching

    /// The `k` nearest ids with their similarities, best first.
    public func search(_ query: [Float], k: Int, efSearch: Int? = nil) throws(VectorIndexError) -> [VectorHit] {
        guard query.count == dimension else { throw .dimensionMismatch(expected: dimension, got: query.count) }
        guard k > 0, entry >= 0 else { return [] }
        var ep = entry
        var epSim = sim(query, ep)
        var l = maxLevel
        while l > 0 {
            (ep, epSim) = greedy(query, from: ep, sim: epSim, level: l)
            l -= 1
        }
        var copy = VisitedSet(count: ids.count)
        let found = searchLayer(query, entries: [(epSim, ep)], ef: max(k, efSearch ?? parameters.efSearch), level: 0, visited: &copy)
        return found.prefix(k).map { VectorHit(id: ids[Int($0.1)], score: $0.0) }
    }

    private func greedy(_ q: [Float], from start: Int32, sim startSim: Float, level: Int32) -> (Int32, Float) {
        var cur = start, best = startSim
        var changed = true
        while changed {
            changed = false
            for n in neighbours(cur, level: level) {
                let s = sim(q, n)
                if s > best { best = s; cur = n; changed = true }
            }
        }
        return (cur, best)
    }

    /// Build-time beam search (reuses the epoch-stamped visit marks).
    private mutating func searchLayer(_ q: [Float], entries: [(Float, Int32)], ef: Int, level: Int32) -> [(Float, Int32)] {
        visitEpoch &+= 1
        if visitEpoch == 0 { for i in visitMark.indices { visitMark[i] = 0 }; visitEpoch = 1 }
        var v = VisitedSet(marks: visitMark, epoch: visitEpoch)
        visitMark = []  // hand the buffer over to avoid a copy
        let r = searchLayer(q, entries: entries, ef: ef, level: level, visited: &v)
        visitMark = v.marks
        return r
    }

    /// Beam search on one layer: the `ef` most similar nodes found, best first.
    private func searchLayer(_ q: [Float], entries: [(Float, Int32)], ef: Int, level: Int32, visited: inout VisitedSet) -> [(Float, Int32)] {
        var candidates = Heap(minFirst: false)  // best first
        var results = Heap(minFirst: true)      // worst kept on top
        for e in entries {
            guard !visited.test(e.1) else { continue }
            visited.set(e.1)
            candidates.push(e.0, e.1)
            results.push(e.0, e.1)
            if results.count > ef { _ = results.pop() }
        }
        q.withUnsafeBufferPointer { qb in
            vectors.withUnsafeBufferPointer { vb in
                let qp = qb.baseAddress!, vp = vb.baseAddress!
                while let c = candidates.pop() {
                    if results.count >= ef, c.0 < results.top!.0 { break }
                    let list: ArraySlice<Int32>
                    if level == 0 {
                        let base = Int(c.1) * maxLinks0
                        list = links0[base..<(base + Int(count0[Int(c.1)]))]
                    } else {
                        list = upper[Int(c.1)][Int(level) - 1][...]
                    }
                    for n in list {
                        if visited.test(n) { continue }
                        visited.set(n)
                        let s = FloatOps.dot(qp, vp + Int(n) * dimension, count: dimension)
                        if results.count < ef || s > results.top!.0 {
                            candidates.push(s, n)
                            results.push(s, n)
                            if results.count > ef { _ = results.pop() }
                        }
                    }
                }
            }
        }
        var out: [(Float, Int32)] = []
        out.reserveCapacity(results.count)
        while let r = results.pop() { out.append(r) }
        return out.reversed()
    }

    private func vector(_ n: Int32) -> ArraySlice<Float> {
        vectors[(Int(n) * dimension)..<((Int(n) + 1) * dimension)]
    }

    private func sim(_ q: [Float], _ n: Int32) -> Float {
        q.withUnsafeBufferPointer { qb in
            vectors.withUnsafeBufferPointer { vb in FloatOps.dot(qb.baseAddress!, vb.baseAddress! + Int(n) * dimension, count: dimension) }
        }
    }

    private func dot(_ a: ArraySlice<Float>, _ n: Int32) -> Float {
        a.withUnsafeBufferPointer { ab in
            vectors.withUnsafeBufferPointer { vb in FloatOps.dot(ab.baseAddress!, vb.baseAddress! + Int(n) * dimension, count: dimension) }
        }
    }

    // MARK: Persistence

    static let magic: [UInt8] = Array("STWHNSW1".utf8)

    /// Writes the index (little-endian; vectors included) to `path`, mode 0600, atomically.
    public func save(to path: String) throws {
        var d = Data()
        d.append(contentsOf: Self.magic)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        put(UInt64(dimension)); put(UInt64(parameters.m)); put(UInt64(parameters.efConstruction)); put(UInt64(parameters.efSearch))
        put(UInt64(count)); put(Int64(entry)); put(Int64(maxLevel)); put(tag)
        ids.withUnsafeBytes { d.append(contentsOf: $0) }
        vectors.withUnsafeBytes { d.append(contentsOf: $0) }
        levels.withUnsafeBytes { d.append(contentsOf: $0) }
        count0.withUnsafeBytes { d.append(contentsOf: $0) }
        links0.withUnsafeBytes { d.append(contentsOf: $0) }
        for (i, u) in upper.enumerated() where !u.isEmpty {
            for l in 0..<Int(levels[i]) {
                put(Int32(u[l].count))
                for x in u[l] { put(x) }
            }
        }
        try StewardPaths.writePrivateFile(d, to: path)
    }

    /// Reads an index written by `save`; every count and link is checked.
    public init(contentsOf path: String) throws(VectorIndexError) {
        guard let data = FileManager.default.contents(atPath: path) else { throw .badFile(path: path, reason: "cannot read it") }
        var off = 0
        func bad(_ why: String) -> VectorIndexError { .badFile(path: path, reason: why) }
        func take(_ n: Int) throws(VectorIndexError) -> Data {
            guard n >= 0, off + n <= data.count else { throw bad("truncated") }
            defer { off += n }
            return data.subdata(in: (data.startIndex + off)..<(data.startIndex + off + n))
        }
        func u64() throws(VectorIndexError) -> UInt64 { try take(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) } }
        func i32() throws(VectorIndexError) -> Int32 { try take(4).withUnsafeBytes { Int32(littleEndian: $0.loadUnaligned(as: Int32.self)) } }
        func array<T>(_ n: Int, _: T.Type) throws(VectorIndexError) -> [T] {
            let raw = try take(n * MemoryLayout<T>.stride)
            return raw.withUnsafeBytes { b in (0..<n).map { b.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.stride, as: T.self) } }
        }
        guard [UInt8](try take(8)) == Self.magic else { throw bad("not a Steward HNSW index") }
        let dim = Int(truncatingIfNeeded: try u64()), m = Int(truncatingIfNeeded: try u64())
        let efc = Int(truncatingIfNeeded: try u64()), efs = Int(truncatingIfNeeded: try u64())
        let n = Int(truncatingIfNeeded: try u64())
        let entry = Int64(bitPattern: try u64()), maxLevel = Int64(bitPattern: try u64())
        let tag = try u64()
        guard (1...65536).contains(dim), (2...128).contains(m), n >= 0, n <= data.count / max(1, dim * 4) else { throw bad("bad header") }
        guard (n == 0 && entry == -1) || (0..<Int64(n)).contains(entry), (-1...16).contains(maxLevel) else { throw bad("bad entry point") }
        self.init(dimension: dim, parameters: Parameters(m: m, efConstruction: efc, efSearch: efs))
        self.tag = tag
        self.entry = Int32(entry); self.maxLevel = Int32(maxLevel)
        ids = try array(n, Int64.self)
        vectors = try array(n * dim, Float.self)
        levels = try array(n, Int32.self)
        count0 = try array(n, Int32.self)
        links0 = try array(n * 2 * m, Int32.self)
        for i in 0..<n {
            guard (0...16).contains(levels[i]), (0...Int32(2 * m)).contains(count0[i]) else { throw bad("bad node \(i)") }
            for j in 0..<Int(count0[i]) where !(0..<Int32(n)).contains(links0[i * 2 * m + j]) { throw bad("bad link at node \(i)") }
        }
        upper = Array(repeating: [], count: n)
        for i in 0..<n where levels[i] > 0 {
            var lists: [[Int32]] = []
            for _ in 0..<Int(levels[i]) {
                let c = Int(try i32())
                guard (0...m).contains(c) else { throw bad("bad link count at node \(i)") }
                let list = try array(c, Int32.self)
                guard list.allSatisfy({ (0..<Int32(n)).contains($0) }) else { throw bad("bad link at node \(i)") }
                lists.append(list)
            }
            upper[i] = lists
        }
        guard off == data.count else { throw bad("trailing bytes") }
        if n > 0, levels[Int(entry)] != Int32(maxLevel) { throw bad("entry point is not on the top layer") }
        visitMark = Array(repeating: 0, count: n)
    }
}

/// Visited marks for one search: an epoch-stamped array (build) or a fresh one (queries, so
/// concurrent searches share nothing mutable).
struct VisitedSet {
    var marks: [UInt32]
    let epoch: UInt32

    init(count: Int) { marks = Array(repeating: 0, count: count); epoch = 1 }
    init(marks: [UInt32], epoch: UInt32) { self.marks = marks; self.epoch = epoch }

    @inline(__always) func test(_ n: Int32) -> Bool { marks[Int(n)] == epoch }
    @inline(__always) mutating func set(_ n: Int32) { marks[Int(n)] = epoch }
}
