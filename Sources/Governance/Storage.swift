import CSQLite
import Foundation

/// A value bound to or read from a statement. Deliberately the common subset of SQLite and
/// PostgreSQL types, so a PostgreSQL `SQLStorage` can follow without changing the stores.
public enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob(Data)

    public var int: Int64? { if case let .integer(v) = self { return v }; return nil }
    public var double: Double? {
        switch self { case let .real(v): return v; case let .integer(v): return Double(v); default: return nil }
    }
    public var string: String? { if case let .text(v) = self { return v }; return nil }
    public var data: Data? {
        switch self { case let .blob(v): return v; case let .text(v): return Data(v.utf8); default: return nil }
    }
    public var isNull: Bool { self == .null }
}

/// One result row: values by column name.
public typealias SQLRow = [String: SQLValue]

/// The storage seam every governance store (models, keys, audit, usage) is written against.
/// SQL uses `?` placeholders; an implementation for another database rewrites them.
public protocol SQLStorage: AnyObject, Sendable {
    /// Runs a statement; returns the number of rows changed.
    @discardableResult
    func execute(_ sql: String, _ params: [SQLValue]) throws(StorageError) -> Int
    func query(_ sql: String, _ params: [SQLValue]) throws(StorageError) -> [SQLRow]
    /// Runs `body` in one transaction (committed if it returns, rolled back if it throws).
    /// Calls nest: an inner call joins the outer transaction.
    func transaction<T>(_ body: () throws -> T) throws -> T
    /// Applies a component's schema steps it has not applied yet, in order, each in its own
    /// transaction, recording (component, version). Step i is version i+1; steps are append-only:
    /// never edit a released step, add a new one.
    func migrate(component: String, steps: [String]) throws(StorageError)
    /// The highest applied version of a component (0: none).
    func schemaVersion(component: String) throws(StorageError) -> Int
}

extension SQLStorage {
    @discardableResult
    public func execute(_ sql: String, _ params: SQLValue...) throws(StorageError) -> Int { try execute(sql, params) }
    public func query(_ sql: String, _ params: SQLValue...) throws(StorageError) -> [SQLRow] { try query(sql, params) }
}

public enum StorageError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case sql(String, statement: String)
    case migration(component: String, version: Int, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "cannot open the Steward database \(path): \(reason) (check $STEWARD_HOME and its permissions)"
        case let .sql(message, statement):
            return "database error: \(message) (in: \(statement.prefix(80)))"
        case let .migration(component, version, reason):
            return "cannot migrate the \(component) schema to version \(version): \(reason)"
        }
    }
}

/// SQLite behind `SQLStorage`: one connection, serialized by a lock, WAL mode. The database
/// file and its -wal/-shm companions are created mode 0600 (secrets' hashes and the audit log
/// live here).
public final class SQLiteStorage: SQLStorage, @unchecked Sendable {
    public let path: String
    private var db: OpaquePointer?
    private let lock = NSRecursiveLock()
    private var transactionDepth = 0

    /// The default database: `$STEWARD_HOME/steward.db`.
    public static var defaultPath: String { StewardPaths.home + "/steward.db" }

    /// Opens (creating if needed) the database at `path`; ":memory:" gives a private in-memory one.
    public init(path: String = SQLiteStorage.defaultPath) throws(StorageError) {
        self.path = path
        if path != ":memory:" {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty {
                do { try StewardPaths.makePrivateDirectory(dir) } catch {
                    throw .cannotOpen(path: path, reason: "cannot create \(dir): \(error)")
                }
            }
            // Create the file ourselves so it is 0600 from the first byte; SQLite gives the
            // -wal and -shm files the main file's permissions.
            let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
            fchmod(fd, 0o600)
            close(fd)
        }
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let msg = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            throw .cannotOpen(path: path, reason: msg)
        }
        db = handle
        sqlite3_busy_timeout(handle, 5000)
        if path != ":memory:" {
            // WAL: readers never block the writer. synchronous=NORMAL: a committed transaction
            // survives the process being killed (it is in the WAL in the OS's cache); FULL would
            // add an fsync per commit for power loss, which audit can ask for via `durable`.
            _ = try query("PRAGMA journal_mode=WAL")
        }
        try execute("PRAGMA synchronous=NORMAL")
        try execute("PRAGMA foreign_keys=ON")
        try execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                component TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL,
                PRIMARY KEY (component, version))
            """)
    }

    deinit { sqlite3_close_v2(db) }

    /// Switches per-commit fsync on (power-loss durability) or off.
    public func setDurable(_ durable: Bool) throws(StorageError) {
        try execute("PRAGMA synchronous=\(durable ? "FULL" : "NORMAL")")
    }

    @discardableResult
    public func execute(_ sql: String, _ params: [SQLValue]) throws(StorageError) -> Int {
        lock.lock(); defer { lock.unlock() }
        _ = try run(sql, params)
        return Int(sqlite3_changes(db))
    }

    public func query(_ sql: String, _ params: [SQLValue]) throws(StorageError) -> [SQLRow] {
        lock.lock(); defer { lock.unlock() }
        return try run(sql, params)
    }

    /// The rowid of the last inserted row on this connection (call inside the same transaction).
    public var lastInsertRowID: Int64 {
        lock.lock(); defer { lock.unlock() }
        return sqlite3_last_insert_rowid(db)
    }

    public func transaction<T>(_ body: () throws -> T) throws -> T {
        lock.lock(); defer { lock.unlock() }
        if transactionDepth > 0 {
            transactionDepth += 1
            defer { transactionDepth -= 1 }
            return try body()
        }
        _ = try run("BEGIN IMMEDIATE", [])
        transactionDepth = 1
        do {
            let value = try body()
            transactionDepth = 0
            _ = try run("COMMIT", [])
            return value
        } catch {
            transactionDepth = 0
            _ = try? run("ROLLBACK", [])
            throw error
        }
    }

    public func schemaVersion(component: String) throws(StorageError) -> Int {
        let rows = try query("SELECT MAX(version) AS v FROM schema_migrations WHERE component = ?", .text(component))
        return Int(rows.first?["v"]?.int ?? 0)
    }

    public func migrate(component: String, steps: [String]) throws(StorageError) {
        let current = try schemaVersion(component: component)
        guard current <= steps.count else {
            throw .migration(component: component, version: current,
                             reason: "the database is at version \(current), newer than this steward (\(steps.count)); upgrade steward")
        }
        for (i, step) in steps.enumerated() where i + 1 > current {
            do {
                try transaction {
                    try self.execScript(step)
                    try self.execute("INSERT INTO schema_migrations (component, version, applied_at) VALUES (?, ?, ?)",
                                     .text(component), .integer(Int64(i + 1)), .text(ISO8601DateFormatter().string(from: Date())))
                }
            } catch let e as StorageError {
                throw .migration(component: component, version: i + 1, reason: e.description)
            } catch {
                throw .migration(component: component, version: i + 1, reason: "\(error)")
            }
        }
    }

    /// Runs several `;`-separated statements without parameters.
    private func execScript(_ sql: String) throws(StorageError) {
        lock.lock(); defer { lock.unlock() }
        var err: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &err) != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(err)
            throw .sql(msg, statement: sql)
        }
    }

    private func run(_ sql: String, _ params: [SQLValue]) throws(StorageError) -> [SQLRow] {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else {
            throw .sql(String(cString: sqlite3_errmsg(db)), statement: sql)
        }
        defer { sqlite3_finalize(stmt) }
        guard Int(sqlite3_bind_parameter_count(stmt)) == params.count else {
            throw .sql("expected \(sqlite3_bind_parameter_count(stmt)) parameters, got \(params.count)", statement: sql)
        }
        for (i, p) in params.enumerated() {
            let idx = Int32(i + 1)
            let rc: Int32
            switch p {
            case .null: rc = sqlite3_bind_null(stmt, idx)
            case let .integer(v): rc = sqlite3_bind_int64(stmt, idx, v)
            case let .real(v): rc = sqlite3_bind_double(stmt, idx, v)
            case let .text(v): rc = sqlite3_bind_text(stmt, idx, v, -1, steward_sqlite_transient())
            case let .blob(v):
                rc = v.withUnsafeBytes { sqlite3_bind_blob64(stmt, idx, $0.baseAddress, sqlite3_uint64($0.count), steward_sqlite_transient()) }
            }
            guard rc == SQLITE_OK else { throw .sql(String(cString: sqlite3_errmsg(db)), statement: sql) }
        }
        var rows: [SQLRow] = []
        let columns = Int32(sqlite3_column_count(stmt))
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw .sql(String(cString: sqlite3_errmsg(db)), statement: sql) }
            var row: SQLRow = [:]
            for c in 0..<columns {
                let name = String(cString: sqlite3_column_name(stmt, c))
                switch sqlite3_column_type(stmt, c) {
                case SQLITE_INTEGER: row[name] = .integer(sqlite3_column_int64(stmt, c))
                case SQLITE_FLOAT: row[name] = .real(sqlite3_column_double(stmt, c))
                case SQLITE_TEXT: row[name] = .text(String(cString: sqlite3_column_text(stmt, c)))
                case SQLITE_BLOB:
                    let n = Int(sqlite3_column_bytes(stmt, c))
                    row[name] = .blob(n == 0 ? Data() : Data(bytes: sqlite3_column_blob(stmt, c), count: n))
                default: row[name] = .null
                }
            }
            rows.append(row)
        }
        return rows
    }
}

/// Where Steward keeps its state: `$STEWARD_HOME` (default ~/.cache/steward).
public enum StewardPaths {
    public static var home: String {
        if let h = ProcessInfo.processInfo.environment["STEWARD_HOME"], !h.isEmpty { return h }
        return NSHomeDirectory() + "/.cache/steward"
    }

    /// The deployment policy every command and `serve` read when no --policy is given.
    public static var defaultPolicyFile: String { home + "/policy.json" }

    /// `given`, else the default policy file when it exists, else nil (no policy).
    public static func policyFile(_ given: String?) -> String? {
        given ?? (FileManager.default.fileExists(atPath: defaultPolicyFile) ? defaultPolicyFile : nil)
    }

    /// Creates `dir` (and parents) if missing; a directory this creates is mode 0700.
    public static func makePrivateDirectory(_ dir: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) {
            if !isDir.boolValue { throw StorageError.cannotOpen(path: dir, reason: "exists and is not a directory") }
            return
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
    }

    /// Writes a data file readable only by its owner (mode 0600), atomically.
    public static func writePrivateFile(_ data: Data, to path: String) throws {
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StorageError.cannotOpen(path: tmp, reason: String(cString: strerror(errno))) }
        fchmod(fd, 0o600)
        let ok = data.withUnsafeBytes { buf -> Bool in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n <= 0 { return false }
                off += n
            }
            return fsync(fd) == 0
        }
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw StorageError.cannotOpen(path: path, reason: "cannot write: \(String(cString: strerror(errno)))")
        }
    }
}
