import Foundation

/// Converts an lm-evaluation-harness local task (YAML) over a local JSON/JSONL file into a task
/// spec: `output_type` multiple_choice or generate_until, `dataset_path: json` with
/// `dataset_kwargs.data_files` (the `test_split` file, else the only one), `doc_to_text`,
/// `doc_to_choice` and `doc_to_target` as `{{field}}` templates, `target_delimiter`,
/// `generation_kwargs.until` and `max_gen_toks`, `num_fewshot`. Only this subset of YAML
/// (mappings, quoted or plain scalars, `- ` lists) and of Jinja (`{{ field }}`) is read; anything
/// else is an error that names the key.
public enum LMEvalImport {
    public static func convert(yamlPath: String) throws -> TaskSpec {
        guard let d = FileManager.default.contents(atPath: yamlPath) else { throw EvalError.invalid("cannot read \(yamlPath)") }
        let doc = try parse(String(decoding: d, as: UTF8.self), path: yamlPath)
        func str(_ k: String) -> String? { doc[k] as? String }
        guard let name = str("task") else { throw EvalError.invalid("\(yamlPath): no 'task' name") }
        guard str("dataset_path") == "json" else {
            throw EvalError.invalid("\(yamlPath): only dataset_path: json (a local JSON/JSONL file) can be imported, not '\(str("dataset_path") ?? "none")'")
        }
        let files = ((doc["dataset_kwargs"] as? [String: Any])?["data_files"] as? [String: Any]) ?? [:]
        let split = str("test_split") ?? str("validation_split") ?? files.keys.sorted().first ?? ""
        guard let data = files[split] as? String else { throw EvalError.invalid("\(yamlPath): no data file for split '\(split)' in dataset_kwargs.data_files") }
        var spec = TaskSpec(name: name, type: "generate")
        spec.data = data.hasPrefix("/") ? data : data
        guard let text = str("doc_to_text") else { throw EvalError.invalid("\(yamlPath): no doc_to_text") }
        spec.prompt = try template(text, key: "doc_to_text", path: yamlPath)
        if let n = str("num_fewshot").flatMap(Int.init) { spec.fewshot = n }
        switch str("output_type") ?? "" {
        case "multiple_choice":
            spec.type = "multiple_choice"
            spec.choices = try field(str("doc_to_choice"), key: "doc_to_choice", path: yamlPath)
            spec.gold = try field(str("doc_to_target"), key: "doc_to_target", path: yamlPath)
            spec.choice_prefix = str("target_delimiter") ?? " "
        case "generate_until":
            spec.type = "generate"
            spec.target = try template(str("doc_to_target") ?? "", key: "doc_to_target", path: yamlPath)
            spec.metric = "exact_match"
            let g = doc["generation_kwargs"] as? [String: Any] ?? [:]
            if let until = g["until"] as? [String] { spec.stop = until } else if let u = g["until"] as? String { spec.stop = [u] }
            spec.max_tokens = (g["max_gen_toks"] as? String).flatMap(Int.init) ?? 32
        default:
            throw EvalError.invalid("\(yamlPath): output_type must be multiple_choice or generate_until, not '\(str("output_type") ?? "none")'")
        }
        return spec
    }

    /// "{{ field }}" → "field".
    static func field(_ t: String?, key: String, path: String) throws -> String {
        guard let t else { throw EvalError.invalid("\(path): no \(key)") }
        let s = t.trimmingCharacters(in: .whitespaces)
        guard s.hasPrefix("{{"), s.hasSuffix("}}") else { throw EvalError.invalid("\(path): \(key) must be a single {{field}}, got \(t)") }
        let f = s.dropFirst(2).dropLast(2).trimmingCharacters(in: .whitespaces)
        guard !f.isEmpty, f.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw EvalError.invalid("\(path): \(key) uses Jinja beyond {{field}} (\(t)); write the task spec by hand")
        }
        return f
    }

    /// A Jinja template of text and {{field}}s → our {field} template.
    static func template(_ t: String, key: String, path: String) throws -> String {
        var out = "", rest = Substring(t)
        while let open = rest.range(of: "{{") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].range(of: "}}") else { throw EvalError.invalid("\(path): unclosed {{ in \(key)") }
            let inner = "{{" + rest[open.upperBound..<close.lowerBound] + "}}"
            out += "{" + (try field(inner, key: key, path: path)) + "}"
            rest = rest[close.upperBound...]
        }
        guard !rest.contains("{%") else { throw EvalError.invalid("\(path): \(key) uses Jinja statements; write the task spec by hand") }
        return out + rest
    }

    /// Indentation-nested mappings of scalars and `- ` lists.
    static func parse(_ text: String, path: String) throws -> [String: Any] {
        struct Line { let indent: Int; let text: String; let number: Int }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { i, raw -> Line? in
            let l = String(raw)
            let trimmed = l.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { return nil }
            return Line(indent: l.prefix { $0 == " " }.count, text: trimmed, number: i + 1)
        }
        var i = 0
        func block(_ indent: Int) throws -> Any {
            if i < lines.count, lines[i].text.hasPrefix("- ") || lines[i].text == "-" {
                var list: [Any] = []
                while i < lines.count, lines[i].indent == indent, lines[i].text.hasPrefix("-") {
                    let item = lines[i].text.dropFirst(1).trimmingCharacters(in: .whitespaces)
                    i += 1
                    if item.contains(": ") || item.hasSuffix(":") {
                        // A mapping item: its first key is on the dash line; the rest are deeper.
                        var m: [String: Any] = [:]
                        let (k, v) = try pair(item, lines[i - 1].number)
                        m[k] = v.isEmpty ? try block(indent + 2) : try scalar(v, lines[i - 1].number)
                        if i < lines.count, lines[i].indent > indent, let sub = try block(lines[i].indent) as? [String: Any] { m.merge(sub) { a, _ in a } }
                        list.append(m)
                    } else {
                        list.append(try scalar(item, lines[i - 1].number))
                    }
                }
                return list
            }
            var map: [String: Any] = [:]
            while i < lines.count, lines[i].indent == indent {
                let (k, v) = try pair(lines[i].text, lines[i].number)
                i += 1
                if v.isEmpty {
                    map[k] = i < lines.count && lines[i].indent > indent ? try block(lines[i].indent) : ""
                } else {
                    map[k] = try scalar(v, lines[i - 1].number)
                }
            }
            if i < lines.count, lines[i].indent > indent { throw EvalError.invalid("\(path):\(lines[i].number): unexpected indentation") }
            return map
        }
        func pair(_ s: String, _ n: Int) throws -> (String, String) {
            guard let c = s.range(of: ":") else { throw EvalError.invalid("\(path):\(n): expected 'key: value'") }
            return (String(s[..<c.lowerBound]).trimmingCharacters(in: .whitespaces), String(s[c.upperBound...]).trimmingCharacters(in: .whitespaces))
        }
        func scalar(_ v: String, _ n: Int) throws -> Any {
            if v.hasPrefix("\"") {
                guard v.hasSuffix("\""), v.count >= 2 else { throw EvalError.invalid("\(path):\(n): unterminated string") }
                guard let s = try? JSONSerialization.jsonObject(with: Data(v.utf8), options: [.fragmentsAllowed]) as? String else {
                    throw EvalError.invalid("\(path):\(n): bad escape in \(v)")
                }
                return s
            }
            if v.hasPrefix("'"), v.hasSuffix("'"), v.count >= 2 { return String(v.dropFirst().dropLast()).replacingOccurrences(of: "''", with: "'") }
            if v.hasPrefix("["), v.hasSuffix("]") {
                return v.dropFirst().dropLast().split(separator: ",").map { p -> String in
                    let t = p.trimmingCharacters(in: .whitespaces)
                    return (try? scalar(t, n) as? String ?? t) ?? t
                }
            }
            return v
        }
        let top = try block(0)
        guard let m = top as? [String: Any] else { throw EvalError.invalid("\(path): the top level is not a mapping") }
        return m
    }
}

extension TaskSpec {
    /// A spec made in code (the importer).
    public init(name: String, type: String) {
        self.name = name
        self.type = type
    }
}
