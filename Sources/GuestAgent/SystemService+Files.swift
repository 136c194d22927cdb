#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import QemuboxAPI
import SwiftProtobuf
import TTRPCCodec

/// Bounds for the copies of host bind mounts.
enum TreeLimits {
    /// Entries in one tree.
    static let entries = 8192
    /// Bytes of one name (a component) and of one relative path.
    static let component = 255
    static let path = 4096
}

extension SystemService {
    public func syncTree(_ request: Qemubox_Guest_V1_SyncTreeRequest, context: TTRPCRequestContext) async throws
        -> SwiftProtobuf.Google_Protobuf_Empty
    {
        try await Blocking.run { try TreeSync(request).run() }
        return Google_Protobuf_Empty()
    }

    public func readFile(_ request: Qemubox_Guest_V1_ReadFileRequest, context: TTRPCRequestContext) async throws
        -> Qemubox_Guest_V1_ReadFileResponse
    {
        try await Blocking.run {
            guard request.path.hasPrefix("/") else {
                throw GuestAgentError(.invalidArgument, "path \(request.path) is not absolute")
            }
            let fd = open(request.path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else { throw GuestAgentError.system("open \(request.path)") }
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw GuestAgentError.system("stat \(request.path)") }
            guard info.st_mode & S_IFMT == S_IFREG else {
                throw GuestAgentError(.invalidArgument, "\(request.path) is not a regular file")
            }
            guard UInt64(info.st_size) <= request.maxBytes else {
                throw GuestAgentError(.failedPrecondition,
                    "\(request.path) holds \(info.st_size) bytes, more than the \(request.maxBytes) asked for")
            }
            var bytes = [UInt8](repeating: 0, count: Int(request.maxBytes) + 1)
            var total = 0
            while total < bytes.count {
                let n = bytes.withUnsafeMutableBytes { raw -> Int in
                    guard let base = raw.baseAddress else { return 0 }
                    return read(fd, base + total, raw.count - total)
                }
                if n < 0, errno == EINTR { continue }
                guard n >= 0 else { throw GuestAgentError.system("read \(request.path)") }
                if n == 0 { break }
                total += n
            }
            guard UInt64(total) <= request.maxBytes else {
                throw GuestAgentError(.failedPrecondition, "\(request.path) grew beyond \(request.maxBytes) bytes")
            }
            var response = Qemubox_Guest_V1_ReadFileResponse()
            response.data = Data(bytes[0..<total])
            return response
        }
    }
}

/// One `SyncTree` call: makes a directory (or a file) hold exactly the listed entries.
/// Every name is resolved component by component from the root's descriptor without
/// following symlinks, so nothing outside the root is touched.
struct TreeSync {
    let root: String
    let entries: [Qemubox_Guest_V1_TreeEntry]

    init(_ request: Qemubox_Guest_V1_SyncTreeRequest) {
        root = request.path
        entries = request.entries
    }

    func run() throws {
        guard root.hasPrefix("/"), root.count > 1, !root.hasSuffix("/"), !root.split(separator: "/").contains("..") else {
            throw GuestAgentError(.invalidArgument, "tree root \(root) is not an absolute path")
        }
        guard entries.count <= TreeLimits.entries else {
            throw GuestAgentError(.invalidArgument, "\(entries.count) entries: at most \(TreeLimits.entries)")
        }
        guard let first = entries.first, first.path.isEmpty else {
            throw GuestAgentError(.invalidArgument, "the first entry must be the root's (path \"\")")
        }
        var listed: Set<String> = [""]
        for entry in entries.dropFirst() {
            try Self.validate(entry.path)
            guard listed.insert(entry.path).inserted else {
                throw GuestAgentError(.invalidArgument, "\(entry.path) is listed twice")
            }
            let parent = Self.parent(entry.path)
            guard listed.contains(parent), parent.isEmpty || entries.contains(where: { $0.path == parent && $0.kind == .directory }) else {
                throw GuestAgentError(.invalidArgument, "\(entry.path) comes before its directory")
            }
        }
        let parentPath = String(root[..<(root.lastIndex(of: "/") ?? root.startIndex)])
        if !parentPath.isEmpty { try ensureDirectory(parentPath) }
        switch first.kind {
        case .file:
            guard entries.count == 1 else { throw GuestAgentError(.invalidArgument, "a file root has no children") }
            try writeInPlace(root, first)
        case .directory:
            if mkdir(root, mode_t(first.mode & 0o7777)) != 0, errno != EEXIST { throw GuestAgentError.system("mkdir \(root)") }
            let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard rootFD >= 0 else { throw GuestAgentError.system("open \(root)") }
            defer { close(rootFD) }
            try setAttributes(fd: rootFD, first)
            for entry in entries.dropFirst() { try apply(entry, rootFD: rootFD) }
            try prune(rootFD, prefix: "", listed: listed)
        default:
            throw GuestAgentError(.invalidArgument, "the root of \(root) must be a file or a directory")
        }
    }

    static func validate(_ path: String) throws {
        guard !path.isEmpty, path.utf8.count <= TreeLimits.path else {
            throw GuestAgentError(.invalidArgument, "entry path of \(path.utf8.count) bytes")
        }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            guard !component.isEmpty, component != ".", component != "..", component.utf8.count <= TreeLimits.component,
                  !component.utf8.contains(0) else {
                throw GuestAgentError(.invalidArgument, "entry path \(path) has an invalid component")
            }
        }
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[..<slash])
    }

    static func name(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// Opens the directory `path` (relative to the root) without following any symlink.
    func openDirectory(_ path: String, rootFD: Int32) throws -> Int32 {
        var fd = dup(rootFD)
        guard fd >= 0 else { throw GuestAgentError.system("dup") }
        for component in path.split(separator: "/") {
            let next = openat(fd, String(component), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let err = errno
            close(fd)
            guard next >= 0 else { throw GuestAgentError.system("open \(root)/\(path)", errno: err) }
            fd = next
        }
        return fd
    }

    func apply(_ entry: Qemubox_Guest_V1_TreeEntry, rootFD: Int32) throws {
        let dir = try openDirectory(Self.parent(entry.path), rootFD: rootFD)
        defer { close(dir) }
        let name = Self.name(entry.path)
        var existing = stat()
        let exists = fstatat(dir, name, &existing, AT_SYMLINK_NOFOLLOW) == 0
        let type = existing.st_mode & S_IFMT
        switch entry.kind {
        case .directory:
            if exists && type != S_IFDIR { try removeAll(dir, name) }
            if !exists || type != S_IFDIR {
                guard mkdirat(dir, name, 0o700) == 0 else { throw GuestAgentError.system("mkdir \(root)/\(entry.path)") }
            }
            let fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw GuestAgentError.system("open \(root)/\(entry.path)") }
            defer { close(fd) }
            try setAttributes(fd: fd, entry)
        case .file:
            if exists && type == S_IFREG && (try? same(dir, name, entry, existing)) == true { return }
            if exists && type == S_IFDIR { try removeAll(dir, name) }
            let temp = ".qbx-sync-\(UInt32.random(in: 0...UInt32.max))"
            let fd = openat(dir, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw GuestAgentError.system("create \(root)/\(entry.path)") }
            do {
                try writeAll(fd, entry.data, "\(root)/\(entry.path)")
                try setAttributes(fd: fd, entry)
                close(fd)
            } catch {
                close(fd)
                unlinkat(dir, temp, 0)
                throw error
            }
            guard renameat(dir, temp, dir, name) == 0 else {
                let failure = GuestAgentError.system("rename into \(root)/\(entry.path)")
                unlinkat(dir, temp, 0)
                throw failure
            }
        case .symlink:
            guard !entry.target.isEmpty, entry.target.utf8.count <= TreeLimits.path, !entry.target.utf8.contains(0) else {
                throw GuestAgentError(.invalidArgument, "symlink \(entry.path) has an invalid target")
            }
            if exists && type == S_IFLNK && readLink(dir, name) == entry.target { return }
            if exists && type == S_IFDIR { try removeAll(dir, name) }
            let temp = ".qbx-sync-\(UInt32.random(in: 0...UInt32.max))"
            guard symlinkat(entry.target, dir, temp) == 0 else { throw GuestAgentError.system("symlink \(root)/\(entry.path)") }
            fchownat(dir, temp, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW)
            guard renameat(dir, temp, dir, name) == 0 else {
                let failure = GuestAgentError.system("rename into \(root)/\(entry.path)")
                unlinkat(dir, temp, 0)
                throw failure
            }
        default:
            throw GuestAgentError(.invalidArgument, "entry \(entry.path) has an unknown kind")
        }
    }

    /// A file root: rewritten in the same inode (a bind mount of it pins the inode).
    func writeInPlace(_ path: String, _ entry: Qemubox_Guest_V1_TreeEntry) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode_t(entry.mode & 0o7777))
        guard fd >= 0 else { throw GuestAgentError.system("open \(path)") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw GuestAgentError(.invalidArgument, "\(path) is not a regular file")
        }
        try writeAll(fd, entry.data, path)
        guard ftruncate(fd, off_t(entry.data.count)) == 0 else { throw GuestAgentError.system("truncate \(path)") }
        try setAttributes(fd: fd, entry)
    }

    func writeAll(_ fd: Int32, _ data: Data, _ what: String) throws {
        try data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let n = pwrite(fd, base + offset, raw.count - offset, off_t(offset))
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { throw GuestAgentError.system("write \(what)") }
                offset += n
            }
        }
    }

    func setAttributes(fd: Int32, _ entry: Qemubox_Guest_V1_TreeEntry) throws {
        guard fchown(fd, entry.uid, entry.gid) == 0, fchmod(fd, mode_t(entry.mode & 0o7777)) == 0 else {
            throw GuestAgentError.system("set owner and mode of \(root)/\(entry.path)")
        }
    }

    /// Whether the existing file already has the entry's content, mode and owner.
    func same(_ dir: Int32, _ name: String, _ entry: Qemubox_Guest_V1_TreeEntry, _ info: stat) throws -> Bool {
        guard info.st_size == entry.data.count, info.st_mode & 0o7777 == mode_t(entry.mode & 0o7777),
              info.st_uid == entry.uid, info.st_gid == entry.gid else { return false }
        let fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: entry.data.count)
        var total = 0
        while total < bytes.count {
            let n = bytes.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return pread(fd, base + total, raw.count - total, off_t(total))
            }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return false }
            total += n
        }
        return bytes.elementsEqual(entry.data)
    }

    func readLink(_ dir: Int32, _ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: TreeLimits.path + 1)
        let n = readlinkat(dir, name, &buffer, buffer.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes what is under the directory `prefix` and not listed (depth first).
    func prune(_ rootFD: Int32, prefix: String, listed: Set<String>) throws {
        let dir = try openDirectory(prefix, rootFD: rootFD)
        defer { close(dir) }
        for name in try names(dir) {
            let path = prefix.isEmpty ? name : prefix + "/" + name
            var info = stat()
            guard fstatat(dir, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if !listed.contains(path) {
                try removeAll(dir, name)
            } else if info.st_mode & S_IFMT == S_IFDIR {
                try prune(rootFD, prefix: path, listed: listed)
            }
        }
    }

    /// The names in a directory (without `.` and `..`); `dir` stays open.
    func names(_ dir: Int32) throws -> [String] {
        let copy = dup(dir)
        guard copy >= 0, let stream = fdopendir(copy) else { throw GuestAgentError.system("read \(root)") }
        defer { closedir(stream) }
        return directoryNames(stream)
    }

    /// Removes `name` in `dir`, a directory with everything in it, without following symlinks.
    func removeAll(_ dir: Int32, _ name: String) throws {
        if unlinkat(dir, name, 0) == 0 || errno == ENOENT { return }
        guard errno == EISDIR else { throw GuestAgentError.system("remove \(root)/…/\(name)") }
        let child = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard child >= 0 else { throw GuestAgentError.system("open \(root)/…/\(name)") }
        defer { close(child) }
        for each in try names(child) { try removeAll(child, each) }
        guard unlinkat(dir, name, AT_REMOVEDIR) == 0 || errno == ENOENT else {
            throw GuestAgentError.system("remove \(root)/…/\(name)")
        }
    }
}

/// The names in an open directory stream, without `.` and `..`, in the order `readdir` gives.
func directoryNames(_ stream: OpaquePointer) -> [String] {
    var names: [String] = []
    while let entry = readdir(stream) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
