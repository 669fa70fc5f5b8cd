import Foundation
import ModelFiles

/// Locations the test suites share: the fetched models and ../shared (goldens).
public enum TestPaths {
    /// Repository root, found from this file's location (Sources/TestSupport/TestSupport.swift).
    public static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// ../shared beside the repository (as CI lays it out), or $STEWARD_SHARED.
    public static var shared: String {
        if let s = ProcessInfo.processInfo.environment["STEWARD_SHARED"], !s.isEmpty { return s }
        return URL(fileURLWithPath: repoRoot).deletingLastPathComponent().appendingPathComponent("shared").path
    }

    public static var golden: String { shared + "/golden" }

    /// Path of a fetched model; fails loudly (not skipped) when it is missing, since `make test`
    /// always fetches the models first.
    public static func model(_ name: String) throws -> String {
        guard let p = ModelLocator.path(forName: name), FileManager.default.fileExists(atPath: p) else {
            throw TestSupportError.missing("model '\(name)' is not fetched: run `make models` (scripts/fetch-models)")
        }
        return p
    }

    public static func fixture(_ relative: String) -> String {
        repoRoot + "/Tests/Fixtures/" + relative
    }

    public static func loadJSON(_ path: String) throws -> Any {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    }
}

public enum TestSupportError: Error, CustomStringConvertible {
    case missing(String)
    public var description: String {
        switch self { case let .missing(s): return s }
    }
}

/// Deterministic generator (SplitMix64) shared by the test suites, so failures reproduce on
/// every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    /// Uniform in [lo, hi) with 24 bits.
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24)
    }
    public mutating func floats(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in uniform(-scale, scale) } }
}

/// Random LoRA adapters in PEFT's on-disk layout for tests on the real models (which ship no
/// adapter): adapter_config.json + adapter_model.safetensors with PEFT's tensor names.
public enum TestAdapters {
    /// Shapes of a decoder's projections, (out, in), by PEFT module name.
    public struct Shapes: Sendable {
        public var layers: Int
        public var projections: [String: (out: Int, in: Int)]
        public init(layers: Int, projections: [String: (out: Int, in: Int)]) { self.layers = layers; self.projections = projections }

        /// SmolLM2-135M: hidden 576, 9 heads and 3 KV heads of 64, FFN 1536, 30 layers.
        public static let smollm2 = Shapes(layers: 30, projections: [
            "q_proj": (576, 576), "k_proj": (192, 576), "v_proj": (192, 576), "o_proj": (576, 576),
            "gate_proj": (1536, 576), "up_proj": (1536, 576), "down_proj": (576, 1536)])
    }

    /// Writes an adapter with A ~ U(−a, a) and B ~ U(−b, b) (seeded) into `dir`.
    public static func writePEFT(to dir: String, shapes: Shapes, targets: [String], rank: Int = 8, alpha: Double = 16,
                                 a: Float = 0.05, b: Float = 0.05, seed: UInt64 = 1) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var rng = SplitMix64(seed: seed)
        func uniform(_ n: Int, _ r: Float) -> [Float] { (0..<n).map { _ in Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) * r } }
        var w = SafetensorsWriter(metadata: ["format": "pt"])
        for layer in 0..<shapes.layers {
            for t in targets {
                guard let s = shapes.projections[t] else { throw TestSupportError.missing("no projection \(t)") }
                let block = ["gate_proj", "up_proj", "down_proj"].contains(t) ? "mlp" : "self_attn"
                let p = "base_model.model.model.layers.\(layer).\(block).\(t)"
                w.addTensor(name: p + ".lora_A.weight", dtype: .f32, shape: [rank, s.in], bytes: TensorBytes(elements: uniform(rank * s.in, a)))
                w.addTensor(name: p + ".lora_B.weight", dtype: .f32, shape: [s.out, rank], bytes: TensorBytes(elements: uniform(s.out * rank, b)))
            }
        }
        try w.write(to: dir + "/adapter_model.safetensors")
        let config: [String: Any] = ["peft_type": "LORA", "r": rank, "lora_alpha": alpha, "target_modules": targets, "use_rslora": false,
                                     "fan_in_fan_out": false, "bias": "none", "task_type": "CAUSAL_LM"]
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: URL(fileURLWithPath: dir + "/adapter_config.json"))
    }
}
