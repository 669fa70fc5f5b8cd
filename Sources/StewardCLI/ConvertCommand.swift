import Foundation
import Governance
import ModelFiles
import Models

/// `steward convert HF_DIR OUT.gguf [--type f32|f16|bf16|q8_0]`.
struct ConvertCommand: Command {
    static let types: [String: GGMLType] = ["f32": .f32, "f16": .f16, "bf16": .bf16, "q8_0": .q8_0]

    let spec = CommandSpec(
        name: "convert",
        summary: "Convert a Hugging Face LlamaForCausalLM folder (safetensors) to GGUF, as llama.cpp's converter does.",
        usage: "steward convert HF_DIR OUT.gguf [--type f32|f16|bf16|q8_0] [--name NAME]",
        options: [
            .value("--type", valueName: "TYPE", help: "Type of the 2-D weights (default f16; norms stay f32)."),
            .value("--name", valueName: "NAME", help: "general.name (default: the folder name)."),
            .flag("--override-license", help: "Convert although the policy denies it (only when licenses.allow_override; recorded)."),
            GovernanceCLI.policyOption,
            GovernanceCLI.dbOption,
        ],
        discussion: """
        HF_DIR holds config.json (architectures: LlamaForCausalLM), model.safetensors or shards with
        model.safetensors.index.json (F32, F16 or BF16), tokenizer.json (byte-level BPE) and tokenizer_config.json
        (special tokens, chat_template). q/k rows are permuted to llama.cpp's RoPE layout. The folder's licence
        (its README.md model card) is checked against the deployment policy as a 'quantize' derivative (a change
        of format of the same weights) and written as general.license. Other architectures, SentencePiece
        tokenizers, unknown pre-tokenizers and rope scaling other than linear are refused.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard a.positionals.count == 2 else { throw UsageError("give the folder and the output file: steward convert HF_DIR OUT.gguf [--type f16]") }
        let (dir, out) = (a.positionals[0], a.positionals[1])
        let typeName = (a.value("--type") ?? "f16").lowercased()
        guard let type = Self.types[typeName] else {
            throw UsageError("--type \(typeName) is not written by convert (f32, f16, bf16, q8_0)")
        }
        guard !FileManager.default.fileExists(atPath: out) else { throw UsageError("\(out) exists; give a new output path") }
        let store = try GovernanceCLI.store(a)
        try GovernanceCLI.checkDerivative(a, .quantize, model: try store.resolve(dir)?.name ?? dir, store: store)
        var extra: [(String, GGUFValue)] = []
        if let l = ModelStore.licenseOnDisk(dir)?.license { extra.append(("general.license", .string(l))) }
        let t0 = Date()
        let tmp = out + ".partial"
        try? FileManager.default.removeItem(atPath: tmp)
        let report: HFConvert.Report
        do {
            report = try HFConvert.convert(dir: dir, to: tmp, type: type, name: a.value("--name"), extraMetadata: extra,
                                           progress: { i, n, name in console.err("[\(i)/\(n)] \(name)\n") })
            try FileManager.default.moveItem(atPath: tmp, toPath: out)
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
        let size = ((try? FileManager.default.attributesOfItem(atPath: out)[.size] as? NSNumber)??.intValue) ?? 0
        console.out(String(format: "wrote %@: %d tensors (%d q/k permuted), weights %@, vocab %d, pre-tokenizer %@, %.1f MB, %.1f s\n",
                           out, report.tensors, report.permuted, type.name, report.vocabSize, report.preTokenizer,
                           Double(size) / 1e6, Date().timeIntervalSince(t0)))
        return ExitCode.ok
    }
}
