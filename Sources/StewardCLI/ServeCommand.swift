#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import Governance
import Moderation
import Server

struct ServeCommand: Command {
    let spec = CommandSpec(
        name: "serve",
        summary: "Serve models over an OpenAI- and Ollama-compatible HTTP API.",
        usage: "steward serve --model MODEL [--model MODEL2 ...] [--host 127.0.0.1] [--port 8080] [options]",
        options: [
            .repeated("--model", "-m", valueName: "MODEL", help: "Model file or fetched model name (a GGUF decoder, or a sentence-embedding directory such as all-minilm-l6-v2)."),
            .value("--host", valueName: "ADDR", help: "IPv4 address to listen on (default 127.0.0.1: this machine only)."),
            .value("--port", valueName: "N", help: "Port (default 8080; 0 picks a free one)."),
            .value("--parallel", valueName: "N", help: "Sequences decoded together by continuous batching, each with its own KV cache of --ctx tokens (default 4; 1 runs requests one at a time)."),
            .value("--ctx", "-c", valueName: "N", help: "Context length per sequence (default: the model's, at most 4096)."),
            .value("--threads", "-t", valueName: "N", help: "Threads (default: all cores)."),
            .value("--max-body", valueName: "BYTES", help: "Largest request body accepted (default 1048576)."),
            .value("--max-queue", valueName: "N", help: "Requests that may wait per model before 429 (default 64)."),
            .value("--policy", valueName: "FILE", help: "Deployment policy file (default $STEWARD_HOME/policy.json if it exists); its \"moderation\" section sets input/output moderation (no section: moderation off)."),
            .repeated("--template", valueName: "[MODEL=]NAME|FILE", help: "Chat template for a model without one (built-ins: chatml, gemma) or a .jinja file; without MODEL= it applies to every model."),
        ],
        discussion: """
        The API id of a model is its fetched name (e.g. smollm2-135m-instruct) or its file name without extension.
        Endpoints: /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings, /api/tags, /api/show,
        /api/generate, /api/chat, /api/embed, /api/ps, /api/version, /health. Stops on SIGINT/SIGTERM.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        let modelArgs = a.values("--model")
        guard !modelArgs.isEmpty else { throw UsageError("give at least one --model") }
        guard a.positionals.isEmpty else { throw UsageError("unexpected argument '\(a.positionals[0])'") }
        let host = a.value("--host") ?? "127.0.0.1"
        let port = try a.int("--port") ?? 8080
        guard (0...65535).contains(port) else { throw UsageError("--port must be between 0 and 65535") }
        let parallel = try a.int("--parallel") ?? 4
        guard parallel >= 1 else { throw UsageError("--parallel must be ≥ 1") }
        let ctx = try a.int("--ctx")
        if let ctx, ctx < 1 { throw UsageError("--ctx must be ≥ 1") }
        let threads = try GenerationOptions.threads(a)
        let maxBody = try a.int("--max-body") ?? (1 << 20)
        guard maxBody >= 1 else { throw UsageError("--max-body must be ≥ 1") }
        let maxQueue = try a.int("--max-queue") ?? 64
        guard maxQueue >= 0 else { throw UsageError("--max-queue must be ≥ 0") }
        var templates: [String: String] = [:]
        var templateForAll: String?
        for t in a.values("--template") {
            if let eq = t.firstIndex(of: "="), !FileManager.default.fileExists(atPath: t) {
                templates[String(t[..<eq])] = String(t[t.index(after: eq)...])
            } else {
                templateForAll = t
            }
        }
        // Moderation: read (and validate) the policy before loading anything.
        var moderationConfig: ModerationConfig?
        let policyPath = a.value("--policy") ?? (FileManager.default.fileExists(atPath: StewardPaths.home + "/policy.json") ? StewardPaths.home + "/policy.json" : nil)
        if let policyPath { moderationConfig = try ModerationConfig.load(policyFile: policyPath) }
        let ids = modelArgs.map(ModelLoader.modelID(for:))
        if let c = moderationConfig?.classifier, !ids.contains(c.model) {
            throw UsageError("the moderation classifier model '\(c.model)' is not served; add --model \(c.model)")
        }
        if Set(ids).count != ids.count { throw UsageError("two --model arguments have the same id (\(ids.joined(separator: ", "))); rename one file") }
        for key in templates.keys where !modelArgs.contains(key) && !ids.contains(key) {
            throw UsageError("--template \(key)=…: no --model \(key)")
        }

        // Refuse now, before loading, what would not fit in memory: the plan `steward plan`
        // prints for the same options, instead of failing (or swapping) later.
        let plan = try MemoryPlan.make(models: modelArgs, context: ctx, parallel: parallel, threads: threads, adapters: [], memory: nil)
        guard plan.fits else { throw MemoryPlan.DoesNotFit(plan: plan) }

        // SIGINT/SIGTERM are blocked in this thread before any other thread exists (threads
        // inherit the mask), so they stay pending for the dispatch signal source (a signalfd on
        // Linux) instead of killing the process from whichever thread the kernel picks.
        // Ignoring them (SIG_IGN) would not do: ignored signals are discarded, never read.
        signal(SIGPIPE, SIG_IGN)
        var blocked = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGINT)
        sigaddset(&blocked, SIGTERM)
        // They stay blocked until the process exits: a second Ctrl-C during shutdown must not
        // kill it half-way.
        pthread_sigmask(SIG_BLOCK, &blocked, nil)
        let stop = DispatchSemaphore(value: 0)
        let sources = [SIGINT, SIGTERM].map { sig -> DispatchSourceSignal in
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { stop.signal() }
            s.resume()
            return s
        }

        let registry = ModelRegistry()
        let api = API(models: registry, version: StewardCLI.version)
        let server = HTTPServer(host: host, port: port, maxBodyBytes: maxBody) { api.handle($0) }
        try server.start()
        console.out("steward serve: listening on \(server.url) (loading \(ids.joined(separator: ", ")); /health says when ready)\n")
        do {
            for (arg, id) in zip(modelArgs, ids) {
                let t0 = Date()
                let template = templates[arg] ?? templates[id] ?? templateForAll
                switch try ModelLoader.load(arg, threads: threads, contextLength: ctx, template: template, maxQueue: maxQueue, parallel: parallel) {
                case let .decoder(m):
                    registry.add(m)
                    let chat = m.chatTemplate == nil ? "no chat template: completions only (see --template)" : "chat template ok"
                    console.out(String(format: "  %@: context %d, %@, loaded in %.2f s\n", id, m.contextLength, chat, Date().timeIntervalSince(t0)))
                case let .embedder(e):
                    registry.add(e)
                    console.out(String(format: "  %@: embeddings, %d dimensions, loaded in %.2f s\n", id, e.embedder.dimension, Date().timeIntervalSince(t0)))
                }
            }
        } catch {
            server.stop()
            throw error
        }
        if let config = moderationConfig {
            let classifier = config.classifier.flatMap { c in registry.model(c.model).map { GuardPromptClassifier(model: $0, maxTokens: c.maxTokens) } }
            api.moderation = ModerationService(config: config, classifier: classifier)
            console.out("  moderation: default policy '\(config.defaultPolicy)'\(classifier != nil ? ", classifier on \(config.classifier!.model)" : "")\n")
        }
        registry.markReady()
        console.out("steward serve: ready at \(server.url)  (OpenAI: \(server.url)/v1, Ollama: \(server.url)/api; Ctrl-C stops)\n")
        stop.wait()
        console.err("steward serve: stopping (cancelling in-flight requests)\n")
        api.shutdown()
        server.stop()
        sources.forEach { $0.cancel() }
        console.err("steward serve: stopped\n")
        return ExitCode.ok
    }
}
