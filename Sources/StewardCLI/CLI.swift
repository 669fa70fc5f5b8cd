import Foundation
import Governance
import ModelFiles

/// A `steward` subcommand: a declaration (options, help) and a body. Commands hold no logic of
/// their own beyond argument handling and printing; the modules do the work.
public protocol Command: Sendable {
    var spec: CommandSpec { get }
    func run(_ args: ParsedArguments, console: Console) throws -> Int32
}

public enum ExitCode {
    public static let ok: Int32 = 0
    public static let failure: Int32 = 1
    public static let usage: Int32 = 2
}

public enum StewardCLI {
    public static let version = "0.1.0"

    public static let commands: [Command] = [
        InspectCommand(),
        TokenizeCommand(),
        TemplateCommand(),
        RunCommand(),
        ChatCommand(),
        PerplexityCommand(),
        BenchCommand(),
        TokenizerBenchCommand(),
        EmbedBenchCommand(),
        ServeCommand(),
        PlanCommand(),
        ModelsCommand(),
        LicenseCommand(),
        BOMCommand(),
        AuditCommand(),
        UsageCommand(),
        BenchGovernanceCommand(),
        KeysCommand(),
        KillSwitchCommand(),
        DoctorCommand(),
        ComplianceCommand(),
        ModerateCommand(),
        ExtractCommand(),
        ClassifyCommand(),
        SummarizeCommand(),
        RagCommand(),
        MergeCommand(),
        QuantizeCommand(),
        ConvertCommand(),
        TuneCommand(),
        EvalCommand(),
    ]

    static var topHelp: String {
        var s = "steward \(version): run open-weight models on your own machines\n\nUsage: steward <command> [options]\n\nCommands:\n"
        for c in commands {
            s += "  " + c.spec.name.padding(toLength: 16, withPad: " ", startingAt: 0) + c.spec.summary + "\n"
        }
        s += "\nRun 'steward <command> --help' for a command's options.\n"
        return s
    }

    /// Runs the CLI with `args` (without the program name) and returns the exit code:
    /// 0 ok, 1 runtime error, 2 usage error.
    public static func run(_ args: [String], console: Console) -> Int32 {
        guard let first = args.first else {
            console.err(topHelp)
            return ExitCode.usage
        }
        if first == "--help" || first == "-h" || first == "help" {
            console.out(topHelp)
            return ExitCode.ok
        }
        if first == "--version" {
            console.out("steward \(version)\n")
            return ExitCode.ok
        }
        guard let cmd = commands.first(where: { $0.spec.name == first }) else {
            console.err("steward: unknown command '\(first)'\n\n" + topHelp)
            return ExitCode.usage
        }
        let rest = Array(args.dropFirst())
        do {
            let parsed = try cmd.spec.parse(rest)
            if parsed.flag("--help") {
                console.out(cmd.spec.helpText)
                return ExitCode.ok
            }
            // State changes the Governance module makes (models added, licence overrides…) go
            // to the audit log of the database this command uses.
            let db = parsed.value("--db")
            AdminAudit.setRecorder { action, keyID, target, details in
                do { try CLIAudit.record(action: action, keyID: keyID, target: target, details: details, db: db) } catch {
                    console.err("steward: could not record '\(action)' in the audit log: \(error)\n")
                }
            }
            return try cmd.run(parsed, console: console)
        } catch let e as UsageError {
            console.err("steward \(cmd.spec.name): \(e.message)\nUsage: \(cmd.spec.usage)\n")
            return ExitCode.usage
        } catch {
            console.err("steward \(cmd.spec.name): error: \(error)\n")
            return ExitCode.failure
        }
    }
}
