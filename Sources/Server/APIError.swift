import Foundation
import Generation
import Retrieval

/// Which API a route belongs to: errors take that API's shape.
public enum APIFlavor: Sendable {
    case openAI, ollama, plain
}

/// An error answer: status plus OpenAI's fields (Ollama's shape only carries the message).
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(status: Int, message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status; self.message = message; self.type = type; self.param = param; self.code = code
    }

    public var description: String { message }

    public static func invalid(_ message: String, param: String?, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    public static func modelNotFound(_ id: String, available: [String]) -> APIError {
        let list = available.isEmpty ? "none" : available.joined(separator: ", ")
        return APIError(status: 404, message: "model '\(id)' not found (served: \(list))", type: "invalid_request_error",
                        param: "model", code: "model_not_found")
    }

    public static func missing(_ param: String) -> APIError {
        invalid("'\(param)' is required", param: param, code: "missing_required_parameter")
    }

    public func response(_ flavor: APIFlavor) -> HTTPResponse {
        switch flavor {
        case .openAI, .plain:
            return .json(OpenAI.ErrorResponse(error: OpenAI.ErrorBody(message: message, type: type, param: param, code: code)), status: status)
        case .ollama:
            return .json(Ollama.ErrorResponse(error: message), status: status)
        }
    }

    /// Maps anything thrown while handling a request. Known user errors keep their 4xx status;
    /// only unexpected faults become 500.
    public static func from(_ error: Error) -> APIError {
        switch error {
        case let e as APIError:
            return e
        case let e as GenerationError:
            switch e {
            case .busy:
                return APIError(status: 429, message: e.description, type: "rate_limit_error", code: "rate_limit_exceeded")
            case .contextOverflow:
                return .invalid(e.description, param: "max_tokens", code: "context_length_exceeded")
            case let .invalidParameter(s):
                // Sampler messages start with the parameter's API name ("top_p must be …").
                let name = s.split(separator: " ").first.map(String.init)
                return .invalid(e.description, param: name, code: "invalid_value")
            case .invalidInput:
                return .invalid(e.description, param: nil)
            case .emptyPrompt:
                return .invalid(e.description, param: "prompt")
            case .cancelled:
                return APIError(status: 503, message: e.description, type: "server_error")
            }
        case let e as EmbedderError:
            if case .tooLong = e { return .invalid(e.description, param: "input", code: "context_length_exceeded") }
            if case .emptyText = e { return .invalid(e.description, param: "input", code: "invalid_value") }
            return APIError(status: 500, message: e.description, type: "server_error")
        case let e as DecodingError:
            return Self.decoding(e)
        case let e as RetrievalError:
            if case .noSuchCollection = e { return APIError(status: 404, message: e.description, type: "invalid_request_error", param: "collections", code: "collection_not_found") }
            return .invalid(e.description, param: nil)
        default:
            return APIError(status: 500, message: "internal error: \(error)", type: "server_error")
        }
    }

    /// A body that is not the JSON we expect: name the offending field.
    static func decoding(_ e: DecodingError) -> APIError {
        func path(_ p: [CodingKey]) -> String? {
            guard !p.isEmpty else { return nil }
            var s = ""
            for k in p {
                if let i = k.intValue { s += "[\(i)]" } else { s += s.isEmpty ? k.stringValue : "." + k.stringValue }
            }
            return s
        }
        switch e {
        case let .typeMismatch(t, c):
            let p = path(c.codingPath)
            return .invalid("'\(p ?? "body")' has the wrong type (expected \(Self.typeName(t)))", param: p, code: "invalid_type")
        case let .valueNotFound(t, c):
            let p = path(c.codingPath)
            return .invalid("'\(p ?? "body")' must not be null (expected \(Self.typeName(t)))", param: p, code: "invalid_type")
        case let .keyNotFound(k, c):
            let p = path(c.codingPath + [k])
            return .invalid("'\(p ?? k.stringValue)' is required", param: p, code: "missing_required_parameter")
        case let .dataCorrupted(c):
            if let p = path(c.codingPath) {
                return .invalid("'\(p)' is not valid: \(c.debugDescription)", param: p, code: "invalid_value")
            }
            return .invalid("the request body is not valid JSON", param: nil, code: "invalid_json")
        @unknown default:
            return .invalid("the request body could not be read", param: nil)
        }
    }

    private static func typeName(_ t: Any.Type) -> String {
        let n = String(describing: t)
        switch n {
        case "String": return "a string"
        case "Int", "Int64", "Int32": return "an integer"
        case "Double", "Float": return "a number"
        case "Bool": return "a boolean"
        case _ where n.hasPrefix("Array"): return "an array"
        case _ where n.hasPrefix("Dictionary"): return "an object"
        case "StringOrList": return "a string or an array of strings"
        case "MessageContent": return "a string or an array of content parts"
        default: return n
        }
    }
}
