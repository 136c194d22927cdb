#if canImport(Glibc)
import Glibc
#endif
import CQemuboxSupport
import Foundation
import QemuboxAPI

/// Applies a writable layer streamed by the guest (`System/ExportChanges`) to a host
/// directory without ever mounting what the guest wrote. Every record is hostile
/// input: names are checked component by component and resolved with `openat2`
/// strictly beneath the target (no symlinks, no "..", no other mounts); sizes,
/// counts and offsets are bounded by the ``WritebackPolicy``; ownership, set-id
/// bits, device nodes and extended attributes the container could not have made
/// under runc are refused (counted, logged by the caller) and the rest applied.
/// Protocol violations (bad names, data for another file, limits) end the
/// writeback with a `rootfs` error.
public final class ChangeApplier {
    /// What a writeback did.
    public struct Summary: Sendable, Hashable {
        /// Records applied.
        public var entries = 0
        /// File data written.
        public var dataBytes: UInt64 = 0
        /// What the policy refused, one line each (the first 20).
        public var refused: [String] = []
        /// How many things were refused.
        public var refusedCount = 0
    }

    let target: RootfsWriteback.Target
    let policy: WritebackPolicy
    let root: Int32
    private(set) var summary = Summary()
    private var records = 0
    private var current: (fd: Int32, path: String, record: Qemubox_Guest_V1_ChangeRecord)?
    private var files: Set<String> = []
    private var directories: [Qemubox_Guest_V1_ChangeRecord] = []

    /// Opens `target.directory` (which must exist) for applying.
    public init(target: RootfsWriteback.Target, policy: WritebackPolicy) throws {
        self.target = target
        self.policy = policy
        root = open(target.directory, Self.pathOnly | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { throw Self.error("cannot open \(target.directory)", errno) }
    }

    deinit {
        if let current { close(current.fd) }
        close(root)
    }

    /// O_PATH (Linux; the Glibc overlay does not export it).
    static let pathOnly: Int32 = 0o10000000

    static func error(_ what: String, _ err: Int32) -> QemuboxError {
        QemuboxError(.rootfs, "writeback: \(what): \(String(cString: strerror(err)))")
    }

    static func violation(_ what: String) -> QemuboxError {
        QemuboxError(.rootfs, "writeback refused: \(what)")
    }

    func refuse(_ what: String) {
        summary.refusedCount += 1
        if summary.refused.count < 20 { summary.refused.append(what) }
    }

    // MARK: names

    /// The components of a relative path, each a plain name.
    static func components(_ path: String) throws -> [String] {
        guard !path.isEmpty, path.utf8.count <= 4096, !path.hasPrefix("/"), !path.contains("\0") else {
            throw violation("bad path \(path.debugDescription.prefix(200))")
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 256, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && $0.utf8.count <= 255 }) else {
            throw violation("bad path \(path.debugDescription.prefix(200))")
        }
        return parts
    }

    /// Runs `body` with the parent directory of `path` (resolved beneath the target) and the last name.
    func withParent<T>(_ path: String, _ body: (Int32, String) throws -> T) throws -> T {
        let parts = try Self.components(path)
        let name = parts[parts.count - 1]
        guard parts.count > 1 else { return try body(root, name) }
        let parent = parts.dropLast().joined(separator: "/")
        let fd = qbx_open_beneath(root, parent, Self.pathOnly | O_DIRECTORY, 0)
        guard fd >= 0 else { throw Self.error("cannot open \(parent) beneath \(target.directory)", errno) }
        defer { close(fd) }
        return try body(fd, name)
    }

    // MARK: records

    /// Applies one record.
    public func apply(_ record: Qemubox_Guest_V1_ChangeRecord) throws {
        records += 1
        guard records <= policy.maxEntries else { throw Self.violation("more than \(policy.maxEntries) records") }
        if record.kind == .data {
            try write(record)
            return
        }
        try finishFile()
        guard record.xattrs.count <= 128, record.xattrs.allSatisfy({ $0.value.count <= 65536 && $0.name.utf8.count <= 255 }) else {
            throw Self.violation("\(record.path): too many or too large extended attributes")
        }
        summary.entries += 1
        try withParent(record.path) { parent, name in
            switch record.kind {
            case .directory: try directory(record, parent, name)
            case .file: try file(record, parent, name)
            case .symlink: try symlink(record, parent, name)
            case .hardlink: try hardlink(record, parent, name)
            case .whiteout: try whiteout(parent, name)
            case .fifo, .charDevice, .blockDevice: try node(record, parent, name)
            case .data, .UNRECOGNIZED: throw Self.violation("\(record.path): unknown record kind")
            }
        }
    }

    /// Completes the writeback: the last file, then directory modes, owners and times (deepest first).
    public func finish() throws -> Summary {
        try finishFile()
        for record in directories.reversed() {
            try withParent(record.path) { parent, name in
                let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else { throw Self.error("cannot open \(record.path)", errno) }
                defer { close(fd) }
                try metadata(record, fd: fd)
            }
        }
        directories = []
        return summary
    }

    private func directory(_ record: Qemubox_Guest_V1_ChangeRecord, _ parent: Int32, _ name: String) throws {
        var s = stat()
        if fstatat(parent, name, &s, AT_SYMLINK_NOFOLLOW) == 0, s.st_mode & S_IFMT == S_IFDIR {
            if record.opaque { try removeChildren(parent, name) }
        } else {
            try removeExisting(parent, name)
            guard mkdirat(parent, name, 0o700) == 0 else { throw Self.error("mkdir \(record.path)", errno) }
        }
        if record.opaque && target.mode == .overlayUpper {
            let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0, fsetxattr(fd, RootfsWriteback.opaqueXattr, "y", 1, 0) == 0 else {
                let err = errno
                if fd >= 0 { close(fd) }
                throw Self.error("mark \(record.path) opaque", err)
            }
            close(fd)
        }
        directories.append(record)
    }

    private func file(_ record: Qemubox_Guest_V1_ChangeRecord, _ parent: Int32, _ name: String) throws {
        guard record.size <= policy.maxFileSize else { throw Self.violation("\(record.path): size \(record.size)") }
        try removeExisting(parent, name)
        let fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Self.error("create \(record.path)", errno) }
        guard ftruncate(fd, off_t(record.size)) == 0 else {
            let err = errno
            close(fd)
            throw Self.error("size \(record.path)", err)
        }
        current = (fd, record.path, record)
        files.insert(record.path)
    }

    private func write(_ record: Qemubox_Guest_V1_ChangeRecord) throws {
        guard let current, current.path == record.path else {
            throw Self.violation("data for \(record.path.prefix(200)) does not follow its file")
        }
        let count = UInt64(record.data.count)
        guard record.offset <= current.record.size, count <= current.record.size - record.offset else {
            throw Self.violation("\(record.path): data beyond the file's size")
        }
        summary.dataBytes += count
        guard summary.dataBytes <= policy.maxDataBytes else {
            throw Self.violation("more than \(policy.maxDataBytes) bytes of file data (the writable layer's size)")
        }
        try record.data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var done = 0
            while done < raw.count {
                let n = pwrite(current.fd, base + done, raw.count - done, off_t(record.offset) + off_t(done))
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { throw Self.error("write \(record.path)", errno) }
                done += n
            }
        }
    }

    private func finishFile() throws {
        guard let file = current else { return }
        current = nil
        defer { close(file.fd) }
        try metadata(file.record, fd: file.fd)
    }

    private func symlink(_ record: Qemubox_Guest_V1_ChangeRecord, _ parent: Int32, _ name: String) throws {
        guard !record.link.isEmpty, record.link.utf8.count < 4096, !record.link.contains("\0") else {
            throw Self.violation("\(record.path): bad symlink target")
        }
        try removeExisting(parent, name)
        guard symlinkat(record.link, parent, name) == 0 else { throw Self.error("symlink \(record.path)", errno) }
        try owner(record, parent, name)
        try times(record, parent, name)
    }

    private func hardlink(_ record: Qemubox_Guest_V1_ChangeRecord, _ parent: Int32, _ name: String) throws {
        // Only a second name of a file this stream wrote: never a host file.
        guard files.contains(record.link) else {
            throw Self.violation("\(record.path): hard link to \(record.link.prefix(200)), which this layer did not write")
        }
        try removeExisting(parent, name)
        try withParent(record.link) { sourceParent, sourceName in
            guard linkat(sourceParent, sourceName, parent, name, 0) == 0 else {
                throw Self.error("link \(record.path)", errno)
            }
        }
    }

    private func whiteout(_ parent: Int32, _ name: String) throws {
        try removeExisting(parent, name)
        guard target.mode == .overlayUpper else { return }
        guard qbx_mknodat(parent, name, UInt32(S_IFCHR), 0, 0) == 0 else { throw Self.error("whiteout \(name)", errno) }
    }

    private func node(_ record: Qemubox_Guest_V1_ChangeRecord, _ parent: Int32, _ name: String) throws {
        let type: UInt32
        switch record.kind {
        case .fifo: type = UInt32(S_IFIFO)
        case .charDevice: type = UInt32(S_IFCHR)
        default: type = UInt32(S_IFBLK)
        }
        if type != UInt32(S_IFIFO) && !policy.devices {
            refuse("\(record.path): device node \(record.rdevMajor):\(record.rdevMinor) without CAP_MKNOD")
            return
        }
        try removeExisting(parent, name)
        guard qbx_mknodat(parent, name, type | 0o600, record.rdevMajor, record.rdevMinor) == 0 else {
            throw Self.error("mknod \(record.path)", errno)
        }
        let ((uid, gid), mode) = admittedIDs(record)
        guard fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw Self.error("chown \(record.path)", errno)
        }
        guard fchmodat(parent, name, mode_t(mode), 0) == 0 else { throw Self.error("chmod \(record.path)", errno) }
        try times(record, parent, name)
    }

    // MARK: metadata

    /// Owner and mode the policy admits for a record (refusals counted).
    func admittedIDs(_ record: Qemubox_Guest_V1_ChangeRecord) -> ((UInt32, UInt32), UInt32) {
        var ids = (record.uid, record.gid)
        var ownerRefused = false
        if !policy.admitsOwner(uid: record.uid, gid: record.gid) {
            refuse("\(record.path): owner \(record.uid):\(record.gid)")
            ids = (policy.uid, policy.gid)
            ownerRefused = true
        }
        var mode = record.mode & 0o7777
        if mode & 0o6000 != 0 && (ownerRefused || (!policy.setID && !(ids.0 == policy.uid && ids.1 == policy.gid))) {
            refuse("\(record.path): set-id bits on a file of \(ids.0):\(ids.1)")
            mode &= ~UInt32(0o6000)
        }
        return (ids, mode)
    }

    private func owner(_ record: Qemubox_Guest_V1_ChangeRecord, _ parent: Int32, _ name: String) throws {
        let ((uid, gid), _) = admittedIDs(record)
        guard fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw Self.error("chown \(record.path)", errno)
        }
    }

    private func times(_ record: Qemubox_Guest_V1_ChangeRecord, _ parent: Int32, _ name: String) throws {
        var spec = Self.times(record)
        guard utimensat(parent, name, &spec, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw Self.error("set times of \(record.path)", errno)
        }
    }

    /// Owner, mode (chown first: it clears set-id bits), extended attributes and times of an open file or directory.
    private func metadata(_ record: Qemubox_Guest_V1_ChangeRecord, fd: Int32) throws {
        let ((uid, gid), mode) = admittedIDs(record)
        guard fchown(fd, uid, gid) == 0 else { throw Self.error("chown \(record.path)", errno) }
        guard fchmod(fd, mode_t(mode)) == 0 else { throw Self.error("chmod \(record.path)", errno) }
        for attribute in record.xattrs {
            guard policy.admitsAttribute(attribute.name) else {
                refuse("\(record.path): attribute \(attribute.name.prefix(64))")
                continue
            }
            let ok = attribute.value.withUnsafeBytes { raw in
                fsetxattr(fd, attribute.name, raw.baseAddress, raw.count, 0) == 0
            }
            if !ok { throw Self.error("set \(attribute.name) on \(record.path)", errno) }
        }
        var spec = Self.times(record)
        guard futimens(fd, &spec) == 0 else { throw Self.error("set times of \(record.path)", errno) }
    }

    /// Access and modification times for `utimensat`/`futimens`: the record's mtime for both.
    static func times(_ record: Qemubox_Guest_V1_ChangeRecord) -> [timespec] {
        let time = timespec(tv_sec: Int(record.mtimeSeconds), tv_nsec: Int(min(record.mtimeNanoseconds, 999_999_999)))
        return [time, time]
    }

    // MARK: removal

    /// Removes `name` in `parent` (a whole tree for a directory), if present.
    private func removeExisting(_ parent: Int32, _ name: String) throws {
        var s = stat()
        guard fstatat(parent, name, &s, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if s.st_mode & S_IFMT == S_IFDIR {
            try removeChildren(parent, name)
            guard unlinkat(parent, name, AT_REMOVEDIR) == 0 else { throw Self.error("remove \(name)", errno) }
        } else {
            guard unlinkat(parent, name, 0) == 0 else { throw Self.error("remove \(name)", errno) }
        }
    }

    /// Empties the directory `name` in `parent` (never following symlinks).
    private func removeChildren(_ parent: Int32, _ name: String) throws {
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Self.error("open \(name)", errno) }
        guard let handle = fdopendir(fd) else {
            close(fd)
            throw Self.error("list \(name)", errno)
        }
        defer { closedir(handle) }
        for child in directoryNames(handle) { try removeExisting(dirfd(handle), child) }
    }
}
