#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import Governance
import ModelFiles
import Models
import Moderation
import Retrieval
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
            .repeated("--adapter", valueName: "[MODEL=]PATH[:SCALE]", help: "LoRA adapter (PEFT folder or GGUF LoRA) for a served chat model (MODEL= needed with several), named by its folder or file name; requests pick it with model \"MODEL+NAME\" or \"adapter\". Repeatable; more load at run time through POST /admin/adapters."),
            .repeated("--template", valueName: "[MODEL=]NAME|FILE", help: "Chat template for a model without one (built-ins: chatml, gemma) or a .jinja file; without MODEL= it applies to every model."),
            GovernanceCLI.policyOption,
            GovernanceCLI.dbOption,
            .flag("--override-license", help: "Serve models whose licence the policy denies (only when it sets licenses.allow_override; recorded)."),
            .flag("--no-audit", help: "Do not record requests in the audit log and usage (not recommended)."),
            .flag("--insecure-no-auth", help: "Allow a non-loopback --host while no API key exists (anyone who can connect may use the server)."),
            .value("--tls-cert", valueName: "FILE", help: "Serve HTTPS with this PEM certificate (chain); needs --tls-key."),
            .value("--tls-key", valueName: "FILE", help: "The PEM private key for --tls-cert."),
        ],
        discussion: """
        The API id of a model is its fetched name (e.g. smollm2-135m-instruct) or its file name without extension.
        Endpoints: /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings, /api/tags, /api/show,
        /api/generate, /api/chat, /api/embed, /api/ps, /api/version, /health, /admin/*. Stops on SIGINT/SIGTERM.
        Before loading, a model registered with `steward models add` is re-hashed and refused if a file changed;
        the deployment policy (--policy, default $STEWARD_HOME/policy.json) can require registered or signed
        models and decides which licences may be served. Models not in the store are served unverified unless
        the policy sets models.require_registered.
        Once an API key exists (steward keys create), every route but /health needs Authorization: Bearer KEY.
        A --host other than loopback is refused while no key exists, unless --insecure-no-auth.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        let modelArgs = a.values("--model")
        // --adapter [MODEL=]PATH[:SCALE]
        let adapterSpecs: [(model: String?, path: String, scale: Float)] = try a.values("--adapter").map { text in
            var model: String?
            var rest = text
            if let eq = text.firstIndex(of: "="), !text[..<eq].contains("/") {
                model = String(text[..<eq]); rest = String(text[text.index(after: eq)...])
            }
            let (path, scale) = try AdapterOptions.parse(rest)
            return (model, path, scale)
        }
        for spec in adapterSpecs {
            if let m = spec.model, !modelArgs.contains(m) && !modelArgs.map(ModelLoader.modelID(for:)).contains(m) {
                throw UsageError("--adapter \(m)=…: \(m) is not one of the --model values")
            }
        }
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
        // Access control before anything is loaded: a server reachable from other machines
        // without keys is refused (or loudly allowed with --insecure-no-auth).
        let gate = try AccessGate(storage: a.value("--db").map { try SQLiteStorage(path: $0) } ?? SQLiteStorage())
        let snapshot = try gate.refresh()
        let loopback = ServeCommand.isLoopback(host)
        if !loopback && !snapshot.requiresKeys {
            guard a.flag("--insecure-no-auth") else {
                throw UsageError("--host \(host) would let other machines use this server, and no API key exists: create one first (steward keys create --name NAME), bind 127.0.0.1, or pass --insecure-no-auth to serve without authentication")
            }
            console.err("""
                steward serve: WARNING: --insecure-no-auth: listening on \(host) WITHOUT AUTHENTICATION.
                steward serve: WARNING: anyone who can reach this address can use every model. Create a key (steward keys create) to turn authentication on.

                """)
        } else if a.flag("--insecure-no-auth") {
            console.err("steward serve: note: --insecure-no-auth has no effect: \(snapshot.requiresKeys ? "API keys exist, so every request needs one" : "the host is loopback")\n")
        }
        var tls: (certificate: String, key: String)?
        switch (a.value("--tls-cert"), a.value("--tls-key")) {
        case (nil, nil): break
        case let (cert?, key?):
            guard HTTPServer.supportsTLS else { throw HTTPServerError.noTLS }
            guard let c = FileManager.default.contents(atPath: cert).map({ String(decoding: $0, as: UTF8.self) }) else { throw UsageError("cannot read --tls-cert \(cert)") }
            guard let k = FileManager.default.contents(atPath: key).map({ String(decoding: $0, as: UTF8.self) }) else { throw UsageError("cannot read --tls-key \(key)") }
            tls = (c, k)
        default:
            throw UsageError("--tls-cert and --tls-key go together")
        }
        if !loopback && tls == nil && snapshot.requiresKeys {
            console.err("steward serve: warning: \(host) without TLS: API keys and prompts cross the network in clear text (use --tls-cert/--tls-key or a TLS proxy)\n")
        }

        // Moderation: read (and validate) the policy before loading anything.
        var moderationConfig: ModerationConfig?
        let policyPath = StewardPaths.policyFile(a.value("--policy"))
        if let policyPath { moderationConfig = try ModerationConfig.load(policyFile: policyPath) }
        let ids = modelArgs.map(ModelLoader.modelID(for:))
        if let c = moderationConfig?.classifier, !ids.contains(c.model) {
            throw UsageError("the moderation classifier model '\(c.model)' is not served; add --model \(c.model)")
        }
        if Set(ids).count != ids.count { throw UsageError("two --model arguments have the same id (\(ids.joined(separator: ", "))); rename one file") }
        for key in templates.keys where !modelArgs.contains(key) && !ids.contains(key) {
            throw UsageError("--template \(key)=…: no --model \(key)")
        }

        // Governance before anything is loaded or listening: digests, signatures, licence policy.
        let licenses = try admitModels(modelArgs, ids: ids, a, console: console)

        // Refuse now, before loading, what would not fit in memory: the plan `steward plan`
        // prints for the same options, instead of failing (or swapping) later.
        let plan = try MemoryPlan.make(models: modelArgs, context: ctx, parallel: parallel, threads: threads, adapters: [], memory: nil)
        guard plan.fits else { throw MemoryPlan.DoesNotFit(plan: plan) }
        // A policy or database problem refuses to start before anything is loaded.
        let auditLog = try ServeCommand.openAudit(a, console: console)

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
        api.audit = auditLog
        // Collections (steward rag ingest) in the same database: /v1/rag/* and chat's `collections`.
        api.rag = RAGService(store: try RAGStore(path: a.value("--db")))
        if let auditLog {
            // Admin actions made through this server (admin API, kill switch) go to its audit log.
            let record: AdminAudit.Recorder = { action, keyID, target, details in
                do { _ = try auditLog.recordAdmin(action: action, keyID: keyID, target: target, details: details) } catch {
                    console.err("steward serve: could not record '\(action)' in the audit log: \(error)\n")
                }
            }
            gate.keys.adminRecorder = record
            AdminAudit.setRecorder(record)
        }
        let retention = try auditLog.flatMap { try ServeCommand.startRetention($0, console: console) }
                api.access = gate
        let server = HTTPServer(host: host, port: port, maxBodyBytes: maxBody, tls: tls) { api.handle($0) }
        try server.start()
        if !snapshot.requiresKeys {
            console.out("steward serve: no API keys exist: requests need no key (steward keys create turns authentication on)\n")
        }
        console.out("steward serve: listening on \(server.url) (loading \(ids.joined(separator: ", ")); /health says when ready)\n")
        do {
            for (arg, id) in zip(modelArgs, ids) {
                let t0 = Date()
                let template = templates[arg] ?? templates[id] ?? templateForAll
                switch try ModelLoader.load(arg, threads: threads, contextLength: ctx, template: template, maxQueue: maxQueue, parallel: parallel) {
                case let .decoder(m):
                    if let l = licenses[id] { m.license = l }
                    // An adapter without MODEL= is for the first chat model.
                    let first = registry.models.isEmpty
                    registry.add(m)
                    for spec in adapterSpecs where (spec.model == nil && first) || spec.model == id || spec.model == arg {
                        let use = LoRAUse(try LoRAAdapter.load(spec.path, for: m.engine.model.config), scale: spec.scale)
                        m.addAdapter(use, name: use.adapter.name)
                        console.out("  \(id)+\(use.adapter.name): LoRA \(use.adapter.format), rank \(use.adapter.rank), scale \(spec.scale)\n")
                    }
                    let chat = m.chatTemplate == nil ? "no chat template: completions only (see --template)" : "chat template ok"
                    console.out(String(format: "  %@: context %d, %@, loaded in %.2f s\n", id, m.contextLength, chat, Date().timeIntervalSince(t0)))
                case let .embedder(e):
                    e.license = licenses[id]
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
            // A key's own moderation_policy (steward keys create --moderation-policy) wins over the default.
            let keys = gate.keys
            api.moderation = ModerationService(config: config, classifier: classifier,
                                               policyName: { keyID in keyID.flatMap { keys.moderationPolicy(forKeyID: $0) } })
            console.out("  moderation: default policy '\(config.defaultPolicy)'\(classifier != nil ? ", classifier on \(config.classifier!.model)" : "")\n")
        }
        registry.markReady()
        console.out("steward serve: ready at \(server.url)  (OpenAI: \(server.url)/v1, Ollama: \(server.url)/api; Ctrl-C stops)\n")
        stop.wait()
        retention?.cancel()
        console.err("steward serve: stopping (cancelling in-flight requests)\n")
        api.shutdown()
        server.stop()
        sources.forEach { $0.cancel() }
        console.err("steward serve: stopped\n")
        return ExitCode.ok
    }

    /// Runs `ServeGate` on every model: a registered model's files are re-hashed (a changed file
    /// is refused), signatures and the licence policy are checked. Returns the licence id per
    /// model id, for /v1/models and /api/show.
    func admitModels(_ modelArgs: [String], ids: [String], _ a: ParsedArguments, console: Console) throws -> [String: String] {
        let policy = try GovernanceCLI.policy(a)
        let store = try GovernanceCLI.existingStore(a)
        var licenses: [String: String] = [:]
        for (arg, id) in zip(modelArgs, ids) {
            let path = try ModelLocator.resolve(arg)
            let t0 = Date()
            let admission = try ServeGate.admit(path: path, store: store, policy: policy, overrideLicense: a.flag("--override-license"),
                                                progress: GovernanceCLI.progress(console))
            if admission.licenseID != LicenseCatalog.unknownID { licenses[id] = admission.licenseID }
            if let r = admission.record {
                console.out(String(format: "  %@: store model '%@' verified (%@) in %.2f s, licence %@\n", id, r.name,
                                   policy?.models.trustUnchangedFiles == true ? "unchanged files trusted" : "sha256", Date().timeIntervalSince(t0), admission.licenseID))
            }
            for n in admission.notes { console.err("  \(id): \(n)\n") }
        }
        return licenses
    }

    /// The audit log (default on, prompts not logged) at $STEWARD_HOME/steward.db, per the
    /// policy's "audit" section; nil with --no-audit or `audit.enabled: false` (warned).
    static func openAudit(_ a: ParsedArguments, console: Console) throws -> AuditLog? {
        if a.flag("--no-audit") {
            console.err("steward serve: WARNING: --no-audit: requests and usage are NOT recorded; there will be no audit trail for this run\n")
            return nil
        }
        let policyPath = StewardPaths.policyFile(a.value("--policy"))
        let policy = try policyPath.map { p throws -> AuditPolicy in try AuditPolicy.load(policyFile: p) } ?? AuditPolicy()
        guard policy.enabled else {
            console.err("steward serve: WARNING: the policy switches the audit log off (audit.enabled: false): requests and usage are NOT recorded\n")
            return nil
        }
        let storage = try a.value("--db").map { try SQLiteStorage(path: $0) } ?? SQLiteStorage()
        // Prompts "redacted": moderation's PII and secret detectors remove what they find.
        let log = try AuditLog(storage: storage, policy: policy, redactor: ModerationService.redactor, usage: try UsageLedger(storage: storage))
        try log.startBackgroundCheckpoints()
        console.out("steward serve: audit log at \(storage.path) (prompts: \(policy.prompts.rawValue)\(policy.durable ? ", durable" : "")\(policy.retentionDays.map { ", retention \($0) days" } ?? ""))\n")
        return log
    }

    /// Applies audit.retention_days now and then hourly (signed checkpoints with the audit key).
    static func startRetention(_ log: AuditLog, console: Console) throws -> DispatchSourceTimer? {
        guard log.policy.retentionDays != nil else { return nil }
        let key = try AuditLog.signingKey()
        let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
        timer.schedule(deadline: .now(), repeating: 3600)
        timer.setEventHandler {
            do {
                let r = try log.applyRetention(key: key)
                if r.pruned > 0 { console.err("steward serve: audit retention pruned \(r.pruned) records (checkpoint at seq \(r.checkpoint?.seq ?? 0))\n") }
            } catch {
                console.err("steward serve: audit retention failed: \(error)\n")
            }
        }
        timer.resume()
        return timer
    }

    /// 127.0.0.0/8 and "localhost": only this machine can connect.
    static func isLoopback(_ host: String) -> Bool { host == "localhost" || host.hasPrefix("127.") }
}
