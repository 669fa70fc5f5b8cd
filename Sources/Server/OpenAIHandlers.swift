import Foundation
import Generation
import Moderation
import Retrieval
import Tokenization
import Templates

/// JSON has no infinities: a log-probability of -inf (a banned token) is sent as a very
/// negative finite number.
func jsonSafe(_ v: Float) -> Double { v.isFinite ? Double(v) : -9999 }

func sse<T: Encodable>(_ value: T) -> String {
    let data = (try? JSONCoding.encoder.encode(value)) ?? Data("{}".utf8)
    return "data: " + String(decoding: data, as: UTF8.self) + "\n\n"
}

extension API {
    // MARK: GET /health, GET /v1/models

    func health() -> HTTPResponse {
        if models.ready && !isShuttingDown { return .json(["status": "ok"]) }
        return .json(["status": isShuttingDown ? "stopping" : "loading"], status: 503)
    }

    func listModels() -> HTTPResponse {
        var data = models.models.map { OpenAI.Model(id: $0.id, object: "model", created: Int($0.modified.timeIntervalSince1970), owned_by: "steward", license: $0.license) }
        // Each loaded adapter as "BASE+ADAPTER", the id a request may name.
        data += models.models.flatMap { m in m.adapterNames.map { OpenAI.Model(id: m.id + "+" + $0, object: "model", created: Int(m.modified.timeIntervalSince1970), owned_by: "steward", license: m.license) } }
        data += models.embeddingModels.map { OpenAI.Model(id: $0.id, object: "model", created: 0, owned_by: "steward", license: $0.license) }
        return .json(OpenAI.ModelList(object: "list", data: data))
    }

    /// GET /v1/models/{id} (the openai client's models.retrieve).
    func retrieveModel(_ rawID: String) throws -> HTTPResponse {
        let id = rawID.removingPercentEncoding ?? rawID
        if let m = models.models.first(where: { $0.id == id }) {
            return .json(OpenAI.Model(id: m.id, object: "model", created: Int(m.modified.timeIntervalSince1970), owned_by: "steward", license: m.license))
        }
        if let e = models.embeddingModels.first(where: { $0.id == id }) {
            return .json(OpenAI.Model(id: e.id, object: "model", created: 0, owned_by: "steward", license: e.license))
        }
        throw APIError(status: 404, message: "the model '\(id)' does not exist; GET /v1/models lists the served ones",
                       type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    // MARK: POST /v1/chat/completions

    func chatCompletions(_ r: HTTPRequest) throws -> HTTPResponse {
        let req = try decode(OpenAI.ChatCompletionRequest.self, r)
        let m = try decoder(req.model, adapter: req.adapter)
        let grammar = try openAIGrammar(r, responseFormat: req.response_format, grammar: req.grammar)
        r.context.model = m.id
        let tok0 = m.tokenizer
        guard let raw = req.messages else { throw APIError.missing("messages") }
        guard !raw.isEmpty else { throw APIError.invalid("'messages' must hold at least one message", param: "messages", code: "invalid_value") }
        let ordered = try orderedRequest(r)
        let tools = try ToolSetup.read(ordered, templateSource: m.templateSource)
        let orderedMessages: [TemplateValue]
        if case let .array(a)? = ordered["messages"] { orderedMessages = a } else { orderedMessages = [] }
        var turns: [ChatTurn] = []
        for (i, msg) in raw.enumerated() {
            guard !msg.role.isEmpty else { throw APIError.invalid("'messages[\(i)].role' must not be empty", param: "messages[\(i)].role", code: "invalid_value") }
            var text: String?
            switch msg.content {
            case nil: break
            case let .text(s)?: text = s
            case let .parts(parts)?:
                var pieces: [String] = []
                for (j, p) in parts.enumerated() {
                    guard p.type == "text", let t = p.text else {
                        throw APIError.invalid("'messages[\(i)].content[\(j)]' is a '\(p.type)' part; only text parts are supported",
                                               param: "messages[\(i)].content[\(j)].type", code: "unsupported_content")
                    }
                    pieces.append(t)
                }
                text = pieces.joined(separator: "\n")
            }
            let calls = try ChatTurn.readToolCalls(i < orderedMessages.count ? orderedMessages[i]["tool_calls"] : nil, message: i)
            if !calls.isEmpty && msg.role != "assistant" {
                throw APIError.invalid("'messages[\(i)].tool_calls' is only allowed on assistant messages", param: "messages[\(i)].tool_calls", code: "invalid_value")
            }
            if msg.role == "tool" && msg.tool_call_id == nil && req.tools != nil {
                throw APIError.invalid("'messages[\(i)].tool_call_id' is required for a tool message", param: "messages[\(i)].tool_call_id", code: "missing_required_parameter")
            }
            turns.append(ChatTurn(role: msg.role, content: text, toolCalls: calls, toolCallID: msg.tool_call_id, name: msg.name))
        }
        let mod = try moderationRun(r, flavor: .openAI)
        if let mod {
            let checked = try mod.checkInput(turns.map { $0.content ?? "" }, tokenCounter: { tok0.encode($0, addBOS: false, parseSpecial: false).count })
            for k in turns.indices where turns[k].content != nil { turns[k].content = checked[k] }
        }
        r.context.capturePrompt(turns.map { "\($0.role): \($0.content ?? "")" }.joined(separator: "\n"))
        let n = try choices(req.n)
        let grounding = try groundChat(r, collections: req.collections, turns: &turns)
        if let g = grounding, !g.found {
            return groundedRefusal(g, model: m, n: n, stream: req.stream == true, includeUsage: req.stream_options?.include_usage == true, context: r.context)
        }
        if req.top_logprobs != nil && req.logprobs != true {
            throw APIError.invalid("'top_logprobs' needs 'logprobs': true", param: "top_logprobs", code: "invalid_value")
        }
        if let t = req.top_logprobs, !(0...20).contains(t) {
            throw APIError.invalid("'top_logprobs' must be between 0 and 20, got \(t)", param: "top_logprobs", code: "invalid_value")
        }
        let prompt = try chatPrompt(m, turns, tools, param: "messages")
        var knobs = Knobs()
        knobs.maxTokens = req.max_completion_tokens ?? req.max_tokens
        knobs.maxTokensName = req.max_completion_tokens != nil ? "max_completion_tokens" : "max_tokens"
        knobs.temperature = req.temperature; knobs.topP = req.top_p; knobs.topK = req.top_k; knobs.minP = req.min_p
        knobs.repeatPenalty = req.repeat_penalty; knobs.frequencyPenalty = req.frequency_penalty
        knobs.presencePenalty = req.presence_penalty; knobs.seed = req.seed; knobs.stop = req.stop?.values ?? []
        knobs.logitBias = req.logit_bias
        var gr = try generationRequest(knobs, model: m, promptTokens: prompt.count)
        gr.grammar = grammar
        if let c = try ToolGrammar.constraint(tools) {
            if grammar != nil {
                throw APIError.invalid("structured output ('response_format' or 'grammar') cannot be combined with tool calling; send one or the other", param: "response_format", code: "unsupported_parameter")
            }
            gr.grammar = c.grammar
            gr.grammarTriggers = c.triggers
        }
        if req.logprobs == true { gr.logprobs = req.top_logprobs ?? 0 }
        let request = gr
        let id = API.randomID("chatcmpl-")
        let created = API.createdNow()
        let tok = m.tokenizer

        if req.stream == true {
            let includeUsage = req.stream_options?.include_usage == true
            let wantLogprobs = req.logprobs == true
            return streamed(contentType: "text/event-stream", flavor: .openAI,
                            errorFrame: { sse(OpenAI.ErrorResponse(error: OpenAI.ErrorBody(message: $0.message, type: $0.type, param: $0.param, code: $0.code))) }) { [unowned self] pipe in
                @Sendable func chunk(_ i: Int, _ delta: OpenAI.Delta, _ lp: OpenAI.ChatLogprobs? = nil, finish: String? = nil,
                                     citations: [CitationRecord]? = nil) -> String {
                    sse(OpenAI.ChatCompletionChunk(id: id, object: "chat.completion.chunk", created: created, model: m.id,
                                                   choices: [OpenAI.ChunkChoice(index: i, delta: delta, logprobs: lp, finish_reason: finish)], usage: nil,
                                                   citations: citations))
                }
                var completionTokens = 0
                for i in 0..<n {
                    let started = LockedValue(false)
                    let filter = tools.active ? ToolStream(tools) : nil
                    // Output moderation: text passes through it before the tool-call parser; a
                    // block ends the stream with finish_reason "content_filter". Log-probabilities
                    // (which would show the tokens) are left out while it is active.
                    let modFilter = mod?.streamFilter()
                    /// Writes parser events: content as content deltas, each call as a header
                    /// delta (id, type, name, empty arguments) then its arguments.
                    @Sendable func write(_ events: [ToolOutputEvent], _ lp: OpenAI.ChatLogprobs?) -> Bool {
                        var ok = true
                        var lp = lp
                        for e in events {
                            switch e {
                            case let .content(text):
                                ok = ok && pipe.write(chunk(i, OpenAI.Delta(content: text), lp)); lp = nil
                            case let .call(call):
                                let k = filter?.nextIndex() ?? 0
                                ok = ok && pipe.write(chunk(i, OpenAI.Delta(tool_calls: [OpenAI.DeltaToolCall(index: k, id: call.id, type: "function",
                                                                                                             function: OpenAI.DeltaFunction(name: call.name, arguments: ""))])))
                                ok = ok && pipe.write(chunk(i, OpenAI.Delta(tool_calls: [OpenAI.DeltaToolCall(index: k, id: nil, type: nil,
                                                                                                             function: OpenAI.DeltaFunction(name: nil, arguments: call.argumentsJSON))])))
                            }
                        }
                        return ok
                    }
                    /// Content (or a tool call's text) as it may be sent now.
                    @Sendable func emit(_ text: String, _ lp: OpenAI.ChatLogprobs?) -> Bool {
                        if let filter { return write(filter.feed(text), lp) }
                        return pipe.write(chunk(i, OpenAI.Delta(role: nil, content: text), lp))
                    }
                    let result = try self.run(m, prompt, request, choice: i, context: r.context) { c in
                        var ok = true
                        if !started.get() {
                            started.set(true)
                            ok = pipe.write(chunk(i, OpenAI.Delta(role: "assistant", content: "")))
                        }
                        var text = c.text
                        if let modFilter, !text.isEmpty {
                            let f = modFilter.feed(text)
                            if f.stop {
                                if !f.text.isEmpty { _ = emit(f.text, nil) }
                                return false
                            }
                            text = f.text
                        }
                        if text.isEmpty && (c.logprob == nil || modFilter != nil) { return ok }
                        let lp = wantLogprobs && modFilter == nil ? c.logprob.map { OpenAI.ChatLogprobs(content: [API.chatEntry($0, tok)]) } : nil
                        return ok && emit(text, lp)
                    }
                    if let modFilter, !modFilter.blocked, result.finishReason != .cancelled {
                        let f = modFilter.finish()
                        if !f.text.isEmpty { _ = emit(f.text, nil) }
                    }
                    if modFilter?.blocked == true {
                        pipe.write(chunk(i, OpenAI.Delta(), finish: "content_filter"))
                        completionTokens += result.tokens.count
                        break
                    }
                    if result.finishReason == .cancelled { return }
                    if !started.get() { pipe.write(chunk(i, OpenAI.Delta(role: "assistant", content: ""))) }
                    var finish = API.finishReason(result.finishReason)
                    if let filter {
                        _ = write(filter.finish(), nil)
                        // Calls end the turn; a cut-off answer still says "length".
                        if filter.madeCalls && result.finishReason != .length { finish = "tool_calls" }
                    }
                    let cites = i == 0 ? grounding.map { g in Grounding.records(g.sources, cited: g.answer(result.text).cited, includeText: false) } : nil
                    pipe.write(chunk(i, OpenAI.Delta(), finish: finish, citations: cites))
                    completionTokens += result.tokens.count
                }
                if includeUsage {
                    pipe.write(sse(OpenAI.ChatCompletionChunk(id: id, object: "chat.completion.chunk", created: created, model: m.id,
                                                              choices: [], usage: OpenAI.Usage(prompt: prompt.count, completion: completionTokens))))
                }
                pipe.finish("data: [DONE]\n\n")
            }
        }

        var out: [OpenAI.ChatChoice] = []
        var completionTokens = 0
        for i in 0..<n {
            let result = try run(m, prompt, gr, choice: i, context: r.context) { _ in true }
            completionTokens += result.tokens.count
            var lp = req.logprobs == true ? OpenAI.ChatLogprobs(content: result.logprobs.map { API.chatEntry($0, tok) }) : nil
            var text = result.text
            var finish = API.finishReason(result.finishReason)
            var blocked = false
            if let mod {
                let o = mod.checkOutput(text)
                text = o.text
                blocked = o.blocked
                if o.blocked { finish = "content_filter" }
                if o.blocked || o.redacted { lp = nil }
            }
            var message = OpenAI.AssistantMessage(role: "assistant", content: text)
            if tools.active && !blocked {
                let (content, calls) = ToolCallParser.parse(text, format: tools.format, names: Set(tools.callable.map(\.name)))
                if !calls.isEmpty {
                    message = OpenAI.AssistantMessage(role: "assistant", content: content, tool_calls: calls.map {
                        OpenAI.ToolCallOut(id: $0.id, type: "function", function: OpenAI.FunctionCall(name: $0.name, arguments: $0.argumentsJSON))
                    })
                    if result.finishReason != .length { finish = "tool_calls" }
                }
            }
            out.append(OpenAI.ChatChoice(index: i, message: message, logprobs: lp, finish_reason: finish))
        }
        let citations = grounding.map { g in Grounding.records(g.sources, cited: g.answer(out.first?.message.content ?? "").cited, includeText: false) }
        return .json(OpenAI.ChatCompletion(id: id, object: "chat.completion", created: created, model: m.id, choices: out,
                                           usage: OpenAI.Usage(prompt: prompt.count, completion: completionTokens), system_fingerprint: nil,
                                           citations: citations))
    }

    /// The answer to a grounded chat when no passage is relevant: "I don't know", without
    /// running the model (no tokens used), streamed or not as asked.
    func groundedRefusal(_ g: Grounding, model m: ServedModel, n: Int, stream: Bool, includeUsage: Bool, context: RequestContext) -> HTTPResponse {
        let id = API.randomID("chatcmpl-")
        let created = API.createdNow()
        let text = g.noAnswer
        context.captureCompletion(text)
        if !stream {
            let choices = (0..<n).map { OpenAI.ChatChoice(index: $0, message: OpenAI.AssistantMessage(role: "assistant", content: text), logprobs: nil, finish_reason: "stop") }
            return .json(OpenAI.ChatCompletion(id: id, object: "chat.completion", created: created, model: m.id, choices: choices,
                                               usage: OpenAI.Usage(prompt: 0, completion: 0), system_fingerprint: nil, citations: []))
        }
        var body = ""
        for i in 0..<n {
            for (delta, finish) in [(OpenAI.Delta(role: "assistant", content: text), nil as String?), (OpenAI.Delta(), "stop")] {
                body += sse(OpenAI.ChatCompletionChunk(id: id, object: "chat.completion.chunk", created: created, model: m.id,
                                                       choices: [OpenAI.ChunkChoice(index: i, delta: delta, logprobs: nil, finish_reason: finish)],
                                                       usage: nil, citations: finish != nil && i == 0 ? [] : nil))
            }
        }
        if includeUsage {
            body += sse(OpenAI.ChatCompletionChunk(id: id, object: "chat.completion.chunk", created: created, model: m.id, choices: [],
                                                   usage: OpenAI.Usage(prompt: 0, completion: 0)))
        }
        body += "data: [DONE]\n\n"
        return HTTPResponse(status: 200, headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")], body: .bytes(Data(body.utf8)))
    }

    func choices(_ n: Int?) throws -> Int {
        let n = n ?? 1
        guard (1...maxChoices).contains(n) else {
            throw APIError.invalid("'n' must be between 1 and \(maxChoices), got \(n)", param: "n", code: "invalid_value")
        }
        return n
    }

    /// Runs one choice. Choice i > 0 with a seed uses seed + i, so choices differ but the whole
    /// response is reproducible.
    func run(_ m: ServedModel, _ prompt: [Int32], _ gr: GenerationRequest, choice i: Int, context: RequestContext? = nil,
             onChunk: @escaping @Sendable (GeneratedChunk) -> Bool) throws -> GenerationResult {
        var g = gr
        if i > 0, let s = g.sampling.seed { g.sampling.seed = s &+ UInt64(i) }
        // The kill switch: a per-token check that the model is still enabled and the key valid.
        let watch = access.map { $0.watch(model: m.id, key: RequestScope.current?.key) }
        var checked = onChunk
        if let w = watch { checked = { c in w.allowed() && onChunk(c) } }
        let timed = metrics.timing(model: m.id, start: Date(), chunkHandler(checked))
        let result = try m.engine.generate(prompt: prompt, g, onChunk: timed)
        metrics.tokens(model: m.id, prompt: prompt.count, generated: result.tokens.count)
        // The prompt is processed once per choice but billed once, as OpenAI's usage counts it.
        context?.addTokens(prompt: i == 0 ? prompt.count : 0, completion: result.tokens.count)
        context?.captureCompletion(result.text)
        watch?.record(tokens: prompt.count + result.tokens.count)
        if let stop = watch?.stopReason { throw stop }
        return result
    }

    static func chatEntry(_ lp: TokenLogprob, _ tok: Tokenizer) -> OpenAI.TokenLogprobEntry {
        OpenAI.TokenLogprobEntry(token: tok.piece(lp.id), logprob: jsonSafe(lp.logprob), bytes: tok.tokenBytes(lp.id).map(Int.init),
                                 top_logprobs: lp.top.map { OpenAI.TopLogprob(token: tok.piece($0.id), logprob: jsonSafe($0.logprob),
                                                                              bytes: tok.tokenBytes($0.id).map(Int.init)) })
    }

    // MARK: POST /v1/completions

    func completions(_ r: HTTPRequest) throws -> HTTPResponse {
        let req = try decode(OpenAI.CompletionRequest.self, r)
        let m = try decoder(req.model, adapter: req.adapter)
        r.context.model = m.id
        let inputText: String
        switch req.prompt {
        case nil: throw APIError.missing("prompt")
        case let .one(s)?: inputText = s
        case let .list(l)?:
            guard l.count == 1 else {
                throw APIError.invalid("'prompt' must be one string (got a list of \(l.count)); send one request per prompt", param: "prompt", code: "invalid_value")
            }
            inputText = l[0]
        }
        let mod = try moderationRun(r, flavor: .openAI)
        let tk = m.tokenizer
        let text = try mod?.checkInput([inputText], tokenCounter: { tk.encode($0, addBOS: false, parseSpecial: false).count })[0] ?? inputText
        if let s = req.suffix, !s.isEmpty {
            throw APIError.invalid("'suffix' (fill-in-the-middle) is not supported", param: "suffix", code: "unsupported_parameter")
        }
        let n = try choices(req.n)
        if let b = req.best_of, b != n {
            throw APIError.invalid("'best_of' is not supported (only best_of = n)", param: "best_of", code: "unsupported_parameter")
        }
        if let l = req.logprobs, !(0...20).contains(l) {
            throw APIError.invalid("'logprobs' must be between 0 and 20, got \(l)", param: "logprobs", code: "invalid_value")
        }
        let grammar = try openAIGrammar(r, responseFormat: req.response_format, grammar: req.grammar)
        let tok = m.tokenizer
        r.context.capturePrompt(text)
        let prompt = tok.encode(text, addBOS: nil, parseSpecial: true)
        guard !prompt.isEmpty else { throw APIError.invalid(GenerationError.emptyPrompt.description, param: "prompt", code: "invalid_value") }
        var knobs = Knobs()
        knobs.maxTokens = req.max_tokens
        knobs.temperature = req.temperature; knobs.topP = req.top_p; knobs.topK = req.top_k; knobs.minP = req.min_p
        knobs.repeatPenalty = req.repeat_penalty; knobs.frequencyPenalty = req.frequency_penalty
        knobs.presencePenalty = req.presence_penalty; knobs.seed = req.seed; knobs.stop = req.stop?.values ?? []
        knobs.logitBias = req.logit_bias
        var gr = try generationRequest(knobs, model: m, promptTokens: prompt.count)
        gr.grammar = grammar
        let echo = req.echo == true
        if let l = req.logprobs {
            gr.logprobs = l
            if echo { gr.promptLogprobs = l }
        }
        let request = gr
        let id = API.randomID("cmpl-")
        let created = API.createdNow()
        // A BOS the tokenizer added is not in the text: it takes no characters.
        let addedBOS = tok.bosID != nil && prompt.first == tok.bosID && !text.hasPrefix(tok.piece(prompt[0]))
        let promptChars = text.unicodeScalars.count

        if req.stream == true {
            let includeUsage = req.stream_options?.include_usage == true
            return streamed(contentType: "text/event-stream", flavor: .openAI,
                            errorFrame: { sse(OpenAI.ErrorResponse(error: OpenAI.ErrorBody(message: $0.message, type: $0.type, param: $0.param, code: $0.code))) }) { [unowned self] pipe in
                @Sendable func chunk(_ i: Int, _ t: String, _ lp: OpenAI.CompletionLogprobs?, finish: String?) -> String {
                    sse(OpenAI.Completion(id: id, object: "text_completion", created: created, model: m.id,
                                          choices: [OpenAI.CompletionChoice(text: t, index: i, logprobs: lp, finish_reason: finish)], usage: nil))
                }
                var completionTokens = 0
                for i in 0..<n {
                    let offset = LockedValue(promptChars)
                    let echoed = LockedValue(!echo)
                    let filter = mod?.streamFilter()
                    let result = try self.run(m, prompt, request, choice: i, context: r.context) { c in
                        if !echoed.get() {
                            // The prompt goes first; its scores are known only at the end (non-streamed).
                            echoed.set(true)
                            if !pipe.write(chunk(i, text, nil, finish: nil)) { return false }
                        }
                        var piece = c.text
                        if let filter, !piece.isEmpty {
                            let f = filter.feed(piece)
                            if f.stop {
                                if !f.text.isEmpty { pipe.write(chunk(i, f.text, nil, finish: nil)) }
                                return false
                            }
                            piece = f.text
                        }
                        if piece.isEmpty && (c.logprob == nil || filter != nil) { return true }
                        if filter != nil { return pipe.write(chunk(i, piece, nil, finish: nil)) }
                        var lp: OpenAI.CompletionLogprobs?
                        if let l = c.logprob, request.logprobs != nil {
                            let o = offset.get()
                            lp = API.completionLogprobs(tok, ids: [l.id], scores: [l], prefixNull: false, startOffset: o, skipFirst: false)
                            offset.set(o + tok.piece(l.id).unicodeScalars.count)
                        }
                        return pipe.write(chunk(i, c.text, lp, finish: nil))
                    }
                    if let filter, !filter.blocked, result.finishReason != .cancelled {
                        let f = filter.finish()
                        if !f.text.isEmpty { pipe.write(chunk(i, f.text, nil, finish: nil)) }
                    }
                    if filter?.blocked == true {
                        pipe.write(chunk(i, "", nil, finish: "content_filter"))
                        completionTokens += result.tokens.count
                        break
                    }
                    if result.finishReason == .cancelled { return }
                    if !echoed.get() { pipe.write(chunk(i, text, nil, finish: nil)) }
                    pipe.write(chunk(i, "", nil, finish: API.finishReason(result.finishReason)))
                    completionTokens += result.tokens.count
                }
                if includeUsage {
                    pipe.write(sse(OpenAI.Completion(id: id, object: "text_completion", created: created, model: m.id, choices: [],
                                                     usage: OpenAI.Usage(prompt: prompt.count, completion: completionTokens))))
                }
                pipe.finish("data: [DONE]\n\n")
            }
        }

        var out: [OpenAI.CompletionChoice] = []
        var completionTokens = 0
        for i in 0..<n {
            let result = try run(m, prompt, gr, choice: i, context: r.context) { _ in true }
            completionTokens += result.tokens.count
            var lp: OpenAI.CompletionLogprobs?
            if gr.logprobs != nil {
                let gen = API.completionLogprobs(tok, ids: result.tokens, scores: result.logprobs, prefixNull: false, startOffset: promptChars, skipFirst: false)
                if echo {
                    // Prompt tokens: the first has no score (null), the others come from promptLogprobs.
                    var p = API.completionLogprobs(tok, ids: prompt, scores: result.promptLogprobs, prefixNull: true, startOffset: 0, skipFirst: addedBOS)
                    p.tokens += gen.tokens; p.token_logprobs += gen.token_logprobs
                    p.top_logprobs += gen.top_logprobs; p.text_offset += gen.text_offset
                    lp = p
                } else {
                    lp = gen
                }
            }
            var generated = result.text
            var finish = API.finishReason(result.finishReason)
            if let mod {
                let o = mod.checkOutput(generated)
                generated = o.text
                if o.blocked { finish = "content_filter" }
                if o.blocked || o.redacted { lp = nil }
            }
            out.append(OpenAI.CompletionChoice(text: echo ? text + generated : generated, index: i, logprobs: lp,
                                               finish_reason: finish))
        }
        return .json(OpenAI.Completion(id: id, object: "text_completion", created: created, model: m.id, choices: out,
                                       usage: OpenAI.Usage(prompt: prompt.count, completion: completionTokens)))
    }

    /// Parallel lists for `ids`. With `prefixNull`, the first token has no score and `scores`
    /// covers the rest; `skipFirst` gives the first token zero width (an added BOS).
    static func completionLogprobs(_ tok: Tokenizer, ids: [Int32], scores: [TokenLogprob], prefixNull: Bool,
                                   startOffset: Int, skipFirst: Bool) -> OpenAI.CompletionLogprobs {
        var out = OpenAI.CompletionLogprobs(tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [])
        var offset = startOffset
        for (k, id) in ids.enumerated() {
            let piece = tok.piece(id)
            out.tokens.append(piece)
            out.text_offset.append(offset)
            if !(k == 0 && skipFirst) { offset += piece.unicodeScalars.count }
            let si = prefixNull ? k - 1 : k
            if si >= 0, si < scores.count {
                let s = scores[si]
                out.token_logprobs.append(jsonSafe(s.logprob))
                var top: [String: Double] = [:]
                for t in s.top { top[tok.piece(t.id)] = max(top[tok.piece(t.id)] ?? -Double.infinity, jsonSafe(t.logprob)) }
                out.top_logprobs.append(top)
            } else {
                out.token_logprobs.append(nil)
                out.top_logprobs.append(nil)
            }
        }
        return out
    }

    // MARK: POST /v1/embeddings

    func embeddings(_ r: HTTPRequest) throws -> HTTPResponse {
        let req = try decode(OpenAI.EmbeddingRequest.self, r)
        let e = try embedder(req.model, pooling: req.pooling)
        guard let input = req.input else { throw APIError.missing("input") }
        let rawTexts = input.values
        guard !rawTexts.isEmpty else { throw APIError.invalid("'input' must hold at least one text", param: "input", code: "invalid_value") }
        guard rawTexts.count <= 2048 else { throw APIError.invalid("'input' takes at most 2048 texts", param: "input", code: "invalid_value") }
        let texts = try moderationRun(r, flavor: .openAI)?.checkInput(rawTexts) ?? rawTexts
        let format = req.encoding_format ?? "float"
        guard format == "float" || format == "base64" else {
            throw APIError.invalid("'encoding_format' must be 'float' or 'base64', got '\(format)'", param: "encoding_format", code: "invalid_value")
        }
        if let d = req.dimensions, d != e.dimension {
            throw APIError.invalid("'dimensions' must be \(e.dimension) for \(e.id) (it cannot be shortened)", param: "dimensions", code: "invalid_value")
        }
        r.context.model = e.id
        r.context.capturePrompt(texts.joined(separator: "\n"))
        let (vectors, tokens) = try e.embed(texts)
        r.context.addTokens(prompt: tokens, completion: 0)
        let data = vectors.enumerated().map { i, v -> OpenAI.Embedding in
            let vec: OpenAI.EmbeddingVector
            if format == "base64" {
                var bytes = Data(capacity: v.count * 4)
                for f in v { withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
                vec = .base64(bytes.base64EncodedString())
            } else {
                vec = .floats(v)
            }
            return OpenAI.Embedding(object: "embedding", index: i, embedding: vec)
        }
        return .json(OpenAI.EmbeddingResponse(object: "list", data: data, model: e.id,
                                              usage: OpenAI.EmbeddingUsage(prompt_tokens: tokens, total_tokens: tokens)))
    }
}
