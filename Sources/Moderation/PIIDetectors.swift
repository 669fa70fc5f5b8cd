import Foundation

/// The personal-data detectors. Each scans the UTF-8 bytes, then validates a candidate the way
/// the format defines it (checksums, number ranges) so that look-alikes (dates, versions,
/// order numbers) are not reported.
enum PIIDetectors {
    // MARK: e-mail

    /// local@domain.tld. Decisions (see the corpus): `user@localhost` (no dot), `git@host:path`
    /// (an SSH remote), `name@2x.png` (image asset names) and URL user-info (`https://x@host`)
    /// are not mailboxes; the top-level domain must be alphabetic and 2+ letters.
    static func email(_ t: ScanText) -> [RawMatch] {
        var out: [RawMatch] = []
        let b = t.bytes
        @inline(__always) func localByte(_ c: UInt8) -> Bool {
            isAlnum(c) || c == 46 || c == 95 || c == 37 || c == 43 || c == 45 // . _ % + -
        }
        for at in 0..<b.count where b[at] == 64 { // '@'
            var s = at
            while s > 0 && localByte(b[s - 1]) { s -= 1 }
            guard s < at, b[s] != 46, b[at - 1] != 46 else { continue }
            // A local part cannot follow more address characters (a non-ASCII name, a second '@').
            if s > 0, b[s - 1] >= 0x80 || b[s - 1] == 64 { continue }
            if s >= 3, b[s - 3] == 58, b[s - 2] == 47, b[s - 1] == 47 { continue } // "://" user-info
            var e = at + 1
            while e < b.count && (isAlnum(b[e]) || b[e] == 46 || b[e] == 45) { e += 1 }
            while e > at + 1 && (b[e - 1] == 46 || b[e - 1] == 45) { e -= 1 }
            guard e > at + 1 else { continue }
            if e < b.count, b[e] == 58, e + 1 < b.count, !isSpace(b[e + 1]) { continue } // user@host:path
            let labels = b[(at + 1)..<e].split(separator: 46, omittingEmptySubsequences: false)
            guard labels.count >= 2, labels.allSatisfy({ !$0.isEmpty && $0.first != 45 && $0.last != 45 }) else { continue }
            let tld = labels[labels.count - 1]
            guard tld.count >= 2, tld.allSatisfy(isAlpha) else { continue }
            let tldLower = String(decoding: tld.map { isUpper($0) ? $0 + 32 : $0 }, as: UTF8.self)
            if imageExtensions.contains(tldLower) { continue }
            // "a..b@" is not a valid local part.
            if b[s..<at].indices.contains(where: { $0 > s && b[$0] == 46 && b[$0 - 1] == 46 }) { continue }
            out.append(RawMatch(start: s, end: e))
        }
        return out
    }

    static let imageExtensions: Set<String> = ["png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff", "heic", "avif"]

    // MARK: digit runs shared by phone, card and SSN

    /// A run of digit groups joined by single separators (space, '-', '.', and for phones
    /// parentheses), with where each group starts and which separators were used.
    struct DigitRun {
        var start: Int
        var end: Int
        var groups: [Range<Int>] = []
        var separators: [UInt8] = []
        var plus = false
        var paren = false
        var digits: [UInt8] = []
    }

    /// Digit runs starting at word boundaries. `allowDot` lets '.' join groups (phones only).
    static func digitRuns(_ t: ScanText, allowDot: Bool, allowParen: Bool, allowPlus: Bool) -> [DigitRun] {
        let b = t.bytes
        var out: [DigitRun] = []
        var i = 0
        while i < b.count {
            let c = b[i]
            let startsPlus = allowPlus && c == 43 && isDigit(t.at(i + 1))
            let startsParen = allowParen && c == 40 && isDigit(t.at(i + 1))
            guard isDigit(c) || startsPlus || startsParen else { i += 1; continue }
            // Word boundary: not inside a word, a decimal number or a dashed code.
            let p = t.at(i - 1)
            if isAlnum(p) || p == 95 || p == 46 || p == 45 || p == 47 || p == 44 || (p == 43 && !startsPlus) {
                i += 1
                while i < b.count && isDigit(b[i]) { i += 1 }
                continue
            }
            var run = DigitRun(start: i, end: i)
            var j = i
            if startsPlus { run.plus = true; j += 1 }
            var openParen = false
            if startsParen { run.paren = true; openParen = true; j += 1 }
            while j < b.count {
                let gs = j
                while j < b.count && isDigit(b[j]) { j += 1 }
                if j == gs { break }
                run.groups.append(gs..<j)
                run.digits.append(contentsOf: b[gs..<j])
                run.end = j
                // A separator continues the run only when a digit (or "(digit") follows.
                var k = j
                var sep: UInt8 = 0
                if openParen && k < b.count && b[k] == 41 { // ')'
                    openParen = false
                    k += 1
                    sep = 41
                    if k < b.count && (b[k] == 32 || b[k] == 45) { k += 1 }
                } else if k < b.count && (b[k] == 32 || b[k] == 45 || (allowDot && b[k] == 46)) {
                    sep = b[k]
                    k += 1
                }
                if sep == 0 { break }
                if allowParen && !run.paren && k < b.count && b[k] == 40 && isDigit(t.at(k + 1)) && run.plus {
                    openParen = true; k += 1
                }
                guard k < b.count, isDigit(b[k]) else { break }
                run.separators.append(sep)
                j = k
            }
            if openParen { run.paren = false }
            // The run must end at a boundary: no letter or further decimal part after it.
            let n = t.at(run.end), n2 = t.at(run.end + 1)
            let endsCleanly = !(isAlpha(n) || n == 95 || ((n == 46 || n == 45 || n == 47 || n == 44) && isDigit(n2)))
            if !run.groups.isEmpty && endsCleanly { out.append(run) }
            i = max(run.end, i + 1)
        }
        return out
    }

    // MARK: phone numbers

    static let phoneContext: [[UInt8]] = ["phone", "tel", "call", "mobile", "cell", "fax", "whatsapp", "handy", "number", "contact", "sms", "text me"].map(bytesOf)
    static let notPhoneContext: [[UInt8]] = ["order", "invoice", "isbn", "tracking", "serial", "account", "ref", "id ", "#", "sku", "version", "build"].map(bytesOf)

    /// International numbers (+CC, 8–15 digits, E.164), North-American 3-3-4 with one kind of
    /// separator or a parenthesised area code, trunk-prefixed national numbers (0…, 10–12
    /// digits in groups) and bare 10-digit numbers only next to a word like "phone" or "call".
    /// Dates, versions, IP addresses, ZIP+4 and ISBNs do not have these shapes.
    static func phone(_ t: ScanText) -> [RawMatch] {
        var out: [RawMatch] = []
        for run in digitRuns(t, allowDot: true, allowParen: true, allowPlus: true) {
            if let m = phoneMatch(run, t) { out.append(m); continue }
            // "Room 12 415-555-0132": retry without leading groups joined by a space, but only
            // when the rest is joined by dashes or dots — a tail of a long space-separated digit
            // sequence (an account number, an IBAN's groups) is not a phone number.
            guard !run.plus, !run.paren else { continue }
            for g in 1..<max(1, run.groups.count) where run.separators[g - 1] == 32 && !run.separators[g...].contains(32) && g < run.groups.count - 1 {
                var sub = DigitRun(start: run.groups[g].lowerBound, end: run.end)
                sub.groups = Array(run.groups[g...])
                sub.separators = Array(run.separators[g...])
                sub.digits = sub.groups.flatMap { t.bytes[$0] }
                if let m = phoneMatch(sub, t) { out.append(m); break }
            }
        }
        return out
    }

    static func phoneMatch(_ run: DigitRun, _ t: ScanText) -> RawMatch? {
        let d = run.digits.count
        let lens = run.groups.map(\.count)
        let m = RawMatch(start: run.start, end: run.end)
        if run.plus {
            guard (8...15).contains(d), run.digits[0] != 48 else { return nil }
            // Groups of a real number are short; "+1 2024-03-15" style mixes are rare enough.
            return lens.allSatisfy({ $0 <= 5 }) || run.groups.count == 1 ? m : nil
        }
        if t.contextBefore(run.start, window: 24, notPhoneContext) && !t.contextBefore(run.start, window: 24, phoneContext) { return nil }
        let seps = Set(run.separators.filter { $0 != 41 })
        if run.paren {
            // (415) 555-0132
            guard lens.count == 3, lens[0] == 3, lens[1] == 3, lens[2] == 4, seps.count <= 1 else { return nil }
            return m
        }
        guard seps.count <= 1 else { return nil }
        // North American: [1-]NXX-NXX-XXXX, one separator kind.
        if lens == [3, 3, 4] || lens == [1, 3, 3, 4] && run.digits[0] == 49 {
            let area = lens.count == 4 ? run.groups[1] : run.groups[0]
            if t.bytes[area.lowerBound] >= 50 { return m }
        }
        // National with trunk prefix 0 (UK, FR, DE, …): 10–12 digits in groups of 2–5, spaces.
        if (10...12).contains(d), run.digits[0] == 48, run.digits[1] != 48, run.groups.count >= 2,
           lens.allSatisfy({ (2...5).contains($0) }), seps == [32] || seps == [45] {
            return m
        }
        // Bare digits: only as a phone when the text says so.
        if run.groups.count == 1, (d == 10 || (d == 11 && run.digits[0] == 49)),
           t.contextBefore(run.start, window: 24, phoneContext) {
            return m
        }
        return nil
    }

    // MARK: payment cards

    /// 13–19 digits, optionally in groups joined by one kind of separator (space or dash),
    /// passing the Luhn check and starting with a known issuer prefix for that length.
    static func card(_ t: ScanText) -> [RawMatch] {
        var out: [RawMatch] = []
        for run in digitRuns(t, allowDot: false, allowParen: false, allowPlus: false) {
            let d = run.digits
            guard (13...19).contains(d.count), Set(run.separators).count <= 1 else { continue }
            // Card groups are 3+ digits except possibly the last (4-6-5, 4-4-4-4, 4-4-4-4-3).
            if run.groups.dropLast().contains(where: { $0.count < 3 }) { continue }
            guard luhn(d), issuerKnown(d) else { continue }
            out.append(RawMatch(start: run.start, end: run.end))
        }
        return out
    }

    static func luhn(_ digits: [UInt8]) -> Bool {
        var sum = 0
        for (i, c) in digits.reversed().enumerated() {
            var v = Int(c) - 48
            if i % 2 == 1 { v *= 2; if v > 9 { v -= 9 } }
            sum += v
        }
        return sum % 10 == 0
    }

    /// Issuer identification number ranges and lengths of the major networks (ISO/IEC 7812
    /// registrations as the networks publish them).
    static func issuerKnown(_ d: [UInt8]) -> Bool {
        func prefix(_ n: Int) -> Int { d.prefix(n).reduce(0) { $0 * 10 + Int($1) - 48 } }
        let len = d.count
        let p1 = prefix(1), p2 = prefix(2), p3 = prefix(3), p4 = prefix(4), p6 = prefix(6)
        if p1 == 4 { return len == 13 || len == 16 || len == 19 }                     // Visa
        if (51...55).contains(p2) || (2221...2720).contains(p4) { return len == 16 }  // Mastercard
        if p2 == 34 || p2 == 37 { return len == 15 }                                   // Amex
        if p4 == 6011 || (644...649).contains(p3) || p2 == 65 || (622126...622925).contains(p6) {
            return (16...19).contains(len)                                             // Discover
        }
        if (300...305).contains(p3) || p2 == 36 || p2 == 38 || p2 == 39 { return (14...19).contains(len) } // Diners
        if (3528...3589).contains(p4) { return (16...19).contains(len) }               // JCB
        if p2 == 62 || p2 == 81 { return (16...19).contains(len) }                     // UnionPay
        if (2200...2204).contains(p4) { return (16...19).contains(len) }               // Mir
        if [5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763].contains(p4) { return (12...19).contains(len) } // Maestro
        return false
    }

    // MARK: IBAN

    /// IBAN lengths per country (SWIFT's IBAN registry).
    static let ibanLengths: [String: Int] = [
        "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
        "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
        "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
        "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
        "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
        "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
        "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
        "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
        "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
    ]

    /// Country code + 2 check digits + BBAN, compact or in groups of four, exactly the
    /// country's length, mod-97 = 1 (ISO 13616).
    static func iban(_ t: ScanText) -> [RawMatch] {
        let b = t.bytes
        var out: [RawMatch] = []
        var i = 0
        while i + 4 <= b.count {
            guard isAlpha(b[i]), isAlpha(b[i + 1]), isDigit(b[i + 2]), isDigit(b[i + 3]), !isAlnum(t.at(i - 1)) else { i += 1; continue }
            let cc = String(decoding: [b[i] & 0xDF, b[i + 1] & 0xDF], as: UTF8.self)
            guard let length = ibanLengths[cc] else { i += 1; continue }
            var chars: [UInt8] = []
            var groupLens: [Int] = []
            var cur = 0
            var j = i
            var spaced = false
            while j < b.count && chars.count < length {
                if isAlnum(b[j]) {
                    chars.append(isLower(b[j]) ? b[j] - 32 : b[j]); cur += 1; j += 1
                } else if b[j] == 32 && isAlnum(t.at(j + 1)) && cur > 0 {
                    groupLens.append(cur); cur = 0; spaced = true; j += 1
                } else { break }
            }
            groupLens.append(cur)
            defer { i += 1 }
            guard chars.count == length, !isAlnum(t.at(j)) else { continue }
            if spaced, groupLens.dropLast().contains(where: { $0 != 4 }) { continue }
            guard ibanChecksumValid(chars) else { continue }
            out.append(RawMatch(start: i, end: j))
            i = j - 1
        }
        return out
    }

    static func ibanChecksumValid(_ chars: [UInt8]) -> Bool {
        guard chars.count > 4 else { return false }
        let check = Int(chars[2] - 48) * 10 + Int(chars[3] - 48)
        guard (2...98).contains(check) else { return false }
        var rem = 0
        for c in chars[4...] + chars[..<4] {
            if isDigit(c) { rem = (rem * 10 + Int(c - 48)) % 97 }
            else if isUpper(c) { rem = (rem * 100 + Int(c - 55)) % 97 }
            else { return false }
        }
        return rem == 1
    }

    // MARK: US SSN

    static let ssnContext: [[UInt8]] = ["ssn", "social security", "social sec", "ss#", "ss #", "taxpayer"].map(bytesOf)

    /// AAA-GG-SSSS (dash form anywhere; space or no separator only after "SSN"/"social
    /// security"). Area 000, 666 and 900–999, group 00 and serial 0000 are never issued.
    static func ssn(_ t: ScanText) -> [RawMatch] {
        var out: [RawMatch] = []
        for run in digitRuns(t, allowDot: false, allowParen: false, allowPlus: false) {
            let lens = run.groups.map(\.count)
            let seps = Set(run.separators)
            let context = t.contextBefore(run.start, window: 32, ssnContext)
            let shaped = (lens == [3, 2, 4] && (seps == [45] || (seps == [32] && context))) || (lens == [9] && context)
            guard shaped else { continue }
            let d = run.digits.map { Int($0) - 48 }
            let area = d[0] * 100 + d[1] * 10 + d[2]
            let group = d[3] * 10 + d[4]
            let serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8]
            guard area != 0, area != 666, area < 900, group != 0, serial != 0 else { continue }
            out.append(RawMatch(start: run.start, end: run.end))
        }
        return out
    }

    // MARK: IP addresses

    static let versionWords: Set<String> = ["version", "versions", "release", "build", "ver", "v", "firmware", "kernel", "python", "oid", "section"]

    /// The word right before `pos` (skipping spaces and a ':'), lower-cased, is in `words`.
    static func precededByWord(_ t: ScanText, _ pos: Int, _ words: Set<String>) -> Bool {
        var e = pos
        while e > 0 && (t.bytes[e - 1] == 32 || t.bytes[e - 1] == 58) { e -= 1 }
        var s = e
        while s > 0 && isAlpha(t.bytes[s - 1]) { s -= 1 }
        guard s < e else { return false }
        return words.contains(String(decoding: t.lower[s..<e], as: UTF8.self))
    }

    /// IPv4 dotted quads (0–255, no leading zeros, not part of a longer dotted number, not right
    /// after "version"/"build") and IPv6 (RFC 4291 text forms, '::' compression, embedded IPv4).
    static func ip(_ t: ScanText) -> [RawMatch] {
        let all = ipv4(t) + ipv6(t)
        // An IPv4 address inside an IPv6 one ("::ffff:192.0.2.128") is reported once, as the longer.
        let out = all.filter { a in !all.contains { b in b.start <= a.start && a.end <= b.end && (b.end - b.start) > (a.end - a.start) } }
        return out.sorted { $0.start < $1.start }
    }

    static func ipv4(_ t: ScanText) -> [RawMatch] {
        let b = t.bytes
        var out: [RawMatch] = []
        var i = 0
        while i < b.count {
            guard isDigit(b[i]) else { i += 1; continue }
            let p = t.at(i - 1)
            if isAlnum(p) || p == 46 || p == 95 || p == 45 {
                while i < b.count && (isDigit(b[i]) || b[i] == 46) { i += 1 }
                continue
            }
            var j = i
            var parts = 0
            var ok = true
            while true {
                let s = j
                var v = 0
                while j < b.count && isDigit(b[j]) && j - s < 4 { v = v * 10 + Int(b[j] - 48); j += 1 }
                if j == s || j - s > 3 || v > 255 || (j - s > 1 && b[s] == 48) { ok = false; break }
                parts += 1
                if parts == 4 { break }
                guard j < b.count, b[j] == 46, isDigit(t.at(j + 1)) else { ok = false; break }
                j += 1
            }
            let n = t.at(j), n2 = t.at(j + 1)
            if ok && parts == 4 && !isAlnum(n) && !(n == 46 && isDigit(n2)) && n != 95
                && !precededByWord(t, i, versionWords) {
                out.append(RawMatch(start: i, end: j))
            }
            // Skip the rest of this dotted run.
            while j < b.count && (isDigit(b[j]) || b[j] == 46) { j += 1 }
            i = max(j, i + 1)
        }
        return out
    }

    static func ipv6(_ t: ScanText) -> [RawMatch] {
        let b = t.bytes
        var out: [RawMatch] = []
        var i = 0
        while i < b.count {
            let c = b[i]
            guard isHex(c) || c == 58 else { i += 1; continue }
            var j = i
            var colons = 0
            while j < b.count && (isHex(b[j]) || b[j] == 58 || b[j] == 46) { if b[j] == 58 { colons += 1 }; j += 1 }
            defer { i = j + 1 }
            guard colons >= 2 else { continue }
            // Boundaries: not glued to a word ("std::vector", "Foo::bar").
            if isAlnum(t.at(i - 1)) || t.at(i - 1) == 95 || isAlnum(t.at(j)) || t.at(j) == 95 { continue }
            var end = j
            while end > i && b[end - 1] == 46 { end -= 1 }
            if end - i >= 2, b[end - 1] == 58, b[end - 2] != 58 { end -= 1 }
            if isIPv6(Array(b[i..<end])) { out.append(RawMatch(start: i, end: end)) }
        }
        return out
    }

    static func isIPv6(_ s: [UInt8]) -> Bool {
        let str = String(decoding: s, as: UTF8.self)
        let halves = str.components(separatedBy: "::")
        guard halves.count <= 2 else { return false }
        func groups(_ part: String) -> [String]? {
            part.isEmpty ? [] : part.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        }
        guard let first = groups(halves[0]) else { return false }
        let second = halves.count == 2 ? (groups(halves[1]) ?? []) : []
        var all = first + second
        var count = all.count
        if let last = all.last, last.contains(".") {
            // Embedded IPv4 takes two groups.
            let q = last.split(separator: ".", omittingEmptySubsequences: false)
            guard q.count == 4, q.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) && (Int($0) ?? 999) <= 255 }) else { return false }
            all.removeLast()
            count += 1
        }
        guard all.allSatisfy({ !$0.isEmpty && $0.count <= 4 && $0.utf8.allSatisfy(isHex) }) else { return false }
        if halves.count == 2 { return count < 8 && count >= 1 }
        return count == 8
    }
}
