import EROFSImage
import Foundation

/// `qemubox inspect`: an EROFS image's superblock facts, a summary of its tree and, on
/// request, every entry. Reads with `EROFSReader`, which treats the image as untrusted.
public struct ImageInspection: Sendable {
    /// The superblock and tree summary.
    public struct Summary: Codable, Sendable, Hashable {
        /// The image file.
        public var path: String
        /// Size of the file.
        public var imageBytes: UInt64
        /// Block size.
        public var blockSize: UInt64
        /// Blocks the superblock records.
        public var blocks: UInt32
        /// Inodes the superblock records.
        public var inodes: UInt64
        /// The root directory's nid.
        public var rootNid: UInt64
        /// Build time.
        public var buildTime: Date
        /// Volume UUID.
        public var uuid: String
        /// Volume name.
        public var volumeName: String
        /// Feature flags that are set.
        public var features: [String]
        /// Entries below the root by type: `directory`, `file`, `symlink`, `char`, `block`, `fifo`, `socket`.
        public var entries: [String: Int]
        /// Overlay whiteouts (character devices 0/0).
        public var whiteouts: Int
        /// Directories marked opaque (`trusted.overlay.opaque=y`).
        public var opaqueDirectories: Int
        /// Bytes of regular files.
        public var fileBytes: UInt64
        /// Regular files stored compressed (lz4).
        public var compressedFiles: Int
        /// Regular files stored in chunks (sparse files).
        public var chunkedFiles: Int
    }

    /// One entry of the listing.
    public struct Entry: Codable, Sendable, Hashable {
        /// Path below the root, starting with `/`.
        public var path: String
        /// `directory`, `file`, `symlink`, `char`, `block`, `fifo` or `socket`.
        public var type: String
        /// Permission bits in octal (`0755`).
        public var mode: String
        /// Owner.
        public var uid: UInt32
        /// Group.
        public var gid: UInt32
        /// Size in bytes.
        public var size: UInt64
        /// Modification time.
        public var mtime: Date
        /// A symlink's target.
        public var target: String?
        /// A device's `major:minor`.
        public var device: String?
    }

    /// Reads the image at `path`; with `list`, every entry too (sorted by path).
    public static func inspect(_ path: String, list: Bool) throws -> (summary: Summary, entries: [Entry]) {
        do {
            let reader = try EROFSReader(path: path)
            let superblock = try reader.superblock()
            var summary = Summary(
                path: path, imageBytes: reader.imageSize, blockSize: superblock.blockSize, blocks: superblock.blocks,
                inodes: superblock.inodes, rootNid: superblock.rootNid,
                buildTime: Date(timeIntervalSince1970: Double(superblock.buildTimeSeconds)),
                uuid: superblock.uuidString, volumeName: superblock.volumeName, features: superblock.featureNames,
                entries: [:], whiteouts: 0, opaqueDirectories: 0, fileBytes: 0, compressedFiles: 0, chunkedFiles: 0)
            var entries: [Entry] = []
            try reader.walk { rawPath, inode in
                let type = Self.type(inode.mode)
                summary.entries[type, default: 0] += 1
                switch type {
                case "file":
                    summary.fileBytes += inode.size
                    if inode.layout == 1 || inode.layout == 3 { summary.compressedFiles += 1 }
                    if inode.layout == 4 { summary.chunkedFiles += 1 }
                case "char" where inode.device.major == 0 && inode.device.minor == 0:
                    summary.whiteouts += 1
                case "directory":
                    if try reader.xattrs(inode).contains(where: { $0.name == "trusted.overlay.opaque" && $0.value == [0x79] }) {
                        summary.opaqueDirectories += 1
                    }
                default:
                    break
                }
                guard list else { return }
                var entry = Entry(
                    path: "/" + String(decoding: rawPath, as: UTF8.self), type: type,
                    mode: "0" + String(inode.mode & 0o7777, radix: 8), uid: inode.uid, gid: inode.gid, size: inode.size,
                    mtime: Date(timeIntervalSince1970: Double(inode.mtime) + Double(inode.mtimeNsec) / 1e9))
                if inode.isSymlink { entry.target = String(decoding: try reader.readLink(inode), as: UTF8.self) }
                if type == "char" || type == "block" { entry.device = "\(inode.device.major):\(inode.device.minor)" }
                entries.append(entry)
            }
            entries.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
            return (summary, entries)
        } catch let error as EROFSError {
            throw OperatorError(error.code == .io ? .io : .corruptImage, "\(path): \(error.message)")
        }
    }

    static func type(_ mode: UInt32) -> String {
        switch mode & 0o170000 {
        case 0o040000: "directory"
        case 0o100000: "file"
        case 0o120000: "symlink"
        case 0o020000: "char"
        case 0o060000: "block"
        case 0o010000: "fifo"
        case 0o140000: "socket"
        default: "unknown"
        }
    }
}
