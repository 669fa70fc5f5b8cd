import Foundation

// Ollama's wire format (github.com/ollama/ollama docs/api.md) as plain Codable structs.

public enum Ollama {
    /// The `options` object, with Ollama's names.
    public struct Options: Codable, Sendable, Equatable {
        public var temperature: Double?
        public var top_k: Int?
        public var top_p: Double?
        public var min_p: Double?
        public var typical_p: Double?
        public var seed: Int64?
        public var num_predict: Int?
        public var stop: StringOrList?
        public var repeat_penalty: Double?
        public var repeat_last_n: Int?
        public var presence_penalty: Double?
        public var frequency_penalty: Double?
        public var num_ctx: Int?
        public init() {}
    }

    public struct GenerateRequest: Codable, Sendable {
        public var model: String?
        /// Steward extension: a loaded LoRA adapter of the model (or `model: "BASE+ADAPTER"`).
        public var adapter: String?
        public var prompt: String?
        public var suffix: String?
        public var system: String?
        public var template: String?
        public var raw: Bool?
        public var stream: Bool?
        public var options: Options?
        public var format: JSONValue?
        public var images: [String]?
        public var keep_alive: JSONValue?
        public var context: [Int]?
        public init() {}
    }

    public struct ToolCallFunction: Codable, Sendable, Equatable {
        public var name: String
        /// An object (Ollama sends arguments as JSON, not as text).
        public var arguments: JSONValue
    }

    public struct ToolCall: Codable, Sendable, Equatable {
        public var function: ToolCallFunction
    }

    public struct Message: Codable, Sendable, Equatable {
        public var role: String
        public var content: String
        public var images: [String]?
        public var tool_calls: [ToolCall]?
        /// A `tool` message: which function produced it.
        public var tool_name: String?
        public init(role: String, content: String, tool_calls: [ToolCall]? = nil) {
            self.role = role; self.content = content; self.tool_calls = tool_calls
        }

        enum CodingKeys: String, CodingKey { case role, content, images, tool_calls, tool_name }

        /// `content` may be left out (an assistant turn that only called tools).
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            role = try c.decode(String.self, forKey: .role)
            content = try c.decodeIfPresent(String.self, forKey: .content) ?? ""
            images = try c.decodeIfPresent([String].self, forKey: .images)
            tool_calls = try c.decodeIfPresent([ToolCall].self, forKey: .tool_calls)
            tool_name = try c.decodeIfPresent(String.self, forKey: .tool_name)
        }
    }

    public struct ChatRequest: Codable, Sendable {
        public var model: String?
        /// Steward extension: a loaded LoRA adapter of the model (or `model: "BASE+ADAPTER"`).
        public var adapter: String?
        public var messages: [Message]?
        public var stream: Bool?
        public var options: Options?
        public var format: JSONValue?
        public var tools: JSONValue?
        public var keep_alive: JSONValue?
        public init() {}
    }

    /// A streamed piece or the final object (done: true, with counts and durations in ns).
    public struct GenerateResponse: Codable, Sendable, Equatable {
        public var model: String
        public var created_at: String
        public var response: String
        public var done: Bool
        public var done_reason: String?
        public var context: [Int]?
        public var total_duration: Int64?
        public var load_duration: Int64?
        public var prompt_eval_count: Int?
        public var prompt_eval_duration: Int64?
        public var eval_count: Int?
        public var eval_duration: Int64?
    }

    public struct ChatResponse: Codable, Sendable, Equatable {
        public var model: String
        public var created_at: String
        public var message: Message
        public var done: Bool
        public var done_reason: String?
        public var total_duration: Int64?
        public var load_duration: Int64?
        public var prompt_eval_count: Int?
        public var prompt_eval_duration: Int64?
        public var eval_count: Int?
        public var eval_duration: Int64?
    }

    public struct Details: Codable, Sendable, Equatable {
        public var parent_model: String
        public var format: String
        public var family: String
        public var families: [String]
        public var parameter_size: String
        public var quantization_level: String
    }

    public struct ModelEntry: Codable, Sendable, Equatable {
        public var name: String
        public var model: String
        public var modified_at: String
        public var size: Int
        public var digest: String
        public var details: Details
    }

    public struct Tags: Codable, Sendable, Equatable {
        public var models: [ModelEntry]
    }

    public struct ShowRequest: Codable, Sendable {
        public var model: String?
        /// Older clients send `name`.
        public var name: String?
        public var verbose: Bool?
        public init() {}
    }

    public struct ShowResponse: Codable, Sendable, Equatable {
        public var modelfile: String
        public var parameters: String
        public var template: String
        public var details: Details
        public var model_info: [String: JSONValue]
        public var capabilities: [String]
        public var modified_at: String
        /// The model's licence id (Steward's catalogue); Ollama puts licence text here.
        public var license: String? = nil
    }

    public struct RunningModel: Codable, Sendable, Equatable {
        public var name: String
        public var model: String
        public var size: Int
        public var digest: String
        public var details: Details
        public var expires_at: String
        public var size_vram: Int
    }

    public struct Running: Codable, Sendable, Equatable {
        public var models: [RunningModel]
    }

    public struct Version: Codable, Sendable, Equatable {
        public var version: String
    }

    public struct EmbedRequest: Codable, Sendable {
        public var model: String?
        public var input: StringOrList?
        public var truncate: Bool?
        public var options: Options?
        public var keep_alive: JSONValue?
        /// Extension: for a chat model, how its hidden states are pooled, "mean" (default) or "last".
        public var pooling: String?
        public init() {}
    }

    public struct EmbedResponse: Codable, Sendable, Equatable {
        public var model: String
        public var embeddings: [[Float]]
        public var total_duration: Int64?
        public var load_duration: Int64?
        public var prompt_eval_count: Int?
    }

    public struct ErrorResponse: Codable, Sendable, Equatable {
        public var error: String
    }
}
