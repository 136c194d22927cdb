/// How file data is stored.
public enum EROFSCompression: Sendable, Equatable {
    /// Uncompressed (flat) files.
    case none
    /// lz4 (fast), one-block physical clusters, per-file fallback to plain storage.
    case lz4
    /// lz4hc at `level` (1...12, 9 is the usual default).
    case lz4hc(level: Int)
}

/// Options of `EROFSImageWriter`.
public struct EROFSWriterOptions: Sendable {
    /// Compression of regular files.
    public var compression: EROFSCompression = .none
    /// When set, every inode gets this modification time (seconds since the epoch,
    /// nanoseconds 0), which also makes all inodes compact.
    public var fixedTimestamp: Int64?
    /// The volume UUID (16 bytes). Zero by default so that output is deterministic.
    public var uuid: [UInt8] = [UInt8](repeating: 0, count: 16)
    /// Volume label (at most 16 bytes).
    public var volumeName: String = ""
    /// Largest amount of file data one compressed physical cluster may decode to
    /// (the compression window), in bytes; at least 8 KiB, at most 4 MiB.
    public var maxExtentBytes: Int = 1 << 20
    /// Worker threads compressing files while the tree is read (default: one per
    /// CPU; 0 compresses on the calling thread). The output is the same either way.
    public var compressionThreads: Int?
    /// Limits applied to tar input.
    public var tarLimits = EROFSTarLimits()
    /// Directory for the writer's temporary file (inline tails); defaults to the
    /// output file's directory.
    public var temporaryDirectory: String?

    /// Default options: uncompressed, real mtimes, zero UUID.
    public init() {}
}

/// Limits for untrusted tar input.
public struct EROFSTarLimits: Sendable {
    /// Largest regular file size accepted.
    public var maxFileSize: UInt64 = 1 << 40
    /// Largest PAX extended header or GNU long name/link record.
    public var maxMetadataRecord: Int = 1 << 20
    /// Largest number of entries in one layer.
    public var maxEntries: Int = 10_000_000
    /// Largest path length in bytes.
    public var maxPathLength: Int = 4096
    /// Regular files up to this size are buffered in memory, so that an
    /// incompressible one can be stored plainly.
    public var memoryBufferedFileSize: Int = 8 << 20

    /// The defaults.
    public init() {}
}

/// What `finish()` produced.
public struct EROFSImageSummary: Sendable {
    /// Size of the image in bytes.
    public var imageBytes: UInt64
    /// Number of inodes.
    public var inodes: Int
    /// Number of regular files stored compressed.
    public var compressedFiles: Int
}

/// Progress of a build, reported from the building thread.
public struct EROFSProgress: Sendable {
    /// Entries (files, directories, ...) added so far.
    public var entries: Int
    /// File data bytes consumed so far.
    public var dataBytes: UInt64
    /// For tar input: bytes of the (possibly compressed) input consumed and, when
    /// known, the total; for directories: nil.
    public var inputBytes: UInt64?
    /// Total input bytes if known.
    public var inputTotal: UInt64?
}
