import Foundation

/// A lazy grammar's trigger (llama.cpp calls these grammar triggers): generation runs free until
/// one of the trigger strings appears in the output; from that point on the grammar applies, and
/// the text from the trigger's first byte must be a prefix of a sentence of the grammar. Used for
/// tool calling with `tool_choice: auto`: the model may answer in prose, but once it writes
/// `<tool_call>` the rest must be a well-formed call whose arguments fit the schema.
///
/// This is not the same as an eager grammar `free-text | free-text "<tool_call>" call`: such a
/// grammar would have to describe the free text too (and forbid the marker inside it), and its
/// masks would weigh on every token of the prose.
public struct GrammarTrigger: Sendable {
    public let triggers: [String]
    private let patterns: [[UInt8]]
    private var output: [UInt8] = []
    private var scanned = 0

    public init(_ triggers: [String]) {
        self.triggers = triggers
        patterns = triggers.map { Array($0.utf8) }.filter { !$0.isEmpty }
    }

    /// Adds a token's bytes; when a trigger has now appeared (for the first time), returns the
    /// output bytes from the start of the earliest trigger on, which the grammar must accept.
    public mutating func feed(_ bytes: [UInt8]) -> [UInt8]? {
        output += bytes
        let longest = patterns.map(\.count).max() ?? 0
        // Only positions where a trigger could end in the new bytes need a look.
        let from = max(0, scanned - longest + 1)
        scanned = output.count
        var best: Int?
        for p in patterns where output.count >= p.count {
            var i = from
            while i + p.count <= output.count {
                if output[i] == p[0] && output[i..<i + p.count].elementsEqual(p) {
                    if best.map({ i < $0 }) ?? true { best = i }
                    break
                }
                i += 1
            }
        }
        guard let start = best else { return nil }
        return Array(output[start...])
    }
}
