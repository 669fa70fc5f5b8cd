import Foundation

/// Credentials: cloud and API keys by their documented prefixes and lengths, private-key PEM
/// blocks, bearer tokens and JWTs. Placeholders ("XXXX…", "<token>", "$TOKEN",
/// "your-key-here") are not secrets: tokens must look random (several distinct characters,
/// digits and letters).
enum SecretDetectors {
    @inline(__always) static func tokenByte(_ c: UInt8) -> Bool { isAlnum(c) || c == 95 || c == 45 }

    /// `prefix` at a word boundary followed by exactly `length` bytes of `body` and then a
    /// boundary (so a longer token is not cut to size).
    static func prefixed(_ t: ScanText, _ prefix: String, length: ClosedRange<Int>, body: (UInt8) -> Bool,
                         boundary: (UInt8) -> Bool = tokenByte) -> [Range<Int>] {
        let p = bytesOf(prefix)
        var out: [Range<Int>] = []
        for s in t.occurrences(of: p) where !boundary(t.at(s - 1)) {
            var e = s + p.count
            while e < t.count && body(t[e]) { e += 1 }
            let n = e - s - p.count
            guard length.contains(n), !boundary(t.at(e)) else { continue }
            out.append(s..<e)
        }
        return out
    }

    static func looksRandom(_ b: ArraySlice<UInt8>, minDistinct: Int) -> Bool {
        distinctCount(b) >= minDistinct
    }

    // MARK: AWS

    /// Access key ids: AKIA (long-term), ASIA (temporary), ABIA, ACCA + 16 of [A-Z0-9] with at
    /// least one digit (AWS ids are base32; "ASIAN…" words are not).
    static func awsAccessKey(_ t: ScanText) -> [RawMatch] {
        var out: [RawMatch] = []
        for prefix in ["AKIA", "ASIA", "ABIA", "ACCA"] {
            for r in prefixed(t, prefix, length: 16...16, body: { isUpper($0) || isDigit($0) }, boundary: isAlnum) {
                let body = t.bytes[(r.lowerBound + 4)..<r.upperBound]
                guard body.contains(where: isDigit), looksRandom(body, minDistinct: 4) else { continue }
                out.append(RawMatch(start: r.lowerBound, end: r.upperBound))
            }
        }
        return out.sorted { $0.start < $1.start }
    }

    static let awsSecretContext: [[UInt8]] = ["aws_secret", "secret_access_key", "secretaccesskey", "aws secret", "secret access key", "aws_secret_key"].map(bytesOf)

    /// 40 characters of base64 alphabet right after an AWS secret-key name (within 60 bytes):
    /// without that context a 40-character string is as likely a hash. Must mix upper case,
    /// lower case and digits (git SHA-1s are lower-case hex; placeholders are one letter).
    static func awsSecretKey(_ t: ScanText) -> [RawMatch] {
        let b = t.bytes
        var out: [RawMatch] = []
        @inline(__always) func body(_ c: UInt8) -> Bool { isAlnum(c) || c == 47 || c == 43 }
        var i = 0
        while i < b.count {
            guard body(b[i]), !(body(t.at(i - 1)) || t.at(i - 1) == 95 || t.at(i - 1) == 45) else { i += 1; continue }
            var j = i
            while j < b.count && body(b[j]) { j += 1 }
            defer { i = j + 1 }
            guard j - i == 40, !(t.at(j) == 95 || t.at(j) == 45 || t.at(j) == 61 && t.at(j + 1) == 61) else { continue }
            let s = b[i..<j]
            guard s.contains(where: isUpper), s.contains(where: isLower), s.contains(where: isDigit),
                  looksRandom(s, minDistinct: 12), t.contextBefore(i, window: 60, awsSecretContext) else { continue }
            out.append(RawMatch(start: i, end: j))
        }
        return out
    }

    // MARK: GitHub, Slack, Google, OpenAI-style

    /// ghp_/gho_/ghu_/ghs_/ghr_ + 36 alphanumerics; github_pat_ + 22 + '_' + 59.
    static func githubToken(_ t: ScanText) -> [RawMatch] {
        var out: [RawMatch] = []
        for p in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] {
            for r in prefixed(t, p, length: 36...36, body: isAlnum) where looksRandom(t.bytes[(r.lowerBound + 4)..<r.upperBound], minDistinct: 8) {
                out.append(RawMatch(start: r.lowerBound, end: r.upperBound))
            }
        }
        for r in prefixed(t, "github_pat_", length: 82...82, body: { isAlnum($0) || $0 == 95 }) {
            let body = t.bytes[(r.lowerBound + 11)..<r.upperBound]
            guard body[body.startIndex + 22] == 95, !body.prefix(22).contains(95), !body.suffix(59).contains(95),
                  looksRandom(body, minDistinct: 4) else { continue }
            out.append(RawMatch(start: r.lowerBound, end: r.upperBound))
        }
        return out.sorted { $0.start < $1.start }
    }

    /// xoxb-/xoxp-/xoxa-/xoxr-/xoxs-/xapp- tokens (dash-separated segments, one of them all
    /// digits, 20+ characters after the prefix) and incoming-webhook URLs
    /// (hooks.slack.com/services/T…/B…/secret).
    static func slackToken(_ t: ScanText) -> [RawMatch] {
        var out: [RawMatch] = []
        for p in ["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xapp-"] {
            for r in prefixed(t, p, length: 20...300, body: { isAlnum($0) || $0 == 45 }) {
                let body = t.bytes[(r.lowerBound + 5)..<r.upperBound]
                let segs = body.split(separator: 45)
                guard segs.count >= 2, segs.contains(where: { $0.allSatisfy(isDigit) }),
                      let last = segs.last, last.count >= 8, looksRandom(last, minDistinct: 6) else { continue }
                out.append(RawMatch(start: r.lowerBound, end: r.upperBound))
            }
        }
        let hook = bytesOf("hooks.slack.com/services/")
        for s in t.occurrences(of: hook) {
            var e = s + hook.count
            while e < t.count && (isAlnum(t[e]) || t[e] == 47) { e += 1 }
            let parts = t.bytes[(s + hook.count)..<e].split(separator: 47)
            guard parts.count == 3, parts[0].first == 84, parts[0].count >= 8, parts[1].first == 66, parts[1].count >= 8,
                  parts[2].count >= 20, looksRandom(parts[2], minDistinct: 8) else { continue }
            out.append(RawMatch(start: s, end: e))
        }
        return out.sorted { $0.start < $1.start }
    }

    /// AIza + 35 of [A-Za-z0-9_-] (Google API keys).
    static func googleAPIKey(_ t: ScanText) -> [RawMatch] {
        prefixed(t, "AIza", length: 35...35, body: tokenByte)
            .filter { looksRandom(t.bytes[($0.lowerBound + 4)..<$0.upperBound], minDistinct: 8) }
            .map { RawMatch(start: $0.lowerBound, end: $0.upperBound) }
    }

    /// sk- keys (OpenAI sk-/sk-proj-/sk-svcacct-/sk-admin-, Anthropic sk-ant-, DeepSeek and
    /// other OpenAI-compatible services): 20+ characters after the prefix that look random —
    /// at least 3 digits and 3 letters, 10+ distinct characters, and either mixed case or 32+
    /// lower-case hex (placeholders like sk-your-api-key-here and sk-XXXX… fail).
    static func openAIKey(_ t: ScanText) -> [RawMatch] {
        var out: [RawMatch] = []
        for r in prefixed(t, "sk-", length: 20...300, body: tokenByte) {
            var bodyStart = r.lowerBound + 3
            for sub in ["proj-", "svcacct-", "admin-", "ant-api03-", "ant-", "None-"] {
                let sb = bytesOf(sub)
                if t.bytes[bodyStart...].starts(with: sb) { bodyStart += sb.count; break }
            }
            let body = t.bytes[bodyStart..<r.upperBound]
            guard body.count >= 20 else { continue }
            let digits = body.filter(isDigit).count, letters = body.filter(isAlpha).count
            let mixedCase = body.contains(where: isUpper) && body.contains(where: isLower)
            let hexKey = body.count >= 32 && body.allSatisfy { isDigit($0) || ($0 >= 97 && $0 <= 102) }
            guard digits >= 3, letters >= 3, looksRandom(body, minDistinct: 10), mixedCase || hexKey else { continue }
            out.append(RawMatch(start: r.lowerBound, end: r.upperBound))
        }
        return out
    }

    // MARK: private keys

    /// A PEM "-----BEGIN … PRIVATE KEY[ BLOCK]-----" header through its END line (or to the
    /// end of the text when the END line is missing). Public keys and certificates are not
    /// secret.
    static func privateKey(_ t: ScanText) -> [RawMatch] {
        let begin = bytesOf("-----BEGIN ")
        let dashes = bytesOf("-----")
        var out: [RawMatch] = []
        for s in t.occurrences(of: begin) {
            if let last = out.last, s < last.end { continue }
            var e = s + begin.count
            while e < t.count && (isUpper(t[e]) || isDigit(t[e]) || t[e] == 32) { e += 1 }
            guard t.bytes[e...].starts(with: dashes) else { continue }
            let label = String(decoding: t.bytes[(s + begin.count)..<e], as: UTF8.self)
            guard label.hasSuffix("PRIVATE KEY") || label.hasSuffix("PRIVATE KEY BLOCK") else { continue }
            let endMarker = bytesOf("-----END " + label + "-----")
            var stop = t.count
            var k = e + dashes.count
            while k + endMarker.count <= t.count {
                if t[k] == 45 && t.bytes[k...].starts(with: endMarker) { stop = k + endMarker.count; break }
                k += 1
            }
            out.append(RawMatch(start: s, end: stop))
        }
        return out
    }

    // MARK: bearer tokens and JWTs

    @inline(__always) static func bearerByte(_ c: UInt8) -> Bool {
        isAlnum(c) || c == 45 || c == 46 || c == 95 || c == 126 || c == 43 || c == 47 || c == 61
    }

    /// The token after "Bearer " (16+ characters of the RFC 6750 token alphabet, with digits
    /// and letters; "<token>", "$TOKEN", "YOUR_ACCESS_TOKEN" are placeholders), and JWTs
    /// anywhere (eyJ… header . eyJ… payload . signature). Only the token is reported.
    static func bearerToken(_ t: ScanText) -> [RawMatch] {
        var out: [RawMatch] = []
        for s in t.occurrences(of: bytesOf("bearer"), caseInsensitive: true) where !isAlnum(t.at(s - 1)) {
            var i = s + 6
            guard isSpace(t.at(i)) else { continue }
            while i < t.count && t[i] == 32 { i += 1 }
            var e = i
            while e < t.count && bearerByte(t[e]) { e += 1 }
            guard e - i >= 16, !isAlnum(t.at(e)) else { continue }
            let tok = t.bytes[i..<e]
            guard tok.contains(where: isDigit), tok.contains(where: isAlpha), looksRandom(tok, minDistinct: 8) else { continue }
            out.append(RawMatch(start: i, end: e))
        }
        for s in t.occurrences(of: bytesOf("eyJ")) where !(bearerByte(t.at(s - 1)) && t.at(s - 1) != 61) {
            if out.contains(where: { $0.start <= s && s < $0.end }) { continue }
            var e = s
            var segs: [Int] = [0]
            while e < t.count && (tokenByte(t[e]) || t[e] == 46) {
                if t[e] == 46 { segs.append(0) } else { segs[segs.count - 1] += 1 }
                e += 1
            }
            guard segs.count == 3, segs[0] >= 10, segs[1] >= 10, segs[2] >= 16 else { continue }
            let payload = s + segs[0] + 1
            guard t.bytes[payload...].starts(with: bytesOf("eyJ")) else { continue }
            out.append(RawMatch(start: s, end: e))
        }
        return out.sorted { $0.start < $1.start }
    }
}
