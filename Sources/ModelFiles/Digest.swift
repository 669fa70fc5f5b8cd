import CCrypto

public enum FileDigest {
    /// SHA-256 of a byte range, as lowercase hex (OpenSSL EVP).
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> String {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        let ctx = EVP_MD_CTX_new()
        defer { EVP_MD_CTX_free(ctx) }
        EVP_DigestInit_ex(ctx, EVP_sha256(), nil)
        // Feed in 64 MiB pieces so progress-free hashing of large files stays cache-friendly.
        var off = 0
        while off < bytes.count {
            let n = min(64 << 20, bytes.count - off)
            EVP_DigestUpdate(ctx, bytes.baseAddress! + off, n)
            off += n
        }
        out.withUnsafeMutableBufferPointer { p in _ = EVP_DigestFinal_ex(ctx, p.baseAddress, &len) }
        return out.map { String(format2hex: $0) }.joined()
    }

    public static func sha256(path: String) throws(ModelFileError) -> String {
        let m = try MappedFile(path: path)
        return sha256(m.bytes)
    }
}

extension String {
    init(format2hex b: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(b >> 4)], digits[Int(b & 15)]])
    }
}
