#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Why one document could not be read. Each message says what is wrong with that file and,
/// where there is one, what to do; the other documents of a run go on.
public struct DocumentError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A document's text as the model will see it.
public struct DocumentText: Sendable {
    public enum Kind: String, Sendable { case text, markdown, html, pdf, code }
    /// The path as given on the command line (or found under a directory given there); this is
    /// the `source` of the output records and what `--resume` matches on.
    public let source: String
    public let kind: Kind
    public let text: String

    public init(source: String, kind: Kind, text: String) {
        self.source = source
        self.kind = kind
        self.text = text
    }
}

/// Reads plain text, Markdown (as text), HTML (tags, scripts and styles removed, entities
/// decoded, paragraph breaks kept) and PDF (through poppler-utils' `pdftotext`).
public struct DocumentReader: Sendable {
    /// Extensions picked up when a directory is walked. A file named explicitly is read whatever
    /// its extension (as text, refused if its bytes are binary).
    public static let supportedExtensions: [String: DocumentText.Kind] = [
        "txt": .text, "text": .text, "md": .markdown, "markdown": .markdown,
        "html": .html, "htm": .html, "xhtml": .html, "pdf": .pdf,
        // Source code is read as text (for retrieval over a code base).
        "swift": .code, "py": .code, "c": .code, "h": .code, "js": .code, "ts": .code,
        "go": .code, "rs": .code, "java": .code, "sh": .code,
    ]
    /// Larger files are refused rather than read into memory: no model context holds them anyway.
    public static let maxBytes = 64 << 20

    /// The `pdftotext` to run, or nil to look it up on PATH when a PDF is read.
    public let pdftotextPath: String?

    public init(pdftotextPath: String? = ProcessInfo.processInfo.environment["STEWARD_PDFTOTEXT"]) {
        self.pdftotextPath = pdftotextPath
    }

    /// The documents named by `paths`: files as given, directories walked recursively (hidden
    /// entries skipped) for the supported extensions, in sorted order; duplicates dropped. A
    /// path that does not exist is kept so that reading it reports the failure for that path.
    public static func expand(_ paths: [String]) -> [String] {
        var out: [String] = []
        var seen = Set<String>()
        func add(_ p: String) { if seen.insert(p).inserted { out.append(p) } }
        let fm = FileManager.default
        for p in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: p, isDirectory: &isDir), isDir.boolValue else { add(p); continue }
            let base = p.hasSuffix("/") && p.count > 1 ? String(p.dropLast()) : p
            var found: [String] = []
            if let e = fm.enumerator(at: URL(fileURLWithPath: base), includingPropertiesForKeys: [.isRegularFileKey],
                                     options: [.skipsHiddenFiles]) {
                let root = URL(fileURLWithPath: base).standardizedFileURL.path
                for case let url as URL in e {
                    guard (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true,
                          supportedExtensions[url.pathExtension.lowercased()] != nil else { continue }
                    var rel = url.standardizedFileURL.path
                    if rel.hasPrefix(root + "/") { rel = String(rel.dropFirst(root.count + 1)) }
                    found.append(base + "/" + rel)
                }
            }
            for f in found.sorted() { add(f) }
        }
        return out
    }

    /// Reads one document. Throws `DocumentError` for a missing, unreadable, binary, empty,
    /// encrypted or corrupt file.
    public func read(_ source: String) throws(DocumentError) -> DocumentText {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: source, isDirectory: &isDir) else { throw DocumentError("no such file") }
        if isDir.boolValue { throw DocumentError("is a directory") }
        guard fm.isReadableFile(atPath: source) else { throw DocumentError("permission denied: the file is not readable") }
        let size = ((try? fm.attributesOfItem(atPath: source))?[.size] as? NSNumber)?.intValue ?? 0
        if size > Self.maxBytes {
            throw DocumentError("the file is \(size >> 20) MiB; documents over \(Self.maxBytes >> 20) MiB are refused (split it first)")
        }
        let kind = Self.supportedExtensions[URL(fileURLWithPath: source).pathExtension.lowercased()] ?? .text
        let text: String
        if kind == .pdf {
            text = try pdfText(source)
        } else {
            guard let data = fm.contents(atPath: source) else { throw DocumentError("cannot read the file") }
            let raw = try Self.decodeText(data)
            text = kind == .html ? HTMLText.extract(raw) : Self.normalizeNewlines(raw)
        }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw DocumentError(kind == .pdf ? "the PDF has no text layer (a scanned image? run OCR on it first)" : "the document is empty")
        }
        return DocumentText(source: source, kind: kind, text: text)
    }

    /// UTF-8 text (a byte-order mark is dropped); NUL bytes or invalid UTF-8 mean a binary file.
    public static func decodeText(_ data: Data) throws(DocumentError) -> String {
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        if bytes.prefix(8192).contains(0) {
            throw DocumentError("binary file (contains NUL bytes): only text, Markdown, HTML and PDF documents are read")
        }
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw DocumentError("not UTF-8 text (a binary file, or another encoding: convert it with iconv first)")
        }
        return s
    }

    public static func normalizeNewlines(_ s: String) -> String {
        s.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
    }

    /// `pdftotext -layout -enc UTF-8 FILE -`, with layout padding collapsed (runs of spaces cost
    /// tokens and carry little for a model) and page breaks turned into paragraph breaks.
    func pdfText(_ source: String) throws(DocumentError) -> String {
        guard let tool = pdftotextPath ?? Self.which("pdftotext") else {
            throw DocumentError("pdftotext was not found: install poppler-utils (make deps) to read PDF documents")
        }
        guard FileManager.default.isExecutableFile(atPath: tool) else {
            throw DocumentError("pdftotext was not found at \(tool): install poppler-utils (make deps) to read PDF documents")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = ["-layout", "-enc", "UTF-8", source, "-"]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { throw DocumentError("cannot run \(tool): \(error.localizedDescription)") }
        // Both pipes are drained at once so that neither can fill up and stall the tool.
        let errBox = DataBox()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errBox.data = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            let why = String(decoding: errBox.data, as: UTF8.self)
                .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let detail = why.isEmpty ? "exit status \(p.terminationStatus)" : why.suffix(2).joined(separator: "; ")
            if detail.localizedCaseInsensitiveContains("password") {
                throw DocumentError("the PDF is encrypted (pdftotext: \(detail)); decrypt it first (e.g. qpdf --decrypt)")
            }
            throw DocumentError("cannot read the PDF (damaged or not a PDF): pdftotext: \(detail)")
        }
        let text = String(decoding: data, as: UTF8.self)
        var lines: [String] = []
        for page in text.split(separator: "\u{0C}", omittingEmptySubsequences: false) {
            for line in page.split(separator: "\n", omittingEmptySubsequences: false) {
                lines.append(line.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " "))
            }
            lines.append("")
        }
        return HTMLText.collapseBlankLines(lines)
    }

    /// The first executable `name` on PATH.
    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = String(dir) + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

private final class DataBox: @unchecked Sendable { var data = Data() }
