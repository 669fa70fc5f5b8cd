import Foundation
import Governance
import ModelFiles
import Models

/// Output types `merge --type` and `quantize --type` can write (what ModelFiles' quantizers
/// produce bit-exactly as llama.cpp's reference quantizers do).
enum WritableTypes {
    static let names: [String: GGMLType] = Dictionary(uniqueKeysWithValues: [GGMLType.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1].map { ($0.name.lowercased(), $0) })

    static func parse(_ text: String?) throws -> GGMLType? {
        guard let text else { return nil }
        guard let t = names[text.lowercased()] else {
            throw UsageError("--type \(text) is not writable (writable: \(names.keys.sorted().joined(separator: ", ")); K-quants are not yet)")
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
        usage: "steward merge --model BASE --adapter PATH[:SCALE] [--adapter ...] --out FILE.gguf [--type q8_0|q4_0|q4_1|q5_0|q5_1|f16|bf16|f32] [--name NAME] [--no-register]",
        options: [
            .value("--model", "-m", valueName: "MODEL", help: "The base GGUF model (a fetched name, a store name or a path)."),
            AdapterOptions.spec,
            .value("--out", "-o", valueName: "FILE", help: "The merged GGUF to write (refused if it exists)."),
            .value("--type", valueName: "TYPE", help: "Type of the changed tensors (default: each tensor's own; K-quants become q8_0)."),
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
        for w in report.widened { console.err("note: \(w) is a K-quant, which cannot be re-quantized here; written as q8_0\n") }
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
    let spec = CommandSpec(
        name: "quantize",
        summary: "Re-quantize a GGUF model's weight matrices to another type, keeping metadata and tokenizer.",
        usage: "steward quantize IN.gguf OUT.gguf --type q8_0|q4_0|q4_1|q5_0|q5_1|f16|bf16|f32",
        options: [
            .value("--type", valueName: "TYPE", help: "Type of the 2-D weight tensors (norms and other vectors stay f32)."),
            .flag("--override-license", help: "Quantize although the policy denies it (only when licenses.allow_override; recorded)."),
            GovernanceCLI.policyOption,
            GovernanceCLI.dbOption,
        ],
        discussion: """
        The input's licence is checked against the deployment policy for the 'quantize' derivative first.
        Each matrix is dequantized to f32 and quantized with the reference quantizer of the type. From a
        quantized model this re-quantizes what is already lossy (a warning says so): start from F32/F16/BF16 when
        you can. K-quant output types and mixed recipes (Q4_K_M) are not written yet.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard a.positionals.count == 2 else { throw UsageError("give the input and output files: steward quantize IN.gguf OUT.gguf --type TYPE") }
        let (input, out) = (try ModelLocator.resolve(a.positionals[0]), a.positionals[1])
        guard let type = try WritableTypes.parse(try a.require("--type")) else { throw UsageError("give --type") }
        guard !FileManager.default.fileExists(atPath: out) else { throw UsageError("\(out) exists; give a new output path") }
        let store = try GovernanceCLI.store(a)
        try GovernanceCLI.checkDerivative(a, .quantize, model: try store.resolve(input)?.name ?? input, store: store)
        let file = try GGUFFile(path: input)
        let lossy = Set(file.tensors.filter { $0.dims.count == 2 && ![.f32, .f16, .bf16].contains($0.type) }.map { $0.type.name })
        if !lossy.isEmpty {
            console.err("warning: \(input) is already quantized (\(lossy.sorted().joined(separator: ", "))): re-quantizing compounds the error; start from an F32, F16 or BF16 file when you can\n")
        }
        let t0 = Date()
        let tmp = out + ".partial"
        var changed = 0, kept = 0
        do {
            try GGUFRewrite.write(file, to: tmp, extraMetadata: [("general.file_type", .uint32(Self.fileType(type)))], plan: { info in
                guard info.dims.count == 2, info.dims[0] % type.blockSize == 0 else { kept += 1; return nil }
                changed += 1
                return GGUFRewrite.Step(type: type)
            }, progress: WritableTypes.progress(console))
            try FileManager.default.moveItem(atPath: tmp, toPath: out)
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
        let size = ((try? FileManager.default.attributesOfItem(atPath: out)[.size] as? NSNumber)??.intValue) ?? 0
        console.out(String(format: "wrote %@: %d tensors as %@, %d kept, %.1f MB, %.1f s\n", out, changed, type.name, kept,
                           Double(size) / 1e6, Date().timeIntervalSince(t0)))
        return ExitCode.ok
    }

    /// llama.cpp's LLAMA_FTYPE for a whole-file type.
    static func fileType(_ t: GGMLType) -> UInt32 {
        switch t {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q5_1: return 9
        case .bf16: return 32
        default: return 0
        }
    }
}
