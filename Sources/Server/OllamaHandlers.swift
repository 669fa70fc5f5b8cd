import Foundation
import Generation
import Templates
import Moderation

func ndjson<T: Encodable>(_ value: T) -> String {
    let data = (try? JSONCoding.encoder.encode(value)) ?? Data("{}".utf8)
    return String(decoding: data, as: UTF8.self) + "\n"
}

extension API {
    static func rfc3339(_ d: Date = Date()) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: d)
    }

    static func nanoseconds(_ s: Double) -> Int64 { Int64((s * 1e9).rounded()) }

    func ollamaEntry(_ m: ServedModel) -> Ollama.ModelEntry {
        Ollama.ModelEntry(name: m.id, model: m.id, modified_at: API.rfc3339(m.modified), size: m.fileSize,
                          digest: m.digest, details: m.ollamaDetails)
    }

    func ollamaTags() -> HTTPResponse {
        .json(Ollama.Tags(models: models.models.map(ollamaEntry)))
    }

    func ollamaPs() -> HTTPResponse {
        // Loaded models stay loaded while the server runs: "expires" far in the future.
        let never = API.rfc3339(Date(timeIntervalSinceNow: 10 * 365 * 86400))
        return .json(Ollama.Running(models: models.models.map { m in
            Ollama.RunningModel(name: m.id, model: m.id, size: m.fileSize, digest: m.digest,
                                details: m.ollamaDetails, expires_at: never, size_vram: 0)
        }))
    }

    func ollamaShow(_ r: HTTPRequest) throws -> HTTPResponse {
        let req = try decode(Ollama.ShowRequest.self, r)
        let m = try decoder(req.model ?? req.name)
        let c = m.engine.model.config
        let arch = m.architecture
        let info: [String: JSONValue] = [
            "general.architecture": .string(arch),
            "\(arch).context_length": .number(Double(c.contextLength)),
            "\(arch).embedding_length": .number(Double(c.hiddenSize)),
            "\(arch).block_count": .number(Double(c.layers)),
            "\(arch).attention.head_count": .number(Double(c.heads)),
            "\(arch).attention.head_count_kv": .number(Double(c.kvHeads)),
            "steward.context_length": .number(Double(m.contextLength)),
        ]
        return .json(Ollama.ShowResponse(modelfile: "# served by steward from \(m.path)\nFROM \(m.path)\n",
                                         parameters: "num_ctx \(m.contextLength)", template: m.templateSource ?? "",
                                         details: m.ollamaDetails, model_info: info,
                                         capabilities: m.chatTemplate != nil ? ["completion", "chat"] : ["completion"],
                                         modified_at: API.rfc3339(m.modified), license: m.license))
    }

    /// Ollama's options → engine request. num_predict -1 (or absent) and -2 run to the end of
    /// the context; num_ctx may not exceed the server's context.
    func ollamaRequest(_ o: Ollama.Options?, _ m: ServedModel, promptTokens: Int) throws -> GenerationRequest {
        var k = Knobs()
        k.maxTokensName = "num_predict"
        if let o {
            if let n = o.num_ctx, n > m.contextLength || n < 1 {
                throw APIError.invalid("options.num_ctx \(n) is outside what this server holds (1…\(m.contextLength)); restart steward serve with a larger --ctx",
                                       param: "num_ctx", code: "invalid_value")
            }
            if let n = o.num_predict, n >= 0 { k.maxTokens = n } else if let n = o.num_predict, n != -1 && n != -2 {
                throw APIError.invalid("options.num_predict must be ≥ 0, -1 (no limit) or -2 (fill the context), got \(n)", param: "num_predict", code: "invalid_value")
            }
            k.temperature = o.temperature; k.topK = o.top_k; k.topP = o.top_p; k.minP = o.min_p; k.typicalP = o.typical_p
            k.seed = o.seed; k.stop = o.stop?.values ?? []; k.repeatPenalty = o.repeat_penalty; k.repeatLastN = o.repeat_last_n
            k.presencePenalty = o.presence_penalty; k.frequencyPenalty = o.frequency_penalty
        }
        return try generationRequest(k, model: m, promptTokens: promptTokens)
    }

    // MARK: POST /api/generate

    func ollamaGenerate(_ r: HTTPRequest) throws -> HTTPResponse {
        let req = try decode(Ollama.GenerateRequest.self, r)
        let m = try decoder(req.model, adapter: req.adapter)
        let grammar = try ollamaGrammar(r, format: req.format)
        r.context.model = m.id
        if let i = req.images, !i.isEmpty { throw APIError.invalid("'images' are not supported: this is a text model", param: "images") }
        if let s = req.suffix, !s.isEmpty { throw APIError.invalid("'suffix' is not supported", param: "suffix") }
        if let t = req.template, !t.isEmpty { throw APIError.invalid("'template' overrides are not supported; use raw with a prompt you format", param: "template") }
        var text = req.prompt ?? ""
        var system = req.system
        if text.isEmpty && (system ?? "").isEmpty {
            // Ollama's "load the model" call: nothing to generate.
            return .json(Ollama.GenerateResponse(model: m.id, created_at: API.rfc3339(), response: "", done: true, done_reason: "load"))
        }
        let mod = try moderationRun(r, flavor: .ollama)
        if let mod {
            let tk = m.tokenizer
            let checked = try mod.checkInput([text, system ?? ""], tokenCounter: { tk.encode($0, addBOS: false, parseSpecial: false).count })
            text = checked[0]
            if system != nil { system = checked[1] }
        }
        r.context.capturePrompt((system.map { "system: \($0)\n" } ?? "") + text)
        let prompt: [Int32]
        if req.raw == true {
            if req.system != nil { throw APIError.invalid("'system' needs the chat template; drop it or drop raw", param: "system") }
            prompt = m.tokenizer.encode(text, addBOS: nil, parseSpecial: true)
        } else {
            var msgs: [(role: String, content: String)] = []
            if let s = system, !s.isEmpty { msgs.append(("system", s)) }
            msgs.append(("user", text))
            prompt = try chatPrompt(m, msgs, param: "prompt")
        }
        guard !prompt.isEmpty else { throw APIError.invalid(GenerationError.emptyPrompt.description, param: "prompt") }
        var gr = try ollamaRequest(req.options, m, promptTokens: prompt.count)
        gr.grammar = grammar
        let t0 = Date()
        @Sendable func final(_ res: GenerationResult, text: String, reason: String?) -> Ollama.GenerateResponse {
            Ollama.GenerateResponse(model: m.id, created_at: API.rfc3339(), response: text, done: true,
                                    done_reason: reason ?? API.finishReason(res.finishReason), context: nil,
                                    total_duration: API.nanoseconds(Date().timeIntervalSince(t0)), load_duration: 0,
                                    prompt_eval_count: res.promptTokens, prompt_eval_duration: API.nanoseconds(res.promptSeconds),
                                    eval_count: res.tokens.count, eval_duration: API.nanoseconds(res.generateSeconds))
        }
        return try ollamaRespond(m, prompt, gr, stream: req.stream ?? true, context: r.context, moderation: mod,
                                 piece: { Ollama.GenerateResponse(model: m.id, created_at: API.rfc3339(), response: $0, done: false) },
                                 final: { final($0, text: $1, reason: $2) })
    }

    /// An Ollama generation as NDJSON pieces then a final object (streamed), or the final object
    /// alone: `piece` wraps a chunk of text, `final` the result (with the text when not streamed,
    /// and a done_reason that overrides the result's: "content_filter" when moderation blocked).
    private func ollamaRespond<T: Encodable>(_ m: ServedModel, _ prompt: [Int32], _ gr: GenerationRequest, stream: Bool, context: RequestContext,
                                             moderation mod: ModerationRun?,
                                             piece: @escaping @Sendable (String) -> T,
                                             final: @escaping @Sendable (GenerationResult, String, String?) -> T) throws -> HTTPResponse {
        if stream {
            return streamed(contentType: "application/x-ndjson", flavor: .ollama, errorFrame: { ndjson(Ollama.ErrorResponse(error: $0.message)) }) { [unowned self] pipe in
                let filter = mod?.streamFilter()
                let res = try self.run(m, prompt, gr, choice: 0, context: context) { c in
                    var text = c.text
                    if let filter, !text.isEmpty {
                        let f = filter.feed(text)
                        if f.stop {
                            if !f.text.isEmpty { pipe.write(ndjson(piece(f.text))) }
                            return false
                        }
                        text = f.text
                    }
                    if text.isEmpty { return true }
                    return pipe.write(ndjson(piece(text)))
                }
                if let filter, !filter.blocked, res.finishReason != .cancelled {
                    let f = filter.finish()
                    if !f.text.isEmpty { pipe.write(ndjson(piece(f.text))) }
                }
                if filter?.blocked == true {
                    pipe.finish(ndjson(final(res, "", "content_filter")))
                    return
                }
                if res.finishReason == .cancelled { return }
                pipe.finish(ndjson(final(res, "", nil)))
            }
        }
        let res = try run(m, prompt, gr, choice: 0, context: context) { _ in true }
        if let mod {
            let o = mod.checkOutput(res.text)
            return .json(final(res, o.text, o.blocked ? "content_filter" : nil))
        }
        return .json(final(res, res.text, nil))
    }

    // MARK: POST /api/chat

    func ollamaChat(_ r: HTTPRequest) throws -> HTTPResponse {
        let req = try decode(Ollama.ChatRequest.self, r)
        let m = try decoder(req.model, adapter: req.adapter)
        let grammar = try ollamaGrammar(r, format: req.format)
        r.context.model = m.id
        let raw = req.messages ?? []
        guard !raw.isEmpty else {
            return .json(Ollama.ChatResponse(model: m.id, created_at: API.rfc3339(), message: Ollama.Message(role: "assistant", content: ""),
                                             done: true, done_reason: "load"))
        }
        for (i, msg) in raw.enumerated() {
            if let im = msg.images, !im.isEmpty { throw APIError.invalid("messages[\(i)].images: images are not supported", param: "messages[\(i)].images") }
        }
        let ordered = try orderedRequest(r)
        let tools = try ToolSetup.read(ordered, templateSource: m.templateSource)
        let orderedMessages: [TemplateValue]
        if case let .array(a)? = ordered["messages"] { orderedMessages = a } else { orderedMessages = [] }
        var turns: [ChatTurn] = []
        for (i, msg) in raw.enumerated() {
            let calls = try ChatTurn.readToolCalls(i < orderedMessages.count ? orderedMessages[i]["tool_calls"] : nil, message: i)
            turns.append(ChatTurn(role: msg.role, content: msg.content, toolCalls: calls, toolCallID: nil, name: msg.tool_name))
        }
        let mod = try moderationRun(r, flavor: .ollama)
        if let mod {
            let tk = m.tokenizer
            let checked = try mod.checkInput(turns.map { $0.content ?? "" }, tokenCounter: { tk.encode($0, addBOS: false, parseSpecial: false).count })
            for k in turns.indices where turns[k].content != nil { turns[k].content = checked[k] }
        }
        r.context.capturePrompt(turns.map { "\($0.role): \($0.content ?? "")" }.joined(separator: "\n"))
        let prompt = try chatPrompt(m, turns, tools, param: "messages")
        var gr = try ollamaRequest(req.options, m, promptTokens: prompt.count)
        gr.grammar = grammar
        if let c = try ToolGrammar.constraint(tools) {
            if grammar != nil {
                throw APIError.invalid("structured output ('format') cannot be combined with tool calling; send one or the other", param: "format", code: "unsupported_parameter")
            }
            gr.grammar = c.grammar
            gr.grammarTriggers = c.triggers
        }
        let t0 = Date()
        @Sendable func final(_ res: GenerationResult, text: String, reason: String?) -> Ollama.ChatResponse {
            Ollama.ChatResponse(model: m.id, created_at: API.rfc3339(), message: Ollama.Message(role: "assistant", content: text), done: true,
                                done_reason: reason ?? API.finishReason(res.finishReason),
                                total_duration: API.nanoseconds(Date().timeIntervalSince(t0)), load_duration: 0,
                                prompt_eval_count: res.promptTokens, prompt_eval_duration: API.nanoseconds(res.promptSeconds),
                                eval_count: res.tokens.count, eval_duration: API.nanoseconds(res.generateSeconds))
        }
        guard tools.active else {
            return try ollamaRespond(m, prompt, gr, stream: req.stream ?? true, context: r.context, moderation: mod,
                                     piece: { Ollama.ChatResponse(model: m.id, created_at: API.rfc3339(),
                                                                  message: Ollama.Message(role: "assistant", content: $0), done: false) },
                                     final: { final($0, text: $1, reason: $2) })
        }
        @Sendable func ollamaCalls(_ calls: [ToolCall]) -> [Ollama.ToolCall] {
            calls.map { Ollama.ToolCall(function: Ollama.ToolCallFunction(name: $0.name, arguments: ToolJSON.jsonValue($0.arguments))) }
        }
        if req.stream ?? true {
            // Content streams as it comes; a call arrives whole in one chunk's message.tool_calls.
            let filter = ToolStream(tools)
            let modFilter = mod?.streamFilter()
            let request = gr
            return streamed(contentType: "application/x-ndjson", flavor: .ollama, errorFrame: { ndjson(Ollama.ErrorResponse(error: $0.message)) }) { [unowned self] pipe in
                @Sendable func write(_ events: [ToolOutputEvent]) -> Bool {
                    var ok = true
                    for e in events {
                        let msg: Ollama.Message
                        switch e {
                        case let .content(t): msg = Ollama.Message(role: "assistant", content: t)
                        case let .call(c): msg = Ollama.Message(role: "assistant", content: "", tool_calls: ollamaCalls([c]))
                        }
                        ok = ok && pipe.write(ndjson(Ollama.ChatResponse(model: m.id, created_at: API.rfc3339(), message: msg, done: false)))
                    }
                    return ok
                }
                // Output moderation sees the text before the tool-call parser.
                let res = try self.run(m, prompt, request, choice: 0, context: r.context) { c in
                    var text = c.text
                    if let modFilter, !text.isEmpty {
                        let f = modFilter.feed(text)
                        if f.stop { _ = write(filter.feed(f.text)); return false }
                        text = f.text
                    }
                    return text.isEmpty ? true : write(filter.feed(text))
                }
                if modFilter?.blocked == true {
                    pipe.finish(ndjson(final(res, text: "", reason: "content_filter")))
                    return
                }
                if res.finishReason == .cancelled { return }
                if let modFilter { _ = write(filter.feed(modFilter.finish().text)) }
                _ = write(filter.finish())
                pipe.finish(ndjson(final(res, text: "", reason: nil)))
            }
        }
        let res = try run(m, prompt, gr, choice: 0, context: r.context) { _ in true }
        var answer = res.text
        if let mod {
            let o = mod.checkOutput(answer)
            if o.blocked { return .json(final(res, text: o.text, reason: "content_filter")) }
            answer = o.text
        }
        var out = final(res, text: answer, reason: nil)
        let (content, calls) = ToolCallParser.parse(answer, format: tools.format, names: Set(tools.callable.map(\.name)))
        if !calls.isEmpty { out.message = Ollama.Message(role: "assistant", content: content ?? "", tool_calls: ollamaCalls(calls)) }
        return .json(out)
    }

    // MARK: POST /api/embed

    func ollamaEmbed(_ r: HTTPRequest) throws -> HTTPResponse {
        let req = try decode(Ollama.EmbedRequest.self, r)
        let e = try embedder(req.model, pooling: req.pooling)
        guard let input = req.input else { throw APIError.missing("input") }
        let rawTexts = input.values
        guard !rawTexts.isEmpty else { throw APIError.invalid("'input' must hold at least one text", param: "input") }
        r.context.model = e.id
        let texts = try moderationRun(r, flavor: .ollama)?.checkInput(rawTexts) ?? rawTexts
        r.context.capturePrompt(texts.joined(separator: "\n"))
        let t0 = Date()
        let (vectors, tokens) = try e.embed(texts)
        r.context.addTokens(prompt: tokens, completion: 0)
        return .json(Ollama.EmbedResponse(model: e.id, embeddings: vectors, total_duration: API.nanoseconds(Date().timeIntervalSince(t0)),
                                          load_duration: 0, prompt_eval_count: tokens))
    }
}
