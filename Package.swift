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
        .library(name: "Kernels", targets: ["Kernels"]),
    ],
    targets: [
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto"),
        // HTTP transport for `steward serve` (Debian: libmicrohttpd-dev).
        .systemLibrary(name: "CMicroHTTPD", path: "Sources/CMicroHTTPD", pkgConfig: "libmicrohttpd",
                       providers: [.apt(["libmicrohttpd-dev"])]),
        // Governance state (model store, keys, audit log, usage) in SQLite (Debian: libsqlite3-dev).
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "ModelFiles", dependencies: ["CCrypto"]),
        .target(name: "Tokenization", dependencies: ["ModelFiles"]),
        .target(name: "Templates"),
        // Hot loops in C: per-function AVX2/FMA/F16C paths chosen at run time (no global -march).
        .target(name: "CKernels", path: "Sources/CKernels",
                cSettings: [.unsafeFlags(["-O3"])], linkerSettings: [.linkedLibrary("m")]),
        .target(name: "Kernels", dependencies: ["ModelFiles", "CKernels"]),
        .target(name: "Models", dependencies: ["ModelFiles", "Kernels", "CKernels"]),
        .target(name: "Generation", dependencies: ["ModelFiles", "Tokenization", "Models"]),
        .target(name: "Moderation"),
        // Reading documents (text, Markdown, HTML, PDF via pdftotext, source code) and splitting them.
        .target(name: "Documents"),
        .target(name: "Governance", dependencies: ["CSQLite", "CCrypto", "ModelFiles", "Moderation"]),
        // Retrieval for RAG: document store (SQLite + FTS5), embeddings, exact and HNSW vector search.
        .target(name: "Retrieval", dependencies: ["Documents", "Governance", "Generation", "Models", "Tokenization", "Kernels", "ModelFiles"]),
        .target(name: "TestSupport", dependencies: ["ModelFiles"], path: "Sources/TestSupport"),
        .target(name: "Server", dependencies: ["CMicroHTTPD", "ModelFiles", "Tokenization", "Templates", "Models", "Generation", "Governance", "Moderation", "Retrieval"]),
        // LoRA fine-tuning: forward and backward through the decoder, AdamW, data, PEFT output.
        .target(name: "Training", dependencies: ["Generation", "Models", "ModelFiles", "Kernels", "CKernels", "Tokenization", "Templates"]),
        // Evaluation: task files, log-likelihood and generation scoring, runs, compare/gate, reports.
        .target(name: "Evaluation", dependencies: ["Generation", "Models", "ModelFiles", "Tokenization", "Templates"]),
        .target(name: "StewardCLI", dependencies: ["Evaluation", "Training", "ModelFiles", "Tokenization", "Templates", "Models", "Generation", "Server", "Governance", "Moderation", "Documents", "Retrieval"]),
        .executableTarget(name: "steward", dependencies: ["StewardCLI"]),
        .testTarget(name: "ModelFilesTests", dependencies: ["TestSupport", "ModelFiles"]),
        .testTarget(name: "TokenizationTests", dependencies: ["TestSupport", "Tokenization", "ModelFiles"]),
        .testTarget(name: "TemplatesTests", dependencies: ["TestSupport", "Templates"]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "CKernels", "TestSupport", "ModelFiles"]),
        .testTarget(name: "GenerationTests", dependencies: ["TestSupport", "Generation", "Models", "Tokenization", "ModelFiles"]),
        .testTarget(name: "ModelsTests", dependencies: ["TestSupport", "Models", "ModelFiles", "Kernels"]),
        .testTarget(name: "EvaluationTests", dependencies: ["TestSupport", "Evaluation", "Generation", "Models", "ModelFiles", "Tokenization"]),
        .testTarget(name: "TrainingTests", dependencies: ["TestSupport", "Training", "Generation", "Models", "ModelFiles"]),
        .testTarget(name: "StewardCLITests", dependencies: ["TestSupport", "StewardCLI", "Documents", "Server", "Models", "Tokenization", "Templates", "ModelFiles"]),
        .testTarget(name: "GovernanceTests", dependencies: ["TestSupport", "Governance", "ModelFiles"]),
        .testTarget(name: "RetrievalTests", dependencies: ["TestSupport", "Retrieval", "Documents", "Governance", "Generation"]),
        .testTarget(name: "ModerationTests", dependencies: ["TestSupport", "Moderation"]),
        .testTarget(name: "ServerTests", dependencies: ["TestSupport", "Server", "Generation", "Models", "Tokenization", "ModelFiles", "Retrieval", "Governance", "Evaluation"]),
    ]
)
