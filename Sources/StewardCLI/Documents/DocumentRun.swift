#if canImport(Glibc)
import Glibc
#endif
import Documents
import Foundation
import Generation
import Templates

/// Options shared by `extract`, `classify` and `summarize`.
enum DocumentOptions {
    static let specs: [OptionSpec] = [
        .value("--model", "-m", valueName: "MODEL", help: "Model file or fetched model name."),
        .value("--out", "-o", valueName: "FILE", help: "Append one JSON line per document to FILE (default: standard output)."),
        .flag("--resume", help: "Continue --out FILE: skip documents already done there (failed ones are retried)."),
        .flag("--overwrite", help: "Start --out FILE over when it already exists."),
        .value("--template", valueName: "NAME|FILE", help: "Chat template: a built-in (chatml, gemma) or a .jinja file."),
    ]

    /// The generation options with the document commands' defaults in their help.
    static func generationSpecs(maxTokensHelp: String) -> [OptionSpec] {
        GenerationOptions.specs.map { o in
            switch o.names[0] {
            case "--max-tokens": return .value("--max-tokens", "-n", valueName: "N", help: maxTokensHelp)
            case "--temperature": return .value("--temperature", valueName: "T", help: "Sampling temperature (default 0: greedy, reruns agree).")
            default: return o
            }
        }
    }

    /// For commands that score rather than sample: only threads and context.
    static var computeSpecs: [OptionSpec] {
        GenerationOptions.specs.filter { ["--threads", "--ctx"].contains($0.names[0]) }
    }

    static let discussion = """
        PATH may be files or directories (walked recursively for .txt, .md, .html, .htm, .pdf).
        PDF needs pdftotext from poppler-utils. Results are written as each document finishes, so
        an interrupted run (Ctrl-C) leaves whole lines only; rerun with --resume to do the rest.
        A document that fails is reported (an {"source", "error"} line and a message on standard
        error) and skipped. Exit status: 0 all documents done, 1 one or more failed, 2 usage error.
        Decoding is greedy (--temperature 0) unless --temperature is given.
        """

    /// The generation settings: greedy unless the user asks for sampling (documents want the
    /// model's most likely answer, and reruns should agree).
    static func request(_ a: ParsedArguments, defaultMaxTokens: Int) throws -> GenerationRequest {
        var r = try GenerationOptions.request(a, defaultMaxTokens: defaultMaxTokens)
        if a.value("--temperature") == nil { r.sampling.temperature = 0 }
        return r
    }
}

/// A loaded chat model for document commands: one session reused document after document.
struct DocumentModel {
    let lm: LoadedModel
    let template: ChatTemplate
    let session: Session
    var contextLength: Int { session.contextLength }
    /// The most the model allows, for error messages that suggest a larger --ctx.
    var modelMaxContext: Int { lm.model.config.contextLength }

    static func load(_ a: ParsedArguments) throws -> DocumentModel {
        let modelArg = try a.require("--model")
        let lm = try LoadedModel.load(modelArg, threads: try GenerationOptions.threads(a))
        let template = try lm.chatTemplate(override: a.value("--template"), modelName: modelArg)
        let session = try Session(model: lm.model, tokenizer: lm.tokenizer, contextLength: try a.int("--ctx"))
        return DocumentModel(lm: lm, template: template, session: session)
    }

    /// A system and a user message rendered with the chat template, ready for the reply.
    func chat(system: String, user: String) throws -> [Int32] {
        try lm.encodeChat(template, messages: [["role": "system", "content": system], ["role": "user", "content": user]])
    }

    func tokenCount(_ text: String) -> Int { lm.tokenizer.encode(text, addBOS: false, parseSpecial: false).count }

    /// The error for a document whose prompt does not fit; nothing is ever cut silently.
    func tooLong(promptTokens: Int, outputTokens: Int, what: String) -> DocumentError {
        DocumentError("the document is too long: its prompt is \(promptTokens) tokens and \(outputTokens) more are kept for the output, "
            + "over the context of \(contextLength) tokens; \(what) Raise --ctx (this model allows up to \(modelMaxContext)) or split the document.")
    }
}

/// One run of a document command over many files: which documents to do (after --resume),
/// where each result line goes, progress on standard error, and the exit status.
final class DocumentRun {
    let command: String
    let console: Console
    /// All documents named on the command line, in order.
    let sources: [String]
    /// Those still to do.
    let pending: [String]
    let outPath: String?
    private let sink: JSONLSink
    private var interruptSources: [DispatchSourceSignal] = []

    init(command: String, _ a: ParsedArguments, console: Console) throws {
        self.command = command
        self.console = console
        guard !a.positionals.isEmpty else { throw UsageError("give one or more documents or directories (PATH...)") }
        sources = DocumentReader.expand(a.positionals)
        guard !sources.isEmpty else {
            throw UsageError("no documents found under \(a.positionals.joined(separator: ", ")) (looked for \(DocumentReader.supportedExtensions.keys.sorted().map { "." + $0 }.joined(separator: ", ")))")
        }
        outPath = a.value("--out")
        let resume = a.flag("--resume"), overwrite = a.flag("--overwrite")
        if resume && overwrite { throw UsageError("give --resume or --overwrite, not both") }
        guard let out = outPath else {
            if resume || overwrite { throw UsageError("\(resume ? "--resume" : "--overwrite") needs --out FILE") }
            pending = sources
            sink = .console(console)
            return
        }
        var done = Set<String>()
        let exists = FileManager.default.fileExists(atPath: out)
        let size = ((try? FileManager.default.attributesOfItem(atPath: out))?[.size] as? NSNumber)?.intValue ?? 0
        if exists && size > 0 && !resume && !overwrite {
            throw UsageError("\(out) already exists: add --resume to continue it (documents already done are skipped) or --overwrite to start over")
        }
        if resume && exists {
            let state = try ResumeState.load(out)
            done = state.done
            if state.droppedFailures > 0 || state.droppedBroken > 0 {
                var why: [String] = []
                if state.droppedFailures > 0 { why.append("\(state.droppedFailures) failed document(s) will be retried") }
                if state.droppedBroken > 0 { why.append("\(state.droppedBroken) incomplete line(s) from an interrupted run were removed") }
                console.err("steward \(command): \(out): \(why.joined(separator: "; "))\n")
            }
        }
        pending = sources.filter { !done.contains($0) }
        if resume && sources.count > pending.count {
            console.err("steward \(command): resuming \(out): \(sources.count - pending.count) of \(sources.count) documents already done, \(pending.count) to go\n")
        }
        sink = try .file(path: out, truncate: overwrite)
    }

    /// Runs `body` on each pending document (read first), writes a line per document and
    /// returns the exit status: 0 when every document succeeded, 1 when any failed.
    /// `body` returns the record's fields after "source"; its second argument updates the
    /// progress line with what is happening inside a long document.
    func run(_ reader: DocumentReader = DocumentReader(),
             _ body: (DocumentText, (String) -> Void) throws -> [OrderedJSON.Member]) -> Int32 {
        installInterruptHandler()
        defer { removeInterruptHandler() }
        let progress = ProgressReporter(console: console, command: command, total: pending.count,
                                        skipped: sources.count - pending.count, tty: console.errorIsTerminal)
        var failed = 0
        let start = Date()
        for (n, source) in pending.enumerated() {
            progress.begin(index: n, source: source)
            let t0 = Date()
            var fields: [OrderedJSON.Member]
            var failure: String?
            do {
                let doc = try reader.read(source)
                fields = try body(doc, progress.detail)
            } catch let e as DocumentError {
                failure = e.message
                fields = []
            } catch let e as UsageError {
                failure = e.message
                fields = []
            } catch {
                failure = String(describing: error)
                fields = []
            }
            if let failure {
                failed += 1
                fields = [OrderedJSON.Member("error", .string(failure))]
            }
            sink.write(OrderedJSON.object([OrderedJSON.Member("source", .string(source))] + fields).jsonText)
            progress.end(source: source, error: failure, seconds: Date().timeIntervalSince(t0))
        }
        let seconds = Date().timeIntervalSince(start)
        progress.finish()
        var summary = "steward \(command): \(pending.count - failed) of \(pending.count) document(s) done"
        if failed > 0 { summary += ", \(failed) failed" }
        if sources.count > pending.count { summary += ", \(sources.count - pending.count) skipped (already in \(outPath ?? "the output"))" }
        if !pending.isEmpty {
            summary += String(format: " in %.2f s (%.2f documents/s)", seconds, Double(pending.count) / max(seconds, 1e-9))
        }
        console.err(summary + (outPath.map { "; results in \($0)" } ?? "") + "\n")
        return failed > 0 ? ExitCode.failure : ExitCode.ok
    }

    /// Ctrl-C or SIGTERM between two lines: the line being written is finished first (the
    /// sink's lock), then the process exits with 128+signal, saying how to continue.
    private func installInterruptHandler() {
        guard !console.isCapturing else { return }
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            let sink = self.sink, command = self.command, out = self.outPath
            src.setEventHandler {
                sink.lockForExit()
                let hint = out.map { " rerun with --out \($0) --resume to continue" } ?? ""
                let msg = "\nsteward \(command): interrupted; every finished document's line is complete.\(hint)\n"
                _ = msg.withCString { write(STDERR_FILENO, $0, strlen($0)) }
                _exit(128 + sig)
            }
            src.resume()
            interruptSources.append(src)
        }
    }

    private func removeInterruptHandler() {
        for s in interruptSources { s.cancel() }
        interruptSources = []
        if !console.isCapturing {
            signal(SIGINT, SIG_DFL)
            signal(SIGTERM, SIG_DFL)
        }
    }
}

/// Where result lines go: standard output, or a file opened for appending. Each line is
/// written whole with one lock held, so an interrupt never leaves half a line.
final class JSONLSink: @unchecked Sendable {
    private let console: Console?
    private let fd: Int32
    private let path: String
    private let lock = NSLock()

    private init(console: Console?, fd: Int32, path: String) {
        self.console = console; self.fd = fd; self.path = path
    }

    static func console(_ c: Console) -> JSONLSink { JSONLSink(console: c, fd: -1, path: "") }

    static func file(path: String, truncate: Bool) throws -> JSONLSink {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0o644)
        guard fd >= 0 else { throw UsageError("cannot open \(path) for writing: \(String(cString: strerror(errno)))") }
        return JSONLSink(console: nil, fd: fd, path: path)
    }

    deinit { if fd >= 0 { close(fd) } }

    func write(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        if let console { console.out(line + "\n"); return }
        let bytes = Array((line + "\n").utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                // The disk is full or gone: say so once per line; the run goes on (and fails).
                FileHandle.standardError.write(Data("steward: cannot write to \(path): \(String(cString: strerror(errno)))\n".utf8))
                return
            }
            off += n
        }
    }

    /// Takes the lock for good: the process is about to exit and no line may start.
    func lockForExit() { lock.lock() }
}

/// What an existing output file says is done: sources with a result line. Lines with an
/// "error" are dropped (those documents are retried), as is a last line cut short by a crash;
/// the file is then rewritten (atomically) without them.
struct ResumeState {
    var done = Set<String>()
    var droppedFailures = 0
    var droppedBroken = 0

    static func load(_ path: String) throws -> ResumeState {
        guard let data = FileManager.default.contents(atPath: path) else { throw UsageError("cannot read \(path) to resume it") }
        var state = ResumeState()
        var kept: [Substring] = []
        let text = String(decoding: data, as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() } else if !lines.isEmpty {
            // No newline at the end: the last line was being written when the run stopped.
            lines.removeLast()
            state.droppedBroken += 1
        }
        for line in lines where !line.isEmpty {
            guard let v = try? OrderedJSON.parse(String(line)), case let .string(src)? = v["source"] else {
                state.droppedBroken += 1
                continue
            }
            if v["error"] != nil { state.droppedFailures += 1; continue }
            state.done.insert(src)
            kept.append(line)
        }
        if state.droppedBroken > 0 || state.droppedFailures > 0 {
            let body = kept.map { $0 + "\n" }.joined()
            do { try Data(body.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
                throw UsageError("cannot rewrite \(path) to resume it: \(error.localizedDescription)")
            }
        }
        return state
    }
}

/// Progress on standard error: a bar redrawn in place on a terminal (documents done/total,
/// the current file, ETA), else one line per finished document (for logs and pipes).
final class ProgressReporter {
    let console: Console
    let command: String
    let total: Int
    let skipped: Int
    let tty: Bool
    private var done = 0
    private var spent: Double = 0
    private var current = ""
    private var detailText = ""

    init(console: Console, command: String, total: Int, skipped: Int, tty: Bool) {
        self.console = console; self.command = command; self.total = total; self.skipped = skipped; self.tty = tty
    }

    func begin(index: Int, source: String) {
        current = source
        detailText = ""
        draw()
    }

    func detail(_ text: String) {
        detailText = text
        draw()
    }

    func end(source: String, error: String?, seconds: Double) {
        done += 1
        spent += seconds
        if tty {
            if let error { console.err("\r\u{1B}[K" + "steward \(command): \(source): error: \(error)\n") }
            draw()
        } else {
            let status = error.map { "error: \($0)" } ?? String(format: "ok (%.2f s)", seconds)
            console.err("steward \(command): [\(done)/\(total)] \(source): \(status)\n")
        }
    }

    func finish() {
        if tty && total > 0 { console.err("\r\u{1B}[K") }
    }

    private func draw() {
        guard tty else { return }
        let width = 24
        let filled = total == 0 ? width : width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        var name = current
        if name.count > 40 { name = "…" + name.suffix(39) }
        var line = "[\(bar)] \(done)/\(total) \(name)"
        if !detailText.isEmpty { line += " (\(detailText))" }
        if done > 0 && done < total {
            line += " ETA " + Self.duration(spent / Double(done) * Double(total - done))
        }
        console.err("\r\u{1B}[K" + line)
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}
