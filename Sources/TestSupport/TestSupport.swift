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
