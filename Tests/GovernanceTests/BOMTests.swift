import Foundation
import Governance
import XCTest

final class BOMTests: XCTestCase {
    func testCycloneDXStructure() throws {
        let dir = try ScratchDirectory("bom")
        let store = try ModelStore(storage: SQLiteStorage(path: ":memory:"))
        let base = try store.add(.init(target: try dir.gguf("base", license: "apache-2.0", fileType: 0), source: "test"), policy: nil).record
        let child = try store.add(.init(target: try dir.gguf("child", license: "gemma", seed: 2), parent: "base", relation: .finetuned), policy: nil).record
        let key = try Ed25519Key.generate()
        try store.sign(name: "base", key: key)

        let data = try BOM.render(try store.list(), format: .cyclonedx, store: store, toolVersion: "9.9")
        let bom = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(bom["bomFormat"] as? String, "CycloneDX")
        XCTAssertEqual(bom["specVersion"] as? String, "1.6")
        XCTAssertEqual(bom["version"] as? Int, 1)
        XCTAssertTrue((bom["serialNumber"] as? String)?.hasPrefix("urn:uuid:") ?? false)
        let components = try XCTUnwrap(bom["components"] as? [[String: Any]])
        XCTAssertEqual(components.count, 2)
        func component(_ name: String) throws -> [String: Any] { try XCTUnwrap(components.first { $0["name"] as? String == name }) }
        for (c, r) in [(try component("base"), base), (try component("child"), child)] {
            XCTAssertEqual(c["type"] as? String, "machine-learning-model")
            let hashes = try XCTUnwrap(c["hashes"] as? [[String: String]])
            XCTAssertEqual(hashes, [["alg": "SHA-256", "content": r.sha256]])
            XCTAssertNotNil(c["bom-ref"] as? String)
            XCTAssertNotNil((c["modelCard"] as? [String: Any])?["modelParameters"])
        }
        let baseC = try component("base")
        let baseLicense = try XCTUnwrap(((baseC["licenses"] as? [[String: Any]])?.first?["license"]) as? [String: Any])
        XCTAssertEqual(baseLicense["id"] as? String, "Apache-2.0", "SPDX id when there is one")
        let props = try XCTUnwrap(baseC["properties"] as? [[String: String]])
        func prop(_ p: [[String: String]], _ n: String) -> String? { p.first { $0["name"] == n }?["value"] }
        XCTAssertEqual(prop(props, "steward:quantization"), "F32")
        XCTAssertEqual(prop(props, "steward:size_bytes"), String(base.size))
        XCTAssertEqual(prop(props, "steward:signature.key_id"), key.publicKeyHex)
        XCTAssertEqual(prop(props, "steward:signature.status"), "valid")
        XCTAssertNotNil(prop(props, "steward:openness"))

        let childC = try component("child")
        let childLicense = try XCTUnwrap(((childC["licenses"] as? [[String: Any]])?.first?["license"]) as? [String: Any])
        XCTAssertNil(childLicense["id"], "gemma has no SPDX id: name + url instead")
        XCTAssertEqual(childLicense["url"] as? String, "https://ai.google.dev/gemma/terms")
        let ancestors = try XCTUnwrap((childC["pedigree"] as? [String: Any])?["ancestors"] as? [[String: Any]])
        XCTAssertEqual(ancestors.first?["name"] as? String, "base")
        XCTAssertEqual(ancestors.first?["type"] as? String, "machine-learning-model")
        let childProps = try XCTUnwrap(childC["properties"] as? [[String: String]])
        XCTAssertEqual(prop(childProps, "steward:lineage.relation"), "finetuned")
        XCTAssertEqual(prop(childProps, "steward:signature.status"), "unsigned")
        let deps = try XCTUnwrap(bom["dependencies"] as? [[String: Any]])
        XCTAssertEqual(deps.first?["ref"] as? String, childC["bom-ref"] as? String)
        XCTAssertEqual(deps.first?["dependsOn"] as? [String], [baseC["bom-ref"] as? String ?? ""])
    }

    func testPlainJSONAndEmptyStore() throws {
        let empty = try JSONSerialization.jsonObject(with: try BOM.render([], format: .cyclonedx)) as? [String: Any]
        XCTAssertEqual((empty?["components"] as? [Any])?.count, 0)
        let dir = try ScratchDirectory("bom-json")
        let store = try ModelStore(storage: SQLiteStorage(path: ":memory:"))
        try store.add(.init(target: try dir.gguf("m", license: "mit")), policy: nil)
        let o = try JSONSerialization.jsonObject(with: try BOM.render(try store.list(), format: .json)) as? [String: Any]
        let m = try XCTUnwrap((o?["models"] as? [[String: Any]])?.first)
        XCTAssertEqual(m["name"] as? String, "m")
        XCTAssertEqual(m["license"] as? String, "mit")
        XCTAssertEqual(m["signed"] as? Bool, false)
    }
}
