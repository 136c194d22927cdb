/// The facts an EROFS superblock records (offset 1024 of the image), as `dump.erofs`
/// prints them. Field names follow the kernel's `struct erofs_super_block`.
public struct EROFSSuperblock: Sendable, Hashable {
    /// Log2 of the block size (12: 4 KiB).
    public var blockSizeBits: UInt8
    /// Compatible feature bits (`EROFS_FEATURE_COMPAT_*`).
    public var featureCompat: UInt32
    /// Incompatible feature bits (`EROFS_FEATURE_INCOMPAT_*`): a kernel must know them all to mount.
    public var featureIncompat: UInt32
    /// The root directory's nid.
    public var rootNid: UInt64
    /// Inodes in the image.
    public var inodes: UInt64
    /// Blocks in the image.
    public var blocks: UInt32
    /// First block of the metadata area (inodes).
    public var metaBlockAddress: UInt32
    /// First block of the shared xattr area.
    public var xattrBlockAddress: UInt32
    /// Build time, seconds since the epoch (the mtime of compact inodes).
    public var buildTimeSeconds: Int64
    /// Nanoseconds of the build time.
    public var buildTimeNanoseconds: UInt32
    /// The volume UUID (all zeros when none was set).
    public var uuid: [UInt8]
    /// The volume name (empty when none was set).
    public var volumeName: String
    /// The checksum field (meaningful only with the `sb_csum` compatible feature).
    public var checksum: UInt32

    /// Block size in bytes.
    public var blockSize: UInt64 { 1 << UInt64(blockSizeBits) }

    /// Names of the feature bits that are set (unknown bits as `compat:0x…` / `incompat:0x…`).
    public var featureNames: [String] {
        let compat: [(UInt32, String)] = [(0x1, "sb_csum"), (0x2, "mtime"), (0x4, "xattr_filter")]
        let incompat: [(UInt32, String)] = [(0x1, "zero_padding"), (0x2, "compr_cfgs"), (0x4, "chunked_file"),
                                            (0x8, "device_table"), (0x10, "ztailpacking"), (0x20, "fragments"),
                                            (0x40, "dedupe"), (0x80, "xattr_prefixes")]
        func names(_ bits: UInt32, _ known: [(UInt32, String)], _ prefix: String) -> [String] {
            var rest = bits
            var out: [String] = []
            for (bit, name) in known where bits & bit != 0 {
                out.append(name)
                rest &= ~bit
            }
            if rest != 0 { out.append("\(prefix):0x" + String(rest, radix: 16)) }
            return out
        }
        return names(featureCompat, compat, "compat") + names(featureIncompat, incompat, "incompat")
    }

    /// The UUID in its usual text form.
    public var uuidString: String {
        let hex = uuid.map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
        guard hex.count == 32 else { return hex }
        let c = Array(hex)
        return [c[0..<8], c[8..<12], c[12..<16], c[16..<20], c[20..<32]].map { String($0) }.joined(separator: "-")
    }
}

extension EROFSReader {
    /// The image's superblock.
    public func superblock() throws -> EROFSSuperblock {
        let sb = try read(UInt64(EROFSFormat.superOffset), 128)
        guard sb.le32(0) == EROFSFormat.magic else { throw EROFSError(.corruptImage, "no EROFS superblock") }
        let label = sb[64..<80].prefix { $0 != 0 }
        return EROFSSuperblock(
            blockSizeBits: sb[12], featureCompat: sb.le32(8), featureIncompat: sb.le32(80),
            rootNid: UInt64(sb.le16(14)), inodes: sb.le64(16), blocks: sb.le32(36),
            metaBlockAddress: sb.le32(40), xattrBlockAddress: sb.le32(44),
            buildTimeSeconds: Int64(bitPattern: sb.le64(24)), buildTimeNanoseconds: sb.le32(32),
            uuid: Array(sb[48..<64]), volumeName: String(decoding: label, as: UTF8.self),
            checksum: sb.le32(4))
    }
}
