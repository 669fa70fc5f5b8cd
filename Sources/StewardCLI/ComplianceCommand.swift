import Foundation
import Governance

/// `steward compliance report --out DIR`: one document for an auditor (Markdown and HTML) with
/// models and licences, the active policy, keys (no secrets), the audit chain, moderation,
/// usage and evaluation results. The content is built in Governance (`ComplianceReport`).
struct ComplianceCommand: Command {
    let spec = CommandSpec(
        name: "compliance",
        summary: "Write a compliance report for an auditor (Markdown + HTML).",
        usage: "steward compliance report --out DIR [--policy FILE] [--db FILE] [--quick] [--key FILE]",
        options: [
            .value("--out", valueName: "DIR", help: "Directory for compliance-report.md and compliance-report.html (created 0700; files 0600)."),
            .value("--policy", valueName: "FILE", help: "The deployment policy (default $STEWARD_HOME/policy.json when it exists)."),
            .value("--db", valueName: "FILE", help: "The Steward database (default $STEWARD_HOME/steward.db)."),
            .flag("--quick", help: "Trust model files whose size, mtime and inode are unchanged instead of re-hashing them."),
            .value("--key", valueName: "FILE", help: "Audit checkpoint key for verifying the chain (default $STEWARD_HOME/audit-signing.pem when present)."),
        ],
        discussion: """
        The report re-hashes every registered model (or trusts unchanged files with --quick), verifies
        the audit hash chain, and lists API keys by id with scopes, limits and state — never a key or its
        hash. Evaluation results are read from $STEWARD_HOME/evals/*.json when present.
        Exit status: 0 written (even when the report shows problems), 1 the report could not be made.
        """
    )

    func run(_ a: ParsedArguments, console: Console) throws -> Int32 {
        guard let sub = a.positionals.first else { throw UsageError("give a subcommand: report") }
        guard sub == "report" else { throw UsageError("unknown subcommand '\(sub)' (report)") }
        guard a.positionals.count == 1 else { throw UsageError("unexpected argument '\(a.positionals[1])'") }
        let out = try a.require("--out")
        var options = ComplianceReport.Options(databasePath: a.value("--db"), policyPath: a.value("--policy"), quick: a.flag("--quick"),
                                               stewardVersion: StewardCLI.version, auditKeyPath: a.value("--key"))
        options.now = Date()
        let report = try ComplianceReport.build(options)
        let paths = try report.write(to: out)
        // Who produced which report, and when, is itself an admin action worth keeping.
        AdminAudit.record(action: "compliance.report", target: out,
                          details: ["models": String(report.models.count), "audit_chain": report.audit.verification?.ok == true ? "intact" : "problems"])
        console.out("wrote \(paths.markdown)\nwrote \(paths.html)\n")
        let attention = report.attention
        if !attention.isEmpty {
            console.out("\(attention.count) item\(attention.count == 1 ? "" : "s") need\(attention.count == 1 ? "s" : "") attention:\n")
            for line in attention { console.out("  - \(line)\n") }
        }
        return ExitCode.ok
    }
}
