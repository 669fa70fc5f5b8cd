import Foundation
import StewardCLI

// Console writes go straight to the file descriptors (no stdio buffering), so streamed text
// appears as it is produced.
let code = StewardCLI.run(Array(CommandLine.arguments.dropFirst()), console: .standard())
exit(code)
