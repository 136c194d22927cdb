#if canImport(Glibc)
import Glibc
#endif
import Foundation
import OCISpec
import QemuboxAPI

/// A bind mount of a host file or directory that a container's spec asks for. The guest
/// cannot see the host's files, so qemubox copies the source into the VM (bounded: a
/// ttrpc message carries it) and bind-mounts the copy:
/// - read-only files and directories are kept current: a change on the host (a ConfigMap
///   or Secret the kubelet updates, an edited file) is synced into the copy in place;
/// - a read-write file is copied in at create and its content copied back into the host
///   file when the container is deleted (CRI's `/dev/termination-log`, `/etc/hosts`);
/// - a read-write directory is shared live through virtio-fs (``SharedDirectory``: virtiofsd
///   serves it; the guest mounts it where the copy would be);
/// - in a pod VM, the pod-scoped directories CRI hands every container of a pod (the
///   sandbox's `/dev/shm`, the kubelet's emptyDir volumes) live in the guest instead,
///   one per source, shared by the pod's containers (``podLocal``), as Kata does.
public struct HostMount: Sendable, Hashable {
    /// A file or a directory.
    public enum Kind: Sendable, Hashable {
        /// A regular file.
        case file
        /// A directory (and what is under it).
        case directory
    }

    /// The host path, as the spec names it (symlinks in it are followed, as runc does).
    public var source: String
    /// Where the container sees it.
    public var destination: String
    /// The container may not write it.
    public var readOnly: Bool
    /// File or directory.
    public var kind: Kind
    /// Where the copy lives in the guest.
    public var guestPath: String
    /// Its index in the spec's `mounts`.
    public var index: Int
    /// A pod-scoped directory kept in the guest (``PodLocal``), not copied or shared.
    public var podLocal: PodLocal?

    /// What a pod-scoped directory is in the guest.
    public enum PodLocal: Sendable, Hashable {
        /// A tmpfs (CRI's `/dev/shm` of the sandbox).
        case tmpfs
        /// A directory on the guest's root (an emptyDir volume).
        case directory
    }

    /// Shared live through virtio-fs (a read-write directory) rather than copied.
    public var shared: Bool { kind == .directory && !readOnly && podLocal == nil }
    /// Copied into the guest (files and read-only directories).
    public var copied: Bool { !shared && podLocal == nil }

    /// Where the guest keeps a pod-scoped directory: one per host source, so every
    /// container of the pod naming the same source sees the same directory.
    public static func podLocalPath(_ source: String) -> String {
        "/run/qemubox/pod/" + String(PodSpec.digest(source).prefix(16))
    }

    /// Whether a read-write directory is one of the pod-scoped ones CRI gives a pod's
    /// containers: the sandbox's shm directory at `/dev/shm`, or a kubelet emptyDir volume.
    static func podLocalKind(source: String, destination: String) -> PodLocal? {
        if destination == "/dev/shm" && source.hasSuffix("/shm") && source.contains("/sandboxes/") { return .tmpfs }
        if source.contains("/volumes/kubernetes.io~empty-dir/") { return .directory }
        return nil
    }

    /// The virtio-fs tag of a shared mount (unique in the VM: container and index).
    public func tag(containerID: String) -> String {
        "qbx-" + String(PodSpec.digest(containerID).prefix(16)) + "-\(index)"
    }

    /// virtiofsd's capability changes for a container: what its bounding set lacks of
    /// what virtiofsd would otherwise do on the guest's behalf (chown, set-id bits kept on
    /// write, device nodes, file capabilities, acting as the owner).
    public static func capabilityChanges(_ spec: RuntimeSpec) -> [String] {
        let bounding = Set(spec.process?.capabilities?.bounding ?? [])
        return ["CAP_CHOWN", "CAP_FOWNER", "CAP_FSETID", "CAP_MKNOD", "CAP_SETFCAP"]
            .filter { !bounding.contains($0) }
            .map { "-" + $0.dropFirst(4).lowercased() }
    }

    /// Bytes of file content one mount may hold (a `SyncTree` request must fit a ttrpc message).
    public static let maximumBytes = 3 << 20
    /// Entries one mount may hold.
    public static let maximumEntries = 4096
    /// Directory depth below a mount's root.
    static let maximumDepth = 32

    /// The spec's host bind mounts (type `bind`, or `bind`/`rbind` in the options, with an
    /// absolute source), each checked: a source that is neither a file nor a directory is
    /// an error naming the mount. With `podVM`, CRI's pod-scoped directories are ``podLocal``.
    public static func plan(_ spec: RuntimeSpec, guestBundle: String, podVM: Bool = false) throws -> [HostMount] {
        var mounts: [HostMount] = []
        for (index, mount) in (spec.mounts ?? []).enumerated() {
            let options = mount.options ?? []
            guard mount.type == "bind" || options.contains("bind") || options.contains("rbind") else { continue }
            guard let source = mount.source, source.hasPrefix("/") else {
                throw QemuboxError(.invalidArgument, "bind mount at \(mount.destination) needs an absolute source")
            }
            let readOnly = options.contains("ro")
            var info = stat()
            guard stat(source, &info) == 0 else {
                throw QemuboxError(.invalidArgument,
                    "bind mount \(source) at \(mount.destination): \(String(cString: strerror(errno)))")
            }
            let kind: Kind
            switch info.st_mode & S_IFMT {
            case S_IFREG: kind = .file
            case S_IFDIR: kind = .directory
            default:
                throw QemuboxError(.unimplemented,
                    "bind mount \(source) at \(mount.destination): qemubox copies bind mounts into the VM, and only files and directories can be copied")
            }
            var planned = HostMount(source: source, destination: mount.destination, readOnly: readOnly, kind: kind,
                                    guestPath: guestBundle + "/mounts/\(index)", index: index)
            if podVM, kind == .directory, !readOnly,
               let local = podLocalKind(source: source, destination: mount.destination) {
                planned.podLocal = local
                planned.guestPath = podLocalPath(source)
            }
            mounts.append(planned)
        }
        return mounts
    }

    /// The source as it is now, as `SyncTree` entries: the root first, parents before
    /// children, symlinks below the root kept as symlinks (never followed). Over the
    /// limits (``maximumBytes``, ``maximumEntries``) is an error naming them.
    public func snapshot() throws -> [Qemubox_Guest_V1_TreeEntry] {
        var entries: [Qemubox_Guest_V1_TreeEntry] = []
        var bytes = 0
        let rootFD = open(source, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard rootFD >= 0 else { throw failure("open") }
        defer { close(rootFD) }
        try add(fd: rootFD, path: "", entries: &entries, bytes: &bytes, depth: 0)
        return entries
    }

    private func failure(_ what: String, _ path: String = "") -> QemuboxError {
        QemuboxError(.system, "bind mount \(source)\(path.isEmpty ? "" : "/" + path): \(what): \(String(cString: strerror(errno)))")
    }

    private func limit(_ what: String) -> QemuboxError {
        QemuboxError(.resourceExhausted,
            "bind mount \(source) at \(destination) \(what): qemubox copies bind mounts into the VM, at most \(Self.maximumEntries) entries and \(Self.maximumBytes >> 20) MiB each")
    }

    /// Adds the object open at `fd` (named `path` below the root) and what is under it.
    private func add(fd: Int32, path: String, entries: inout [Qemubox_Guest_V1_TreeEntry], bytes: inout Int,
                     depth: Int) throws {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("stat", path) }
        var entry = Qemubox_Guest_V1_TreeEntry()
        entry.path = path
        entry.mode = UInt32(info.st_mode & 0o7777)
        entry.uid = info.st_uid
        entry.gid = info.st_gid
        guard entries.count < Self.maximumEntries else { throw limit("holds more than \(Self.maximumEntries) entries") }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            guard bytes + Int(info.st_size) <= Self.maximumBytes else { throw limit("holds more than \(Self.maximumBytes >> 20) MiB") }
            entry.kind = .file
            entry.data = try readAll(fd, size: Int(info.st_size), path: path)
            bytes += entry.data.count
            entries.append(entry)
        case S_IFDIR:
            guard depth <= Self.maximumDepth else { throw limit("is deeper than \(Self.maximumDepth) directories") }
            entry.kind = .directory
            entries.append(entry)
            for name in try names(fd, path).sorted() {
                let child = path.isEmpty ? name : path + "/" + name
                var childInfo = stat()
                guard fstatat(fd, name, &childInfo, AT_SYMLINK_NOFOLLOW) == 0 else {
                    if errno == ENOENT { continue }   // removed while we read
                    throw failure("stat", child)
                }
                switch childInfo.st_mode & S_IFMT {
                case S_IFLNK:
                    var link = Qemubox_Guest_V1_TreeEntry()
                    link.path = child
                    link.kind = .symlink
                    link.uid = childInfo.st_uid
                    link.gid = childInfo.st_gid
                    var buffer = [CChar](repeating: 0, count: 4097)
                    let n = readlinkat(fd, name, &buffer, 4096)
                    guard n > 0 else { throw failure("readlink", child) }
                    link.target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    guard entries.count < Self.maximumEntries else { throw limit("holds more than \(Self.maximumEntries) entries") }
                    entries.append(link)
                case S_IFREG, S_IFDIR:
                    let childFD = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
                    guard childFD >= 0 else {
                        if errno == ENOENT { continue }
                        throw failure("open", child)
                    }
                    defer { close(childFD) }
                    try add(fd: childFD, path: child, entries: &entries, bytes: &bytes, depth: depth + 1)
                default:
                    // Sockets, FIFOs and devices have no content to copy; the container sees none.
                    continue
                }
            }
        default:
            throw QemuboxError(.unimplemented, "bind mount \(source): \(path) is neither a file nor a directory")
        }
    }

    private func readAll(_ fd: Int32, size: Int, path: String) throws -> Data {
        var data = Data(count: size)
        var total = 0
        while total < size {
            let n = data.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return pread(fd, base + total, size - total, off_t(total))
            }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw failure("read", path) }
            if n == 0 { break }   // shrank while we read: the watcher syncs again
            total += n
        }
        return data.prefix(total)
    }

    private func names(_ fd: Int32, _ path: String) throws -> [String] {
        let copy = dup(fd)
        guard copy >= 0, let stream = fdopendir(copy) else { throw failure("read directory", path) }
        defer { closedir(stream) }
        return directoryNames(stream)
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
