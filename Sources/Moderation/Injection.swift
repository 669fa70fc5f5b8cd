import Foundation

/// Prompt-injection heuristics: phrases that try to replace the system prompt or extract it,
/// jailbreak personas, chat-template control tokens pasted into user text, and instructions
/// hidden in base64. Each signal has a weight; the score is their sum (capped at 1) and a
/// policy flags or blocks at its threshold (default 0.5). One signal alone is enough only when
/// it is unambiguous ("ignore all previous instructions"); weak ones ("developer mode",
/// "[INST]") need company.
enum InjectionDetector {
    struct Signal: Sendable {
        let name: String
        let weight: Double
        let start: Int
        let end: Int
    }

    /// A word pattern: each element matches one word, optionally, or up to n filler words.
    enum Element {
        case one(Set<String>)
        case opt(Set<String>)
        case gap(Set<String>, Int)
    }

    struct Pattern {
        let name: String
        let weight: Double
        let elements: [Element]
    }

    static let qualifiers: Set<String> = ["all", "any", "the", "your", "my", "previous", "prior", "above", "earlier", "preceding",
                                          "former", "initial", "original", "system", "of", "these", "those", "that", "every",
                                          "existing", "current", "safety", "content", "ethical", "moral", "default", "hidden",
                                          "secret", "full", "entire", "whole", "contents", "developer", "openai", "built", "in"]
    static let instructionNouns: Set<String> = ["instructions", "instruction", "prompt", "prompts", "rules", "directions", "directives",
                                                "guidelines", "guidance", "restrictions", "commands", "programming", "policy",
                                                "policies", "constraints", "filters", "limitations", "safeguards", "training"]

    static let patterns: [Pattern] = [
        Pattern(name: "override-instructions", weight: 0.8, elements: [
            .one(["ignore", "ignores", "ignoring", "disregard", "forget", "override", "bypass", "overrule", "abandon", "discard", "neglect"]),
            .gap(qualifiers, 4), .one(instructionNouns)]),
        Pattern(name: "reveal-prompt", weight: 0.8, elements: [
            .one(["reveal", "print", "show", "repeat", "output", "display", "leak", "dump", "disclose", "expose", "tell", "give", "write"]),
            .opt(["me", "us"]), .gap(qualifiers, 4),
            .one(["system", "initial", "original", "hidden", "secret"]), .one(["prompt", "prompts", "instructions", "message"])]),
        Pattern(name: "reveal-context", weight: 0.6, elements: [
            .one(["reveal", "print", "show", "output", "display", "leak", "dump", "disclose"]),
            .gap(qualifiers, 4), .one(["context"]), .opt(["window"])]),
        Pattern(name: "your-instructions", weight: 0.5, elements: [
            .one(["your"]), .one(["initial", "original", "system", "hidden", "secret", "first"]),
            .one(["instructions", "prompt", "directives", "rules"])]),
        Pattern(name: "repeat-above", weight: 0.6, elements: [
            .one(["repeat", "print", "output", "copy"]), .gap(["the", "all", "everything", "text", "words", "content", "of"], 3),
            .one(["above", "before"])]),
        Pattern(name: "verbatim", weight: 0.2, elements: [.one(["verbatim"])]),
        Pattern(name: "word-for-word", weight: 0.2, elements: [.one(["word"]), .one(["for"]), .one(["word"])]),
        Pattern(name: "rules-void", weight: 0.6, elements: [
            .one(["previous", "prior", "above", "old", "earlier", "original"]), .one(["rules", "instructions", "guidelines"]),
            .gap(["no", "longer", "do", "don't", "not", "are", "now"], 3), .one(["apply", "void", "invalid", "cancelled", "matter"])]),
        Pattern(name: "new-instructions", weight: 0.4, elements: [
            .one(["your", "the", "these"]), .one(["new"]), .one(["instructions", "rules", "directives", "orders"])]),
        Pattern(name: "forget-everything", weight: 0.4, elements: [
            .one(["forget"]), .one(["everything", "all"]), .opt(["you"]), .opt(["were", "have", "know", "learned"])]),
        Pattern(name: "dan", weight: 0.8, elements: [.one(["you"]), .one(["are"]), .opt(["now"]), .one(["dan"])]),
        Pattern(name: "do-anything-now", weight: 0.8, elements: [.one(["do"]), .one(["anything"]), .one(["now"])]),
        Pattern(name: "developer-mode-on", weight: 0.6, elements: [
            .one(["enable", "enabled", "activate", "activated", "entering", "enter", "in"]), .opt(["the"]), .one(["developer", "god", "jailbreak", "dan"]), .one(["mode"])]),
        Pattern(name: "developer-mode", weight: 0.3, elements: [.one(["developer", "god"]), .one(["mode"])]),
        Pattern(name: "no-restrictions", weight: 0.35, elements: [
            .one(["no", "without", "zero", "free"]), .gap(["any", "of", "all", "your", "ethical", "moral", "content", "safety", "the"], 2),
            .one(["restrictions", "filters", "rules", "limits", "limitations", "guidelines", "censorship", "boundaries", "constraints"])]),
        Pattern(name: "unrestricted", weight: 0.35, elements: [.one(["unrestricted", "unfiltered", "uncensored", "jailbroken", "jailbreak", "unaligned"])]),
        Pattern(name: "persona", weight: 0.15, elements: [
            .one(["pretend", "roleplay", "imagine", "act", "respond", "behave", "answer"]), .gap(["that", "you", "are", "as", "to", "be", "like"], 3),
            .opt(["an", "a"]), .opt(["evil", "unrestricted", "unfiltered", "rogue"]), .one(["ai", "assistant", "model", "chatbot", "bot", "llm"])]),
        Pattern(name: "evil-ai", weight: 0.3, elements: [.one(["evil", "rogue", "malicious"]), .one(["ai", "assistant", "model", "chatbot"])]),
        Pattern(name: "system-override", weight: 0.4, elements: [.one(["system", "admin", "root"]), .one(["override", "mode"])]),
        Pattern(name: "hidden-note", weight: 0.2, elements: [.one(["ai", "note"]), .one(["assistant", "to"]), .opt(["ai", "assistant"])]),
        Pattern(name: "decode-follow", weight: 0.2, elements: [.one(["decode"]), .opt(["and"]), .one(["follow", "execute", "obey", "run"])]),
    ]

    /// Control tokens of common chat templates; in user text they try to open a turn of
    /// their own. The system-role forms weigh more.
    static let templateTokens: [String] = ["<|im_start|>", "<|im_end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|start_header_id|>",
                                           "<|end_header_id|>", "<|eot_id|>", "<|begin_of_text|>", "<|endoftext|>", "<start_of_turn>",
                                           "<end_of_turn>", "[INST]", "[/INST]", "<<SYS>>", "### Instruction:", "### System:"]
    static let systemRoleTokens: [String] = ["<|im_start|>system", "<<SYS>>", "<start_of_turn>system", "<|start_header_id|>system",
                                             "<|system|>", "### System:"]

    struct Word { let id: Int; let start: Int; let end: Int }

    /// Every word the patterns use gets a number; matching compares numbers, not strings
    /// (a 1.5 KB text has ~250 words × 22 patterns).
    static let vocabulary: [String: Int] = {
        var v: [String: Int] = [:]
        for p in patterns {
            for e in p.elements {
                let set: Set<String>
                switch e { case let .one(s), let .opt(s), let .gap(s, _): set = s }
                for w in set where v[w] == nil { v[w] = v.count }
            }
        }
        return v
    }()

    /// A pattern element as membership tables over the vocabulary.
    enum CompiledElement {
        case one([Bool])
        case opt([Bool])
        case gap([Bool], Int)
    }

    static let compiled: [(pattern: Pattern, elements: [CompiledElement])] = patterns.map { p in
        func table(_ s: Set<String>) -> [Bool] {
            var t = [Bool](repeating: false, count: vocabulary.count)
            for w in s { if let i = vocabulary[w] { t[i] = true } }
            return t
        }
        return (p, p.elements.map { e -> CompiledElement in
            switch e {
            case let .one(s): return .one(table(s))
            case let .opt(s): return .opt(table(s))
            case let .gap(s, n): return .gap(table(s), n)
            }
        })
    }

    /// Words (letters, digits, inner apostrophes), lower-cased, as vocabulary ids (-1: a word
    /// no pattern uses).
    static func words(_ t: ScanText) -> [Word] {
        var out: [Word] = []
        out.reserveCapacity(t.count / 5)
        var i = 0
        let b = t.lower
        while i < b.count {
            guard isAlnum(b[i]) else { i += 1; continue }
            let s = i
            while i < b.count && (isAlnum(b[i]) || (b[i] == 39 && isAlpha(t.at(i + 1)))) { i += 1 }
            // Pattern words are short: longer words cannot match (and need no lookup).
            let id = i - s <= 15 ? (vocabulary[String(decoding: b[s..<i], as: UTF8.self)] ?? -1) : -1
            out.append(Word(id: id, start: s, end: i))
        }
        return out
    }

    @inline(__always) static func member(_ table: [Bool], _ w: [Word], _ k: Int) -> Bool {
        k < w.count && w[k].id >= 0 && table[w[k].id]
    }

    /// The index after the match of `elements[e...]` starting at word `k`, or nil.
    static func match(_ elements: [CompiledElement], _ e: Int, _ w: [Word], _ k: Int) -> Int? {
        if e == elements.count { return k }
        switch elements[e] {
        case let .one(t):
            return member(t, w, k) ? match(elements, e + 1, w, k + 1) : nil
        case let .opt(t):
            if member(t, w, k), let r = match(elements, e + 1, w, k + 1) { return r }
            return match(elements, e + 1, w, k)
        case let .gap(t, n):
            var k2 = k
            var used = 0
            while true {
                if let r = match(elements, e + 1, w, k2) { return r }
                guard used < n, member(t, w, k2) else { return nil }
                k2 += 1; used += 1
            }
        }
    }

    /// All signals found in `t`; `depth` limits base64 decoding to one level.
    static func signals(_ t: ScanText, depth: Int = 0) -> [Signal] {
        var found: [String: Signal] = [:]
        func add(_ s: Signal) { if found[s.name] == nil { found[s.name] = s } }
        let w = words(t)
        for i in w.indices where w[i].id >= 0 {
            for (p, elements) in compiled where found[p.name] == nil {
                // Every pattern starts with a required word: check it before recursing.
                if case let .one(first) = elements[0], !first[w[i].id] { continue }
                if let end = match(elements, 0, w, i) {
                    add(Signal(name: p.name, weight: p.weight, start: w[i].start, end: w[max(i, end - 1)].end))
                }
            }
        }
        // Template tokens all contain '<', '[' or '#': most texts have none of these.
        let hasMarkers = t.bytes.contains { $0 == 60 || $0 == 91 || $0 == 35 }
        for tok in templateTokens where hasMarkers {
            if let s = t.occurrences(of: bytesOf(tok)).first {
                add(Signal(name: "template-token", weight: 0.4, start: s, end: s + tok.utf8.count))
                break
            }
        }
        for tok in systemRoleTokens where hasMarkers {
            if let s = t.occurrences(of: bytesOf(tok)).first {
                add(Signal(name: "template-system-role", weight: 0.3, start: s, end: s + tok.utf8.count))
                break
            }
        }
        if depth == 0 {
            for blob in base64Blobs(t) {
                guard let decoded = Data(base64Encoded: String(decoding: t.bytes[blob], as: UTF8.self)),
                      decoded.count >= 24, decoded.allSatisfy({ ($0 >= 32 && $0 < 127) || $0 == 10 }) else { continue }
                let inner = signals(ScanText(String(decoding: decoded, as: UTF8.self)), depth: 1)
                let innerScore = min(1, inner.reduce(0) { $0 + $1.weight })
                add(Signal(name: innerScore >= 0.5 ? "base64-instructions" : "base64-text", weight: innerScore >= 0.5 ? 0.8 : 0.1,
                           start: blob.lowerBound, end: blob.upperBound))
            }
        }
        // A persona plus "no restrictions" is the classic jailbreak set-up.
        if found["persona"] != nil && (found["no-restrictions"] != nil || found["unrestricted"] != nil) {
            let p = found["persona"]!
            add(Signal(name: "persona-without-rules", weight: 0.3, start: p.start, end: p.end))
        }
        return found.values.sorted { $0.start < $1.start }
    }

    /// Runs of 40+ base64 characters (with both cases and a digit), padding included.
    static func base64Blobs(_ t: ScanText) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        let b = t.bytes
        while i < b.count {
            guard isAlnum(b[i]) || b[i] == 43 || b[i] == 47 else { i += 1; continue }
            let s = i
            while i < b.count && (isAlnum(b[i]) || b[i] == 43 || b[i] == 47) { i += 1 }
            while i < b.count && b[i] == 61 && i - s < 100_000 { i += 1 }
            let r = s..<i
            if r.count >= 40, b[r].contains(where: isUpper), b[r].contains(where: isLower) { out.append(r) }
        }
        return out
    }

    /// One finding for the text (span: the strongest signal), scored by the sum of weights.
    static func detect(_ t: ScanText) -> (score: Double, signals: [Signal]) {
        let s = signals(t)
        return (min(1, s.reduce(0) { $0 + $1.weight }), s)
    }
}
