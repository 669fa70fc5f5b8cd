import Foundation
import XCTest
import Server

/// GET /v1/models/{id}: one model by id (the openai client's models.retrieve).
final class ServerModelRouteTests: XCTestCase {
    func testRetrieveModelByID() throws {
        let (api, model) = try Shared.get()
        let ok = api.handle(HTTPRequest(method: "GET", path: "/v1/models/\(model.id)"))
        XCTAssertEqual(ok.status, 200)
        let obj = try object(ok.collectBody())
        XCTAssertEqual(obj["id"] as? String, model.id)
        XCTAssertEqual(obj["object"] as? String, "model")
        let missing = api.handle(HTTPRequest(method: "GET", path: "/v1/models/no-such-model"))
        XCTAssertEqual(missing.status, 404)
        let err = try XCTUnwrap(try object(missing.collectBody())["error"] as? [String: Any])
        XCTAssertEqual(err["code"] as? String, "model_not_found")
        // one segment only; other methods are 405
        XCTAssertEqual(api.handle(HTTPRequest(method: "GET", path: "/v1/models/a/b")).status, 404)
        XCTAssertEqual(api.handle(HTTPRequest(method: "POST", path: "/v1/models/\(model.id)", json: "{}")).status, 405)
    }
}
