import EROFSImage
import Foundation
import Glibc

/// Compares a source tree with an image, seen through the kernel (a mount) or
/// through `EROFSReader`. Returns a list of differences (empty when equal).
enum TreeComparison {
    struct Entry {
        var mode: UInt32
        var uid: UInt32
        var gid: UInt32
        var size: UInt64
        var mtime: Int64
        var mtimeNsec: UInt32
        var nlink: UInt32
        var rdev: (UInt32, UInt32)
        var xattrs: [String: [UInt8]]
        var linkTarget: [UInt8]
    }

    /// Lists a host tree: relative path → entry.
    static func hostTree(_ root: String) throws -> [String: Entry] {
        var result: [String: Entry] = [:]
        func visit(_ rel: String) throws {
            let full = rel.isEmpty ? root : root + "/" + rel
            let st = try Host.lstatOrThrow(full)
            var target: [UInt8] = []
            if st.st_mode & S_IFMT == S_IFLNK {
                var buf = [CChar](repeating: 0, count: 8192)
                let n = readlink(full, &buf, buf.count)
                target = buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }
            }
            let dev = UInt64(st.st_rdev)
            let major = UInt32(truncatingIfNeeded: ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF))
            let minor = UInt32(truncatingIfNeeded: (dev & 0xFF) | ((dev >> 12) & ~0xFF))
            let isDir = st.st_mode & S_IFMT == S_IFDIR
            result[rel] = Entry(mode: st.st_mode, uid: st.st_uid, gid: st.st_gid, size: isDir ? 0 : UInt64(st.st_size),
                                mtime: Int64(st.st_mtim.tv_sec), mtimeNsec: UInt32(st.st_mtim.tv_nsec),
                                nlink: UInt32(st.st_nlink), rdev: (major, minor),
                                xattrs: try Host.xattrs(full), linkTarget: target)
            if isDir {
                for name in try FileManager.default.contentsOfDirectory(atPath: full) {
                    try visit(rel.isEmpty ? name : rel + "/" + name)
                }
            }
        }
        try visit("")
        return result
    }

    /// Lists an image through the library's reader.
    static func readerTree(_ reader: EROFSReader) throws -> [String: Entry] {
        func entry(_ inode: EROFSInode) throws -> Entry {
            var xattrs: [String: [UInt8]] = [:]
            for (name, value) in try reader.xattrs(inode) { xattrs[name] = value }
            return Entry(mode: inode.mode, uid: inode.uid, gid: inode.gid, size: inode.isDirectory ? 0 : inode.size,
                         mtime: inode.mtime, mtimeNsec: inode.mtimeNsec, nlink: inode.nlink, rdev: inode.device,
                         xattrs: xattrs, linkTarget: inode.isSymlink ? try reader.readLink(inode) : [])
        }
        var result: [String: Entry] = ["": try entry(reader.root())]
        try reader.walk { path, inode in
            result[String(decoding: path, as: UTF8.self)] = try entry(inode)
        }
        return result
    }

    /// Metadata differences between two listings.
    static func diff(_ expected: [String: Entry], _ actual: [String: Entry], ignoreRootMeta: Bool = false) -> [String] {
        var problems: [String] = []
        for path in Set(expected.keys).symmetricDifference(actual.keys).sorted().prefix(20) {
            problems.append("\(path): present only in \(expected[path] == nil ? "image" : "source")")
        }
        for (path, e) in expected.sorted(by: { $0.key < $1.key }) {
            guard let a = actual[path] else { continue }
            var what: [String] = []
            if e.mode != a.mode { what.append("mode \(String(e.mode, radix: 8)) vs \(String(a.mode, radix: 8))") }
            if e.uid != a.uid || e.gid != a.gid { what.append("owner \(e.uid):\(e.gid) vs \(a.uid):\(a.gid)") }
            if e.size != a.size { what.append("size \(e.size) vs \(a.size)") }
            if e.mtime != a.mtime || e.mtimeNsec != a.mtimeNsec { what.append("mtime \(e.mtime).\(e.mtimeNsec) vs \(a.mtime).\(a.mtimeNsec)") }
            if e.nlink != a.nlink { what.append("nlink \(e.nlink) vs \(a.nlink)") }
            let isDev = e.mode & S_IFMT == S_IFCHR || e.mode & S_IFMT == S_IFBLK
            if isDev && (e.rdev.0 != a.rdev.0 || e.rdev.1 != a.rdev.1) { what.append("rdev \(e.rdev) vs \(a.rdev)") }
            if e.xattrs != a.xattrs { what.append("xattrs \(e.xattrs.keys.sorted()) vs \(a.xattrs.keys.sorted())") }
            if e.linkTarget != a.linkTarget { what.append("symlink target differs") }
            if !what.isEmpty { problems.append("\(path): " + what.joined(separator: ", ")) }
            if problems.count > 40 { break }
        }
        return problems
    }

    /// Compares every regular file's bytes between a host tree and `read`, in 1 MiB pieces.
    static func contentDiff(_ source: String, _ listing: [String: Entry],
                            read: (String, UInt64, Int) throws -> [UInt8]) throws -> [String] {
        var problems: [String] = []
        let piece = 1 << 20
        var buf = [UInt8](repeating: 0, count: piece)
        for (path, e) in listing.sorted(by: { $0.key < $1.key }) where e.mode & S_IFMT == S_IFREG {
            let fd = open(source + "/" + path, O_RDONLY)
            guard fd >= 0 else { problems.append("\(path): cannot open source"); continue }
            defer { close(fd) }
            var offset: UInt64 = 0
            while offset < e.size {
                let want = Int(min(UInt64(piece), e.size - offset))
                let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(offset)) }
                let got = try read(path, offset, want)
                let same = n == want && got.count == want && got.withUnsafeBytes { g in
                    buf.withUnsafeBytes { memcmp(g.baseAddress!, $0.baseAddress!, want) == 0 }
                }
                if !same {
                    problems.append("\(path): content differs in \(offset)..<\(offset + UInt64(want))")
                    break
                }
                offset += UInt64(want)
            }
        }
        return problems
    }

    /// Reads a byte range of a file on the host.
    static func hostRead(_ root: String) -> (String, UInt64, Int) throws -> [UInt8] {
        return { path, offset, count in
            let fd = open(root + "/" + path, O_RDONLY)
            guard fd >= 0 else { throw Host.Failure(description: "open \(path) in image: errno \(errno)") }
            defer { close(fd) }
            var out = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
                guard n > 0 else { throw Host.Failure(description: "read \(path) in image: errno \(errno)") }
                done += n
            }
            return out
        }
    }

    /// Reads a byte range of a file through the reader (path lookup cached).
    static func readerRead(_ reader: EROFSReader) -> (String, UInt64, Int) throws -> [UInt8] {
        var cache: [String: EROFSInode] = [:]
        return { path, offset, count in
            let inode: EROFSInode
            if let cached = cache[path] { inode = cached } else {
                inode = try reader.lookup(path)
                cache[path] = inode
            }
            return try reader.readRange(inode, at: offset, count: count)
        }
    }
}
