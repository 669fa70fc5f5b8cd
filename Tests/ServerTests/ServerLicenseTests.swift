import Foundation
import XCTest
import Server

/// The licence id in /v1/models and /api/show (from the GGUF's general.license, normalised).
final class ServerLicenseTests: XCTestCase {
    func testModelListsCarryTheLicenceID() throws {
        let (api, model) = try Shared.get()
        XCTAssertEqual(model.license, "apache-2.0")
        let list = try object(api.handle(HTTPRequest(method: "GET", path: "/v1/models")).collectBody())
        let entry = try XCTUnwrap((list["data"] as? [[String: Any]])?.first { $0["id"] as? String == model.id })
        XCTAssertEqual(entry["license"] as? String, "apache-2.0")
        let one = try object(api.handle(HTTPRequest(method: "GET", path: "/v1/models/\(model.id)")).collectBody())
        XCTAssertEqual(one["license"] as? String, "apache-2.0")
        let show = try object(api.handle(HTTPRequest(method: "POST", path: "/api/show", json: #"{"model": "\#(model.id)"}"#)).collectBody())
        XCTAssertEqual(show["license"] as? String, "apache-2.0")
    }
}
