import Foundation
import Tokenization

/// The grammar run as a pushdown automaton over bytes, in the manner of llama.cpp's
/// llama_grammar (a set of stacks of grammar positions, advanced one code point at a time),
/// with every stack and every set of stacks interned so a state is a small integer and each
/// (state, byte) transition is computed once and then looked up in a table. UTF-8 is decoded
/// inside the automaton: a state may sit in the middle of a multi-byte character, which is how
/// tokens that end (or start) part-way through a character are handled.
final class GrammarAutomaton {
    let grammar: Grammar
    private let elements: [Grammar.Element]

    // Stacks: node = (position of the next element, parent node); -1 is the empty stack.
    private var nodePos: [Int32] = []
    private var nodeParent: [Int32] = []
    private var nodeIDs: [UInt64: Int32] = [:]

    // Sets of stacks (sorted node ids, -1 meaning "complete").
    private var sets: [[Int32]] = []
    private var setIDs: [[Int32]: Int32] = [:]
    private var setAccepting: [Bool] = []
    private var cpTransitions: [UInt64: Int32] = [:]

    // States: a stack set plus a partly read UTF-8 character.
    private struct StateKey: Hashable { var set: Int32; var cp: UInt32; var remaining: UInt8 }
    private var stateKeys: [StateKey] = []
    private var stateIDs: [StateKey: Int32] = [:]
    /// 256 entries per state: -2 not computed yet, -1 dead, else the next state.
    private var table: [Int32] = []
    private(set) var initialState: Int32 = 0

    /// Allowed-token bit sets per state, reused whenever generation returns to a state
    /// (inside a JSON string, after a comma …). Bounded; cleared when full.
    var maskCache: [Int32: [UInt64]] = [:]
    static let maskCacheLimit = 512

    init(_ grammar: Grammar) {
        self.grammar = grammar
        self.elements = grammar.elements
        var start: [Int32] = []
        var visited = Set<UInt64>()
        for alt in grammar.ruleAlternatives[Int(grammar.rootRule)] {
            resolve(alt, -1, &start, &visited)
        }
        initialState = state(set: internSet(start), cp: 0, remaining: 0)
    }

    private func node(_ pos: Int32, _ parent: Int32) -> Int32 {
        let key = UInt64(UInt32(bitPattern: pos)) << 32 | UInt64(UInt32(bitPattern: parent))
        if let id = nodeIDs[key] { return id }
        let id = Int32(nodePos.count)
        nodePos.append(pos); nodeParent.append(parent); nodeIDs[key] = id
        return id
    }

    /// Expands "continue at `pos` with `parent` below" into stacks whose top is a character
    /// element (or -1: the grammar is complete). `visited` cuts cycles through empty matches.
    private func resolve(_ pos: Int32, _ parent: Int32, _ out: inout [Int32], _ visited: inout Set<UInt64>) {
        let key = UInt64(UInt32(bitPattern: pos)) << 32 | UInt64(UInt32(bitPattern: parent))
        guard visited.insert(key).inserted else { return }
        let e = elements[Int(pos)]
        switch e.kind {
        case .char:
            out.append(node(pos, parent))
        case .end:
            if parent < 0 { out.append(-1) } else { resolve(nodePos[Int(parent)], nodeParent[Int(parent)], &out, &visited) }
        case .ref:
            // A reference in last position returns straight to the parent (a tail call), so
            // repetition rules keep the stack bounded.
            let cont = elements[Int(pos) + 1].kind == .end ? parent : node(pos + 1, parent)
            for alt in grammar.ruleAlternatives[Int(e.value)] { resolve(alt, cont, &out, &visited) }
        }
    }

    private func internSet(_ stacks: [Int32]) -> Int32 {
        let s = Array(Set(stacks)).sorted()
        if let id = setIDs[s] { return id }
        let id = Int32(sets.count)
        sets.append(s); setIDs[s] = id; setAccepting.append(s.first == -1)
        return id
    }

    private func state(set: Int32, cp: UInt32, remaining: UInt8) -> Int32 {
        let k = StateKey(set: set, cp: cp, remaining: remaining)
        if let id = stateIDs[k] { return id }
        let id = Int32(stateKeys.count)
        stateKeys.append(k); stateIDs[k] = id
        table.append(contentsOf: repeatElement(-2, count: 256))
        return id
    }

    /// The stack set after reading code point `c`, or -1 when no stack accepts it.
    private func advance(_ set: Int32, _ c: UInt32) -> Int32 {
        let key = UInt64(UInt32(bitPattern: set)) << 32 | UInt64(c)
        if let r = cpTransitions[key] { return r }
        var out: [Int32] = []
        var visited = Set<UInt64>()
        for s in sets[Int(set)] where s >= 0 {
            let pos = nodePos[Int(s)]
            if grammar.classes[Int(elements[Int(pos)].value)].contains(c) {
                resolve(pos + 1, nodeParent[Int(s)], &out, &visited)
            }
        }
        let r = out.isEmpty ? -1 : internSet(out)
        cpTransitions[key] = r
        return r
    }

    /// Whether any stack of `set` can take some code point in lo...hi.
    private func canTake(_ set: Int32, _ lo: UInt32, _ hi: UInt32) -> Bool {
        for s in sets[Int(set)] where s >= 0 {
            if grammar.classes[Int(elements[Int(nodePos[Int(s)])].value)].intersects(lo, hi) { return true }
        }
        return false
    }

    func isAccepting(_ state: Int32) -> Bool {
        let k = stateKeys[Int(state)]
        return k.remaining == 0 && setAccepting[Int(k.set)]
    }

    /// The state after byte `b`, or -1 (dead).
    @inline(__always)
    func step(_ state: Int32, _ b: UInt8) -> Int32 {
        let i = Int(state) &* 256 &+ Int(b)
        let t = table[i]
        if t != -2 { return t }
        let r = computeStep(state, b)
        table[i] = r
        return r
    }

    private func computeStep(_ state: Int32, _ b: UInt8) -> Int32 {
        let k = stateKeys[Int(state)]
        var cp: UInt32
        var left: UInt8
        if k.remaining == 0 {
            switch b {
            case 0..<0x80:
                let s = advance(k.set, UInt32(b))
                return s < 0 ? -1 : self.state(set: s, cp: 0, remaining: 0)
            case 0xC2...0xDF: cp = UInt32(b & 0x1F); left = 1
            case 0xE0...0xEF: cp = UInt32(b & 0x0F); left = 2
            case 0xF0...0xF4: cp = UInt32(b & 0x07); left = 3
            default: return -1
            }
        } else {
            guard b & 0xC0 == 0x80 else { return -1 }
            cp = k.cp << 6 | UInt32(b & 0x3F)
            left = k.remaining - 1
        }
        if left == 0 {
            let s = advance(k.set, cp)
            return s < 0 ? -1 : self.state(set: s, cp: 0, remaining: 0)
        }
        let shift = UInt32(6 * Int(left))
        let lo = cp << shift
        let hi = lo | ((1 << shift) - 1)
        guard canTake(k.set, lo, min(hi, 0x10FFFF)) else { return -1 }
        return self.state(set: k.set, cp: cp, remaining: left)
    }

    func step(_ state: Int32, bytes: some Sequence<UInt8>) -> Int32 {
        var s = state
        for b in bytes {
            s = step(s, b)
            if s < 0 { return -1 }
        }
        return s
    }

    /// Bit set of the vocabulary tokens whose bytes the grammar accepts from `state`, found by
    /// walking the tokenizer's byte trie and skipping every subtree whose prefix is dead.
    func allowed(_ state: Int32, _ vocab: GrammarVocabulary) -> [UInt64] {
        if let m = maskCache[state] { return m }
        var bits = [UInt64](repeating: 0, count: (vocab.vocabSize + 63) / 64)
        var states = [Int32](repeating: 0, count: vocab.maxDepth + 1)
        states[0] = state
        let n = vocab.nodeByte.count
        vocab.nodeByte.withUnsafeBufferPointer { byte in
        vocab.nodeDepth.withUnsafeBufferPointer { depth in
        vocab.nodeEnd.withUnsafeBufferPointer { end in
        vocab.nodeTokens.withUnsafeBufferPointer { tokStart in
        vocab.tokens.withUnsafeBufferPointer { toks in
            var i = 1
            while i < n {
                let d = Int(depth[i])
                let s = step(states[d - 1], byte[i])
                if s < 0 { i = Int(end[i]); continue }
                states[d] = s
                var t = Int(tokStart[i])
                let tEnd = Int(tokStart[i + 1])
                while t < tEnd {
                    let id = Int(toks[t])
                    bits[id >> 6] |= 1 << UInt64(id & 63)
                    t += 1
                }
                i += 1
            }
        }}}}}
        if maskCache.count >= Self.maskCacheLimit { maskCache.removeAll(keepingCapacity: true) }
        maskCache[state] = bits
        return bits
    }

    var stateCount: Int { stateKeys.count }
}

/// A tokenizer's vocabulary as a byte trie for grammar masking: each generatable token's
/// decoded bytes, laid out in depth-first order so a walk is a forward scan that can jump over
/// a whole subtree. Built once per tokenizer and shared.
public final class GrammarVocabulary: @unchecked Sendable {
    public let vocabSize: Int
    /// Decoded bytes of each token (empty for tokens a grammar never produces: control,
    /// unknown, unused and end-of-generation tokens).
    public let tokenBytes: [[UInt8]]
    public let eogTokens: [Int32]
    let nodeByte: [UInt8]
    let nodeDepth: [UInt16]
    /// Index just past the node's subtree.
    let nodeEnd: [Int32]
    /// CSR offsets into `tokens` (count + 1 entries): tokens whose bytes end at each node.
    let nodeTokens: [Int32]
    let tokens: [Int32]
    let maxDepth: Int

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [ObjectIdentifier: (Tokenizer, GrammarVocabulary)] = [:]

    /// The shared trie for `tokenizer` (built on first use; ~49k tokens take a few tens of ms).
    public static func shared(for tokenizer: Tokenizer) -> GrammarVocabulary {
        lock.lock()
        defer { lock.unlock() }
        if let v = cache[ObjectIdentifier(tokenizer)] { return v.1 }
        let v = GrammarVocabulary(tokenizer)
        cache[ObjectIdentifier(tokenizer)] = (tokenizer, v)
        return v
    }

    init(_ tokenizer: Tokenizer) {
        vocabSize = tokenizer.vocabSize
        eogTokens = (0..<Int32(tokenizer.vocabSize)).filter { tokenizer.isEOG($0) }
        var bytes: [[UInt8]] = []
        bytes.reserveCapacity(vocabSize)
        for id in 0..<Int32(vocabSize) {
            let type = tokenizer.tokenType(id)
            let usable = (type == .normal || type == .byte || type == .userDefined) && !tokenizer.isEOG(id)
            bytes.append(usable ? tokenizer.tokenBytes(id) : [])
        }
        tokenBytes = bytes
        // Sort token ids by their bytes; then a trie in depth-first order falls out of one pass
        // over the sorted list (each token adds the nodes past its common prefix with the
        // previous one).
        let order = (0..<vocabSize).filter { !bytes[$0].isEmpty }.sorted { bytes[$0].lexicographicallyPrecedes(bytes[$1]) }
        var nb: [UInt8] = [0], nd: [UInt16] = [0], ends: [Int32] = [0]
        var tokenAt: [[Int32]] = [[]]
        var path: [Int] = [0]     // node index at each depth along the current branch
        var prev: [UInt8] = []
        var deepest = 0
        for id in order {
            let b = bytes[id]
            var common = 0
            while common < min(b.count, prev.count) && b[common] == prev[common] { common += 1 }
            path.removeSubrange((common + 1)...)
            for d in common..<b.count {
                nb.append(b[d]); nd.append(UInt16(min(d + 1, Int(UInt16.max)))); ends.append(0); tokenAt.append([])
                path.append(nb.count - 1)
            }
            tokenAt[path[b.count]].append(Int32(id))
            deepest = max(deepest, b.count)
            prev = b
        }
        // Subtree ends: the next node at the same or a shallower depth.
        var open: [Int] = []
        for i in 0..<nb.count {
            while let top = open.last, nd[top] >= nd[i] { ends[top] = Int32(i); open.removeLast() }
            open.append(i)
        }
        for i in open { ends[i] = Int32(nb.count) }
        var offsets: [Int32] = [0]
        var flat: [Int32] = []
        for t in tokenAt { flat += t; offsets.append(Int32(flat.count)) }
        nodeByte = nb; nodeDepth = nd; nodeEnd = ends; nodeTokens = offsets; tokens = flat; maxDepth = deepest
    }

    public var nodeCount: Int { nodeByte.count }
}

/// One sequence's position in a grammar: which text may come next, which tokens are allowed,
/// and whether the text so far is a complete sentence of the grammar.
public final class GrammarMatcher {
    public let grammar: Grammar
    private let automaton: GrammarAutomaton
    private let vocabulary: GrammarVocabulary?
    private var current: Int32

    /// A matcher for text only (no token masks).
    public init(grammar: Grammar) {
        self.grammar = grammar
        automaton = GrammarAutomaton(grammar)
        vocabulary = nil
        current = automaton.initialState
    }

    /// A matcher that can also mask `tokenizer`'s vocabulary.
    public init(grammar: Grammar, tokenizer: Tokenizer) {
        self.grammar = grammar
        automaton = GrammarAutomaton(grammar)
        vocabulary = GrammarVocabulary.shared(for: tokenizer)
        current = automaton.initialState
    }

    /// True when the text so far is a whole sentence of the grammar (generation may stop).
    public var isComplete: Bool { automaton.isAccepting(current) }

    /// Whether `bytes` can follow the text so far (possibly ending part-way through a
    /// character). Does not advance.
    public func canAccept(_ bytes: [UInt8]) -> Bool { automaton.step(current, bytes: bytes) >= 0 }
    public func canAccept(_ text: String) -> Bool { canAccept(Array(text.utf8)) }

    /// Advances over `bytes`; returns false (and stays put) when the grammar refuses them.
    @discardableResult
    public func accept(_ bytes: [UInt8]) -> Bool {
        let s = automaton.step(current, bytes: bytes)
        guard s >= 0 else { return false }
        current = s
        return true
    }
    @discardableResult
    public func accept(_ text: String) -> Bool { accept(Array(text.utf8)) }

    /// Advances over a token's bytes (a token the grammar never produces is refused).
    @discardableResult
    public func accept(token: Int32) -> Bool {
        guard let v = vocabulary, token >= 0, Int(token) < v.vocabSize, !v.tokenBytes[Int(token)].isEmpty else { return false }
        return accept(v.tokenBytes[Int(token)])
    }

    /// Tokens allowed next, as a bit set over the vocabulary (bit `id % 64` of word `id / 64`).
    /// End-of-generation tokens are set when the grammar is complete. Empty without a tokenizer.
    public func allowedTokens() -> [UInt64] {
        guard let v = vocabulary else { return [] }
        var bits = automaton.allowed(current, v)
        if isComplete { for e in v.eogTokens { bits[Int(e) >> 6] |= 1 << UInt64(e & 63) } }
        return bits
    }

    /// Sets the logits of tokens the grammar does not allow to -infinity; end-of-generation
    /// tokens keep their value only when `allowEndOfGeneration` and the grammar is complete.
    /// Returns how many tokens remain allowed.
    @discardableResult
    public func mask(_ logits: UnsafeMutableBufferPointer<Float>, allowEndOfGeneration: Bool = true) -> Int {
        guard let v = vocabulary else { return logits.count }
        let keepEOG = allowEndOfGeneration && isComplete
        let saved = keepEOG ? v.eogTokens.filter { Int($0) < logits.count }.map { ($0, logits[Int($0)]) } : []
        let bits = automaton.allowed(current, v)
        var allowed = 0
        let n = min(logits.count, v.vocabSize)
        bits.withUnsafeBufferPointer { w in
            for i in 0..<n {
                if w[i >> 6] & (1 << UInt64(i & 63)) != 0 { allowed += 1 } else { logits[i] = -.infinity }
            }
        }
        for i in n..<logits.count { logits[i] = -.infinity }
        for (e, value) in saved { logits[Int(e)] = value; allowed += 1 }
        return allowed
    }

    /// States the automaton has built so far (for tests and diagnostics).
    public var stateCount: Int { automaton.stateCount }
}
