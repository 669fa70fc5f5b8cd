import Foundation
import Retrieval
import XCTest

func recall(_ approximate: [VectorHit], _ exact: [VectorHit]) -> Double {
    Double(Set(approximate.map(\.id)).intersection(exact.map(\.id)).count) / Double(max(1, exact.count))
}

final class HNSWTests: XCTestCase {
    func testRecallAt10AgainstExactAndPersistence() throws {
        let n = 10_000, d = 384
        let data = IndexBenchmark.clusteredVectors(count: n + 100, dimension: d, clusters: 50, spread: 1.0, seed: 7)
        var set = VectorSet(dimension: d)
        for i in 0..<n { try set.append(id: Int64(1000 + i), vector: data[i]) }
        let exact = ExactIndex(set)
        let hnsw = HNSWIndex(set, parameters: .init(m: 16, efConstruction: 100, efSearch: 64))
        XCTAssertEqual(hnsw.count, n)
        let queries = Array(data[n...])
        var total = 0.0
        for q in queries { total += recall(try hnsw.search(q, k: 10), try exact.search(q, k: 10)) }
        let r = total / Double(queries.count)
        XCTAssertGreaterThanOrEqual(r, 0.95, "recall@10 \(r)")

        // Exact search is exact: the best hit of a stored vector is itself.
        XCTAssertEqual(try exact.search(data[5], k: 1).first?.id, 1005)
        XCTAssertEqual(try exact.search(data[5], k: 1).first?.score ?? 0, 1, accuracy: 1e-4)

        let path = NSTemporaryDirectory() + "hnsw-\(UUID().uuidString).hnsw"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var tagged = hnsw
        tagged.tag = 99
        try tagged.save(to: path)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int, 0o600)
        let loaded = try HNSWIndex(contentsOf: path)
        XCTAssertEqual(loaded.tag, 99)
        XCTAssertEqual(loaded.parameters, hnsw.parameters)
        for q in queries.prefix(20) { XCTAssertEqual(try loaded.search(q, k: 10), try hnsw.search(q, k: 10)) }

        // A damaged file is refused with an error, not a crash.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes.removeLast(7)
        try bytes.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try HNSWIndex(contentsOf: path))
        try Data("STWHNSW1".utf8 + [UInt8](repeating: 0xFF, count: 64)).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try HNSWIndex(contentsOf: path))
        XCTAssertThrowsError(try hnsw.search([1, 2, 3], k: 1))
    }

    /// STEWARD_BENCH=1: 100k clustered 384-d vectors (STEWARD_BENCH_VECTORS to change).
    func testBenchmark() throws {
        guard ProcessInfo.processInfo.environment["STEWARD_BENCH"] == "1" else { throw XCTSkip("set STEWARD_BENCH=1") }
        let n = Int(ProcessInfo.processInfo.environment["STEWARD_BENCH_VECTORS"] ?? "") ?? 100_000
        let result = try IndexBenchmark.run(vectors: n, queries: 200, parameters: .init())
        print(result.summary)
        XCTAssertGreaterThanOrEqual(result.recall, 0.95)
    }
}
