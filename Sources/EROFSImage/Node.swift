/// One extended attribute, split into the EROFS name index and the name suffix.
struct Xattr: Hashable, Comparable {
    var index: UInt8
    var name: [UInt8]
    var value: [UInt8]

    static func < (lhs: Xattr, rhs: Xattr) -> Bool {
        if lhs.index != rhs.index { return lhs.index < rhs.index }
        return lhs.name.lexicographicallyPrecedes(rhs.name)
    }

    /// Encoded size of this entry in an xattr area (4-byte aligned).
    var entrySize: Int { EROFSFormat.roundUp(4 + name.count + value.count, 4) }

    /// The full Linux name (`user.foo`, `system.posix_acl_access`, ...).
    var fullName: String {
        let prefix: String
        switch index {
        case EROFSFormat.xattrUser: prefix = "user."
        case EROFSFormat.xattrACLAccess: prefix = "system.posix_acl_access"
        case EROFSFormat.xattrACLDefault: prefix = "system.posix_acl_default"
        case EROFSFormat.xattrTrusted: prefix = "trusted."
        case EROFSFormat.xattrSecurity: prefix = "security."
        default: prefix = "unknown\(index)."
        }
        return prefix + String(decoding: name, as: UTF8.self)
    }

    /// Splits a Linux xattr name into index and suffix; nil for namespaces EROFS cannot hold.
    static func split(_ fullName: [UInt8]) -> (UInt8, [UInt8])? {
        let table: [(String, UInt8, Bool)] = [
            ("user.", EROFSFormat.xattrUser, false),
            ("trusted.", EROFSFormat.xattrTrusted, false),
            ("security.", EROFSFormat.xattrSecurity, false),
            ("system.posix_acl_access", EROFSFormat.xattrACLAccess, true),
            ("system.posix_acl_default", EROFSFormat.xattrACLDefault, true),
        ]
        for (prefix, index, exact) in table {
            let p = Array(prefix.utf8)
            if exact {
                if fullName == p { return (index, []) }
            } else if fullName.count > p.count, fullName.starts(with: p) {
                return (index, Array(fullName[p.count...]))
            }
        }
        return nil
    }
}

/// Where a regular file's data went in the image.
enum FileData {
    /// No data (size 0).
    case empty
    /// `blocks` full blocks at `blkaddr`, then an optional tail kept for inlining
    /// (`tail` is an offset into the tail store) or, if `tailInline` is false, padded
    /// into the last block.
    case plain(blkaddr: UInt32, blocks: UInt32, tail: TailRef?)
    /// Chunk-based: one block address (or null) per chunk of `blockSize << chunkBits`.
    case chunked(chunkBits: UInt8, map: [UInt32])
    /// lz4 compressed; the lcluster map is encoded as compact indexes once the
    /// inode's metadata position is known.
    case compressed(lclusters: [Lcluster], blocks: UInt32)
}

/// A span of bytes kept in the tail store until the metadata is written.
struct TailRef {
    var offset: UInt64
    var length: Int
}

/// A file system object in the tree being built.
final class Node {
    enum Kind: Equatable {
        case regular, directory, symlink, charDevice, blockDevice, fifo, socket
    }

    var kind: Kind
    /// Permission and special bits (`0o7777`).
    var permissions: UInt16
    var uid: UInt32
    var gid: UInt32
    var mtime: Int64
    var mtimeNsec: UInt32
    var xattrs: [Xattr] = []
    /// Device number (`new_encode_dev`) for device nodes.
    var rdev: UInt32 = 0
    var symlinkTarget: [UInt8] = []
    var size: UInt64 = 0
    var data: FileData = .empty
    /// Children of a directory by name.
    var children: [[UInt8]: Node] = [:]
    /// The layer that last wrote this node (tar merging), and whether it exists only
    /// because a deeper path needed it.
    var layer: Int = 0
    var implicit = false
    /// The last layer that added something below this directory.
    var touchedLayer: Int = 0

    // Layout state (filled by the metadata writer).
    var nid: UInt64 = 0
    var ino: UInt32 = 0
    var nlink: UInt32 = 0
    var placed = false
    var metaOffset = 0
    var compact = false
    var xattrIbodySize = 0
    var sharedXattrIDs: [UInt32] = []
    var inlineXattrs: [Xattr] = []
    /// Directory: the encoded blocks (all but the tail are written to the data area).
    var dirBlkaddr: UInt32 = 0
    var dirSize: UInt64 = 0
    var dirInline = false

    init(kind: Kind, permissions: UInt16, uid: UInt32, gid: UInt32, mtime: Int64, mtimeNsec: UInt32) {
        self.kind = kind
        self.permissions = permissions
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self.mtimeNsec = mtimeNsec
    }

    var fileTypeBits: UInt32 {
        switch kind {
        case .regular: return EROFSFormat.sIFREG
        case .directory: return EROFSFormat.sIFDIR
        case .symlink: return EROFSFormat.sIFLNK
        case .charDevice: return EROFSFormat.sIFCHR
        case .blockDevice: return EROFSFormat.sIFBLK
        case .fifo: return EROFSFormat.sIFIFO
        case .socket: return EROFSFormat.sIFSOCK
        }
    }

    var direntType: UInt8 {
        switch kind {
        case .regular: return EROFSFormat.ftRegular
        case .directory: return EROFSFormat.ftDirectory
        case .symlink: return EROFSFormat.ftSymlink
        case .charDevice: return EROFSFormat.ftCharDevice
        case .blockDevice: return EROFSFormat.ftBlockDevice
        case .fifo: return EROFSFormat.ftFifo
        case .socket: return EROFSFormat.ftSocket
        }
    }

    /// Children sorted by name bytes (the order EROFS directories need).
    var sortedChildren: [([UInt8], Node)] {
        children.sorted { $0.key.lexicographicallyPrecedes($1.key) }
    }

    /// Size of all xattrs stored inline (the worst case before sharing is decided).
    var fullInlineXattrSize: Int {
        if xattrs.isEmpty { return 0 }
        return 12 + xattrs.reduce(0) { $0 + $1.entrySize }
    }
}

/// One logical cluster (4 KiB of a compressed file) before encoding.
struct Lcluster {
    var type: UInt16
    /// For heads: where the extent starts inside this lcluster.
    var clusterofs: UInt16
    /// For heads: the pcluster's block.
    var blkaddr: UInt32
    /// For non-heads: distance back to the head, and forward to the next head.
    var delta0: UInt16
    var delta1: UInt16
}
