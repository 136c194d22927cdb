import CEROFSLZ4
import Glibc

/// One inode read back from an image.
public struct EROFSInode: Sendable {
    /// The inode's nid (its metadata offset / 32).
    public var nid: UInt64
    /// File type and permission bits (`st_mode`).
    public var mode: UInt32
    /// Owner.
    public var uid: UInt32
    /// Group.
    public var gid: UInt32
    /// Size in bytes.
    public var size: UInt64
    /// Modification time (seconds).
    public var mtime: Int64
    /// Modification time (nanoseconds).
    public var mtimeNsec: UInt32
    /// Link count.
    public var nlink: UInt32
    /// Device major/minor for device nodes.
    public var device: (major: UInt32, minor: UInt32)
    /// Data layout (0 plain, 1 compressed full, 2 inline, 3 compressed compact, 4 chunks).
    public var layout: UInt16
    var rawU: UInt32
    var inodeSize: Int
    var xattrSize: Int
    var offset: UInt64

    /// Whether this is a directory.
    public var isDirectory: Bool { mode & EROFSFormat.sIFMT == EROFSFormat.sIFDIR }
    /// Whether this is a regular file.
    public var isRegular: Bool { mode & EROFSFormat.sIFMT == EROFSFormat.sIFREG }
    /// Whether this is a symbolic link.
    public var isSymlink: Bool { mode & EROFSFormat.sIFMT == EROFSFormat.sIFLNK }
}

/// A directory entry read back from an image.
public struct EROFSDirectoryEntry: Sendable {
    /// The name (bytes; not necessarily UTF-8).
    public var name: [UInt8]
    /// The target inode's nid.
    public var nid: UInt64
    /// The EROFS file type (1 regular ... 7 symlink).
    public var fileType: UInt8
}

/// Reads EROFS images (as this library writes them, and flat/chunked/full-index
/// lz4 images from mkfs.erofs). Every offset and length is checked against the
/// image: a corrupt image gives `EROFSError.corruptImage`, never a crash.
/// Not thread-safe.
public final class EROFSReader {
    let fd: Int32
    /// Size of the image file.
    public let imageSize: UInt64
    /// The root directory's nid.
    public let rootNid: UInt64
    let metaBlkaddr: UInt64
    let xattrBlkaddr: UInt64
    let bs: UInt64
    /// The superblock's build time (mtime of compact inodes).
    public let buildTime: (seconds: Int64, nanoseconds: UInt32)
    /// Limit on decompressed extent size accepted from an image.
    let maxExtent = 16 << 20
    var extentCache: (nid: UInt64, start: UInt64, bytes: [UInt8])?

    /// Opens `path` and validates the superblock.
    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        self.fd = fd
        guard fd >= 0 else { throw EROFSError.errno("open \(path)") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw EROFSError.errno("fstat \(path)")
        }
        imageSize = UInt64(st.st_size)
        var sb = [UInt8](repeating: 0, count: 128)
        let n = sb.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 128, off_t(EROFSFormat.superOffset)) }
        guard n == 128, sb.le32(0) == EROFSFormat.magic else {
            close(fd)
            throw EROFSError(.corruptImage, "\(path): no EROFS superblock")
        }
        guard sb[12] == EROFSFormat.blockSizeBits else {
            close(fd)
            throw EROFSError(.unsupported, "\(path): block size 2^\(sb[12]) not supported")
        }
        bs = 1 << UInt64(sb[12])
        rootNid = UInt64(sb.le16(14))
        buildTime = (Int64(bitPattern: sb.le64(24)), sb.le32(32))
        metaBlkaddr = UInt64(sb.le32(40))
        xattrBlkaddr = UInt64(sb.le32(44))
    }

    deinit { close(fd) }

    func read(_ offset: UInt64, _ count: Int) throws -> [UInt8] {
        guard count >= 0, offset <= imageSize, UInt64(count) <= imageSize - offset else {
            throw EROFSError(.corruptImage, "read of \(count) bytes at \(offset) beyond the image (\(imageSize) bytes)")
        }
        var buf = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw EROFSError.errno("read image") }
            done += n
        }
        return buf
    }

    /// The root directory.
    public func root() throws -> EROFSInode { try inode(nid: rootNid) }

    /// Reads the inode `nid`.
    public func inode(nid: UInt64) throws -> EROFSInode {
        let (product, overflow) = nid.multipliedReportingOverflow(by: 32)
        let (offset, beyond) = (metaBlkaddr * bs).addingReportingOverflow(product)
        guard !overflow, !beyond else { throw EROFSError(.corruptImage, "nid \(nid) out of range") }
        let head = try read(offset, 32)
        let format = head.le16(0)
        let extended = format & 1 == 1
        let layout = (format >> 1) & 0x7
        guard layout <= 4 else { throw EROFSError(.corruptImage, "nid \(nid): unknown layout \(layout)") }
        let icount = Int(head.le16(2))
        let xattrSize = icount == 0 ? 0 : 12 + 4 * (icount - 1)
        var node: EROFSInode
        if extended {
            let b = try read(offset, 64)
            node = EROFSInode(nid: nid, mode: UInt32(b.le16(4)), uid: b.le32(24), gid: b.le32(28), size: b.le64(8),
                              mtime: Int64(bitPattern: b.le64(32)), mtimeNsec: b.le32(40), nlink: b.le32(44),
                              device: (0, 0), layout: layout, rawU: b.le32(16), inodeSize: 64, xattrSize: xattrSize, offset: offset)
        } else {
            node = EROFSInode(nid: nid, mode: UInt32(head.le16(4)), uid: UInt32(head.le16(24)), gid: UInt32(head.le16(26)),
                              size: UInt64(head.le32(8)), mtime: buildTime.seconds, mtimeNsec: buildTime.nanoseconds,
                              nlink: UInt32(head.le16(6)), device: (0, 0), layout: layout, rawU: head.le32(16),
                              inodeSize: 32, xattrSize: xattrSize, offset: offset)
        }
        let type = node.mode & EROFSFormat.sIFMT
        if type == EROFSFormat.sIFCHR || type == EROFSFormat.sIFBLK { node.device = EROFSFormat.decodeDevice(node.rawU) }
        return node
    }

    // MARK: xattrs

    /// The inode's extended attributes, by full Linux name, in on-disk order.
    public func xattrs(_ inode: EROFSInode) throws -> [(name: String, value: [UInt8])] {
        guard inode.xattrSize > 0 else { return [] }
        let body = try read(inode.offset + UInt64(inode.inodeSize), inode.xattrSize)
        let sharedCount = Int(body[4])
        guard 12 + 4 * sharedCount <= body.count else { throw EROFSError(.corruptImage, "nid \(inode.nid): bad xattr header") }
        var result: [(String, [UInt8])] = []
        for i in 0..<sharedCount {
            let id = UInt64(body.le32(12 + 4 * i))
            let at = xattrBlkaddr * bs + id * 4
            let h = try read(at, 4)
            let e = try read(at, 4 + Int(h[0]) + Int(h.le16(2)))
            result.append(try decodeXattr(e, 0))
        }
        var pos = 12 + 4 * sharedCount
        while pos + 4 <= body.count {
            let size = 4 + Int(body[pos]) + Int(body.le16(pos + 2))
            guard pos + size <= body.count else { throw EROFSError(.corruptImage, "nid \(inode.nid): xattr overruns") }
            result.append(try decodeXattr(body, pos))
            pos += EROFSFormat.roundUp(size, 4)
        }
        return result
    }

    private func decodeXattr(_ b: [UInt8], _ pos: Int) throws -> (String, [UInt8]) {
        let nameLen = Int(b[pos])
        let valueLen = Int(b.le16(pos + 2))
        let x = Xattr(index: b[pos + 1], name: Array(b[(pos + 4)..<(pos + 4 + nameLen)]),
                      value: Array(b[(pos + 4 + nameLen)..<(pos + 4 + nameLen + valueLen)]))
        return (x.fullName, x.value)
    }

    // MARK: directories

    /// The entries of a directory (including `.` and `..`), in on-disk order.
    public func directoryEntries(_ dir: EROFSInode) throws -> [EROFSDirectoryEntry] {
        guard dir.isDirectory else { throw EROFSError(.invalidArgument, "nid \(dir.nid) is not a directory") }
        guard dir.size <= 1 << 32 else { throw EROFSError(.corruptImage, "nid \(dir.nid): directory too large") }
        var result: [EROFSDirectoryEntry] = []
        var pos: UInt64 = 0
        while pos < dir.size {
            let len = Int(min(bs, dir.size - pos))
            let block = try readRange(dir, at: pos, count: len)
            let first = Int(block.count >= 12 ? block.le16(8) : 0)
            guard first >= 12, first % 12 == 0, first < block.count else {
                throw EROFSError(.corruptImage, "nid \(dir.nid): bad directory block at \(pos)")
            }
            let count = first / 12
            for i in 0..<count {
                let nameOff = Int(block.le16(12 * i + 8))
                let nameEnd = i + 1 < count ? Int(block.le16(12 * (i + 1) + 8)) : block.count
                guard nameOff >= first, nameOff <= nameEnd, nameEnd <= block.count else {
                    throw EROFSError(.corruptImage, "nid \(dir.nid): bad name offset")
                }
                var name = Array(block[nameOff..<nameEnd])
                if i + 1 == count, let nul = name.firstIndex(of: 0) { name.removeSubrange(nul...) }
                result.append(EROFSDirectoryEntry(name: name, nid: block.le64(12 * i), fileType: block[12 * i + 10]))
            }
            pos += UInt64(len)
        }
        return result
    }

    /// Resolves a path (no symlinks followed) from the root.
    public func lookup(_ path: String) throws -> EROFSInode {
        var node = try root()
        for component in path.split(separator: "/") where !component.isEmpty {
            let name = Array(component.utf8)
            guard let entry = try directoryEntries(node).first(where: { $0.name == name }) else {
                throw EROFSError(.invalidArgument, "\(path): no such entry")
            }
            node = try inode(nid: entry.nid)
        }
        return node
    }

    /// A symlink's target.
    public func readLink(_ inode: EROFSInode) throws -> [UInt8] {
        guard inode.isSymlink, inode.size < 4096 else { throw EROFSError(.corruptImage, "nid \(inode.nid): bad symlink") }
        return try readRange(inode, at: 0, count: Int(inode.size))
    }

    /// Calls `body` for every entry below the root (depth first, sorted), with its
    /// path relative to the root (e.g. `a/b`).
    public func walk(_ body: (_ path: [UInt8], _ inode: EROFSInode) throws -> Void) throws {
        var stack: [([UInt8], EROFSInode, Int)] = [([], try root(), 0)]
        while let (path, dir, depth) = stack.popLast() {
            guard depth < 4096 else { throw EROFSError(.corruptImage, "directory tree too deep (a loop?)") }
            for entry in try directoryEntries(dir) where entry.name != [0x2E] && entry.name != [0x2E, 0x2E] {
                let childPath = path.isEmpty ? entry.name : path + [0x2F] + entry.name
                let child = try inode(nid: entry.nid)
                try body(childPath, child)
                if child.isDirectory { stack.append((childPath, child, depth + 1)) }
            }
        }
    }
}
