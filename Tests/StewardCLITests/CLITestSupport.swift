import Foundation
import XCTest
import StewardCLI
import TestSupport

/// Runs `steward` in process and returns (exit code, stdout, stderr).
func steward(_ args: [String], stdin: String? = nil) -> (code: Int32, out: String, err: String) {
    let c = Console.capturing(stdin: stdin)
    let code = StewardCLI.run(args, console: c)
    return (code, c.capturedOut, c.capturedErr)
}

/// A fresh directory under the system temporary directory, removed by the caller's defer.
func makeTemporaryDirectory(_ tag: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("steward-cli-\(tag)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The golden llama.cpp reference (shared/golden/llamacpp-reference.json), per model.
enum Golden {
    static func model(_ key: String) throws -> [String: Any] {
        let root = try XCTUnwrap(TestPaths.loadJSON(TestPaths.golden + "/llamacpp-reference.json") as? [String: Any])
        let models = try XCTUnwrap(root["models"] as? [String: Any])
        return try XCTUnwrap(models[key] as? [String: Any], "no golden entry \(key)")
    }

    struct TokenizeCase {
        let text: String
        let withBOS: [Int]
        let noBOS: [Int]
    }

    static func tokenizeCases(_ key: String) throws -> [TokenizeCase] {
        let list = try XCTUnwrap(model(key)["tokenize"] as? [[String: Any]])
        return try list.map {
            TokenizeCase(text: try XCTUnwrap($0["text"] as? String),
                         withBOS: try XCTUnwrap($0["ids_with_default_bos"] as? [Int]),
                         noBOS: try XCTUnwrap($0["ids_no_bos"] as? [Int]))
        }
    }

    static let smolKey = "smollm2-135m-instruct-q4_1"
    static let gemmaKey = "gemma-3-270m-q4_k_m"
}

/// The exact text of a JSON value inside a JSON document, found by a path of object keys, so a
/// test can hand it to the CLI with its key order intact (Foundation's JSON writer loses the
/// order, and templates print objects in the order they were given).
enum RawJSON {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func value(in text: String, path: [String]) throws -> String {
        let b = Array(text.utf8)
        var i = 0
        for key in path {
            skipSpace(b, &i)
            guard i < b.count, b[i] == UInt8(ascii: "{") else { throw Failure(description: "no object for key \(key)") }
            i += 1
            var found = false
            while true {
                skipSpace(b, &i)
                guard i < b.count else { throw Failure(description: "unterminated object") }
                if b[i] == UInt8(ascii: "}") { break }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                let kStart = i
                try skipValue(b, &i)
                let k = try JSONSerialization.jsonObject(with: Data(b[kStart..<i]), options: .fragmentsAllowed) as? String
                skipSpace(b, &i)
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw Failure(description: "expected ':'") }
                i += 1
                skipSpace(b, &i)
                if k == key { found = true; break }
                try skipValue(b, &i)
            }
            guard found else { throw Failure(description: "key \(key) not found") }
        }
        let start = i
        try skipValue(b, &i)
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    static func skipSpace(_ b: [UInt8], _ i: inout Int) {
        while i < b.count, [0x20, 0x09, 0x0a, 0x0d].contains(b[i]) { i += 1 }
    }

    /// Moves past one JSON value (string-aware bracket matching).
    static func skipValue(_ b: [UInt8], _ i: inout Int) throws {
        var depth = 0
        repeat {
            guard i < b.count else { throw Failure(description: "unexpected end of JSON") }
            switch b[i] {
            case UInt8(ascii: "\""):
                i += 1
                while i < b.count, b[i] != UInt8(ascii: "\"") { i += b[i] == UInt8(ascii: "\\") ? 2 : 1 }
                i += 1
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1; i += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1; i += 1
            default:
                if depth == 0 {
                    // A scalar at top level: up to the next delimiter.
                    while i < b.count, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x0a, 0x0d, 0x09].contains(b[i]) { i += 1 }
                    return
                }
                i += 1
            }
        } while depth > 0
    }
}
