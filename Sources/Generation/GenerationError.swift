/// Errors from generation. Messages say what was wrong and what to change.
public enum GenerationError: Error, CustomStringConvertible, Equatable {
    case invalidParameter(String)
    /// Input that cannot be used as given (not a sampling setting), e.g. a text too short to score.
    case invalidInput(String)
    case contextOverflow(promptTokens: Int, maxTokens: Int, contextLength: Int)
    case emptyPrompt
    case cancelled
    /// Too many requests are already waiting for this model.
    case busy(queued: Int)

    public var description: String {
        switch self {
        case let .invalidParameter(s):
            return "invalid sampling parameter: \(s)"
        case let .invalidInput(s):
            return s
        case let .contextOverflow(p, m, n):
            return "the prompt (\(p) tokens) plus max tokens (\(m)) exceeds the context length (\(n)); shorten the prompt, lower max tokens, or raise --ctx (nothing was truncated)"
        case .emptyPrompt:
            return "the prompt is empty: give some text (or let the model add its BOS token)"
        case .cancelled:
            return "generation was cancelled"
        case let .busy(q):
            return "the server is busy (\(q) requests already waiting for this model); retry later"
        }
    }
}
