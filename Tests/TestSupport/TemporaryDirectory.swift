import Foundation

/// A temporary directory removed when the closure returns or throws.
public enum TemporaryDirectory {
    /// Creates a fresh directory under the system temp dir, passes its path to
    /// `body`, and removes it afterwards whatever happens.
    public static func with<T>(
        prefix: String = "qemubox-test",
        _ body: (String) async throws -> T
    ) async throws -> T {
        let path = try make(prefix)
        do {
            let result = try await body(path)
            try? FileManager.default.removeItem(atPath: path)
            return result
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
    }
}

extension TemporaryDirectory {
    /// A fresh directory `<tmp>/<prefix>.XXXXXX`.
    static func make(_ prefix: String) throws -> String {
        let base = FileManager.default.temporaryDirectory.path
        var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
        return try template.withUnsafeMutableBufferPointer { buf in
            guard let base = buf.baseAddress, mkdtemp(base) != nil else {
                throw POSIXError(.init(rawValue: errno) ?? .EIO)
            }
            return String(cString: base)
        }
    }

    /// ``with(prefix:_:)`` for synchronous bodies.
    public static func withSync<T>(prefix: String = "qemubox-test", _ body: (String) throws -> T) throws -> T {
        let path = try make(prefix)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }
}
