// swift-tools-version:6.0
import PackageDescription

// Module layout: see docs/ARCHITECTURE.md. Arrows point one way:
// ModelFiles ← Tokenization ← (Models, Generation …) ← StewardCLI ← steward.
let package = Package(
    name: "steward",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "steward", targets: ["steward"]),
        .library(name: "ModelFiles", targets: ["ModelFiles"]),
        .library(name: "Tokenization", targets: ["Tokenization"]),
        .library(name: "Templates", targets: ["Templates"]),
    ],
    targets: [
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto"),
        .target(name: "ModelFiles", dependencies: ["CCrypto"]),
        .target(name: "Tokenization", dependencies: ["ModelFiles"]),
        .target(name: "Templates"),
        .target(name: "Models", dependencies: ["ModelFiles", "Kernels"]),
        .target(name: "Generation", dependencies: ["ModelFiles", "Tokenization", "Models"]),
        .target(name: "TestSupport", dependencies: ["ModelFiles"], path: "Sources/TestSupport"),
        .target(name: "StewardCLI", dependencies: ["ModelFiles", "Tokenization", "Templates"]),
        .executableTarget(name: "steward", dependencies: ["StewardCLI"]),
        .testTarget(name: "ModelFilesTests", dependencies: ["TestSupport", "ModelFiles"]),
        .testTarget(name: "TokenizationTests", dependencies: ["TestSupport", "Tokenization", "ModelFiles"]),
        .testTarget(name: "TemplatesTests", dependencies: ["TestSupport", "Templates"]),
        .testTarget(name: "GenerationTests", dependencies: ["TestSupport", "Generation"]),
        .testTarget(name: "StewardCLITests", dependencies: ["TestSupport", "StewardCLI"]),
    ]
)
