import Foundation
import XCTest
import StewardCLI
import TestSupport

/// `steward plan`: the numbers are checked against hand computation from each model's metadata
/// (values written out below as the GGUF header states them, read with the gguf Python
/// package), not against the command's own output.
final class PlanCommandTests: XCTestCase {
    func planJSON(_ args: [String], expect code: Int32) throws -> [String: Any] {
        let r = steward(["plan"] + args + ["--json"])
        XCTAssertEqual(r.code, code, r.err + r.out)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
    }

    func fileSize(_ path: String) throws -> Int {
        try XCTUnwrap((FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue)
    }

    /// The scratch the engine allocates (Decoder.swift Scratch, Compute's quantized input),
    /// written from the brief's description: 128 rows of f32 activations (hidden×3, q, k, v,
    /// attention output, gate and up, four RoPE tables of ropeDims/2), per thread an f16 K+V
    /// row and the tiled-attention scratch (64-row/64-key tiles: K tile, V tile, scores,
    /// accumulators), and the quantized input of the widest matrix (Q8_K: 292 bytes / 256).
    func scratch(rows: Int, hidden: Int, heads: Int, kvHeads: Int, headDim: Int, ffn: Int, ropeDims: Int,
                 quantizedRowBytes: Int, threads: Int) -> Int {
        let perRowFloats = 3 * hidden + heads * headDim + 2 * kvHeads * headDim + heads * headDim + 2 * ffn + 2 * ropeDims
        let tiledFloats = headDim * 64 + 64 * headDim + 64 * 64 + 64 * headDim
        return rows * (perRowFloats * 4 + quantizedRowBytes) + threads * ((2 * headDim) * 2 + tiledFloats * 4)
    }

    func testSmolLM2NumbersFromMetadata() throws {
        let path = try TestPaths.model("smollm2-135m-instruct")
        let obj = try planJSON(["--model", "smollm2-135m-instruct", "--ctx", "4096", "--parallel", "4", "--threads", "2", "--memory", "64G"], expect: 0)
        let m = try XCTUnwrap((obj["models"] as? [[String: Any]])?.first)
        // llama.block_count 30, attention.head_count 9, head_count_kv 3, embedding_length 576
        // (head dim 576/9 = 64), feed_forward_length 1536, vocab 49152, context_length 8192.
        XCTAssertEqual(m["weights_bytes"] as? Int, try fileSize(path))
        XCTAssertEqual(m["kv_cache_bytes_per_sequence"] as? Int, 30 * 4096 * 3 * (64 + 64) * 2)   // 94,371,840
        XCTAssertEqual(m["kv_cache_bytes"] as? Int, 4 * 94_371_840)
        // Widest input 1536 = 6 Q8_K blocks of 292 bytes (Q8_1: 48 × 36 = 1728, smaller).
        XCTAssertEqual(m["scratch_bytes"] as? Int, scratch(rows: 128, hidden: 576, heads: 9, kvHeads: 3, headDim: 64, ffn: 1536,
                                                           ropeDims: 64, quantizedRowBytes: 6 * 292, threads: 2))
        // 4 decode rows + 128 scored prompt rows of 49152 floats, one row copy and 12-byte candidates.
        XCTAssertEqual(m["logits_bytes"] as? Int, (4 + 128) * 49152 * 4 + 49152 * 16)
        XCTAssertEqual(m["trained_context"] as? Int, 8192)
        let parts = ["weights_bytes", "kv_cache_bytes", "scratch_bytes", "logits_bytes", "runtime_bytes"].compactMap { m[$0] as? Int }
        XCTAssertEqual(parts.count, 5)
        XCTAssertEqual(m["total_bytes"] as? Int, parts.reduce(0, +))
        XCTAssertEqual(obj["total_bytes"] as? Int, parts.reduce(0, +))
        XCTAssertEqual(obj["fits"] as? Bool, true)
        // 64 GiB less the 10% margin.
        let budget = try XCTUnwrap(obj["budget"] as? [String: Any])
        XCTAssertEqual(budget["available_bytes"] as? Int, 64 << 30)
        XCTAssertEqual(budget["margin_bytes"] as? Int, (64 << 30) / 10)
        XCTAssertEqual(budget["usable_bytes"] as? Int, (64 << 30) - (64 << 30) / 10)
        // 64 GiB holds the trained context at --parallel 4.
        XCTAssertEqual((obj["largest"] as? [String: Any])?["context"] as? Int, 8192)
    }

    func testGemmaNumbersFromMetadata() throws {
        let path = try TestPaths.model("gemma-3-270m")
        let obj = try planJSON(["--model", "gemma-3-270m", "--ctx", "2048", "--parallel", "2", "--threads", "2", "--memory", "64G"], expect: 0)
        let m = try XCTUnwrap((obj["models"] as? [[String: Any]])?.first)
        // gemma3.block_count 18, head_count 4, head_count_kv 1, key_length = value_length 256,
        // embedding_length 640, feed_forward_length 2048, vocab 262144. Steward keeps every
        // layer's K and V at the full context (sliding-window layers too).
        XCTAssertEqual(m["weights_bytes"] as? Int, try fileSize(path))
        XCTAssertEqual(m["kv_cache_bytes_per_sequence"] as? Int, 18 * 2048 * 1 * (256 + 256) * 2)   // 37,748,736
        XCTAssertEqual(m["kv_cache_bytes"] as? Int, 2 * 37_748_736)
        // Widest input 2048 = 8 Q8_K blocks of 292 bytes.
        XCTAssertEqual(m["scratch_bytes"] as? Int, scratch(rows: 128, hidden: 640, heads: 4, kvHeads: 1, headDim: 256, ffn: 2048,
                                                           ropeDims: 256, quantizedRowBytes: 8 * 292, threads: 2))
        XCTAssertEqual(m["logits_bytes"] as? Int, (2 + 128) * 262_144 * 4 + 262_144 * 16)
        XCTAssertEqual(m["trained_context"] as? Int, 32768)
        XCTAssertEqual(m["architecture"] as? String, "gemma3")
    }

    func testJSONShape() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        let obj = try planJSON(["smollm2-135m-instruct"], expect: 0)
        for key in ["models", "adapters", "adapters_bytes", "total_bytes", "context", "parallel", "threads",
                    "machine", "budget", "fits", "largest", "explanation"] {
            XCTAssertNotNil(obj[key], "missing \(key)")
        }
        XCTAssertEqual(obj["parallel"] as? Int, 4)     // serve's default
        XCTAssertTrue(obj["context"] is NSNull)        // no --ctx: the model's default
        let m = try XCTUnwrap((obj["models"] as? [[String: Any]])?.first)
        XCTAssertEqual(m["context"] as? Int, 4096)     // min(trained 8192, 4096), as serve
        for key in ["model", "path", "kind", "architecture", "context", "trained_context", "parallel", "weights_bytes",
                    "kv_cache_bytes_per_sequence", "kv_cache_bytes", "scratch_bytes", "logits_bytes", "runtime_bytes", "total_bytes"] {
            XCTAssertNotNil(m[key], "model entry misses \(key)")
        }
        let budget = try XCTUnwrap(obj["budget"] as? [String: Any])
        for key in ["available_bytes", "source", "margin_bytes", "margin_rule", "usable_bytes"] {
            XCTAssertNotNil(budget[key], "budget misses \(key)")
        }
        let largest = try XCTUnwrap(obj["largest"] as? [String: Any])
        for key in ["context", "context_at_parallel", "parallel", "parallel_at_context"] {
            XCTAssertNotNil(largest[key], "largest misses \(key)")
        }
        // The machine's memory as /proc/meminfo states it, read here independently.
        let meminfo = try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
        let totalLine = try XCTUnwrap(meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") })
        let totalKB = try XCTUnwrap(Int(totalLine.split(separator: " ")[1]))
        let machine = try XCTUnwrap(obj["machine"] as? [String: Any])
        XCTAssertEqual(machine["mem_total_bytes"] as? Int, totalKB * 1024)
        let available = try XCTUnwrap(machine["mem_available_bytes"] as? Int)
        XCTAssertGreaterThan(available, 0)
        XCTAssertLessThanOrEqual(available, totalKB * 1024)
        if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory.max"),
           let v = Int((try String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) {
            XCTAssertEqual(machine["cgroup_limit_bytes"] as? Int, v)
        }
    }

    func testParallelThatCannotFitNamesTheLargestThatDoes() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        // On this machine's own memory: no machine holds 100000 KV caches of 4096 tokens (9.4 TB).
        let r = steward(["plan", "--model", "smollm2-135m-instruct", "--parallel", "100000"])
        XCTAssertEqual(r.code, 1, r.err)
        XCTAssertTrue(r.out.contains("does not fit"), r.out)
        XCTAssertNotNil(r.out.range(of: #"Largest that fits: .*--parallel [0-9]+ at --ctx 4096"#, options: .regularExpression), r.out)

        // Against a stated memory, so that the follow-up runs see the same budget.
        let obj = try planJSON(["--model", "smollm2-135m-instruct", "--parallel", "100000", "--memory", "8G"], expect: 1)
        XCTAssertEqual(obj["fits"] as? Bool, false)
        let largest = try XCTUnwrap(obj["largest"] as? [String: Any])
        let p = try XCTUnwrap(largest["parallel"] as? Int)
        XCTAssertTrue(largest["context"] is NSNull, "no context fits 100000 sequences in 8 GiB")
        XCTAssertTrue((obj["explanation"] as? String ?? "").contains("--parallel \(p) "), "\(obj["explanation"] ?? "")")
        // Hand bound: each sequence needs at least its KV cache (94,371,840 bytes at 4096 tokens),
        // so at most 8 GiB × 0.9 / 94,371,840 ≈ 81 fit, and the fixed parts take a few.
        XCTAssertLessThanOrEqual(p, (8 << 30) * 9 / 10 / 94_371_840)
        XCTAssertGreaterThan(p, 60)
        // That value fits, one more does not.
        XCTAssertEqual(steward(["plan", "--model", "smollm2-135m-instruct", "--parallel", "\(p)", "--memory", "8G"]).code, 0)
        XCTAssertEqual(steward(["plan", "--model", "smollm2-135m-instruct", "--parallel", "\(p + 1)", "--memory", "8G"]).code, 1)
    }

    func testLargestContextIsConsistent() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        // 16 sequences × 8192 tokens need 3 GB of KV cache; 2 GiB cannot hold it.
        let args = ["--model", "smollm2-135m-instruct", "--parallel", "16", "--memory", "2G"]
        let obj = try planJSON(args + ["--ctx", "8192"], expect: 1)
        let largest = try XCTUnwrap(obj["largest"] as? [String: Any])
        let c = try XCTUnwrap(largest["context"] as? Int)
        XCTAssertEqual(largest["context_at_parallel"] as? Int, 16)
        // KV alone bounds it: 16 × 30 × c × 384 × 2 ≤ 2 GiB × 0.9.
        XCTAssertLessThanOrEqual(c, (2 << 30) * 9 / 10 / (16 * 30 * 384 * 2))
        XCTAssertGreaterThan(c, 1000)
        XCTAssertEqual(steward(["plan"] + args + ["--ctx", "\(c)"]).code, 0)
        XCTAssertEqual(steward(["plan"] + args + ["--ctx", "\(c + 1)"]).code, 1)
        let p = try XCTUnwrap(largest["parallel"] as? Int)
        XCTAssertEqual(largest["parallel_at_context"] as? Int, 8192)
        XCTAssertEqual(steward(["plan", "--model", "smollm2-135m-instruct", "--ctx", "8192", "--parallel", "\(p)", "--memory", "2G"]).code, 0)
        XCTAssertEqual(steward(["plan", "--model", "smollm2-135m-instruct", "--ctx", "8192", "--parallel", "\(p + 1)", "--memory", "2G"]).code, 1)
    }

    func testAdaptersCountTheirFileSize() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        let dir = try makeTemporaryDirectory("plan-adapter")
        defer { try? FileManager.default.removeItem(at: dir) }
        let adapter = dir.appendingPathComponent("lora.gguf")
        try Data(count: 1_234_567).write(to: adapter)
        let base = try planJSON(["--model", "smollm2-135m-instruct", "--memory", "8G"], expect: 0)
        let with = try planJSON(["--model", "smollm2-135m-instruct", "--memory", "8G", "--adapter", adapter.path], expect: 0)
        XCTAssertEqual(with["adapters_bytes"] as? Int, 1_234_567)
        XCTAssertEqual((with["total_bytes"] as? Int).map { $0 - 1_234_567 }, base["total_bytes"] as? Int)
        XCTAssertTrue(steward(["plan", "--help"]).out.contains("not applied yet"))
        let missing = steward(["plan", "--model", "smollm2-135m-instruct", "--adapter", dir.appendingPathComponent("none").path])
        XCTAssertEqual(missing.code, 1)
        XCTAssertTrue(missing.err.contains("none"), missing.err)
    }

    func testUsageErrors() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        XCTAssertEqual(steward(["plan"]).code, 2)
        XCTAssertEqual(steward(["plan", "--model", "smollm2-135m-instruct", "--parallel", "0"]).code, 2)
        XCTAssertEqual(steward(["plan", "--model", "smollm2-135m-instruct", "--ctx", "-3"]).code, 2)
        XCTAssertEqual(steward(["plan", "--model", "smollm2-135m-instruct", "--memory", "lots"]).code, 2)
        let tooLong = steward(["plan", "--model", "smollm2-135m-instruct", "--ctx", "9000"])
        XCTAssertEqual(tooLong.code, 2)
        XCTAssertTrue(tooLong.err.contains("8192"), tooLong.err)
        XCTAssertEqual(steward(["plan", "--model", "/nonexistent/model.gguf"]).code, 1)
    }

    func testServeRefusesBeforeLoadingWhatDoesNotFit() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        let t0 = Date()
        let r = steward(["serve", "--model", "smollm2-135m-instruct", "--parallel", "100000", "--port", "0"])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("does not fit"), r.err)
        XCTAssertTrue(r.err.contains("Largest that fits"), r.err)
        XCTAssertTrue(r.err.contains("steward plan"), r.err)
        XCTAssertFalse(r.out.contains("listening"), "serve must stop before it listens: \(r.out)")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 30)
    }

    func testInspectUsesTheSameEstimate() throws {
        _ = try TestPaths.model("gemma-3-270m")
        let r = steward(["inspect", "gemma-3-270m", "--no-digest", "--json"])
        XCTAssertEqual(r.code, 0, r.err)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let mem = try XCTUnwrap(obj["memory"] as? [String: Any])
        // One sequence at the trained 32768 tokens, every layer full-length as the engine allocates.
        XCTAssertEqual(mem["kv_cache_bytes"] as? Int, 18 * 32768 * 1 * 512 * 2)
        let plan = try planJSON(["--model", "gemma-3-270m", "--ctx", "32768", "--parallel", "1", "--memory", "64G"], expect: 0)
        XCTAssertEqual(mem["total_bytes"] as? Int, plan["total_bytes"] as? Int)
    }
}
