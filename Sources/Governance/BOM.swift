import Foundation

/// The model inventory as a CycloneDX 1.6 ML-BOM (what supply-chain tools read) or as Steward's
/// own plain JSON. Field names per the CycloneDX 1.6 JSON schema: components of type
/// "machine-learning-model" with `hashes` (alg "SHA-256"), `licenses` (SPDX `id` when the
/// licence has one, else `name` + `url`, with `acknowledgement` "declared"), `modelCard`
/// (`modelParameters.architectureFamily`), `pedigree.ancestors` for lineage, and
/// `properties` (name/value) for what the schema has no field for.
public enum BOM {
    public enum Format: String, Sendable, CaseIterable { case cyclonedx, json }

    public static func render(_ models: [ModelRecord], format: Format, store: ModelStore? = nil,
                              toolVersion: String = "", timestamp: Date = Date(), serial: UUID = UUID()) throws -> Data {
        let obj: [String: Any]
        switch format {
        case .cyclonedx: obj = cycloneDX(models, store: store, toolVersion: toolVersion, timestamp: timestamp, serial: serial)
        case .json: obj = plain(models, store: store)
        }
        return try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    static func bomRef(_ m: ModelRecord) -> String { "model:\(m.name)@sha256:\(m.sha256)" }

    static func cycloneDX(_ models: [ModelRecord], store: ModelStore?, toolVersion: String, timestamp: Date, serial: UUID) -> [String: Any] {
        let byName = Dictionary(models.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let components: [[String: Any]] = models.map { m in
            var c = baseComponent(m)
            let terms = LicenseCatalog.lookup(m.licenseAsWritten ?? m.license)
            var props: [[String: String]] = [
                prop("steward:format", m.format),
                prop("steward:size_bytes", String(m.size)),
                prop("steward:path", m.root),
                prop("steward:added_at", m.addedAt),
                prop("steward:license.id", terms.id),
                prop("steward:license.commercial_use", terms.commercialUse.rawValue),
                prop("steward:license.redistribution", terms.redistribution.rawValue),
                prop("steward:license.derivatives", terms.derivatives.rawValue),
                prop("steward:openness", terms.openness),
                prop("steward:openness.weights", "published (held in the store)"),
                prop("steward:openness.training_code", "not recorded"),
                prop("steward:openness.training_data", "not recorded"),
            ]
            if let q = m.quantization { props.append(prop("steward:quantization", q)) }
            if let s = m.source { props.append(prop("steward:source", s)) }
            if let ls = m.licenseSource { props.append(prop("steward:license.source", ls)) }
            for (i, a) in terms.attribution.enumerated() { props.append(prop("steward:license.obligation.\(i + 1)", a)) }
            if let n = terms.monthlyActiveUserLimit { props.append(prop("steward:license.mau_limit", String(n))) }
            if let aup = terms.acceptableUsePolicyURL { props.append(prop("steward:license.acceptable_use_policy", aup)) }
            if let o = m.licenseOverride { props.append(prop("steward:license.override", o)) }
            if let p = m.parent { props.append(prop("steward:lineage.parent", p)) }
            if let r = m.relation { props.append(prop("steward:lineage.relation", r.rawValue)) }
            if let sig = m.signature, let key = m.signatureKeyID {
                props.append(prop("steward:signature.alg", "Ed25519"))
                props.append(prop("steward:signature.key_id", key))
                props.append(prop("steward:signature.value", sig))
                if let at = m.signedAt { props.append(prop("steward:signature.signed_at", at)) }
                if let store {
                    let status: String
                    switch store.signatureStatus(m) {
                    case .valid: status = "valid"
                    case let .invalid(reason): status = "invalid: \(reason)"
                    case .unsigned: status = "unsigned"
                    }
                    props.append(prop("steward:signature.status", status))
                }
            } else {
                props.append(prop("steward:signature.status", "unsigned"))
            }
            if m.files.count > 1 || m.isDirectory {
                for f in m.files { props.append(prop("steward:file.\(f.path).sha256", f.sha256)) }
            }
            c["properties"] = props
            // Lineage: the chain of parents, nearest first, each a component of its own
            // (referenced by bom-ref when it is in the store too).
            var ancestors: [[String: Any]] = []
            var seen: Set<String> = [m.name]
            var next = m.parent
            while let p = next, !seen.contains(p) {
                seen.insert(p)
                if let pm = byName[p] {
                    // bom-refs must be unique in a BOM: the ancestor copy does not repeat the
                    // parent's (the `dependencies` section links them by ref).
                    var ancestor = baseComponent(pm)
                    ancestor["bom-ref"] = nil
                    ancestors.append(ancestor)
                    next = pm.parent
                } else {
                    ancestors.append(["type": "machine-learning-model", "name": p])
                    next = nil
                }
            }
            if !ancestors.isEmpty {
                var pedigree: [String: Any] = ["ancestors": ancestors]
                if let r = m.relation { pedigree["notes"] = "\(r.rawValue) from \(m.parent ?? "")" }
                c["pedigree"] = pedigree
            }
            return c
        }
        var dependencies: [[String: Any]] = []
        for m in models {
            if let p = m.parent, let pm = byName[p] {
                dependencies.append(["ref": bomRef(m), "dependsOn": [bomRef(pm)]])
            }
        }
        var bom: [String: Any] = [
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "serialNumber": "urn:uuid:" + serial.uuidString.lowercased(),
            "version": 1,
            "metadata": [
                "timestamp": ISO8601DateFormatter().string(from: timestamp),
                "tools": ["components": [["type": "application", "name": "steward", "version": toolVersion]]],
            ] as [String: Any],
            "components": components,
        ]
        if !dependencies.isEmpty { bom["dependencies"] = dependencies }
        return bom
    }

    /// The fields every model component carries (ancestors too).
    static func baseComponent(_ m: ModelRecord) -> [String: Any] {
        let terms = LicenseCatalog.lookup(m.licenseAsWritten ?? m.license)
        var license: [String: Any] = ["acknowledgement": "declared"]
        if let spdx = terms.spdx {
            license["id"] = spdx
        } else {
            license["name"] = terms.isUnknown ? (m.licenseAsWritten ?? "unknown") : terms.name
            if !terms.sourceURL.isEmpty { license["url"] = terms.sourceURL }
        }
        var c: [String: Any] = [
            "type": "machine-learning-model",
            "bom-ref": bomRef(m),
            "name": m.name,
            "hashes": [["alg": "SHA-256", "content": m.sha256]],
            "licenses": [["license": license]],
        ]
        var params: [String: Any] = [:]
        if let a = m.architecture { params["architectureFamily"] = a }
        if !params.isEmpty { c["modelCard"] = ["modelParameters": params] }
        return c
    }

    static func prop(_ name: String, _ value: String) -> [String: String] { ["name": name, "value": value] }

    /// Steward's own inventory shape: one object per model with everything the store records.
    static func plain(_ models: [ModelRecord], store: ModelStore?) -> [String: Any] {
        ["models": models.map { m -> [String: Any] in
            let terms = LicenseCatalog.lookup(m.licenseAsWritten ?? m.license)
            var o: [String: Any] = [
                "name": m.name, "format": m.format, "path": m.root, "sha256": m.sha256, "size": m.size,
                "license": terms.id, "added_at": m.addedAt,
                "files": m.files.map { ["path": $0.path, "sha256": $0.sha256, "size": $0.size] },
                "obligations": terms.attribution, "openness": terms.openness,
                "signed": m.signature != nil,
            ]
            if let a = m.architecture { o["architecture"] = a }
            if let q = m.quantization { o["quantization"] = q }
            if let s = m.source { o["source"] = s }
            if let p = m.parent { o["parent"] = p }
            if let r = m.relation { o["relation"] = r.rawValue }
            if let k = m.signatureKeyID { o["signature_key_id"] = k }
            if let ov = m.licenseOverride { o["license_override"] = ov }
            return o
        }]
    }
}
