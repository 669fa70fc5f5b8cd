import Foundation

struct PlanCommand: Command {
    let spec = CommandSpec(
        name: "plan",
        summary: "Before loading: the memory a model will take at a context and parallelism, and whether it fits.",
        usage: "steward plan --model MODEL [--model MODEL2 ...] [--ctx N] [--parallel N] [--adapter FILE]... [--json]",
        options: [
            .repeated("--model", "-m", valueName: "MODEL", help: "Model file or fetched model name, as for serve (several add up, as serve loads them all)."),
            .value("--ctx", "-c", valueName: "N", help: "Context length per sequence (default: the model's, at most 4096, as serve)."),
            .value("--parallel", valueName: "N", help: "Sequences served at once, each with its own KV cache (default 4, as serve)."),
            .value("--threads", "-t", valueName: "N", help: "Threads (default: all cores); sizes the per-thread scratch."),
            .repeated("--adapter", valueName: "FILE", help: "An adapter file whose size is counted as memory (LoRA adapters are not applied yet: this only plans for them)."),
            .value("--memory", valueName: "BYTES", help: "Plan for a machine with this much memory (e.g. 8G, 512M) instead of this one's MemAvailable."),
            .flag("--json", help: "Print one JSON object instead of text."),
        ],
        discussion: """
        Reads only the models' metadata. Counts the weights (the file, memory-mapped), the f16 KV
        cache of each sequence (layers × context × KV heads × (key + value dims) × 2 bytes), the
        compute scratch, logits buffers and a runtime allowance, and compares the total with the
        memory available (MemAvailable from /proc/meminfo, or the cgroup limit if lower) less a
        safety margin of 10% (at least 128 MiB). Also says the largest --ctx (at this --parallel)
        and the largest --parallel (at this --ctx) that fit. `steward serve` makes the same check
        before loading and refuses what does not fit.
        Exit status: 0 fits, 1 does not fit (or a model cannot be read), 2 usage error.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        var models = a.values("--model")
        // `steward plan MODEL` works too, like inspect.
        models += a.positionals
        guard !models.isEmpty else { throw UsageError("give a model: --model MODEL") }
        let settings = try PlanSettings(a)
        let plan = try MemoryPlan.make(models: models, context: settings.context, parallel: settings.parallel,
                                       threads: settings.threads, adapters: a.values("--adapter"), memory: settings.memory)
        console.out(a.flag("--json") ? Format.json(plan.json) + "\n" : plan.text)
        return plan.fits ? ExitCode.ok : ExitCode.failure
    }
}

/// The options plan and serve share, checked the same way.
struct PlanSettings {
    var context: Int?
    var parallel: Int
    var threads: Int?
    var memory: Int?

    init(_ a: ParsedArguments) throws {
        parallel = try a.int("--parallel") ?? 4
        guard parallel >= 1 else { throw UsageError("--parallel must be ≥ 1") }
        context = try a.int("--ctx")
        if let c = context, c < 1 { throw UsageError("--ctx must be ≥ 1") }
        threads = try GenerationOptions.threads(a)
        if let m = a.value("--memory") {
            guard let bytes = parseByteCount(m), bytes > 0 else { throw UsageError("--memory expects a size such as 8G, 512M or 8000000000, got '\(m)'") }
            memory = bytes
        }
    }
}
