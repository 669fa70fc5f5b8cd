import Foundation
import Governance
import ModelFiles

struct LicenseCommand: Command {
    let spec = CommandSpec(
        name: "license",
        summary: "Model licences: the terms in plain words, a check against the deployment policy, the notice to ship.",
        usage: "steward license show MODEL | check MODEL [--policy FILE] [--action finetune|merge|quantize] | notice MODEL | list",
        options: [
            .value("--action", valueName: "KIND", help: "check: also check making this derivative (finetune, merge, quantize)."),
            GovernanceCLI.dbOption,
            GovernanceCLI.policyOption,
        ],
        discussion: """
        MODEL is a name in the model store, a model path or fetched model name (its licence is read from GGUF
        general.license or a README.md model card beside it), or a licence id (apache-2.0, llama3.2, gemma, …).
        `check` exits 0 when the policy allows the model and 1 when it denies it, printing every reason.
        Without a policy file it checks against the default policy (commercial use, internal distribution,
        no derivatives, unknown licences not accepted). Summaries help decisions; they are not legal advice.
        """
    )

    /// A model (or bare licence) whose licence is being asked about.
    struct Subject {
        let label: String
        let licenseRaw: String?
        let licenseSource: String?
        let record: ModelRecord?
        let path: String?
    }

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard let sub = a.positionals.first else { throw UsageError("expected a subcommand: show, check, notice or list") }
        let rest = Array(a.positionals.dropFirst())
        if sub == "list" {
            for t in LicenseCatalog.all {
                console.out("\(t.id.padding(toLength: 18, withPad: " ", startingAt: 0))commercial \(t.commercialUse.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0))\(t.name)\n")
            }
            return ExitCode.ok
        }
        guard rest.count == 1 else { throw UsageError("expected exactly one MODEL") }
        let subject = try resolve(rest[0], a)
        switch sub {
        case "show": return show(subject, console)
        case "check": return try check(subject, a, console)
        case "notice": return notice(subject, console)
        default: throw UsageError("unknown subcommand '\(sub)' (show, check, notice, list)")
        }
    }

    func resolve(_ arg: String, _ a: ParsedArguments) throws -> Subject {
        if let store = try GovernanceCLI.existingStore(a), let r = try store.resolve(arg) {
            return Subject(label: r.name, licenseRaw: r.licenseAsWritten ?? r.license, licenseSource: r.licenseSource, record: r, path: r.root)
        }
        if FileManager.default.fileExists(atPath: arg) || ModelLocator.path(forName: arg) != nil {
            let path = try ModelLocator.resolve(arg)
            let found = ModelStore.licenseOnDisk(path)
            return Subject(label: arg, licenseRaw: found?.license, licenseSource: found?.source ?? "nothing found in the file or a model card", record: nil, path: path)
        }
        if LicenseCatalog.normalize(arg) != nil {
            return Subject(label: arg, licenseRaw: arg, licenseSource: "given", record: nil, path: nil)
        }
        throw UsageError("'\(arg)' is not a model in the store, a model file or fetched model name, nor a licence id (known: \(LicenseCatalog.ids.joined(separator: ", ")))")
    }

    func show(_ s: Subject, _ console: Console) -> Int32 {
        let terms = LicenseCatalog.lookup(s.licenseRaw)
        var out = "\(s.label): licence \(terms.id)"
        if let raw = s.licenseRaw, raw != terms.id { out += " (written \"\(raw)\")" }
        if let src = s.licenseSource { out += ", from \(src)" }
        console.out(out + "\n\n" + terms.plainWords)
        return ExitCode.ok
    }

    func check(_ s: Subject, _ a: ParsedArguments, _ console: Console) throws -> Int32 {
        var action: DerivativeAction?
        if let v = a.value("--action") {
            guard let d = DerivativeAction(rawValue: v) else { throw UsageError("--action must be finetune, merge or quantize") }
            action = d
        }
        let loaded = try GovernanceCLI.policy(a)
        let policy = loaded ?? DeploymentPolicy()
        let d = LicensePolicy.evaluate(license: s.licenseRaw, policy: policy, action: action)
        let origin = loaded?.sourcePath ?? "the default policy (no policy file)"
        let lp = policy.licenses
        console.out("\(s.label): licence \(d.licenseID) — \(d.allowed ? "ALLOWED" : "DENIED") by \(origin)\n")
        console.out("  policy: use \(lp.use.rawValue), distribution \(lp.distribution.rawValue), derivatives [\(lp.derivatives.map(\.rawValue).sorted().joined(separator: ", "))]\(action.map { ", checking \($0.rawValue)" } ?? "")\n")
        if !d.reasons.isEmpty {
            console.out("  reasons:\n")
            for r in d.reasons { console.out("    - \(r)\n") }
            console.out(d.overridable ? "  the policy allows overrides: --override-license admits it (recorded)\n"
                                      : "  overrides are off (licenses.allow_override is false)\n")
        }
        if !d.obligations.isEmpty {
            console.out("  obligations:\n")
            for o in d.obligations { console.out("    - \(o)\n") }
        }
        return d.allowed ? ExitCode.ok : ExitCode.failure
    }

    func notice(_ s: Subject, _ console: Console) -> Int32 {
        let terms = LicenseCatalog.lookup(s.licenseRaw)
        var out = "NOTICE\n\n"
        out += "Model: \(s.record?.name ?? s.label)"
        if let r = s.record { out += " (sha256 \(r.sha256))" }
        out += "\n"
        if terms.isUnknown {
            out += "Licence: unknown. No notice can be prepared; find the model's licence and record it with `steward models add … --license ID`.\n"
            console.out(out)
            console.err("steward license: the licence of \(s.label) is unknown; without it, redistribution is not permitted\n")
            return ExitCode.failure
        }
        out += "Licence: \(terms.name)\(terms.spdx.map { " (SPDX: \($0))" } ?? "")\n"
        if !terms.sourceURL.isEmpty { out += "Licence text: \(terms.sourceURL)\n" }
        if let n = terms.requiredNotice { out += "\n\(n)\n" }
        if let r = s.record, let p = r.parent {
            out += "\nThis model is \(article(r.relation?.rawValue ?? "derivative")) \(r.relation?.rawValue ?? "derivative") of \(p); it has been modified from the original.\n"
        }
        if let aup = terms.acceptableUsePolicyURL {
            out += "\nUse of this model is subject to the acceptable-use policy at \(aup), which applies to every user and to derivatives.\n"
        }
        out += "\nWhat a distributor must also do:\n"
        for duty in terms.attribution { out += "  - \(duty)\n" }
        if let note = terms.redistributionNote { out += "  - \(note)\n" }
        if let prefix = terms.derivativeNamePrefix { out += "  - Name a distributed derivative model starting with \"\(prefix)\".\n" }
        if let path = s.path {
            let dir = FileManager.default.fileExists(atPath: path + "/") && !path.hasSuffix(".gguf") ? path : (path as NSString).deletingLastPathComponent
            let candidates = ["LICENSE", "LICENSE.txt", "LICENSE.md", "NOTICE", "NOTICE.txt", "USE_POLICY.md", "GEMMA_TERMS.html"]
            let present = candidates.filter { FileManager.default.fileExists(atPath: dir + "/" + $0) }
            if !present.isEmpty { out += "  - Ship these files from \(dir) with the model: \(present.joined(separator: ", ")).\n" }
        }
        out += "\n(Prepared by steward from its licence catalogue; the licence text governs.)\n"
        console.out(out)
        return ExitCode.ok
    }

    private func article(_ w: String) -> String { "aeiou".contains(w.first ?? "x") ? "an" : "a" }
}
