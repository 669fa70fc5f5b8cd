import Foundation
import Governance
import Models

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

    /// POST /admin/adapters: load a LoRA adapter (PEFT folder or GGUF LoRA) for a served model.
    struct LoadAdapter: Decodable {
        var model: String?
        var path: String?
        var name: String?
        var scale: Double?
    }

    struct AdapterInfo: Codable {
        var name: String
        var model: String
        var id: String
        var path: String
        var format: String
        var rank: Int
        var alpha: Double
        var scale: Double
        var targets: [String]
    }

    struct AdapterList: Codable { var object = "list"; var data: [AdapterInfo] }

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
        router.add("GET", "/admin/adapters", .openAI) { [unowned self] _ in self.adminListAdapters() }
        router.add("POST", "/admin/adapters", .openAI) { [unowned self] in try self.adminLoadAdapter($0) }
        router.add("DELETE", "/admin/adapters/{id}", .openAI) { [unowned self] in try self.adminUnloadAdapter($0) }
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

    func adminListAdapters() -> HTTPResponse {
        .json(Admin.AdapterList(data: models.models.flatMap { m in m.adapterNames.compactMap { n in m.adapter(named: n).map { API.adapterInfo(n, m, $0) } } }))
    }

    static func adapterInfo(_ name: String, _ m: ServedModel, _ u: LoRAUse) -> Admin.AdapterInfo {
        Admin.AdapterInfo(name: name, model: m.id, id: m.id + "+" + name, path: u.adapter.path, format: u.adapter.format, rank: u.adapter.rank,
                          alpha: Double(u.adapter.alpha), scale: Double(u.scale), targets: u.adapter.targets.map(\.peftName))
    }

    func adminLoadAdapter(_ r: HTTPRequest) throws -> HTTPResponse {
        let body = try decode(Admin.LoadAdapter.self, r)
        guard let path = body.path, !path.isEmpty else { throw APIError.missing("path") }
        let m: ServedModel
        if let id = body.model {
            guard let found = models.model(id) else { throw APIError.modelNotFound(id, available: models.models.map(\.id)) }
            m = found
        } else {
            guard models.models.count == 1, let only = models.models.first else {
                throw APIError.invalid("name the base model: 'model' is one of \(models.models.map(\.id).joined(separator: ", "))", param: "model", code: "missing_required_parameter")
            }
            m = only
        }
        let scale = body.scale ?? 1
        guard scale.isFinite, abs(scale) <= 100 else { throw APIError.invalid("'scale' must be a finite number within ±100", param: "scale", code: "invalid_value") }
        let adapter: LoRAAdapter
        do { adapter = try LoRAAdapter.load(path, for: m.engine.model.config) } catch {
            throw APIError.invalid("\(error)", param: "path", code: "invalid_adapter")
        }
        let name = body.name ?? adapter.name
        guard !name.isEmpty, !name.contains("+"), name.count <= 64 else {
            throw APIError.invalid("an adapter name is 1-64 characters without '+'", param: "name", code: "invalid_value")
        }
        let use = LoRAUse(adapter, scale: Float(scale))
        m.addAdapter(use, name: name)
        AdminAudit.record(action: "adapter.load", keyID: r.context.keyID, target: m.id + "+" + name,
                          details: ["path": path, "format": adapter.format, "rank": "\(adapter.rank)", "scale": "\(scale)"])
        return .json(API.adapterInfo(name, m, use), status: 201)
    }

    func adminUnloadAdapter(_ r: HTTPRequest) throws -> HTTPResponse {
        guard let raw = Router.parameter("/admin/adapters/{id}", r.path) else { throw APIError.missing("name") }
        let name = raw.removingPercentEncoding ?? raw
        // "BASE+NAME" or a NAME loaded for exactly one model.
        var owners = models.models.filter { $0.adapter(named: name) != nil }
        var short = name
        if let plus = name.firstIndex(of: "+"), let m = models.model(String(name[..<plus])) {
            short = String(name[name.index(after: plus)...])
            owners = m.adapter(named: short) != nil ? [m] : []
        }
        guard let m = owners.first else {
            throw APIError(status: 404, message: "no adapter '\(name)' is loaded (GET /admin/adapters lists them)", type: "invalid_request_error", param: "name", code: "adapter_not_found")
        }
        guard owners.count == 1 else { throw APIError.invalid("'\(name)' is loaded for several models; give BASE+NAME", param: "name", code: "invalid_value") }
        m.removeAdapter(named: short)
        AdminAudit.record(action: "adapter.unload", keyID: r.context.keyID, target: m.id + "+" + short, details: [:])
        return .json(["deleted": m.id + "+" + short])
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
