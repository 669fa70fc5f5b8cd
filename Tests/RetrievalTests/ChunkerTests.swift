import Foundation
import Retrieval
import TestSupport
import XCTest

final class ChunkerTests: XCTestCase {
    /// Whitespace-separated words as tokens, so budgets are easy to reason about.
    func words(_ s: String) -> Int { s.split(whereSeparator: { $0.isWhitespace }).count }

    func sentence(_ i: Int, words n: Int) -> String {
        (0..<n).map { "s\(i)w\($0)" }.joined(separator: " ") + "."
    }

    func testChunksAreWholeSentencesWithinBudgetAndOverlap() {
        // Three paragraphs of eight 10-word sentences each.
        var paragraphs: [String] = []
        var n = 0
        for _ in 0..<3 {
            paragraphs.append((0..<8).map { _ in defer { n += 1 }; return sentence(n, words: 10) }.joined(separator: " "))
        }
        let text = paragraphs.joined(separator: "\n\n")
        let chunker = TokenChunker(maxTokens: 35, overlap: 12)
        let chunks = chunker.chunks(text, count: words)
        XCTAssertGreaterThan(chunks.count, 3)
        let bytes = Array(text.utf8)
        for c in chunks {
            XCTAssertLessThanOrEqual(words(c.text), 35)
            XCTAssertEqual(c.tokens, words(c.text))
            // Exact text of the document at the recorded offsets, starting and ending on a sentence.
            XCTAssertEqual(String(decoding: bytes[c.start..<c.end], as: UTF8.self), c.text)
            XCTAssertTrue(c.text.hasPrefix("s"), c.text)
            XCTAssertTrue(c.text.hasSuffix("."), c.text)
            XCTAssertTrue(c.text.split(separator: " ").first!.hasSuffix("w0"), "chunk starts mid-sentence: \(c.text)")
        }
        // Every sentence is in some chunk, and consecutive chunks share a sentence (overlap ≤ 12 words
        // is one 10-word sentence) unless the chunk ended at a paragraph break.
        for i in 0..<n { XCTAssertTrue(chunks.contains { $0.text.contains("s\(i)w0 ") }, "sentence \(i) lost") }
        var overlapping = 0
        for (a, b) in zip(chunks, chunks.dropFirst()) {
            XCTAssertLessThan(a.start, b.start)
            if b.start < a.end { overlapping += 1; XCTAssertLessThanOrEqual(words(String(decoding: bytes[b.start..<a.end], as: UTF8.self)), 12) }
        }
        XCTAssertGreaterThan(overlapping, 0)
        XCTAssertEqual(chunks.map(\.position), Array(0..<chunks.count))
        XCTAssertEqual(chunks[0].line, 1)
        XCTAssertEqual(chunks.last!.line, 5)  // the third paragraph is on line 5
    }

    func testChunkEndsAtParagraphBreakWhenHalfFull() {
        // Paragraph 1: 25 words; paragraph 2: 30 words. Budget 40: the first chunk should end at
        // the paragraph break rather than take half of paragraph 2.
        let p1 = [sentence(0, words: 12), sentence(1, words: 12)].joined(separator: " ")
        let p2 = [sentence(2, words: 10), sentence(3, words: 9), sentence(4, words: 10)].joined(separator: " ")
        let chunks = TokenChunker(maxTokens: 40, overlap: 0).chunks(p1 + "\n\n" + p2, count: words)
        XCTAssertEqual(chunks.map(\.text), [p1, p2])
        XCTAssertEqual(chunks[1].line, 3)
    }

    func testLongSentenceAndLongWordAreCut() {
        let long = (0..<50).map { "w\($0)" }.joined(separator: " ")
        let chunks = TokenChunker(maxTokens: 20, overlap: 0).chunks(long, count: words)
        XCTAssertEqual(chunks.count, 3)
        XCTAssertEqual(chunks.map(\.text).joined(separator: " "), long)
        let blob = String(repeating: "x", count: 400)
        let cut = TokenChunker(maxTokens: 20, overlap: 0).chunks(blob, count: { $0.utf8.count })
        XCTAssertEqual(cut.map(\.text).joined(), blob)
        XCTAssertTrue(cut.allSatisfy { $0.tokens <= 20 })
        XCTAssertEqual(TokenChunker().chunks("   \n\n  ", count: words), [])
    }
}
