import Foundation
import Governance
import ModelFiles
import Models

/// Output types `merge --type` and `quantize --type` can write (what ModelFiles' quantizers
/// produce bit-exactly as llama.cpp's reference quantizers do).
enum WritableTypes {
    /// The single types of QuantizeRecipe's list (not the mixed recipes).
    static let names: [String: GGMLType] = QuantizeRecipe.names.compactMapValues { r in
        if case let .uniform(t) = r.kind { return t }
        return nil
    }

    static func parse(_ text: String?) throws -> GGMLType? {
        guard let text else { return nil }
        guard let t = names[text.lowercased()] else {
            throw UsageError("--type \(text) is not writable (writable: \(names.keys.sorted().joined(separator: ", ")))")
        }
        return t
    }

    /// Progress on one line of standard error: "[12/272] blk.3.attn_q.weight".
    static func progress(_ console: Console) -> (Int, Int, String) -> Void {
        { i, n, name in if i == n || i % 16 == 1 { console.err("[\(i)/\(n)] \(name)\n") } }
    }
}

/// `steward merge --model BASE --adapter A[:SCALE] [--adapter B] --out FILE [--type T]`.
struct MergeCommand: Command {
    let spec = CommandSpec(
        name: "merge",
        summary: "Bake LoRA adapters into a new GGUF model (checked against the licence policy, lineage recorded).",
        usage: "steward merge --model BASE --adapter PATH[:SCALE] [--adapter ...] --out FILE.gguf [--type q8_0|q4_0|q4_1|q5_0|q5_1|q4_k|q5_k|q6_k|f16|bf16|f32] [--name NAME] [--no-register]",
        options: [
            .value("--model", "-m", valueName: "MODEL", help: "The base GGUF model (a fetched name, a store name or a path)."),
            AdapterOptions.spec,
            .value("--out", "-o", valueName: "FILE", help: "The merged GGUF to write (refused if it exists)."),
            .value("--type", valueName: "TYPE", help: "Type of the changed tensors (default: each tensor's own; Q2_K and Q3_K become q8_0)."),
            .value("--name", valueName: "NAME", help: "Name in the model store (default: the file name)."),
            .flag("--no-register", help: "Do not add the merged model to the model store."),
            .flag("--override-license", help: "Merge although the policy denies it (only when licenses.allow_override; recorded)."),
            GovernanceCLI.policyOption,
            GovernanceCLI.dbOption,
        ],
        discussion: """
        W' = W + scale·(alpha/r)·B·A for every projection an adapter changes, re-quantized; every other tensor and
        all metadata are copied, and steward.merged_adapters records what went in. Before writing, the base model's
        licence is checked against the deployment policy for the 'merge' derivative. The result is added to the
        model store with the base as its parent (relation: merged).
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        let modelArg = try a.require("--model")
        let out = try a.require("--out")
        guard !a.values("--adapter").isEmpty else { throw UsageError("give at least one --adapter PATH[:SCALE]") }
        guard !FileManager.default.fileExists(atPath: out) else { throw UsageError("\(out) exists; give a new --out path") }
        let type = try WritableTypes.parse(a.value("--type"))
        let store = try GovernanceCLI.store(a)
        let basePath = try ModelLocator.resolve(try store.resolve(modelArg)?.root ?? modelArg)
        let baseRecord = try store.resolve(modelArg) ?? store.resolve(basePath)
        try GovernanceCLI.checkDerivative(a, .merge, model: baseRecord?.name ?? basePath, store: store)
        let file = try GGUFFile(path: basePath)
        let config = try DecoderConfig(gguf: file)
        var uses: [LoRAUse] = []
        for text in a.values("--adapter") {
            let (path, scale) = try AdapterOptions.parse(text)
            uses.append(LoRAUse(try LoRAAdapter.load(path, for: config), scale: scale))
        }
        let t0 = Date()
        let tmp = out + ".partial"
        try? FileManager.default.removeItem(atPath: tmp)
        let report: LoRAMerge.Report
        do {
            report = try LoRAMerge.merge(base: file, config: config, adapters: uses, type: type, to: tmp, progress: WritableTypes.progress(console))
            try FileManager.default.moveItem(atPath: tmp, toPath: out)
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
        for w in report.widened { console.err("note: \(w) is Q2_K or Q3_K, which cannot be written here; written as q8_0\n") }
        console.out(String(format: "merged %@ into %@: %d tensors updated, %d copied, %.1f s\n",
                           uses.map(\.adapter.name).joined(separator: ", "), out, report.merged.count, report.copied, Date().timeIntervalSince(t0)))
        if !a.flag("--no-register") {
            let parent = try baseRecord?.name ?? store.add(ModelStore.AddRequest(target: basePath), policy: try DeploymentPolicy.load(path: a.value("--policy"))).record.name
            let added = try store.add(ModelStore.AddRequest(target: out, name: a.value("--name"), parent: parent, relation: .merged,
                                                            overrideLicense: a.flag("--override-license")),
                                      policy: try DeploymentPolicy.load(path: a.value("--policy")))
            console.out("registered \(added.record.name) (parent \(parent), relation merged, licence \(added.record.license))\n")
        }
        return ExitCode.ok
    }
}

/// `steward quantize IN OUT --type T`.
struct QuantizeCommand: Command {
    static let typeList = "q8_0|q4_0|q4_1|q5_0|q5_1|q4_k|q5_k|q6_k|q4_k_m|q5_k_m|f16|bf16|f32"
    let spec = CommandSpec(
        name: "quantize",
        summary: "Re-quantize a GGUF model's weight matrices to another type or a mixed recipe, keeping metadata and tokenizer.",
        usage: "steward quantize IN.gguf OUT.gguf --type \(QuantizeCommand.typeList) [--pure]",
        options: [
            .value("--type", valueName: "TYPE", help: "Type of the 2-D weight tensors, or a mixed recipe (q4_k_m, q5_k_m); norms and other vectors are kept."),
            .flag("--pure", help: "Every matrix in TYPE: no q6_k output, no per-layer rules (llama-quantize --pure)."),
            .flag("--override-license", help: "Quantize although the policy denies it (only when licenses.allow_override; recorded)."),
            GovernanceCLI.policyOption,
            GovernanceCLI.dbOption,
        ],
        discussion: """
        The input's licence is checked against the deployment policy for the 'quantize' derivative first.
        Each matrix is dequantized to f32 and quantized to its type, with llama-quantize's default rules: for every
        quantized type the output (or the tied embedding) goes to q6_k (q8_0 stays q8_0); q4_k (llama.cpp's Q4_K_S)
        gives attn_v of the first four layers and ffn_down of the first eighth q5_k. q4_k_m / q5_k_m mix types as
        llama.cpp's Q4_K_M / Q5_K_M do: attn_v / ffn_down on the first and last eighth of the layers and every
        third between in q6_k, the rest in the base K-quant. --pure turns these rules off. K-quants need rows of 256
        values: narrower matrices fall back to q5_0 (for q4_k), q5_1 (q5_k) or q8_0 (q6_k). From a quantized
        model this re-quantizes what is already lossy (a warning says so): start from F32/F16/BF16 when you can.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard a.positionals.count == 2 else { throw UsageError("give the input and output files: steward quantize IN.gguf OUT.gguf --type TYPE") }
        let (input, out) = (try ModelLocator.resolve(a.positionals[0]), a.positionals[1])
        let typeName = try a.require("--type")
        guard var recipe = QuantizeRecipe.named(typeName) else {
            throw UsageError("--type \(typeName) is not writable (writable: \(QuantizeRecipe.names.keys.sorted().joined(separator: ", ")))")
        }
        recipe.pure = a.flag("--pure")
        if recipe.pure, case .mixed = recipe.kind { throw UsageError("--pure takes a single type, not the mixed recipe \(typeName)") }
        guard !FileManager.default.fileExists(atPath: out) else { throw UsageError("\(out) exists; give a new output path") }
        let store = try GovernanceCLI.store(a)
        try GovernanceCLI.checkDerivative(a, .quantize, model: try store.resolve(input)?.name ?? input, store: store)
        let file = try GGUFFile(path: input)
        let lossy = Set(file.tensors.filter { $0.dims.count == 2 && ![.f32, .f16, .bf16].contains($0.type) }.map { $0.type.name })
        if !lossy.isEmpty {
            console.err("warning: \(input) is already quantized (\(lossy.sorted().joined(separator: ", "))): re-quantizing compounds the error; start from an F32, F16 or BF16 file when you can\n")
        }
        let layers = file.architecture.flatMap { file.int("\($0).block_count") } ?? 0
        let tied = file.tensor(named: "output.weight") == nil
        let t0 = Date()
        let tmp = out + ".partial"
        var counts: [GGMLType: Int] = [:]
        var kept = 0
        do {
            try GGUFRewrite.write(file, to: tmp, extraMetadata: [("general.file_type", .uint32(recipe.fileType))], plan: { info in
                guard let type = recipe.type(for: info, layers: layers, tiedOutput: tied) else { kept += 1; return nil }
                counts[type, default: 0] += 1
                return GGUFRewrite.Step(type: type)
            }, progress: WritableTypes.progress(console))
            try FileManager.default.moveItem(atPath: tmp, toPath: out)
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
        let size = ((try? FileManager.default.attributesOfItem(atPath: out)[.size] as? NSNumber)??.intValue) ?? 0
        let mix = counts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key.name < $1.key.name) }
            .map { "\($0.value) \($0.key.name)" }.joined(separator: ", ")
        console.out(String(format: "wrote %@ (%@): %@; %d kept, %.1f MB, %.1f s\n", out, recipe.name, mix.isEmpty ? "no tensors changed" : mix, kept,
                           Double(size) / 1e6, Date().timeIntervalSince(t0)))
        return ExitCode.ok
    }
}
