import Foundation
import Governance
import XCTest

final class ServeGateTests: XCTestCase {
    func testUnregisteredModelWithoutPolicyIsServedWithANote() throws {
        let dir = try ScratchDirectory("gate-loose")
        let path = try dir.gguf("loose", license: "llama3.2")
        let a = try ServeGate.admit(path: path, store: nil, policy: nil)
        XCTAssertNil(a.record)
        XCTAssertNil(a.decision)
        XCTAssertEqual(a.licenseID, "llama3.2", "read from the file's general.license")
        XCTAssertTrue(a.notes.contains { $0.contains("not in the model store") })
    }

    func testLicenceOverrideAtServeIsRecorded() throws {
        let dir = try ScratchDirectory("gate-override")
        let path = try dir.gguf("nc", license: "cc-by-nc-4.0")
        let store = try ModelStore(storage: SQLiteStorage(path: ":memory:"))
        try store.add(.init(target: path), policy: nil)
        let strict = try policy(#"{"licenses": {"use": "commercial"}}"#)
        XCTAssertThrowsError(try ServeGate.admit(path: path, store: store, policy: strict)) { e in
            guard case ModelStoreError.licenseDenied = e else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try ServeGate.admit(path: path, store: store, policy: strict, overrideLicense: true)) { e in
            guard case ModelStoreError.overrideNotAllowed = e else { return XCTFail("\(e)") }
        }
        final class Box: @unchecked Sendable { var actions: [String] = []; let lock = NSLock() }
        let box = Box()
        AdminAudit.setRecorder { action, _, _, _ in box.lock.lock(); box.actions.append(action); box.lock.unlock() }
        defer { AdminAudit.setRecorder(nil) }
        let lenient = try policy(#"{"licenses": {"use": "commercial", "allow_override": true}}"#)
        let a = try ServeGate.admit(path: path, store: store, policy: lenient, overrideLicense: true)
        XCTAssertTrue(a.overridden)
        XCTAssertEqual(a.record?.name, "nc")
        XCTAssertEqual(box.actions, ["serve.license_override"])
    }
}
