import Foundation
import XCTest
import Server
import Generation
import TestSupport

/// response_format / grammar on the OpenAI routes and format on the Ollama routes.
final class ServerStructuredOutputTests: XCTestCase {
    var api: API!
    var id: String!

    override func setUpWithError() throws {
        let s = try Shared.get()
        api = s.api
        id = s.model.id
    }

    func post(_ path: String, _ body: String) -> HTTPResponse {
        api.handle(HTTPRequest(method: "POST", path: path, json: body))
    }

    static let schema = #"{"type":"object","properties":{"zeta":{"type":"integer","minimum":1,"maximum":9},"alpha":{"type":"boolean"}},"required":["zeta","alpha"],"additionalProperties":false}"#

    /// The text must be JSON with exactly zeta (1…9) then alpha (schema order, not sorted).
    func checkZetaAlpha(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text, file: file, line: line)
        XCTAssertEqual(Set(o.keys), ["zeta", "alpha"], file: file, line: line)
        XCTAssertTrue((1...9).contains(o["zeta"] as? Int ?? 0), text, file: file, line: line)
        XCTAssertTrue(o["alpha"] is Bool, file: file, line: line)
        let z = try XCTUnwrap(text.range(of: "\"zeta\"")), a = try XCTUnwrap(text.range(of: "\"alpha\""))
        XCTAssertLessThan(z.lowerBound, a.lowerBound, "properties in schema order", file: file, line: line)
    }

    func testChatJSONSchema() throws {
        let body = #"{"model":"\#(id!)","messages":[{"role":"user","content":"Give me JSON."}],"max_tokens":40,"temperature":0,"response_format":{"type":"json_schema","json_schema":{"name":"t","strict":true,"schema":\#(Self.schema)}}}"#
        let r = post("/v1/chat/completions", body)
        XCTAssertEqual(r.status, 200)
        let o = try object(r.collectBody())
        let choice = try XCTUnwrap((o["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual(choice["finish_reason"] as? String, "stop")
        try checkZetaAlpha(try XCTUnwrap((choice["message"] as? [String: Any])?["content"] as? String))
    }

    func testChatJSONObjectStreamed() throws {
        let body = #"{"model":"\#(id!)","messages":[{"role":"user","content":"Describe a cat as JSON."}],"max_tokens":60,"temperature":0,"stream":true,"response_format":{"type":"json_object"}}"#
        let r = post("/v1/chat/completions", body)
        XCTAssertEqual(r.status, 200)
        let (events, done) = try sseEvents(r.collectBody())
        XCTAssertTrue(done)
        var text = ""
        var finish: String?
        for e in events {
            guard let c = (e["choices"] as? [[String: Any]])?.first else { continue }
            text += ((c["delta"] as? [String: Any])?["content"] as? String) ?? ""
            if let f = c["finish_reason"] as? String { finish = f }
        }
        XCTAssertTrue(text.hasPrefix("{"), text)
        if finish == "stop" {
            XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
        } else {
            XCTAssertEqual(finish, "length")
        }
    }

    func testCompletionsGrammar() throws {
        let body = #"{"model":"\#(id!)","prompt":"The answer is","max_tokens":10,"temperature":1,"seed":3,"grammar":"root ::= \" \" (\"yes\" | \"no\") \".\""}"#
        let r = post("/v1/completions", body)
        XCTAssertEqual(r.status, 200)
        let o = try object(r.collectBody())
        let c = try XCTUnwrap((o["choices"] as? [[String: Any]])?.first)
        XCTAssertTrue(["stop"].contains(c["finish_reason"] as? String))
        XCTAssertTrue([" yes.", " no."].contains(c["text"] as? String), "\(c["text"] ?? "")")
    }

    func testOllamaFormats() throws {
        let chat = #"{"model":"\#(id!)","messages":[{"role":"user","content":"JSON please"}],"stream":false,"options":{"temperature":0,"num_predict":40},"format":\#(Self.schema)}"#
        let r = post("/api/chat", chat)
        XCTAssertEqual(r.status, 200)
        let o = try object(r.collectBody())
        try checkZetaAlpha(try XCTUnwrap((o["message"] as? [String: Any])?["content"] as? String))
        let gen = #"{"model":"\#(id!)","prompt":"A JSON object about a dog:","stream":false,"options":{"temperature":0,"num_predict":60},"format":"json"}"#
        let g = try object(post("/api/generate", gen).collectBody())
        let text = try XCTUnwrap(g["response"] as? String)
        XCTAssertTrue(text.hasPrefix("{"), text)
        if g["done_reason"] as? String == "stop" { XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) }
    }

    func testUnsupportedFeaturesAndBadGrammarAre400() throws {
        let multipleOf = #"{"model":"\#(id!)","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"t","schema":{"type":"integer","multipleOf":3}}}}"#
        let r = post("/v1/chat/completions", multipleOf)
        XCTAssertEqual(r.status, 400)
        let e = try XCTUnwrap(try object(r.collectBody())["error"] as? [String: Any])
        XCTAssertEqual(e["type"] as? String, "invalid_request_error")
        XCTAssertTrue((e["message"] as? String ?? "").contains("multipleOf"), "\(e)")
        XCTAssertEqual(e["code"] as? String, "unsupported_schema_feature")

        let badGrammar = #"{"model":"\#(id!)","prompt":"x","grammar":"root ::= undefined-rule"}"#
        let g = post("/v1/completions", badGrammar)
        XCTAssertEqual(g.status, 400)
        XCTAssertTrue(String(decoding: g.collectBody(), as: UTF8.self).contains("undefined-rule"))

        let ollama = #"{"model":"\#(id!)","prompt":"x","stream":false,"format":{"type":"array","uniqueItems":true}}"#
        let o = post("/api/generate", ollama)
        XCTAssertEqual(o.status, 400)
        XCTAssertTrue(String(decoding: o.collectBody(), as: UTF8.self).contains("uniqueItems"))

        let both = #"{"model":"\#(id!)","prompt":"x","grammar":"root ::= \"a\"","response_format":{"type":"json_object"}}"#
        XCTAssertEqual(post("/v1/completions", both).status, 400)
        let badType = #"{"model":"\#(id!)","prompt":"x","response_format":{"type":"xml"}}"#
        XCTAssertEqual(post("/v1/completions", badType).status, 400)
    }
}
