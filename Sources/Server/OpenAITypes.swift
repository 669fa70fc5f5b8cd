import Foundation
import Retrieval

// OpenAI's wire format as plain Codable structs. Property names are the API's own (snake_case)
// so the structs read like the reference at platform.openai.com/docs/api-reference.

public enum OpenAI {
    // MARK: Chat completions

    public struct ContentPart: Codable, Sendable, Equatable {
        public var type: String
        public var text: String?
        public init(type: String, text: String?) { self.type = type; self.text = text }
    }

    /// A message's content: a string, or a list of parts (only text parts are supported).
    public enum MessageContent: Codable, Sendable, Equatable {
        case text(String)
        case parts([ContentPart])

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .text(s); return }
            self = .parts(try c.decode([ContentPart].self))
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case let .text(s): try c.encode(s)
            case let .parts(p): try c.encode(p)
            }
        }
    }

    public struct ChatMessage: Codable, Sendable, Equatable {
        public var role: String
        public var content: MessageContent?
        public var name: String?
        /// An assistant turn's earlier calls (arguments as JSON text), read in full from the
        /// ordered body by the tool-calling code.
        public var tool_calls: JSONValue?
        /// A `tool` turn: the call it answers.
        public var tool_call_id: String?
        public init(role: String, content: String) { self.role = role; self.content = .text(content) }
    }

    public struct StreamOptions: Codable, Sendable, Equatable {
        public var include_usage: Bool?
        public init(include_usage: Bool?) { self.include_usage = include_usage }
    }

    /// Fields shared by chat and text completions requests.
    public struct ChatCompletionRequest: Codable, Sendable {
        public var model: String?
        public var messages: [ChatMessage]?
        public var stream: Bool?
        public var stream_options: StreamOptions?
        public var max_tokens: Int?
        public var max_completion_tokens: Int?
        public var temperature: Double?
        public var top_p: Double?
        public var n: Int?
        public var seed: Int64?
        public var stop: StringOrList?
        public var frequency_penalty: Double?
        public var presence_penalty: Double?
        public var logit_bias: [String: Double]?
        public var logprobs: Bool?
        public var top_logprobs: Int?
        public var user: String?
        // llama.cpp-style extensions
        public var top_k: Int?
        public var min_p: Double?
        public var repeat_penalty: Double?
        // Tool calling (ToolCalling.swift reads these from the ordered body).
        public var tools: JSONValue?
        public var tool_choice: JSONValue?
        public var parallel_tool_calls: Bool?
        /// {"type": "text" | "json_object" | "json_schema", "json_schema": {name, schema, strict}}
        public var response_format: JSONValue?
        /// llama-server extension: GBNF the output must match.
        public var grammar: String?
        /// Steward extension: RAG collections to ground the answer in (the key must be granted them).
        public var collections: StringOrList?
        /// Steward extension: a loaded LoRA adapter of the model (or `model: "BASE+ADAPTER"`).
        public var adapter: String?
        public init() {}
    }

    public struct CompletionRequest: Codable, Sendable {
        public var model: String?
        /// Steward extension: a loaded LoRA adapter of the model (or `model: "BASE+ADAPTER"`).
        public var adapter: String?
        public var prompt: StringOrList?
        public var suffix: String?
        public var echo: Bool?
        public var stream: Bool?
        public var stream_options: StreamOptions?
        public var max_tokens: Int?
        public var temperature: Double?
        public var top_p: Double?
        public var n: Int?
        public var best_of: Int?
        public var seed: Int64?
        public var stop: StringOrList?
        public var frequency_penalty: Double?
        public var presence_penalty: Double?
        public var logit_bias: [String: Double]?
        public var logprobs: Int?
        public var user: String?
        public var top_k: Int?
        public var min_p: Double?
        public var repeat_penalty: Double?
        public var response_format: JSONValue?
        public var grammar: String?
        public init() {}
    }

    public struct Usage: Codable, Sendable, Equatable {
        public var prompt_tokens: Int
        public var completion_tokens: Int
        public var total_tokens: Int
        public init(prompt: Int, completion: Int) {
            prompt_tokens = prompt; completion_tokens = completion; total_tokens = prompt + completion
        }
    }

    public struct TopLogprob: Codable, Sendable, Equatable {
        public var token: String
        public var logprob: Double
        public var bytes: [Int]?
    }

    public struct TokenLogprobEntry: Codable, Sendable, Equatable {
        public var token: String
        public var logprob: Double
        public var bytes: [Int]?
        public var top_logprobs: [TopLogprob]
    }

    public struct ChatLogprobs: Codable, Sendable, Equatable {
        public var content: [TokenLogprobEntry]?
    }

    public struct FunctionCall: Codable, Sendable, Equatable {
        public var name: String
        /// The arguments as JSON text, as OpenAI sends them.
        public var arguments: String
    }

    public struct ToolCallOut: Codable, Sendable, Equatable {
        public var id: String
        public var type: String
        public var function: FunctionCall
    }

    public struct AssistantMessage: Codable, Sendable, Equatable {
        public var role: String
        public var content: String?
        public var tool_calls: [ToolCallOut]?

        public init(role: String, content: String?, tool_calls: [ToolCallOut]? = nil) {
            self.role = role; self.content = content; self.tool_calls = tool_calls
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(role, forKey: .role)
            try c.encode(content, forKey: .content)             // null beside tool calls, as OpenAI sends it
            try c.encodeIfPresent(tool_calls, forKey: .tool_calls)
        }
    }

    public struct ChatChoice: Codable, Sendable, Equatable {
        public var index: Int
        public var message: AssistantMessage
        public var logprobs: ChatLogprobs?
        public var finish_reason: String?

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(message, forKey: .message)
            try c.encode(logprobs, forKey: .logprobs)           // null when not asked for
            try c.encode(finish_reason, forKey: .finish_reason)
        }
    }

    public struct ChatCompletion: Codable, Sendable, Equatable {
        public var id: String
        public var object: String
        public var created: Int
        public var model: String
        public var choices: [ChatChoice]
        public var usage: Usage
        public var system_fingerprint: String?
        /// Steward extension (with `collections`): the sources given to the model, `cited` set
        /// for those the first choice cites.
        public var citations: [CitationRecord]?
    }

    public struct DeltaFunction: Codable, Sendable, Equatable {
        public var name: String?
        public var arguments: String?
    }

    /// A streamed piece of a tool call: the first for a call carries id, type and name (and
    /// empty arguments); the next ones carry argument text to append.
    public struct DeltaToolCall: Codable, Sendable, Equatable {
        public var index: Int
        public var id: String?
        public var type: String?
        public var function: DeltaFunction
    }

    public struct Delta: Codable, Sendable, Equatable {
        public var role: String?
        public var content: String?
        public var tool_calls: [DeltaToolCall]?
        public init(role: String? = nil, content: String? = nil, tool_calls: [DeltaToolCall]? = nil) {
            self.role = role; self.content = content; self.tool_calls = tool_calls
        }
    }

    public struct ChunkChoice: Codable, Sendable, Equatable {
        public var index: Int
        public var delta: Delta
        public var logprobs: ChatLogprobs?
        public var finish_reason: String?

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(delta, forKey: .delta)
            try c.encode(logprobs, forKey: .logprobs)
            try c.encode(finish_reason, forKey: .finish_reason) // null until the last chunk
        }
    }

    public struct ChatCompletionChunk: Codable, Sendable, Equatable {
        public var id: String
        public var object: String
        public var created: Int
        public var model: String
        public var choices: [ChunkChoice]
        public var usage: Usage?
        /// Steward extension (with `collections`): in the chunk that ends the first choice.
        public var citations: [CitationRecord]?
    }

    // MARK: Text completions

    /// The legacy completions log-probabilities: parallel lists, one entry per token.
    public struct CompletionLogprobs: Codable, Sendable, Equatable {
        public var tokens: [String]
        /// null for the first prompt token (nothing before it to score it against).
        public var token_logprobs: [Double?]
        public var top_logprobs: [[String: Double]?]
        /// Character offset of each token in the returned text (prompt included with echo).
        public var text_offset: [Int]

        public init(tokens: [String], token_logprobs: [Double?], top_logprobs: [[String: Double]?], text_offset: [Int]) {
            self.tokens = tokens; self.token_logprobs = token_logprobs; self.top_logprobs = top_logprobs; self.text_offset = text_offset
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(tokens, forKey: .tokens)
            var a = c.nestedUnkeyedContainer(forKey: .token_logprobs)
            for v in token_logprobs { if let v { try a.encode(v) } else { try a.encodeNil() } }
            var b = c.nestedUnkeyedContainer(forKey: .top_logprobs)
            for v in top_logprobs { if let v { try b.encode(v) } else { try b.encodeNil() } }
            try c.encode(text_offset, forKey: .text_offset)
        }
    }

    public struct CompletionChoice: Codable, Sendable, Equatable {
        public var text: String
        public var index: Int
        public var logprobs: CompletionLogprobs?
        public var finish_reason: String?

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(text, forKey: .text)
            try c.encode(index, forKey: .index)
            try c.encode(logprobs, forKey: .logprobs)
            try c.encode(finish_reason, forKey: .finish_reason)
        }
    }

    public struct Completion: Codable, Sendable, Equatable {
        public var id: String
        public var object: String
        public var created: Int
        public var model: String
        public var choices: [CompletionChoice]
        public var usage: Usage?
    }

    // MARK: Models, embeddings, errors

    public struct Model: Codable, Sendable, Equatable {
        public var id: String
        public var object: String
        public var created: Int
        public var owned_by: String
        /// The model's licence id (Steward's catalogue: "apache-2.0", "gemma", …); omitted when unknown.
        public var license: String? = nil
    }

    public struct ModelList: Codable, Sendable, Equatable {
        public var object: String
        public var data: [Model]
    }

    public struct EmbeddingRequest: Codable, Sendable {
        public var model: String?
        public var input: StringOrList?
        public var encoding_format: String?
        public var dimensions: Int?
        public var user: String?
        /// Extension: for a chat model, how its hidden states are pooled, "mean" (default) or "last".
        public var pooling: String?
        public init() {}
    }

    /// An embedding as floats, or (encoding_format "base64") little-endian float32 bytes in base64.
    public enum EmbeddingVector: Codable, Sendable, Equatable {
        case floats([Float])
        case base64(String)
        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .base64(s); return }
            self = .floats(try c.decode([Float].self))
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case let .floats(f): try c.encode(f)
            case let .base64(s): try c.encode(s)
            }
        }
    }

    public struct Embedding: Codable, Sendable, Equatable {
        public var object: String
        public var index: Int
        public var embedding: EmbeddingVector
    }

    public struct EmbeddingUsage: Codable, Sendable, Equatable {
        public var prompt_tokens: Int
        public var total_tokens: Int
    }

    public struct EmbeddingResponse: Codable, Sendable, Equatable {
        public var object: String
        public var data: [Embedding]
        public var model: String
        public var usage: EmbeddingUsage
    }

    public struct ErrorBody: Codable, Sendable, Equatable {
        public var message: String
        public var type: String
        public var param: String?
        public var code: String?

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            try c.encode(param, forKey: .param)   // null, as OpenAI sends it
            try c.encode(code, forKey: .code)
        }
    }

    public struct ErrorResponse: Codable, Sendable, Equatable {
        public var error: ErrorBody
    }
}
