import Foundation
import Governance

struct BOMCommand: Command {
    let spec = CommandSpec(
        name: "bom",
        summary: "Inventory of every model in the store as a CycloneDX 1.6 ML-BOM (or Steward JSON).",
        usage: "steward bom [--format cyclonedx|json] [--out FILE]",
        options: [
            .value("--format", valueName: "FORMAT", help: "cyclonedx (default: CycloneDX 1.6 JSON) or json (Steward's own shape)."),
            .value("--out", "-o", valueName: "FILE", help: "Write to FILE instead of standard output."),
            GovernanceCLI.dbOption,
        ],
        discussion: """
        Each model is a component of type machine-learning-model with its SHA-256, licence (SPDX id where one
        exists), model card parameters, lineage (pedigree.ancestors) and properties for size, quantization,
        licence obligations, openness and signature.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard a.positionals.isEmpty else { throw UsageError("unexpected argument '\(a.positionals[0])'") }
        let formatName = a.value("--format") ?? "cyclonedx"
        guard let format = BOM.Format(rawValue: formatName) else { throw UsageError("--format must be cyclonedx or json") }
        let store = try GovernanceCLI.existingStore(a)
        let models = try store?.list() ?? []
        let data = try BOM.render(models, format: format, store: store, toolVersion: StewardCLI.version)
        if let out = a.value("--out") {
            try data.write(to: URL(fileURLWithPath: out), options: .atomic)
            console.err("steward bom: \(models.count) model\(models.count == 1 ? "" : "s") written to \(out)\n")
        } else {
            console.out(String(decoding: data, as: UTF8.self) + "\n")
        }
        return ExitCode.ok
    }
}
