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
