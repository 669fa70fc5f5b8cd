import Foundation
import Kernels

/// A search hit of a vector index: the caller's id and the dot product with the query (cosine
/// similarity for normalised vectors).
public struct VectorHit: Sendable, Equatable {
    public let id: Int64
    public let score: Float
}

/// Errors of the vector indexes. Messages say what is wrong and what to do.
public enum VectorIndexError: Error, CustomStringConvertible, Equatable {
    case dimensionMismatch(expected: Int, got: Int)
    case badFile(path: String, reason: String)

    public var description: String {
        switch self {
        case let .dimensionMismatch(e, g):
            return "vector has \(g) dimensions but the index holds \(e)-dimensional vectors (was the collection embedded with another model?)"
        case let .badFile(path, reason):
            return "cannot use the vector index file \(path): \(reason) (delete it; it is rebuilt from the database)"
        }
    }
}

/// Vectors stored row after row, with the caller's ids.
public struct VectorSet: Sendable {
    public let dimension: Int
    public private(set) var ids: [Int64] = []
    public private(set) var values: [Float] = []

    public init(dimension: Int) { self.dimension = dimension }

    public var count: Int { ids.count }

    public mutating func reserve(_ n: Int) {
        ids.reserveCapacity(n)
        values.reserveCapacity(n * dimension)
    }

    public mutating func append(id: Int64, vector: [Float]) throws(VectorIndexError) {
        guard vector.count == dimension else { throw .dimensionMismatch(expected: dimension, got: vector.count) }
        ids.append(id)
        values.append(contentsOf: vector)
    }

    public mutating func append(id: Int64, vector: UnsafeBufferPointer<Float>) throws(VectorIndexError) {
        guard vector.count == dimension else { throw .dimensionMismatch(expected: dimension, got: vector.count) }
        ids.append(id)
        values.append(contentsOf: vector)
    }
}

/// Exact nearest neighbours: the dot product of the query with every vector (the AVX2 dot of
/// CKernels), top k kept in a small heap.
public struct ExactIndex: Sendable {
    public let vectors: VectorSet

    public init(_ vectors: VectorSet) { self.vectors = vectors }

    public func search(_ query: [Float], k: Int) throws(VectorIndexError) -> [VectorHit] {
        let d = vectors.dimension
        guard query.count == d else { throw .dimensionMismatch(expected: d, got: query.count) }
        guard k > 0, vectors.count > 0 else { return [] }
        var top = Heap(minFirst: true)  // min-heap of the best k: its top is the worst kept
        vectors.values.withUnsafeBufferPointer { v in
            query.withUnsafeBufferPointer { q in
                let base = v.baseAddress!, qp = q.baseAddress!
                for i in 0..<vectors.count {
                    let s = FloatOps.dot(qp, base + i * d, count: d)
                    if top.count < k { top.push(s, Int32(i)) } else if s > top.top!.0 { top.replaceTop(s, Int32(i)) }
                }
            }
        }
        var out: [VectorHit] = []
        while let (s, i) = top.pop() { out.append(VectorHit(id: vectors.ids[Int(i)], score: s)) }
        return out.reversed()
    }
}

/// A binary heap of (score, node) pairs: `minFirst` puts the lowest score on top, else the highest.
struct Heap {
    private(set) var items: [(Float, Int32)] = []
    let minFirst: Bool

    init(minFirst: Bool) { self.minFirst = minFirst }

    var count: Int { items.count }
    var top: (Float, Int32)? { items.first }

    @inline(__always) private func before(_ a: Float, _ b: Float) -> Bool { minFirst ? a < b : a > b }

    mutating func push(_ s: Float, _ n: Int32) {
        items.append((s, n))
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard before(items[i].0, items[p].0) else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> (Float, Int32)? {
        guard !items.isEmpty else { return nil }
        let first = items[0]
        let last = items.removeLast()
        if !items.isEmpty { items[0] = last; siftDown(0) }
        return first
    }

    mutating func replaceTop(_ s: Float, _ n: Int32) {
        items[0] = (s, n)
        siftDown(0)
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = items.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n, before(items[l].0, items[m].0) { m = l }
            if r < n, before(items[r].0, items[m].0) { m = r }
            if m == i { return }
            items.swapAt(i, m)
            i = m
        }
    }
}
