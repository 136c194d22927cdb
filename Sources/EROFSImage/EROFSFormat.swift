/// On-disk constants of EROFS (as read by Linux 6.1 and newer).
enum EROFSFormat {
    static let superOffset = 1024
    static let magic: UInt32 = 0xE0F5_E1E2
    static let blockSizeBits: UInt8 = 12
    static let blockSize = 4096

    static let featureCompatMTime: UInt32 = 0x2
    static let featureIncompatZeroPadding: UInt32 = 0x1
    static let featureIncompatChunkedFile: UInt32 = 0x4

    static let layoutFlatPlain: UInt16 = 0
    static let layoutCompressedFull: UInt16 = 1
    static let layoutFlatInline: UInt16 = 2
    static let layoutCompressedCompact: UInt16 = 3
    static let layoutChunkBased: UInt16 = 4

    static let compactInodeSize = 32
    static let extendedInodeSize = 64
    static let direntSize = 12
    static let nullAddress: UInt32 = 0xFFFF_FFFF
    static let chunkFormatIndexes: UInt16 = 0x20

    static let lclusterTypePlain: UInt16 = 0
    static let lclusterTypeHead: UInt16 = 1
    static let lclusterTypeNonHead: UInt16 = 2

    // File types of directory entries.
    static let ftUnknown: UInt8 = 0
    static let ftRegular: UInt8 = 1
    static let ftDirectory: UInt8 = 2
    static let ftCharDevice: UInt8 = 3
    static let ftBlockDevice: UInt8 = 4
    static let ftFifo: UInt8 = 5
    static let ftSocket: UInt8 = 6
    static let ftSymlink: UInt8 = 7

    // xattr name indexes.
    static let xattrUser: UInt8 = 1
    static let xattrACLAccess: UInt8 = 2
    static let xattrACLDefault: UInt8 = 3
    static let xattrTrusted: UInt8 = 4
    static let xattrSecurity: UInt8 = 6

    static let sIFMT: UInt32 = 0o170000
    static let sIFSOCK: UInt32 = 0o140000
    static let sIFLNK: UInt32 = 0o120000
    static let sIFREG: UInt32 = 0o100000
    static let sIFBLK: UInt32 = 0o060000
    static let sIFDIR: UInt32 = 0o040000
    static let sIFCHR: UInt32 = 0o020000
    static let sIFIFO: UInt32 = 0o010000

    /// The `new_encode_dev` encoding the kernel decodes from `i_u.rdev`.
    static func encodeDevice(major: UInt32, minor: UInt32) -> UInt32 {
        (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)
    }

    static func decodeDevice(_ dev: UInt32) -> (major: UInt32, minor: UInt32) {
        let major = (dev & 0xFFF00) >> 8
        let minor = (dev & 0xFF) | ((dev >> 12) & 0xFFF00)
        return (major, minor)
    }

    static func roundUp(_ value: Int, _ align: Int) -> Int { (value + align - 1) / align * align }
    static func roundUp(_ value: UInt64, _ align: UInt64) -> UInt64 { (value + align - 1) / align * align }
}

/// A little-endian byte buffer builder.
struct ByteBuffer {
    var bytes: [UInt8]

    init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    init(zeros count: Int) { bytes = [UInt8](repeating: 0, count: count) }

    var count: Int { bytes.count }

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
    }
    mutating func u32(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }
    mutating func u64(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
    mutating func append<C: Collection>(_ data: C) where C.Element == UInt8 { bytes.append(contentsOf: data) }
    mutating func zeros(_ count: Int) { if count > 0 { bytes.append(contentsOf: repeatElement(0, count: count)) } }
    mutating func pad(to alignment: Int) { zeros(EROFSFormat.roundUp(bytes.count, alignment) - bytes.count) }

    mutating func put16(_ value: UInt16, at offset: Int) {
        bytes[offset] = UInt8(truncatingIfNeeded: value)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
    }
    mutating func put32(_ value: UInt32, at offset: Int) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> UInt32(index * 8)) }
    }
    mutating func put64(_ value: UInt64, at offset: Int) {
        for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> UInt64(index * 8)) }
    }
}

/// Little-endian reads from byte arrays (bounds are the caller's duty).
extension Array where Element == UInt8 {
    func le16(_ offset: Int) -> UInt16 { UInt16(self[offset]) | UInt16(self[offset + 1]) << 8 }
    func le32(_ offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16 | UInt32(self[offset + 3]) << 24
    }
    func le64(_ offset: Int) -> UInt64 { UInt64(le32(offset)) | UInt64(le32(offset + 4)) << 32 }
}
