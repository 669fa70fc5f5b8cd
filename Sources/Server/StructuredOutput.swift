import Foundation
import Generation

/// Structured output: OpenAI `response_format` (json_object, json_schema), the `grammar`
/// extension (raw GBNF, as llama-server accepts), and Ollama `format` ("json" or a schema).
/// Schemas are read again from the raw body with an order-keeping parser, because the
/// property order of the schema is the order of the generated JSON.
extension API {
    func openAIGrammar(_ r: HTTPRequest, responseFormat: JSONValue?, grammar: String?) throws -> Grammar? {
        var chosen: Grammar? = nil
        if let f = responseFormat, !f.isEmpty {
            guard case let .object(o) = f, case let .string(type)? = o["type"] else {
                throw APIError.invalid("'response_format' must be an object with a 'type' (text, json_object or json_schema)", param: "response_format", code: "invalid_value")
            }
            switch type {
            case "text": break
            case "json_object":
                chosen = try compile(.object([.init("type", .string("object")), .init("additionalProperties", .bool(true))]), param: "response_format")
            case "json_schema":
                let body = try orderedBody(r)
                guard let js = body["response_format"]?["json_schema"], case .object = js else {
                    throw APIError.invalid("'response_format.json_schema' is required for type json_schema (an object with 'name' and 'schema')",
                                           param: "response_format.json_schema", code: "invalid_value")
                }
                // OpenAI allows the schema to be left out (then any JSON object is accepted).
                let schema = js["schema"] ?? .object([.init("type", .string("object")), .init("additionalProperties", .bool(true))])
                chosen = try compile(schema, param: "response_format.json_schema.schema")
            default:
                throw APIError.invalid("'response_format.type' must be text, json_object or json_schema, got '\(type)'", param: "response_format.type", code: "invalid_value")
            }
        }
        if let g = grammar, !g.isEmpty {
            guard chosen == nil else {
                throw APIError.invalid("give either 'grammar' or a JSON 'response_format', not both", param: "grammar", code: "invalid_value")
            }
            do { chosen = try Grammar(gbnf: g) } catch {
                throw APIError.invalid("'grammar': \(error)", param: "grammar", code: "invalid_grammar")
            }
        }
        return chosen
    }

    func ollamaGrammar(_ r: HTTPRequest, format: JSONValue?) throws -> Grammar? {
        guard let f = format, !f.isEmpty else { return nil }
        switch f {
        case .string("json"):
            return try compile(.object([.init("type", .string("object")), .init("additionalProperties", .bool(true))]), param: "format")
        case .object:
            guard let schema = try orderedBody(r)["format"] else { return nil }
            return try compile(schema, param: "format")
        default:
            throw APIError.invalid("'format' must be \"json\" or a JSON schema object", param: "format", code: "invalid_value")
        }
    }

    private func orderedBody(_ r: HTTPRequest) throws -> OrderedJSON {
        do { return try OrderedJSON.parse([UInt8](r.body)) } catch {
            throw APIError.invalid("the request body is not valid JSON: \(error)", param: nil, code: "invalid_json")
        }
    }

    private func compile(_ schema: OrderedJSON, param: String) throws -> Grammar {
        do { return try JSONSchemaGrammar.grammar(schema: schema) } catch {
            switch error {
            case let .unsupported(feature, path):
                throw APIError.invalid("the JSON schema uses '\(feature)' (at \(path.isEmpty ? "#" : path)), which steward cannot enforce; remove it or express the constraint differently",
                                       param: param, code: "unsupported_schema_feature")
            case .invalidSchema:
                throw APIError.invalid("\(error)", param: param, code: "invalid_schema")
            }
        }
    }
}
