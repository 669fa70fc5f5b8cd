import CCrypto
import Foundation

/// Ed25519 signatures through OpenSSL's libcrypto: model manifests (`steward models sign`) and
/// audit-log checkpoints. Keys are PEM files (PKCS#8 private, SubjectPublicKeyInfo public), the
/// same files `openssl genpkey -algorithm ed25519` writes, so teams can use their own tooling.
public final class Ed25519Key: @unchecked Sendable {
    fileprivate let pkey: OpaquePointer
    public let hasPrivateKey: Bool

    private init(pkey: OpaquePointer, hasPrivateKey: Bool) {
        self.pkey = pkey
        self.hasPrivateKey = hasPrivateKey
    }

    deinit { EVP_PKEY_free(pkey) }

    /// A new random private key.
    public static func generate() throws(SigningError) -> Ed25519Key {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nil) else { throw .openssl("cannot create a key context") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_keygen(ctx, &key) == 1, let key else {
            throw .openssl("key generation failed")
        }
        return Ed25519Key(pkey: key, hasPrivateKey: true)
    }

    /// Reads a PEM private key (PKCS#8) or public key (SubjectPublicKeyInfo).
    public static func load(pem: Data) throws(SigningError) -> Ed25519Key {
        let attempt: (Bool) -> OpaquePointer? = { isPrivate in
            pem.withUnsafeBytes { buf -> OpaquePointer? in
                guard let bio = BIO_new_mem_buf(buf.baseAddress, Int32(buf.count)) else { return nil }
                defer { BIO_free(bio) }
                return isPrivate ? PEM_read_bio_PrivateKey(bio, nil, nil, nil) : PEM_read_bio_PUBKEY(bio, nil, nil, nil)
            }
        }
        ERR_clear_error()
        if let k = attempt(true) { return try checked(k, hasPrivateKey: true) }
        ERR_clear_error()
        if let k = attempt(false) { return try checked(k, hasPrivateKey: false) }
        ERR_clear_error()
        throw .badKey("not a PEM Ed25519 key (make one with `openssl genpkey -algorithm ed25519 -out key.pem`)")
    }

    public static func load(path: String) throws(SigningError) -> Ed25519Key {
        guard let data = FileManager.default.contents(atPath: path) else { throw .badKey("cannot read key file \(path)") }
        return try load(pem: data)
    }

    private static func checked(_ k: OpaquePointer, hasPrivateKey: Bool) throws(SigningError) -> Ed25519Key {
        guard EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519 else {
            EVP_PKEY_free(k)
            throw .badKey("the key is not an Ed25519 key")
        }
        return Ed25519Key(pkey: k, hasPrivateKey: hasPrivateKey)
    }

    /// The private key as PEM (PKCS#8); store it mode 0600.
    public func privatePEM() throws(SigningError) -> Data {
        guard hasPrivateKey else { throw .badKey("this is a public key only") }
        return try pemOut { PEM_write_bio_PrivateKey($0, pkey, nil, nil, 0, nil, nil) }
    }

    public func publicPEM() throws(SigningError) -> Data {
        try pemOut { PEM_write_bio_PUBKEY($0, pkey) }
    }

    /// The 32 raw public-key bytes, hex: a short stable key id for records.
    public var publicKeyHex: String {
        var len = 32
        var raw = [UInt8](repeating: 0, count: 32)
        guard EVP_PKEY_get_raw_public_key(pkey, &raw, &len) == 1 else { return "" }
        return raw.prefix(len).map { String(format: "%02x", $0) }.joined()
    }

    private func pemOut(_ write: (OpaquePointer) -> Int32) throws(SigningError) -> Data {
        guard let bio = BIO_new(BIO_s_mem()) else { throw .openssl("cannot allocate") }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { throw .openssl("cannot encode the key") }
        var ptr: UnsafeMutablePointer<CChar>?
        let n = steward_bio_mem_data(bio, &ptr)
        guard n > 0, let ptr else { throw .openssl("empty key encoding") }
        return Data(bytes: ptr, count: n)
    }

    /// The 64-byte Ed25519 signature of `message`.
    public func sign(_ message: Data) throws(SigningError) -> Data {
        guard hasPrivateKey else { throw .badKey("signing needs the private key, this is a public key") }
        guard let ctx = EVP_MD_CTX_new() else { throw .openssl("cannot allocate") }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, nil, nil, pkey) == 1 else { throw .openssl("sign init failed") }
        var sig = [UInt8](repeating: 0, count: 64)
        var len = 64
        let ok = message.withUnsafeBytes { buf in
            EVP_DigestSign(ctx, &sig, &len, buf.bindMemory(to: UInt8.self).baseAddress, buf.count)
        }
        guard ok == 1 else { throw .openssl("signing failed") }
        return Data(sig.prefix(len))
    }

    /// True when `signature` is this key's signature of `message`.
    public func verify(_ signature: Data, for message: Data) -> Bool {
        guard signature.count == 64, let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestVerifyInit(ctx, nil, nil, nil, pkey) == 1 else { return false }
        let ok = signature.withUnsafeBytes { s in
            message.withUnsafeBytes { m in
                EVP_DigestVerify(ctx, s.bindMemory(to: UInt8.self).baseAddress, s.count,
                                 m.bindMemory(to: UInt8.self).baseAddress, m.count)
            }
        }
        ERR_clear_error()
        return ok == 1
    }
}

public enum SigningError: Error, CustomStringConvertible, Equatable {
    case badKey(String)
    case openssl(String)

    public var description: String {
        switch self {
        case let .badKey(m): return "signing key: \(m)"
        case let .openssl(m): return "OpenSSL: \(m)"
        }
    }
}

/// Hashing and comparison helpers for secrets.
public enum Secrets {
    /// SHA-256 of `data`, lowercase hex.
    public static func sha256Hex(_ data: Data) -> String {
        var out = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        data.withUnsafeBytes { buf in _ = SHA256(buf.bindMemory(to: UInt8.self).baseAddress, buf.count, &out) }
        return out.map { String(format: "%02x", $0) }.joined()
    }

    public static func sha256Hex(_ s: String) -> String { sha256Hex(Data(s.utf8)) }

    /// Equal-length comparison whose time does not depend on where the inputs differ.
    public static func constantTimeEqual(_ a: Data, _ b: Data) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }

    /// `count` bytes from OpenSSL's CSPRNG.
    public static func randomBytes(_ count: Int) throws(SigningError) -> Data {
        var bytes = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&bytes, Int32(count)) == 1 else { throw .openssl("no randomness available") }
        return Data(bytes)
    }
}
