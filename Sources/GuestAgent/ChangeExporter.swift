#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CGuestAgentSupport
import QemuboxAPI

/// Streams a container's writable layer (an overlay upper directory) to the host
/// as `ChangeRecord`s (`System/ExportChanges`): a depth-first walk, parents before
/// children, names sorted; overlay's whiteouts and opaque markers become record
/// kinds, a file's second names become HARDLINK records, and file data follows
/// its FILE record in DATA records of at most ``chunkBytes``, holes skipped.
/// File system calls run through ``Blocking/run(_:)``.
enum ChangeExporter {
    /// Data per DATA record.
    static let chunkBytes = 1 << 20
    /// The only tree that may be exported.
    static let allowedRoot = "/run/qemubox/"

    /// One directory entry, read on the thread pool.
    struct Entry: Sendable {
        var name: String
        var stat: stat
        var link: String
        var xattrs: [(String, Data)]
        var opaque: Bool
    }

    static func export(directory: String, send: (Qemubox_Guest_V1_ChangeRecord) async throws -> Void) async throws {
        guard directory.hasPrefix(allowedRoot), !directory.split(separator: "/").contains(".."),
              !directory.contains("\0") else {
            throw GuestAgentError(.invalidArgument, "ExportChanges: \(directory) is not under \(allowedRoot)")
        }
        guard try await Blocking.run({ isDirectory(directory) }) else {
            throw GuestAgentError(.notFound, "ExportChanges: \(directory) is not a directory")
        }
        var firstNames: [String: String] = [:]  // "dev:ino" of multiply-linked files → first path
        var pending: [String] = [""]
        while let relative = pending.popLast() {
            let entries = try await Blocking.run { try list(directory, relative) }
            var subdirectories: [String] = []
            for entry in entries {
                let path = relative.isEmpty ? entry.name : relative + "/" + entry.name
                var record = Qemubox_Guest_V1_ChangeRecord()
                record.path = path
                record.mode = UInt32(entry.stat.st_mode & 0o7777)
                record.uid = entry.stat.st_uid
                record.gid = entry.stat.st_gid
                record.mtimeSeconds = Int64(entry.stat.st_mtim.tv_sec)
                record.mtimeNanoseconds = UInt32(clamping: entry.stat.st_mtim.tv_nsec)
                record.xattrs = entry.xattrs.map { name, value in
                    var x = Qemubox_Guest_V1_ExtendedAttribute()
                    x.name = name
                    x.value = value
                    return x
                }
                let type = entry.stat.st_mode & S_IFMT
                let device = (major: UInt32(qb_dev_major(UInt64(entry.stat.st_rdev))), minor: UInt32(qb_dev_minor(UInt64(entry.stat.st_rdev))))
                switch type {
                case S_IFDIR:
                    record.kind = .directory
                    record.opaque = entry.opaque
                    try await send(record)
                    subdirectories.append(path)
                case S_IFLNK:
                    record.kind = .symlink
                    record.link = entry.link
                    try await send(record)
                case S_IFCHR where device == (0, 0):
                    record.kind = .whiteout
                    record.xattrs = []
                    try await send(record)
                case S_IFCHR, S_IFBLK:
                    record.kind = type == S_IFCHR ? .charDevice : .blockDevice
                    record.rdevMajor = device.major
                    record.rdevMinor = device.minor
                    try await send(record)
                case S_IFIFO:
                    record.kind = .fifo
                    try await send(record)
                case S_IFREG:
                    let identity = "\(entry.stat.st_dev):\(entry.stat.st_ino)"
                    if entry.stat.st_nlink > 1, let first = firstNames[identity] {
                        record.kind = .hardlink
                        record.link = first
                        try await send(record)
                        continue
                    }
                    if entry.stat.st_nlink > 1 { firstNames[identity] = path }
                    record.kind = .file
                    record.size = UInt64(entry.stat.st_size)
                    try await send(record)
                    try await sendData(directory + "/" + path, relative: path, size: UInt64(entry.stat.st_size), send: send)
                default:
                    continue  // sockets are not part of a layer
                }
            }
            pending.append(contentsOf: subdirectories.reversed())
        }
    }

    /// DATA records for the file at `path`: its data ranges (SEEK_DATA/SEEK_HOLE) in chunks.
    static func sendData(_ path: String, relative: String, size: UInt64,
                         send: (Qemubox_Guest_V1_ChangeRecord) async throws -> Void) async throws {
        guard size > 0 else { return }
        let fd = try await Blocking.run { () throws -> Int32 in
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { throw GuestAgentError.system("open \(path)") }
            return fd
        }
        defer { close(fd) }
        var offset: Int64 = 0
        while UInt64(offset) < size {
            let from = offset
            let chunk = try await Blocking.run { () throws -> (Int64, Data)? in
                let start = qb_seek_data(fd, from)
                if start < 0 { return errno == ENXIO ? nil : (from, try readChunk(fd, at: from, path: path)) }
                return (Int64(start), try readChunk(fd, at: Int64(start), path: path))
            }
            guard let (at, data) = chunk, !data.isEmpty else { return }
            var record = Qemubox_Guest_V1_ChangeRecord()
            record.kind = .data
            record.path = relative
            record.offset = UInt64(at)
            record.data = data
            try await send(record)
            offset = at + Int64(data.count)
        }
    }

    /// Reads up to ``chunkBytes`` at `offset`, stopping at the next hole.
    static func readChunk(_ fd: Int32, at offset: Int64, path: String) throws -> Data {
        var length = chunkBytes
        let hole = qb_seek_hole(fd, offset)
        if hole > offset { length = min(length, Int(Int64(hole) - offset)) }
        var buffer = [UInt8](repeating: 0, count: length)
        var got = 0
        while got < length {
            let n = buffer.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return pread(fd, base + got, length - got, off_t(offset) + off_t(got))
            }
            if n < 0, errno == EINTR { continue }
            if n < 0 { throw GuestAgentError.system("read \(path)") }
            if n == 0 { break }
            got += n
        }
        return Data(buffer[0..<got])
    }

    /// The entries of `root/relative`, sorted by name, with what a record needs.
    static func list(_ root: String, _ relative: String) throws -> [Entry] {
        let directory = relative.isEmpty ? root : root + "/" + relative
        guard let handle = opendir(directory) else { throw GuestAgentError.system("opendir \(directory)") }
        defer { closedir(handle) }
        return try directoryNames(handle).sorted().map { name in
            let path = directory + "/" + name
            var s = stat()
            guard lstat(path, &s) == 0 else { throw GuestAgentError.system("lstat \(path)") }
            var link = ""
            if s.st_mode & S_IFMT == S_IFLNK {
                var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlink(path, &target, Int(PATH_MAX))
                guard n >= 0 else { throw GuestAgentError.system("readlink \(path)") }
                link = String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            var (xattrs, opaque) = try extendedAttributes(path)
            if s.st_mode & S_IFMT != S_IFDIR { opaque = false }
            return Entry(name: name, stat: s, link: link, xattrs: xattrs, opaque: opaque)
        }
    }

    /// A file's extended attributes (not following symlinks), without overlay's own
    /// `trusted.overlay.*`; and whether it is marked opaque.
    static func extendedAttributes(_ path: String) throws -> ([(String, Data)], Bool) {
        let size = llistxattr(path, nil as UnsafeMutablePointer<CChar>?, 0)
        guard size > 0 else { return ([], false) }
        var names = [CChar](repeating: 0, count: size)
        let got = llistxattr(path, &names, size)
        guard got >= 0 else { return ([], false) }
        var result: [(String, Data)] = []
        var opaque = false
        for raw in names[0..<got].split(separator: 0) {
            let name = String(decoding: raw.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            var value = [UInt8](repeating: 0, count: 65536)
            let n = lgetxattr(path, name, &value, value.count)
            guard n >= 0 else { continue }
            if name == "trusted.overlay.opaque" {
                opaque = n == 1 && value[0] == UInt8(ascii: "y")
                continue
            }
            if name.hasPrefix("trusted.overlay.") { continue }
            result.append((name, Data(value[0..<n])))
        }
        return (result, opaque)
    }

    static func isDirectory(_ path: String) -> Bool {
        var s = stat()
        return lstat(path, &s) == 0 && s.st_mode & S_IFMT == S_IFDIR
    }
}
