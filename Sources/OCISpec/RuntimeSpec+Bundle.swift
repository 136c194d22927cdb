#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension RuntimeSpec {
    /// The file name of a bundle's configuration.
    public static let bundleFileName = "config.json"

    /// Loads `<bundle>/config.json`.
    public static func load(bundle: String) throws(OCISpecError) -> RuntimeSpec {
        try load(contentsOf: bundle + "/" + bundleFileName)
    }

    /// Loads a `config.json` from `path`.
    public static func load(contentsOf path: String) throws(OCISpecError) -> RuntimeSpec {
        try RuntimeSpec(json: OCIFile.read(path))
    }

    /// Writes `<bundle>/config.json` atomically (see ``write(to:pretty:)``).
    public func save(bundle: String, pretty: Bool = true) throws(OCISpecError) {
        try write(to: bundle + "/" + Self.bundleFileName, pretty: pretty)
    }

    /// Writes the spec to `path` atomically: into a temporary file in the same
    /// directory, flushed to disk, then renamed over `path`. Readers see either
    /// the old or the new file, never a partial one; on failure the temporary
    /// file is removed and `path` is untouched. The file gets mode 0644.
    public func write(to path: String, pretty: Bool = true) throws(OCISpecError) {
        try OCIFile.writeAtomically(jsonData(pretty: pretty), to: path)
    }

    /// The root filesystem's absolute path: `root.path` as is when absolute,
    /// else resolved against `bundle`. Nil when `root.path` is absent.
    public func rootfsPath(bundle: String) -> String? {
        guard let path = root?.path else { return nil }
        if path.hasPrefix("/") { return path }
        return bundle.hasSuffix("/") ? bundle + path : bundle + "/" + path
    }

    /// A copy of this spec with `change` applied; the original is untouched.
    public func with(_ change: (inout RuntimeSpec) throws -> Void) rethrows -> RuntimeSpec {
        var copy = self
        try change(&copy)
        return copy
    }
}

extension RuntimeSpec {
    /// The first `linux.namespaces` entry of `type`, or nil.
    public func namespace(_ type: NamespaceType) -> Namespace? {
        linux?.namespaces?.first { $0.type == type }
    }

    /// Whether the container gets (creates or joins) a namespace of `type`.
    public func hasNamespace(_ type: NamespaceType) -> Bool {
        namespace(type) != nil
    }

    /// Adds a namespace of `type` (joining `path` if given), or updates the
    /// existing entry's path in place, keeping its other members.
    public mutating func setNamespace(_ type: NamespaceType, path: String? = nil) {
        var linux = self.linux ?? Linux()
        var namespaces = linux.namespaces ?? []
        if let index = namespaces.firstIndex(where: { $0.type == type }) {
            namespaces[index].path = path
        } else {
            namespaces.append(Namespace(type: type, path: path))
        }
        linux.namespaces = namespaces
        self.linux = linux
    }

    /// Removes every namespace entry of `type`; returns whether one was removed.
    @discardableResult
    public mutating func removeNamespace(_ type: NamespaceType) -> Bool {
        guard let before = linux?.namespaces?.count else { return false }
        linux?.namespaces?.removeAll { $0.type == type }
        return linux?.namespaces?.count != before
    }

    /// The value of annotation `key`, or nil.
    public func annotation(_ key: String) -> String? {
        annotations?[key]
    }
}

/// File I/O with ``OCISpecError`` errors.
enum OCIFile {
    static func read(_ path: String) throws(OCISpecError) -> Data {
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw OCISpecError(.io, path: "", "cannot read \(path): \(describe(error))")
        }
    }

    /// The system's text for a file error (e.g. "No such file or directory"); FoundationEssentials
    /// has no `localizedDescription`.
    static func describe(_ error: any Error) -> String {
        if let posix = (error as? CocoaError)?.underlying as? POSIXError ?? error as? POSIXError {
            return String(cString: strerror(posix.code.rawValue))
        }
        return "\(error)"
    }

    static func writeAtomically(_ data: Data, to path: String) throws(OCISpecError) {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        var template = Array("\(directory)/.\(url.lastPathComponent).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { buffer -> Int32 in
            guard let base = buffer.baseAddress else { return -1 }
            return mkstemp(base)
        }
        guard fd >= 0 else {
            throw OCISpecError(.io, path: "", "cannot create a temporary file in \(directory): \(errorText(errno))")
        }
        let temporary = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var committed = false
        defer { if !committed { unlink(temporary) } }
        let failure = writeAll(fd, data) ?? (fchmod(fd, 0o644) == 0 && fsync(fd) == 0 ? nil : errno)
        let closed = close(fd) == 0 ? nil : errno
        if let error = failure ?? closed {
            throw OCISpecError(.io, path: "", "cannot write \(temporary): \(errorText(error))")
        }
        guard rename(temporary, path) == 0 else {
            throw OCISpecError(.io, path: "", "cannot rename onto \(path): \(errorText(errno))")
        }
        committed = true
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY)
        if dirfd >= 0 {
            _ = fsync(dirfd)
            close(dirfd)
        }
    }

    /// Writes all of `data`; returns errno on failure.
    private static func writeAll(_ fd: Int32, _ data: Data) -> Int32? {
        data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) -> Int32? in
            guard let base = buffer.baseAddress else { return nil }
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, base + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += n
            }
            return nil
        }
    }

    private static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}
