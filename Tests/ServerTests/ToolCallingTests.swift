import Foundation
import XCTest
import Server
import Generation
import Templates
import Tokenization
import TestSupport

/// Tool calling: output parsing per format, request validation, prompts through the golden
/// templates and the built-in prompt, and real SmolLM2 round trips with constrained calls.
final class ToolCallingTests: XCTestCase {
    static let weatherTool = #"{"type":"function","function":{"name":"get_weather","description":"Get the current weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}}}"#
    static let timeTool = #"{"type":"function","function":{"name":"get_time","description":"Current time in a time zone","parameters":{"type":"object","properties":{"zone":{"type":"string"},"hours_ahead":{"type":"integer","minimum":0,"maximum":48}},"required":["zone","hours_ahead"],"additionalProperties":false}}}"#
    static let names: Set<String> = ["get_weather", "get_time"]

    func post(_ api: API, _ path: String, _ body: String) -> HTTPResponse {
        api.handle(HTTPRequest(method: "POST", path: path, json: body))
    }

    // MARK: Parsing

    func parse(_ text: String, _ f: ToolCallFormat) -> (content: String?, calls: [ToolCall]) {
        ToolCallParser.parse(text, format: f, names: Self.names)
    }

    func testHermesCallsWithContentBefore() {
        let out = parse("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\", \"hours_ahead\": 2}}\n</tool_call>", .hermes)
        XCTAssertEqual(out.content, "Let me check.")
        XCTAssertEqual(out.calls.map(\.name), ["get_weather", "get_time"])
        XCTAssertEqual(out.calls[0].argumentsJSON, #"{"city": "Paris"}"#)
        XCTAssertEqual(out.calls[1].arguments["hours_ahead"], .int(2))
        XCTAssertTrue(out.calls.allSatisfy { $0.id.hasPrefix("call_") && $0.id.count > 10 })
        XCTAssertNotEqual(out.calls[0].id, out.calls[1].id)
        // Arguments given as JSON text inside the call are read too; only a call: content nil.
        let s = parse("<tool_call>{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Rome\\\"}\"}</tool_call>", .hermes)
        XCTAssertNil(s.content)
        XCTAssertEqual(s.calls.first?.arguments["city"], .string("Rome"))
    }

    func testMalformedCallsStayContent() {
        for text in ["<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }\n</tool_call>",      // bad JSON
                     "<tool_call>\n{\"name\": \"launch_rockets\", \"arguments\": {}}\n</tool_call>",          // unknown function
                     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": [1, 2]}\n</tool_call>",         // arguments not an object
                     "<tool_call>\n{\"name\": \"get_weather\", \"argu",                                       // cut off
                     "Plain answer with a < sign and <tool no call."] {
            let out = parse(text, .hermes)
            XCTAssertTrue(out.calls.isEmpty, text)
            XCTAssertEqual(out.content, text, "returned whole as content")
        }
        // A good call beside a broken one: the good one is a call, the broken one stays text.
        let mixed = parse("<tool_call>{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\", \"hours_ahead\": 0}}</tool_call><tool_call>{oops}</tool_call>", .hermes)
        XCTAssertEqual(mixed.calls.map(\.name), ["get_time"])
        XCTAssertEqual(mixed.content, "<tool_call>{oops}</tool_call>")
    }

    func testLlamaMistralGraniteFormats() {
        let llama = parse("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\", \"unit\": \"celsius\"}}", .llama3)
        XCTAssertEqual(llama.calls.map(\.name), ["get_weather"])
        XCTAssertEqual(llama.calls.first?.argumentsJSON, #"{"city": "Oslo", "unit": "celsius"}"#)
        XCTAssertNil(llama.content)
        let tagged = parse("<|python_tag|>{\"name\": \"get_time\", \"parameters\": {\"zone\": \"PST\", \"hours_ahead\": 1}}<|eom_id|>", .llama3)
        XCTAssertEqual(tagged.calls.map(\.name), ["get_time"])
        let prose = parse("The weather is {probably} fine.", .llama3)
        XCTAssertEqual(prose.content, "The weather is {probably} fine.")
        XCTAssertTrue(prose.calls.isEmpty)
        let notACall = parse("{\"answer\": 42}", .llama3)
        XCTAssertEqual(notACall.content, "{\"answer\": 42}")

        let mistral = parse("[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Nice\"}, \"id\": \"abcdefghi\"}, {\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\", \"hours_ahead\": 3}}]", .mistral)
        XCTAssertEqual(mistral.calls.map(\.name), ["get_weather", "get_time"])
        XCTAssertEqual(mistral.calls[1].arguments["hours_ahead"], .int(3))
        XCTAssertTrue(parse("[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {", .mistral).calls.isEmpty)

        let granite = parse("<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Bern\"}}]", .granite)
        XCTAssertEqual(granite.calls.first?.arguments["city"], .string("Bern"))
    }

    /// Fed a character at a time (as streaming does), the parser gives the same content and
    /// calls as on the whole text, and never lets call text out as content.
    func testIncrementalParsingMatchesWhole() {
        let texts = [
            "Sure. <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            "No tools needed: 2 < 3 and <tool is a word.",
            "<tool_call>{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\", \"hours_ahead\": 5}}</tool_call>\n<tool_call>{broken</tool_call>",
        ]
        for text in texts {
            var p = ToolCallParser(format: .hermes, names: Self.names)
            var content = ""
            var names: [String] = []
            for ch in text {
                for e in p.feed(String(ch)) {
                    switch e {
                    case let .content(s): content += s
                    case let .call(c): names.append(c.name)
                    }
                }
            }
            for e in p.finish() {
                switch e {
                case let .content(s): content += s
                case let .call(c): names.append(c.name)
                }
            }
            let whole = parse(text, .hermes)
            XCTAssertEqual(names, whole.calls.map(\.name), text)
            XCTAssertEqual(content.trimmingCharacters(in: .whitespacesAndNewlines), whole.content ?? "", text)
            if !whole.calls.isEmpty { XCTAssertFalse(content.contains("\"name\": \"get_"), "call text leaked as content: \(content)") }
        }
    }

    func testFormatTaughtByGoldenTemplates() throws {
        let dir = TestPaths.golden + "/chat-templates/"
        let expect: [(String, ToolCallFormat?)] = [
            ("Qwen-Qwen2.5-7B-Instruct.jinja", .hermes), ("Qwen-Qwen3-0.6B.jinja", .hermes),
            ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", .hermes),
            ("meta-llama-Llama-3.1-8B-Instruct.jinja", .llama3), ("meta-llama-Llama-3.2-3B-Instruct.jinja", .llama3),
            ("mistralai-Mistral-Nemo-Instruct-2407.jinja", .mistral), ("ibm-granite-granite-3.3-2B-Instruct.jinja", .granite),
            ("SmolLM2-135M-Instruct.jinja", nil), ("google-gemma-2-2b-it.jinja", nil), ("microsoft-Phi-3.5-mini-instruct.jinja", nil),
        ]
        for (name, format) in expect {
            let src = try String(contentsOfFile: dir + name, encoding: .utf8)
            XCTAssertEqual(ToolCallFormat.taught(byTemplate: src), format, name)
        }
    }

    // MARK: Prompts

    /// The golden "tools" conversation sent the OpenAI way (arguments as JSON text, no name on
    /// the tool message) renders through each tool-aware template exactly as transformers did.
    func testTemplatesRenderToolConversationLikeGoldens() throws {
        let dir = TestPaths.golden + "/chat-templates/"
        let golden = try TemplateValue.parseJSON(Data(contentsOf: URL(fileURLWithPath: dir + "cases.json")))
        guard case let .array(cases)? = golden["cases"], case let .string(bos)? = golden["specials"]?["bos_token"],
              case let .string(eos)? = golden["specials"]?["eos_token"] else { return XCTFail("cases.json shape") }
        let body = try TemplateValue.parseJSON(#"""
        {"model": "m", "tools": [\#(Self.weatherTool)], "messages": [
          {"role": "user", "content": "What's the weather in Paris?"},
          {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}]},
          {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 18}"},
          {"role": "user", "content": "Thanks. And in Rome?"}]}
        """#)
        var checked = 0
        for name in ["Qwen-Qwen2.5-7B-Instruct.jinja", "Qwen-Qwen3-0.6B.jinja", "meta-llama-Llama-3.1-8B-Instruct.jinja",
                     "meta-llama-Llama-3.2-3B-Instruct.jinja", "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
                     "ibm-granite-granite-3.3-2B-Instruct.jinja"] {
            guard let c = cases.first(where: { $0["template"] == .string(name) && $0["conversation"] == .string("tools") }),
                  case let .string(expected)? = c["expected"] else { XCTFail("no golden for \(name)"); continue }
            let src = try String(contentsOfFile: dir + name, encoding: .utf8)
            let setup = try ToolSetup.read(body, templateSource: src)
            XCTAssertTrue(setup.viaTemplate, name)
            let turns = try Self.turns(body)
            let (messages, tools) = ToolPrompt.render(turns, setup)
            let got = try ChatTemplate(source: src).render(messages: messages, tools: tools, addGenerationPrompt: true, bosToken: bos, eosToken: eos,
                                                           now: Date(timeIntervalSince1970: 1_721_995_200),
                                                           strftimeNow: { $0 == "%d %b %Y" ? "26 Jul 2024" : "2024-07-26" })
            XCTAssertEqual(got, expected, name)
            checked += 1
        }
        XCTAssertEqual(checked, 6)
    }

    /// Turns the way the OpenAI handler reads them.
    static func turns(_ body: TemplateValue) throws -> [ChatTurn] {
        guard case let .array(msgs)? = body["messages"] else { return [] }
        return try msgs.enumerated().map { i, m in
            var content: String?
            if case let .string(s)? = m["content"] { content = s }
            var id: String?
            if case let .string(s)? = m["tool_call_id"] { id = s }
            guard case let .string(role)? = m["role"] else { throw TestSupportError.missing("role") }
            return ChatTurn(role: role, content: content, toolCalls: try ChatTurn.readToolCalls(m["tool_calls"], message: i), toolCallID: id)
        }
    }

    /// SmolLM2's template knows nothing of tools: the built-in prompt goes into the system
    /// message, earlier calls become <tool_call> blocks and results a <tool_response> user turn.
    func testBuiltinPromptForSmolLM2() throws {
        let src = try String(contentsOfFile: TestPaths.golden + "/chat-templates/SmolLM2-135M-Instruct.jinja", encoding: .utf8)
        let body = try TemplateValue.parseJSON(#"""
        {"tools": [\#(Self.weatherTool)], "tool_choice": "required", "messages": [
          {"role": "system", "content": "Be brief."},
          {"role": "user", "content": "Weather in Paris?"},
          {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
          {"role": "tool", "tool_call_id": "call_9", "content": "18 C"}]}
        """#)
        let setup = try ToolSetup.read(body, templateSource: src)
        XCTAssertFalse(setup.viaTemplate)
        XCTAssertEqual(setup.format, .hermes)
        XCTAssertEqual(setup.choice, .required)
        let (messages, tools) = ToolPrompt.render(try Self.turns(body), setup)
        XCTAssertNil(tools)
        let text = try ChatTemplate(source: src).render(messages: messages, tools: nil, addGenerationPrompt: true, bosToken: "", eosToken: "")
        let toolJSON = #"{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather for a city", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}"#
        let system = "Be brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            + "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" + toolJSON + "\n</tools>\n\n"
            + "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
            + "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>\n\nYou must call at least one of these functions."
        let expected = "<|im_start|>system\n" + system + "<|im_end|>\n"
            + "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
            + "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\n<tool_response>\n18 C\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
        XCTAssertEqual(text, expected)
    }

    // MARK: Request validation (no generation)

    func testRequestValidation() throws {
        let (api, model) = try Shared.get()
        let id = model.id
        let cases: [(String, String, String)] = [
            (#""tools":[\#(Self.weatherTool)],"tool_choice":{"type":"function","function":{"name":"nope"}}"#, "tool_choice", "nope"),
            (#""tools":[\#(Self.weatherTool)],"tool_choice":"sometimes""#, "tool_choice", "sometimes"),
            (#""tool_choice":"required""#, "tool_choice", "tools"),
            (#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"type":"strig"}}}}}]"#, "tools", "strig"),
            (#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"array"}}}]"#, "tools", "object"),
            (#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"not":{"type":"string"}}}}}}]"#, "tools", "not"),
            (#""tools":[{"type":"function","function":{"name":"bad name!"}}]"#, "tools", "bad name!"),
            (#""tools":[{"type":"retrieval"}]"#, "tools", "type"),
            (#""tools":[\#(Self.weatherTool),\#(Self.weatherTool)]"#, "tools", "twice"),
            (#""tools":[\#(Self.weatherTool)],"parallel_tool_calls":"yes""#, "parallel_tool_calls", "boolean"),
            (#""tools":[\#(Self.weatherTool)],"response_format":{"type":"json_object"}"#, "response_format", "tool"),
        ]
        for (extra, param, mentions) in cases {
            let r = post(api, "/v1/chat/completions", #"{"model":"\#(id)","messages":[{"role":"user","content":"hi"}],\#(extra)}"#)
            XCTAssertEqual(r.status, 400, extra)
            let e = try XCTUnwrap(try object(r.collectBody())["error"] as? [String: Any], extra)
            XCTAssertEqual(e["param"] as? String, param, extra)
            XCTAssertTrue((e["message"] as? String)?.contains(mentions) == true, "\(extra): \(e["message"] ?? "")")
        }
        let badArgs = post(api, "/v1/chat/completions", #"{"model":"\#(id)","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}"#)
        XCTAssertEqual(badArgs.status, 400)
        XCTAssertEqual(try object(badArgs.collectBody())["error"].flatMap { ($0 as? [String: Any])?["param"] as? String }, "messages[0].tool_calls[0].function.arguments")
        let ollama = post(api, "/api/chat", #"{"model":"\#(id)","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"type":"strig"}}}}}]}"#)
        XCTAssertEqual(ollama.status, 400)
        XCTAssertTrue(try XCTUnwrap(try object(ollama.collectBody())["error"] as? String).contains("strig"))
    }

    // MARK: Grammar

    /// The call grammar for `required` accepts exactly well-formed calls of the offered tools.
    func testCallGrammarAcceptsOnlyValidCalls() throws {
        let body = try TemplateValue.parseJSON(#"{"tools":[\#(Self.weatherTool),\#(Self.timeTool)],"tool_choice":"required","parallel_tool_calls":false}"#)
        let setup = try ToolSetup.read(body, templateSource: nil)
        let c = try XCTUnwrap(try ToolGrammar.constraint(setup))
        XCTAssertEqual(c.triggers, [])
        func accepts(_ s: String) -> Bool {
            let m = GrammarMatcher(grammar: c.grammar)
            return m.accept(s) && m.isComplete
        }
        XCTAssertTrue(accepts("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"))
        XCTAssertTrue(accepts("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\", \"hours_ahead\": 4}}\n</tool_call>"))
        XCTAssertFalse(accepts("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"celsius\"}}\n</tool_call>"), "required city missing")
        XCTAssertFalse(accepts("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"kelvin\"}}\n</tool_call>"), "enum")
        XCTAssertFalse(accepts("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\", \"hours_ahead\": \"4\"}}\n</tool_call>"), "integer")
        XCTAssertFalse(accepts("<tool_call>\n{\"name\": \"get_news\", \"arguments\": {}}\n</tool_call>"), "unknown function")
        XCTAssertFalse(accepts("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"A\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"B\"}}\n</tool_call>"), "one call only")
        var parallel = setup
        parallel.parallel = true
        let p = try XCTUnwrap(try ToolGrammar.constraint(parallel))
        let m = GrammarMatcher(grammar: p.grammar)
        XCTAssertTrue(m.accept("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"A\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"B\"}}\n</tool_call>") && m.isComplete)
        var named = setup
        named.choice = .function("get_time")
        let n = GrammarMatcher(grammar: try XCTUnwrap(try ToolGrammar.constraint(named)).grammar)
        XCTAssertFalse(n.accept("<tool_call>\n{\"name\": \"get_weather\""))
        var auto = setup
        auto.choice = .auto
        XCTAssertEqual(try ToolGrammar.constraint(auto)?.triggers, ["<tool_call>"])
    }

    func testGrammarTriggerFindsMarkerAcrossTokens() {
        var t = GrammarTrigger(["<tool_call>"])
        XCTAssertNil(t.feed(Array("Hello <tool".utf8)))
        XCTAssertEqual(t.feed(Array("_call>\n{".utf8)).map { String(decoding: $0, as: UTF8.self) }, "<tool_call>\n{")
    }

    /// A lazy grammar on the real model: free until the trigger, then held to the grammar.
    func testLazyGrammarAppliesFromTrigger() throws {
        let (_, model) = try Shared.get()
        let tok = model.tokenizer
        let prompt = tok.encode("Count: one, two, three, four, five,", addBOS: nil, parseSpecial: true)
        var g = GenerationRequest()
        g.maxTokens = 24
        g.sampling = .greedy
        let free = try model.engine.generate(prompt: prompt, g) { _ in true }
        guard let comma = free.text.firstIndex(of: ",") else { throw XCTSkip("greedy output has no comma: \(free.text)") }
        g.grammar = try Grammar(gbnf: #"root ::= ", 42 is the answer.""#)
        g.grammarTriggers = [","]
        let lazy = try model.engine.generate(prompt: prompt, g) { _ in true }
        XCTAssertEqual(lazy.text, String(free.text[..<comma]) + ", 42 is the answer.")
        XCTAssertEqual(lazy.finishReason, .stop)
    }

    // MARK: Real model round trips

    /// Minimal checks of arguments against the test tools' schemas (independent of the grammar).
    static func validate(_ name: String, _ args: [String: Any]) -> String? {
        switch name {
        case "get_weather":
            guard let city = args["city"] as? String else { return "city missing or not a string" }
            _ = city
            if let u = args["unit"] { guard let s = u as? String, ["celsius", "fahrenheit"].contains(s) else { return "unit \(u)" } }
            return Set(args.keys).isSubset(of: ["city", "unit"]) ? nil : "extra keys \(args.keys)"
        case "get_time":
            guard args["zone"] is String else { return "zone" }
            guard let h = args["hours_ahead"] as? NSNumber, String(cString: h.objCType) != "d", (0...48).contains(h.intValue) else { return "hours_ahead \(args["hours_ahead"] ?? "nil")" }
            return Set(args.keys) == ["zone", "hours_ahead"] ? nil : "keys \(args.keys)"
        default: return "unknown function \(name)"
        }
    }

    func testRequiredToolCallRoundTripOnSmolLM2() throws {
        let (api, model) = try Shared.get()
        for seed in 1...6 {
            // One call (parallel off) must end the turn; with parallel calls on, the model may
            // go on calling until max_tokens, and every complete call must still be valid.
            let parallel = seed > 3
            let r = post(api, "/v1/chat/completions", #"{"model":"\#(model.id)","messages":[{"role":"user","content":"What time is it in Tokyo in 3 hours, and the weather in Paris?"}],"tools":[\#(Self.weatherTool),\#(Self.timeTool)],"tool_choice":"required","parallel_tool_calls":\#(parallel),"temperature":1,"seed":\#(seed),"max_tokens":160}"#)
            XCTAssertEqual(r.status, 200)
            let o = try object(r.collectBody())
            let choice = try XCTUnwrap((o["choices"] as? [[String: Any]])?.first)
            let msg = try XCTUnwrap(choice["message"] as? [String: Any])
            if parallel && choice["finish_reason"] as? String == "length" {
                XCTAssertTrue(msg["content"] is NSNull || (msg["content"] as? String)?.hasPrefix("<tool_call>") == true, "only a cut-off call may be left: \(msg)")
            } else {
                XCTAssertEqual(choice["finish_reason"] as? String, "tool_calls", "seed \(seed): \(choice)")
                XCTAssertTrue(msg["content"] is NSNull, "content is null beside calls: \(msg)")
            }
            if !parallel { XCTAssertEqual((msg["tool_calls"] as? [Any])?.count, 1) }
            let calls = try XCTUnwrap(msg["tool_calls"] as? [[String: Any]], "\(msg)")
            XCTAssertFalse(calls.isEmpty)
            for c in calls {
                XCTAssertEqual(c["type"] as? String, "function")
                XCTAssertTrue((c["id"] as? String)?.hasPrefix("call_") == true)
                let fn = try XCTUnwrap(c["function"] as? [String: Any])
                let name = try XCTUnwrap(fn["name"] as? String)
                let argsText = try XCTUnwrap(fn["arguments"] as? String, "arguments are a JSON string")
                let args = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(argsText.utf8)) as? [String: Any], argsText)
                XCTAssertNil(Self.validate(name, args), "seed \(seed): \(name) \(argsText)")
            }
        }
        // A named function: always that one, arguments valid.
        let r = post(api, "/v1/chat/completions", #"{"model":"\#(model.id)","messages":[{"role":"user","content":"Hi!"}],"tools":[\#(Self.weatherTool),\#(Self.timeTool)],"tool_choice":{"type":"function","function":{"name":"get_time"}},"parallel_tool_calls":false,"temperature":0,"max_tokens":80}"#)
        let o = try object(r.collectBody())
        let calls = try XCTUnwrap(((o["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["tool_calls"] as? [[String: Any]], "\(o)")
        XCTAssertEqual(calls.count, 1)
        let fn = try XCTUnwrap(calls[0]["function"] as? [String: Any])
        XCTAssertEqual(fn["name"] as? String, "get_time")
        let args = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(fn["arguments"] as? String).utf8)) as? [String: Any])
        XCTAssertNil(Self.validate("get_time", args))
    }

    func testStreamedToolCallChunks() throws {
        let (api, model) = try Shared.get()
        let body = #"{"model":"\#(model.id)","messages":[{"role":"user","content":"Weather in Paris?"}],"tools":[\#(Self.weatherTool)],"tool_choice":"required","parallel_tool_calls":false,"temperature":0,"max_tokens":80,"stream":true}"#
        let r = post(api, "/v1/chat/completions", body)
        XCTAssertEqual(r.status, 200)
        let (events, done) = try sseEvents(r.collectBody())
        XCTAssertTrue(done)
        let choices = events.compactMap { ($0["choices"] as? [[String: Any]])?.first }
        let deltas = choices.compactMap { $0["delta"] as? [String: Any] }
        XCTAssertEqual(deltas.first?["role"] as? String, "assistant")
        let pieces = deltas.compactMap { $0["tool_calls"] as? [[String: Any]] }.flatMap { $0 }
        XCTAssertGreaterThanOrEqual(pieces.count, 2)
        let head = try XCTUnwrap(pieces.first)
        XCTAssertEqual(head["index"] as? Int, 0)
        XCTAssertEqual(head["type"] as? String, "function")
        XCTAssertTrue((head["id"] as? String)?.hasPrefix("call_") == true)
        XCTAssertEqual((head["function"] as? [String: Any])?["name"] as? String, "get_weather")
        XCTAssertEqual((head["function"] as? [String: Any])?["arguments"] as? String, "")
        let argsText = pieces.dropFirst().compactMap { ($0["function"] as? [String: Any])?["arguments"] as? String }.joined()
        let args = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(argsText.utf8)) as? [String: Any], argsText)
        XCTAssertNil(Self.validate("get_weather", args))
        let content = deltas.compactMap { $0["content"] as? String }.joined()
        XCTAssertFalse(content.contains("<tool_call>"), "call text is not streamed as content: \(content)")
        XCTAssertEqual(choices.last?["finish_reason"] as? String, "tool_calls")
        XCTAssertTrue(choices.dropLast().allSatisfy { $0["finish_reason"] is NSNull })

        // The same request unstreamed also gives one valid call. (Not compared byte for byte: a
        // prompt evaluated in one batch and one reusing the KV cache differ in the last float
        // bits, which can flip a near-tie under greedy decoding.)
        let whole = try object(post(api, "/v1/chat/completions", body.replacingOccurrences(of: #","stream":true"#, with: "")).collectBody())
        let calls = try XCTUnwrap(((whole["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["tool_calls"] as? [[String: Any]])
        XCTAssertEqual(calls.count, 1)
        let wholeArgs = try XCTUnwrap((calls[0]["function"] as? [String: Any])?["arguments"] as? String)
        XCTAssertNil(Self.validate("get_weather", try XCTUnwrap(JSONSerialization.jsonObject(with: Data(wholeArgs.utf8)) as? [String: Any])))
    }

    /// The result goes back as a tool message and the model answers (tool_choice auto).
    func testToolResultFlowsBack() throws {
        let (api, model) = try Shared.get()
        let body = #"{"model":"\#(model.id)","messages":[{"role":"user","content":"Weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_abc","content":"{\"temp_c\": 18, \"sky\": \"sunny\"}"}],"tools":[\#(Self.weatherTool)],"temperature":0,"max_tokens":40}"#
        let r = post(api, "/v1/chat/completions", body)
        XCTAssertEqual(r.status, 200)
        let o = try object(r.collectBody())
        let choice = try XCTUnwrap((o["choices"] as? [[String: Any]])?.first)
        let finish = try XCTUnwrap(choice["finish_reason"] as? String)
        XCTAssertTrue(["stop", "length", "tool_calls"].contains(finish))
        let msg = try XCTUnwrap(choice["message"] as? [String: Any])
        if finish == "tool_calls" {
            XCTAssertNotNil(msg["tool_calls"] as? [[String: Any]])
        } else {
            XCTAssertFalse(try XCTUnwrap(msg["content"] as? String).isEmpty)
        }
        // The prompt holds the result the built-in way, and the tokens counted are that prompt's.
        let turns = [ChatTurn(role: "user", content: "Weather in Paris?"),
                     ChatTurn(role: "assistant", content: nil, toolCalls: [ToolCall(id: "call_abc", name: "get_weather", arguments: .object(TemplateObject([("city", "Paris")])))]),
                     ChatTurn(role: "tool", content: "{\"temp_c\": 18, \"sky\": \"sunny\"}", toolCallID: "call_abc")]
        let setup = try ToolSetup.read(try TemplateValue.parseJSON(#"{"tools":[\#(Self.weatherTool)]}"#), templateSource: model.templateSource)
        let (messages, tools) = ToolPrompt.render(turns, setup)
        let prompt = try ChatPrompt.encode(try XCTUnwrap(model.chatTemplate), tokenizer: model.tokenizer, messages: messages, tools: tools)
        XCTAssertEqual((o["usage"] as? [String: Int])?["prompt_tokens"], prompt.count)
        XCTAssertTrue(model.tokenizer.decode(prompt).contains("<tool_response>\n{\"temp_c\": 18, \"sky\": \"sunny\"}\n</tool_response>"))
    }

    func testOllamaToolCalls() throws {
        let (api, model) = try Shared.get()
        // tool_choice is an extension on /api/chat (Ollama has none); the call's arguments are an object.
        let r = post(api, "/api/chat", #"{"model":"\#(model.id)","stream":false,"messages":[{"role":"user","content":"Weather in Paris?"}],"tools":[\#(Self.weatherTool)],"tool_choice":"required","options":{"temperature":0,"num_predict":80}}"#)
        XCTAssertEqual(r.status, 200)
        let o = try object(r.collectBody())
        let msg = try XCTUnwrap(o["message"] as? [String: Any])
        let calls = try XCTUnwrap(msg["tool_calls"] as? [[String: Any]], "\(o)")
        let fn = try XCTUnwrap(calls.first?["function"] as? [String: Any])
        XCTAssertEqual(fn["name"] as? String, "get_weather")
        let args = try XCTUnwrap(fn["arguments"] as? [String: Any])
        XCTAssertNil(Self.validate("get_weather", args))
        XCTAssertEqual(o["done"] as? Bool, true)

        let s = post(api, "/api/chat", #"{"model":"\#(model.id)","messages":[{"role":"user","content":"Weather in Paris?"}],"tools":[\#(Self.weatherTool)],"tool_choice":"required","options":{"temperature":0,"num_predict":80}}"#)
        let lines = String(decoding: try s.collectBody(), as: UTF8.self).split(separator: "\n").map { try? object(Data($0.utf8)) }
        let objects = lines.compactMap { $0 }
        XCTAssertEqual(objects.count, lines.count)
        let streamed = objects.compactMap { ($0["message"] as? [String: Any])?["tool_calls"] as? [[String: Any]] }.flatMap { $0 }
        XCTAssertGreaterThanOrEqual(streamed.count, 1)
        XCTAssertEqual(((streamed.first?["function"] as? [String: Any])?["arguments"] as? [String: Any])?["city"] as? String, args["city"] as? String)
        XCTAssertEqual(objects.last?["done"] as? Bool, true)

        // History in Ollama's shape: arguments as an object, a tool message with tool_name.
        let back = post(api, "/api/chat", #"{"model":"\#(model.id)","stream":false,"messages":[{"role":"user","content":"Weather in Paris?"},{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},{"role":"tool","tool_name":"get_weather","content":"18 C and sunny"}],"tools":[\#(Self.weatherTool)],"options":{"temperature":0,"num_predict":30}}"#)
        XCTAssertEqual(back.status, 200)
        XCTAssertEqual(try object(back.collectBody())["done"] as? Bool, true)
    }
}
