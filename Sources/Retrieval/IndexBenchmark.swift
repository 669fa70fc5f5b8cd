import Foundation

/// The vector index benchmark (`steward rag bench-index`, and the STEWARD_BENCH test): random
/// but clustered unit vectors, HNSW against exact search.
public enum IndexBenchmark {
    public struct Result: Sendable {
        public let vectors: Int
        public let dimension: Int
        public let queries: Int
        public let parameters: HNSWIndex.Parameters
        public let recall: Double
        public let buildSeconds: Double
        public let exactQPS: Double
        public let hnswQPS: Double
        public let indexBytes: Int
        public let vectorBytes: Int
        public let peakRSSBytes: Int

        public var summary: String {
            String(format: """
                vectors %d × %d, %d queries, HNSW M=%d efConstruction=%d efSearch=%d
                recall@10 (HNSW vs exact): %.4f
                build: %.1f s (%.0f vectors/s)
                queries/s: exact %.1f, HNSW %.1f
                memory: vectors %.1f MB, HNSW index (vectors + links) %.1f MB, process peak RSS %.1f MB
                """, vectors, dimension, queries, parameters.m, parameters.efConstruction, parameters.efSearch,
                recall, buildSeconds, Double(vectors) / max(buildSeconds, 1e-9), exactQPS, hnswQPS,
                Double(vectorBytes) / 1e6, Double(indexBytes) / 1e6, Double(peakRSSBytes) / 1e6)
        }
    }

    /// `count` unit vectors around `clusters` random centres (centre + Gaussian noise of norm ≈ spread),
    /// from a fixed seed.
    public static func clusteredVectors(count: Int, dimension: Int, clusters: Int, spread: Float = 1.0, seed: UInt64 = 7) -> [[Float]] {
        var state = seed
        func uniform() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Float(state >> 40) + 0.5) / Float(1 << 24)
        }
        func gaussian() -> Float { (-2 * log(uniform())).squareRoot() * cos(2 * .pi * uniform()) }
        func normalised(_ v: [Float]) -> [Float] { let n = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12); return v.map { $0 / n } }
        let centres = (0..<max(1, clusters)).map { _ in normalised((0..<dimension).map { _ in gaussian() }) }
        let scale = spread / Float(dimension).squareRoot()
        return (0..<count).map { i in normalised(centres[i % centres.count].map { $0 + scale * gaussian() }) }
    }

    public static func run(vectors n: Int, dimension: Int = 384, queries: Int = 200, clusters: Int? = nil,
                           parameters: HNSWIndex.Parameters, progress: ((String) -> Void)? = nil) throws -> Result {
        let data = clusteredVectors(count: n + queries, dimension: dimension, clusters: clusters ?? max(10, n / 1000))
        var set = VectorSet(dimension: dimension)
        set.reserve(n)
        for i in 0..<n { try set.append(id: Int64(i), vector: data[i]) }
        let qs = Array(data[n...])
        let exact = ExactIndex(set)
        progress?("building HNSW over \(n) vectors")
        let t0 = Date()
        let hnsw = HNSWIndex(set, parameters: parameters) { done in progress?("  \(done) inserted") }
        let build = Date().timeIntervalSince(t0)
        var truth: [[VectorHit]] = []
        let t1 = Date()
        for q in qs { truth.append(try exact.search(q, k: 10)) }
        let exactTime = Date().timeIntervalSince(t1)
        var approx: [[VectorHit]] = []
        let t2 = Date()
        for q in qs { approx.append(try hnsw.search(q, k: 10)) }
        let hnswTime = Date().timeIntervalSince(t2)
        var total = 0.0
        for (a, e) in zip(approx, truth) { total += Double(Set(a.map(\.id)).intersection(e.map(\.id)).count) / Double(max(1, e.count)) }
        return Result(vectors: n, dimension: dimension, queries: qs.count, parameters: parameters, recall: total / Double(max(1, qs.count)),
                      buildSeconds: build, exactQPS: Double(qs.count) / exactTime, hnswQPS: Double(qs.count) / hnswTime,
                      indexBytes: hnsw.memoryBytes, vectorBytes: n * dimension * 4, peakRSSBytes: peakRSS())
    }

    /// VmHWM from /proc/self/status (0 where there is none).
    static func peakRSS() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
        }
        return 0
    }
}
