import Documents
import Foundation
import XCTest
import StewardCLI
import TestSupport

/// `steward extract`, `classify` and `summarize` on the real SmolLM2 model over the fixture
/// documents in Tests/Fixtures/documents (small/: one each of .txt, .md, .html, .pdf; broken/:
/// a truncated PDF and a binary file; long/: a document that needs several parts at --ctx 512).
/// The PDFs are made by scripts/make-document-fixtures.py.
final class DocumentCommandsTests: XCTestCase {
    static let model = "smollm2-135m-instruct"
    static let labels = ["sports", "cooking", "science", "community"]

    func fixture(_ name: String) -> String { TestPaths.fixture("documents/" + name) }

    /// The JSON lines of `text`, each parsed; fails on a line that is not a JSON object.
    func jsonLines(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
        XCTAssertTrue(text.isEmpty || text.hasSuffix("\n"), "output must end with a newline", file: file, line: line)
        return try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], "not a JSON object: \($0)", file: file, line: line)
        }
    }

    // MARK: Reading documents

    func testHTMLIsReadAsTextWithParagraphsAndEntities() throws {
        let doc = try DocumentReader().read(fixture("small/match.html"))
        XCTAssertEqual(doc.kind, .html)
        let t = doc.text
        XCTAssertTrue(t.contains("Harbor United Win the City Cup\n\nIn the 2022 City Cup final"), t)
        XCTAssertTrue(t.contains("beat Lakeside Rovers 3–1 in front of 18,000 fans."), t)
        XCTAssertTrue(t.contains("scored twice & the goalkeeper"), t)
        XCTAssertTrue(t.contains("\"We played as a team\"!"), t)
        XCTAssertTrue(t.contains("Attendance: 18\u{2009}000"), t)
        XCTAssertTrue(t.hasPrefix("City Cup Final Report\n\n"), t)
        for hidden in ["tracking", "font-family", "hidden", "navigation", "<", ">", "&amp;", "DOCTYPE"] {
            XCTAssertFalse(t.contains(hidden), "\(hidden) should not be in \(t)")
        }
    }

    func testHTMLEdgeCases() {
        XCTAssertEqual(HTMLText.extract("a < b and c<5 <br/>x&#x1F600;y&bogus;z&#0;"), "a < b and c<5\nx😀y&bogus;z\u{FFFD}")
        // "<" then a letter opens a tag, as in HTML's tokenizer.
        XCTAssertEqual(HTMLText.extract("c<d e>f"), "cf")
        XCTAssertEqual(HTMLText.extract("<table><tr><td>a</td><td>b</td></tr><tr><td></td><td>c</td></tr></table>"), "a  b\n\nc")
        XCTAssertEqual(HTMLText.extract("<p>one</p><p>two <a href='x>y'>link</a></p><SCRIPT>alert(1)</SCRIPT>"), "one\n\ntwo link")
        XCTAssertEqual(HTMLText.extract("<pre>  keep\n    this</pre><p>  collapse \n  this </p>"), "  keep\n    this\n\ncollapse this")
        XCTAssertEqual(HTMLText.extract("<!-- unterminated comment"), "")
        XCTAssertEqual(HTMLText.extract("<style>never closed"), "")
    }

    func testPlainTextMarkdownAndPDFAreRead() throws {
        let reader = DocumentReader()
        let md = try reader.read(fixture("small/bread.md"))
        XCTAssertEqual(md.kind, .markdown)
        XCTAssertTrue(md.text.hasPrefix("# Simple Bread Recipe\n"), "Markdown is read as text")
        let pdf = try reader.read(fixture("small/report.pdf"))
        XCTAssertEqual(pdf.kind, .pdf)
        XCTAssertTrue(pdf.text.hasPrefix("Solar Panel Efficiency Study\n\nPublished in 2021 by the Northfield Energy Laboratory."), pdf.text)
        XCTAssertTrue(pdf.text.contains("regular cleaning is a cheap way"), pdf.text)
        let txt = try reader.read(fixture("small/memo.txt"))
        XCTAssertEqual(txt.kind, .text)
        XCTAssertTrue(txt.text.contains("Mayor Helen Carter"))
    }

    func testUnreadableDocumentsFailWithReasons() throws {
        let reader = DocumentReader()
        func failure(_ path: String, _ r: DocumentReader = DocumentReader()) -> String {
            do { _ = try r.read(path); return "no error" } catch { return error.message }
        }
        XCTAssertTrue(failure(fixture("broken/truncated.pdf")).contains("cannot read the PDF (damaged or not a PDF)"))
        XCTAssertTrue(failure(fixture("broken/binary.txt")).contains("binary file"))
        XCTAssertTrue(failure(fixture("broken/encrypted.pdf")).contains("the PDF is encrypted"), failure(fixture("broken/encrypted.pdf")))
        XCTAssertEqual(failure("/no/such/document.txt"), "no such file")
        let missingTool = DocumentReader(pdftotextPath: "/no/such/dir/pdftotext")
        XCTAssertTrue(failure(fixture("small/report.pdf"), missingTool).contains("install poppler-utils (make deps)"))
        _ = reader

        let dir = try makeTemporaryDirectory("docs")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data().write(to: dir.appendingPathComponent("empty.txt"))
        try Data([0xC3, 0x28, 0x41]).write(to: dir.appendingPathComponent("latin.txt"))
        XCTAssertEqual(failure(dir.appendingPathComponent("empty.txt").path), "the document is empty")
        XCTAssertTrue(failure(dir.appendingPathComponent("latin.txt").path).contains("not UTF-8"))
        XCTAssertEqual(failure(dir.path), "is a directory")
    }

    func testDirectoriesAreWalkedForSupportedFiles() throws {
        let dir = try makeTemporaryDirectory("walk")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        try fm.createDirectory(at: dir.appendingPathComponent("sub/deeper"), withIntermediateDirectories: true)
        try fm.createDirectory(at: dir.appendingPathComponent(".hidden"), withIntermediateDirectories: true)
        for f in ["b.txt", "a.MD", "sub/c.html", "sub/deeper/d.pdf", "sub/skip.jpg", ".hidden/e.txt", ".f.txt", "notes"] {
            try Data("x".utf8).write(to: dir.appendingPathComponent(f))
        }
        let found = DocumentReader.expand([dir.path + "/", dir.appendingPathComponent("notes").path, dir.appendingPathComponent("b.txt").path])
        XCTAssertEqual(found, ["a.MD", "b.txt", "sub/c.html", "sub/deeper/d.pdf", "notes"].map { dir.path + "/" + $0 })
    }

    // MARK: Chunking and word limits (no model)

    func testChunksKeepEveryWordAndBreakAtParagraphs() throws {
        let text = try String(contentsOfFile: fixture("long/lighthouse.txt"), encoding: .utf8)
        let words = { (s: String) in Words.count(s) }
        let chunks = TextChunker.chunks(text, maxTokens: 150, count: words)
        XCTAssertGreaterThanOrEqual(chunks.count, 3)
        for c in chunks { XCTAssertLessThanOrEqual(words(c), 150, c) }
        XCTAssertEqual(chunks.joined(separator: " ").split(whereSeparator: \.isWhitespace),
                       text.split(whereSeparator: \.isWhitespace), "nothing dropped, nothing reordered")
        // Paragraphs (all under 150 words) are never split.
        let paragraphs = TextChunker.paragraphs(text)
        for c in chunks { for p in TextChunker.paragraphs(c) { XCTAssertTrue(paragraphs.contains(p), p) } }
        // A single paragraph larger than a chunk is cut between sentences, then words.
        let long = String(repeating: "One two three four five. ", count: 20)
        let parts = TextChunker.chunks(long, maxTokens: 12, count: words)
        XCTAssertEqual(parts.first, "One two three four five. One two three four five.")
        XCTAssertEqual(parts.map(words).reduce(0, +), 100)
        let wordy = TextChunker.chunks(String(repeating: "word ", count: 50), maxTokens: 10, count: words)
        XCTAssertTrue(wordy.allSatisfy { words($0) <= 10 })
        XCTAssertEqual(wordy.map(words).reduce(0, +), 50)
    }

    func testWordLimitCutsAtSentenceBoundary() {
        XCTAssertEqual(Words.truncate("One two three. Four five six seven.", max: 5), "One two three.")
        XCTAssertEqual(Words.truncate("One two three four five six seven.", max: 4), "One two three four…")
        XCTAssertEqual(Words.truncate("Short one.", max: 4), "Short one.")
        XCTAssertEqual(Words.count("  a\nb\t c  "), 3)
    }

    // MARK: Commands

    func testExtractWritesOneSchemaValidObjectPerDocumentAndReportsFailures() throws {
        _ = try TestPaths.model(Self.model)
        let dir = try makeTemporaryDirectory("extract")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.jsonl").path
        let small = fixture("small"), broken = fixture("broken")
        let r = steward(["extract", "--model", Self.model, "--schema", fixture("schema.json"), "--max-tokens", "48",
                         "--out", out, small, broken])
        XCTAssertEqual(r.code, 1, "a failed document makes the exit status 1: \(r.err)")
        XCTAssertEqual(r.out, "", "with --out nothing goes to standard output")
        let lines = try jsonLines(try String(contentsOfFile: out, encoding: .utf8))
        let expected = ["bread.md", "match.html", "memo.txt", "report.pdf"].map { small + "/" + $0 }
            + ["binary.txt", "encrypted.pdf", "truncated.pdf"].map { broken + "/" + $0 }
        XCTAssertEqual(lines.compactMap { $0["source"] as? String }, expected)
        for line in lines.prefix(4) {
            XCTAssertEqual(Set(line.keys), ["source", "data"], "\(line)")
            let data = try XCTUnwrap(line["data"] as? [String: Any], "\(line)")
            // The schema: title string ≤ 60, year integer in 1900...2100, topic from the enum,
            // all required, nothing else.
            XCTAssertEqual(Set(data.keys), ["title", "year", "topic"])
            let title = try XCTUnwrap(data["title"] as? String)
            XCTAssertLessThanOrEqual(title.count, 60)
            let year = try XCTUnwrap(data["year"] as? NSNumber)
            XCTAssertEqual(year.doubleValue, year.doubleValue.rounded(), "year must be an integer")
            XCTAssertTrue((1900...2100).contains(year.intValue), "\(year)")
            XCTAssertTrue(Self.labels.contains(try XCTUnwrap(data["topic"] as? String)), "\(data)")
        }
        // The documents state their titles and years; even the small model copies them.
        let bread = try XCTUnwrap(lines[0]["data"] as? [String: Any])
        XCTAssertEqual(bread["year"] as? Int, 2019)
        XCTAssertEqual(bread["title"] as? String, "Simple Bread Recipe")
        let report = try XCTUnwrap(lines[3]["data"] as? [String: Any])
        XCTAssertEqual(report["title"] as? String, "Solar Panel Efficiency Study", "read from the PDF")
        XCTAssertTrue(try XCTUnwrap(lines[4]["error"] as? String).contains("binary file"))
        XCTAssertTrue(try XCTUnwrap(lines[5]["error"] as? String).contains("encrypted"))
        XCTAssertTrue(try XCTUnwrap(lines[6]["error"] as? String).contains("damaged or not a PDF"))
        XCTAssertTrue(r.err.contains("[5/7] \(broken)/binary.txt: error: binary file"), r.err)
        XCTAssertTrue(r.err.contains("4 of 7 document(s) done, 3 failed"), r.err)
    }

    func testExtractRefusesADocumentLongerThanTheContext() throws {
        _ = try TestPaths.model(Self.model)
        let r = steward(["extract", "--model", Self.model, "--schema", fixture("schema.json"), "--ctx", "400",
                         "--max-tokens", "48", fixture("long/lighthouse.txt"), fixture("small/memo.txt")])
        XCTAssertEqual(r.code, 1, r.err)
        let lines = try jsonLines(r.out)
        XCTAssertEqual(lines.count, 2)
        let error = try XCTUnwrap(lines[0]["error"] as? String, "\(lines[0])")
        XCTAssertTrue(error.contains("too long") && error.contains("Raise --ctx"), error)
        XCTAssertTrue(error.contains("context of 400 tokens"), error)
        XCTAssertNil(lines[0]["data"])
        // The short memo fits the same context and is extracted.
        XCTAssertNotNil(lines[1]["data"] as? [String: Any], "\(lines[1])")
        XCTAssertTrue(r.err.contains("1 of 2 document(s) done, 1 failed"), r.err)
    }

    func testClassifyGivesALabelFromTheSetWithProbabilities() throws {
        _ = try TestPaths.model(Self.model)
        let docs = [fixture("small/bread.md"), fixture("small/match.html")]
        let r = steward(["classify", "--model", Self.model, "--labels", Self.labels.joined(separator: ",")] + docs)
        XCTAssertEqual(r.code, 0, r.err)
        let lines = try jsonLines(r.out)
        XCTAssertEqual(lines.compactMap { $0["source"] as? String }, docs)
        for line in lines {
            let label = try XCTUnwrap(line["label"] as? String)
            XCTAssertTrue(Self.labels.contains(label))
            let scores = try XCTUnwrap(line["scores"] as? [String: Double])
            let logprobs = try XCTUnwrap(line["logprobs"] as? [String: Double])
            XCTAssertEqual(Set(scores.keys), Set(Self.labels))
            XCTAssertEqual(scores.values.reduce(0, +), 1, accuracy: 1e-4)
            XCTAssertEqual(try XCTUnwrap(line["probability"] as? Double), try XCTUnwrap(scores[label]), accuracy: 1e-9)
            XCTAssertEqual(scores.max(by: { $0.value < $1.value })?.key, label, "the label is the most probable one")
            for l in Self.labels {
                let lp = try XCTUnwrap(logprobs[l])
                XCTAssertLessThan(lp, 0, "a log-probability")
                // Scores are the log-probabilities normalised over the set.
                let z = logprobs.values.map { Foundation.exp($0) }.reduce(0, +)
                XCTAssertEqual(try XCTUnwrap(scores[l]), Foundation.exp(lp) / z, accuracy: 1e-4)
            }
        }
        XCTAssertEqual(lines[0]["label"] as? String, "cooking", "a bread recipe")
    }

    func testSummarizeSplitsALongDocumentAndRespectsMaxWords() throws {
        _ = try TestPaths.model(Self.model)
        let docs = [fixture("long/lighthouse.txt"), fixture("small/memo.txt")]
        let r = steward(["summarize", "--model", Self.model, "--ctx", "512", "--max-words", "30"] + docs)
        XCTAssertEqual(r.code, 0, r.err)
        let lines = try jsonLines(r.out)
        XCTAssertEqual(lines.compactMap { $0["source"] as? String }, docs)
        for line in lines {
            let summary = try XCTUnwrap(line["summary"] as? String, "\(line)")
            XCTAssertFalse(summary.isEmpty)
            let words = summary.split(whereSeparator: { $0.isWhitespace }).count
            XCTAssertLessThanOrEqual(words, 30, summary)
            XCTAssertEqual(line["words"] as? Int, words)
            XCTAssertNotNil(line["truncated"] as? Bool)
        }
        // The lighthouse history (~650 tokens) cannot fit 512 tokens with the prompt and the
        // summary's room: it is summarised in parts.
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(lines[0]["chunks"] as? Int), 2)
        XCTAssertEqual(lines[1]["chunks"] as? Int, 1)
    }

    func testResumeSkipsDocumentsAlreadyDone() throws {
        _ = try TestPaths.model(Self.model)
        let dir = try makeTemporaryDirectory("resume")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("labels.jsonl").path
        let docs = [fixture("small/bread.md"), fixture("small/memo.txt"), fixture("broken/binary.txt")]
        let args = ["classify", "--model", Self.model, "--labels", "cooking,community", "--out", out] + docs
        let first = steward(args)
        XCTAssertEqual(first.code, 1, first.err)
        let full = try String(contentsOfFile: out, encoding: .utf8)
        let firstLines = full.split(separator: "\n")
        XCTAssertEqual(firstLines.count, 3)

        // Rerunning onto an existing output without --resume is refused.
        XCTAssertEqual(steward(args).code, 2)

        // As if interrupted: one whole line, then half of the next.
        try Data((firstLines[0] + "\n" + firstLines[1].prefix(20)).utf8).write(to: URL(fileURLWithPath: out))
        let second = steward(args + ["--resume"])
        XCTAssertEqual(second.code, 1, "binary.txt fails again: \(second.err)")
        XCTAssertTrue(second.err.contains("1 incomplete line(s) from an interrupted run were removed"), second.err)
        XCTAssertTrue(second.err.contains("1 of 3 documents already done, 2 to go"), second.err)
        XCTAssertFalse(second.err.contains("bread.md: ok"), "the done document is not processed again: \(second.err)")
        XCTAssertTrue(second.err.contains("[1/2] \(docs[1]): ok"), second.err)
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3)
        XCTAssertEqual(lines[0], String(firstLines[0]), "earlier results are kept as they were")
        XCTAssertEqual(lines[1], String(firstLines[1]), "greedy scoring gives the same line again")
        XCTAssertTrue(lines[2].contains("\"error\""))

        // Failed documents are retried on --resume; done ones are not.
        let third = steward(args + ["--resume"])
        XCTAssertEqual(third.code, 1)
        XCTAssertTrue(third.err.contains("1 failed document(s) will be retried"), third.err)
        XCTAssertTrue(third.err.contains("2 of 3 documents already done, 1 to go"), third.err)
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").count, 3)
    }

    func testUsageErrors() throws {
        let dir = try makeTemporaryDirectory("usage")
        defer { try? FileManager.default.removeItem(at: dir) }
        let schema = fixture("schema.json"), doc = fixture("small/memo.txt")
        let unsupported = dir.appendingPathComponent("bad.json").path
        try Data(#"{"type": "object", "patternProperties": {"^x": {}}}"#.utf8).write(to: URL(fileURLWithPath: unsupported))
        let existing = dir.appendingPathComponent("out.jsonl").path
        try Data("{\"source\":\"x\",\"label\":\"a\"}\n".utf8).write(to: URL(fileURLWithPath: existing))
        let cases: [([String], String)] = [
            (["extract", "--model", Self.model, "--schema", schema], "PATH"),
            (["extract", "--model", Self.model, doc], "--schema"),
            (["extract", "--model", Self.model, "--schema", unsupported, doc], "patternProperties"),
            (["extract", "--model", Self.model, "--schema", schema, "--resume", doc], "--resume needs --out"),
            (["classify", "--model", Self.model, "--labels", "one", doc], "at least two"),
            (["classify", "--model", Self.model, "--labels", "a,b,a", doc], "twice"),
            (["classify", "--model", Self.model, "--labels", "a,,b", doc], "empty label"),
            (["classify", "--model", Self.model, "--labels", "a,b", "--out", existing, doc], "--resume"),
            (["classify", "--model", Self.model, "--labels", "a,b", "--resume", "--overwrite", "--out", existing, doc], "not both"),
            (["summarize", "--model", Self.model, "--max-words", "0", doc], "--max-words"),
            (["summarize", "--model", Self.model, dir.path], "no documents found"),
        ]
        for (args, message) in cases {
            let r = steward(args)
            XCTAssertEqual(r.code, 2, "\(args): \(r.err)")
            XCTAssertTrue(r.err.contains(message), "\(args): expected '\(message)' in \(r.err)")
            XCTAssertEqual(r.out, "")
        }
        let help = steward(["--help"]).out
        for c in ["extract", "classify", "summarize"] { XCTAssertTrue(help.contains("  \(c) "), help) }
    }
}
