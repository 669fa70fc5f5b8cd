import Foundation
import Governance

/// The admin API (admin scope; `AccessGate` checks it before these run): keys and the kill
/// switch on a running server. Paths carry the key or model id as a middle segment
/// ("/admin/keys/{id}/revoke"), which the router matches segment by segment.
enum Admin {
    /// A key as the admin API shows it (never the secret or its hash).
    struct KeyInfo: Codable {
        var id: String
        var name: String
        var scopes: [String]
        var models: [String]
        var rpm: Int?
        var tpm: Int?
        var daily_tokens: Int?
        var expires_at: String?
        var moderation_policy: String?
        var collections: [String]
        var state: String
        var created_at: String
        var last_used_at: String?
        var revoked_at: String?
        /// Present only in the answers to create and rotate: the one time the key is shown.
        var key: String?

        init(_ r: KeyRecord, key: String? = nil) {
            let f = ISO8601DateFormatter()
            id = r.id; name = r.name; scopes = r.scopes.map(\.rawValue); models = r.models ?? ["*"]
            rpm = r.rpm; tpm = r.tpm; daily_tokens = r.dailyTokens
            expires_at = r.expires.map(f.string); moderation_policy = r.moderationPolicy; collections = r.collections
            state = r.state().rawValue; created_at = f.string(from: r.created)
            last_used_at = r.lastUsed.map(f.string); revoked_at = r.revoked.map(f.string)
            self.key = key
        }
    }

    struct KeyList: Codable { var object = "list"; var data: [KeyInfo] }

    /// POST /admin/keys. `scopes` and `models` take a list or a comma-separated string.
    struct CreateKey: Decodable {
        var name: String?
        var scopes: StringOrList?
        var models: StringOrList?
        var rpm: Int?
        var tpm: Int?
        var daily_tokens: Int?
        var expires: String?
        var moderation_policy: String?
        var collections: StringOrList?
    }

    /// POST /admin/keys/{id}/collections: grants and revokes RAG collections.
    struct CollectionGrant: Decodable {
        var grant: StringOrList?
        var revoke: StringOrList?
    }

    struct ModelState: Codable { var model: String; var disabled: Bool; var served: Bool }

    struct DisableBody: Decodable { var reason: String? }

    struct Status: Codable {
        struct Keys: Codable { var total: Int; var active: Int; var revoked: Int; var expired: Int; var admin: Int }
        var auth: String
        var keys: Keys
        var models: [ModelState]
        var disabled_models: [String]
        var access_version: Int64
        var ready: Bool
        var version: String
    }
}

extension API {
    func addAdminRoutes(_ router: inout Router) {
        router.add("POST", "/admin/keys", .openAI) { [unowned self] in try self.adminCreateKey($0) }
        router.add("GET", "/admin/keys", .openAI) { [unowned self] _ in try self.adminListKeys() }
        router.add("POST", "/admin/keys/{id}/revoke", .openAI) { [unowned self] r in
            try self.adminKeyAction(r, pattern: "/admin/keys/{id}/revoke")
        }
        router.add("POST", "/admin/keys/{id}/rotate", .openAI) { [unowned self] r in
            try self.adminKeyAction(r, pattern: "/admin/keys/{id}/rotate")
        }
        router.add("POST", "/admin/keys/{id}/collections", .openAI) { [unowned self] in try self.adminGrantCollections($0) }
        router.add("POST", "/admin/models/{id}/disable", .openAI) { [unowned self] r in
            try self.adminModelSwitch(r, pattern: "/admin/models/{id}/disable", disable: true)
        }
        router.add("POST", "/admin/models/{id}/enable", .openAI) { [unowned self] r in
            try self.adminModelSwitch(r, pattern: "/admin/models/{id}/enable", disable: false)
        }
        router.add("GET", "/admin/status", .openAI) { [unowned self] _ in try self.adminStatus() }
    }

    private func gate() throws -> AccessGate {
        guard let access else {
            throw APIError(status: 404, message: "this server has no access control configured (start it with steward serve)",
                           type: "invalid_request_error", code: "admin_unavailable")
        }
        return access
    }

    private static func keyError(_ e: Error) -> APIError {
        switch e {
        case let k as KeyError:
            switch k {
            case .notFound: return APIError(status: 404, message: k.description, type: "invalid_request_error", code: "key_not_found")
            case .duplicateName: return APIError(status: 409, message: k.description, type: "invalid_request_error", code: "duplicate_name")
            case .invalid: return .invalid(k.description, param: nil, code: "invalid_value")
            case .storage: return APIError(status: 500, message: k.description, type: "server_error")
            }
        default: return APIError.from(e)
        }
    }

    func adminCreateKey(_ r: HTTPRequest) throws -> HTTPResponse {
        let g = try gate()
        let body = try decode(Admin.CreateKey.self, r)
        guard let name = body.name else { throw APIError.missing("name") }
        var k = NewKey(name: name)
        do {
            if let s = body.scopes { k.scopes = try KeyScope.parseList(s.values.joined(separator: ",")) }
            if let m = body.models {
                let list = m.values.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
                k.models = list == ["*"] ? nil : list
            }
            k.rpm = body.rpm; k.tpm = body.tpm; k.dailyTokens = body.daily_tokens
            if let e = body.expires { k.expires = try KeyStore.parseExpiry(e) }
            k.moderationPolicy = body.moderation_policy
            if let c = body.collections {
                k.collections = c.values.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
                if body.scopes == nil && !k.collections.isEmpty { k.scopes.append(.rag) }
            }
            let (record, key) = try g.keys.create(k, by: r.context.keyID)
            try g.refresh()
            return .json(Admin.KeyInfo(record, key: key), status: 201)
        } catch { throw API.keyError(error) }
    }

    func adminListKeys() throws -> HTTPResponse {
        do { return .json(Admin.KeyList(data: try gate().keys.list().map { Admin.KeyInfo($0) })) } catch { throw API.keyError(error) }
    }

    func adminKeyAction(_ r: HTTPRequest, pattern: String) throws -> HTTPResponse {
        let g = try gate()
        guard let id = Router.parameter(pattern, r.path) else { throw APIError.missing("id") }
        do {
            let info: Admin.KeyInfo
            if pattern.hasSuffix("/revoke") {
                info = Admin.KeyInfo(try g.keys.revoke(id, by: r.context.keyID))
            } else {
                let (record, key) = try g.keys.rotate(id, by: r.context.keyID)
                info = Admin.KeyInfo(record, key: key)
            }
            // Running generations see the change at their next token.
            try g.refresh()
            return .json(info)
        } catch { throw API.keyError(error) }
    }

    /// Body {"grant": [...], "revoke": [...]} (lists or comma-separated strings).
    func adminGrantCollections(_ r: HTTPRequest) throws -> HTTPResponse {
        let g = try gate()
        guard let id = Router.parameter("/admin/keys/{id}/collections", r.path) else { throw APIError.missing("id") }
        let body = try decode(Admin.CollectionGrant.self, r)
        func names(_ l: StringOrList?) -> [String] {
            (l?.values ?? []).flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
        }
        let grant = names(body.grant), revoke = names(body.revoke)
        guard !grant.isEmpty || !revoke.isEmpty else { throw APIError.missing("grant") }
        do {
            var record = try g.keys.find(id)
            if !grant.isEmpty { record = try g.keys.grant(id, collections: grant, by: r.context.keyID) }
            if !revoke.isEmpty { record = try g.keys.grant(id, collections: revoke, revoke: true, by: r.context.keyID) }
            try g.refresh()
            return .json(Admin.KeyInfo(record))
        } catch { throw API.keyError(error) }
    }

    func adminModelSwitch(_ r: HTTPRequest, pattern: String, disable: Bool) throws -> HTTPResponse {
        let g = try gate()
        guard let model = Router.parameter(pattern, r.path) else { throw APIError.missing("id") }
        let served = models.model(model) != nil || models.embeddingModel(model) != nil
        do {
            if disable {
                guard served else { throw APIError.modelNotFound(model, available: models.models.map(\.id) + models.embeddingModels.map(\.id)) }
                let reason = r.body.isEmpty ? nil : (try? JSONDecoder().decode(Admin.DisableBody.self, from: r.body))?.reason
                try g.keys.disableModel(model, reason: reason, by: r.context.keyID)
            } else {
                try g.keys.enableModel(model, by: r.context.keyID)
            }
            try g.refresh()
            return .json(Admin.ModelState(model: model, disabled: disable, served: served))
        } catch let e as APIError { throw e } catch { throw API.keyError(error) }
    }

    func adminStatus() throws -> HTTPResponse {
        let g = try gate()
        do {
            let snap = try g.refresh()
            let list = Array(snap.keys.values)
            let now = Date()
            let keys = Admin.Status.Keys(total: list.count, active: list.filter { $0.state(at: now) == .active }.count,
                                         revoked: list.filter { $0.state(at: now) == .revoked }.count,
                                         expired: list.filter { $0.state(at: now) == .expired }.count,
                                         admin: list.filter { $0.state(at: now) == .active && $0.allows(scope: .admin) }.count)
            let ids = models.models.map(\.id) + models.embeddingModels.map(\.id)
            let states = ids.map { Admin.ModelState(model: $0, disabled: snap.disabledModels.contains($0), served: true) }
            return .json(Admin.Status(auth: snap.requiresKeys ? "keys" : "open", keys: keys, models: states,
                                      disabled_models: snap.disabledModels.sorted(), access_version: snap.version,
                                      ready: models.ready, version: version))
        } catch { throw API.keyError(error) }
    }
}
