#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Where a command's output goes: the process's stdout/stderr, or buffers (for in-process tests).
public final class Console: @unchecked Sendable {
    private let capture: Bool
    private let lock = NSLock()
    private var outBuffer = ""
    private var errBuffer = ""
    private let stdinText: String?

    private init(capture: Bool, stdin: String?) {
        self.capture = capture
        self.stdinText = stdin
    }

    public static func standard() -> Console { Console(capture: false, stdin: nil) }

    /// A console that records output and serves `stdin` as standard input.
    public static func capturing(stdin: String? = nil) -> Console { Console(capture: true, stdin: stdin) }

    public func out(_ s: String) {
        if capture { lock.lock(); outBuffer += s; lock.unlock(); return }
        FileHandle.standardOutput.write(Data(s.utf8))
    }

    public func err(_ s: String) {
        if capture { lock.lock(); errBuffer += s; lock.unlock(); return }
        FileHandle.standardError.write(Data(s.utf8))
    }

    public var capturedOut: String { lock.lock(); defer { lock.unlock() }; return outBuffer }
    public var capturedErr: String { lock.lock(); defer { lock.unlock() }; return errBuffer }

    /// All of standard input as UTF-8 text (invalid bytes repaired).
    public func readAllInput() -> String {
        if capture { return stdinText ?? "" }
        let data = FileHandle.standardInput.readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self)
    }

    /// True when standard error is a terminal (then progress is drawn in place).
    public var errorIsTerminal: Bool {
        if capture { return false }
        return isatty(STDERR_FILENO) != 0
    }

    /// True for a console that records output (in-process tests): no signal handlers then.
    public var isCapturing: Bool { capture }

    /// True when standard input is a terminal (then we don't wait for piped text).
    public var inputIsTerminal: Bool {
        if capture { return stdinText == nil }
        return isatty(STDIN_FILENO) != 0
    }
}
