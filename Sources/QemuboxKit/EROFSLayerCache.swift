#if canImport(Glibc)
import Glibc
#endif
import EROFSImage
import Foundation

/// EROFS images of immutable snapshot directories (overlay `lowerdir`s), built
/// once and shared by every container whose rootfs uses the same snapshot.
///
/// An image is keyed by the directory's path, device, inode and change time, so
/// a snapshot removed and re-created at the same path gets a new image. Images
/// are written to a temporary name and renamed into place: concurrent shims
/// converting the same layer at worst duplicate work, never see a partial image.
/// An image's modification time is the last time it was handed out.
public struct EROFSLayerCache: Sendable {
    /// The cache directory (created on demand).
    public var directory: String
    /// Compression of new images.
    public var compression: EROFSCompression

    /// Creates a cache in `directory`.
    public init(directory: String, compression: EROFSCompression = .lz4) {
        self.directory = directory
        self.compression = compression
    }

    /// One image handed out by the cache.
    public struct Entry: Sendable, Hashable {
        /// The EROFS image.
        public var path: String
        /// True when the image existed already (no conversion ran).
        public var cached: Bool
        /// Seconds the conversion took (0 when cached).
        public var seconds: Double
    }

    /// The image of `snapshot`, converting it if there is none yet.
    public func image(for snapshot: String) throws -> Entry {
        var st = stat()
        guard lstat(snapshot, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw QemuboxError(.rootfs, "layer \(snapshot) is not a directory")
        }
        let key = Self.key(path: snapshot, device: UInt64(st.st_dev), inode: UInt64(st.st_ino),
                           ctimeSeconds: Int64(st.st_ctim.tv_sec), ctimeNanoseconds: Int64(st.st_ctim.tv_nsec))
        let path = directory + "/" + key + ".erofs"
        if FileManager.default.fileExists(atPath: path) {
            // The image's mtime is its last use: what `qemubox cache prune` orders by and
            // what keeps an image just handed to a starting container (Documentation/operations.md).
            utimensat(AT_FDCWD, path, nil, 0)
            return Entry(path: path, cached: true, seconds: 0)
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw QemuboxError(.rootfs, "cannot create the layer cache \(directory): \(error)")
        }
        let started = ContinuousClock.now
        let temporary = path + ".tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        try Self.convert(snapshot, to: temporary, compression: compression)
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw QemuboxError(.rootfs, "cannot move \(temporary) into the layer cache: \(reason)")
        }
        // Remember the source so that stale images can be found and pruned.
        try? Data(snapshot.utf8).write(to: URL(fileURLWithPath: directory + "/" + key + ".source"))
        return Entry(path: path, cached: false, seconds: (ContinuousClock.now - started).seconds)
    }

    /// Removes images whose snapshot directory no longer exists. Returns how many.
    @discardableResult
    public func prune() -> Int {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return 0 }
        var removed = 0
        for name in names where name.hasSuffix(".source") {
            let base = directory + "/" + String(name.dropLast(".source".count))
            guard let source = try? String(contentsOfFile: directory + "/" + name, encoding: .utf8) else { continue }
            if !FileManager.default.fileExists(atPath: source) {
                unlink(base + ".erofs")
                unlink(directory + "/" + name)
                removed += 1
            }
        }
        return removed
    }

    /// Converts a directory into an EROFS image at `path` (removed again on failure).
    static func convert(_ source: String, to path: String, compression: EROFSCompression) throws {
        do {
            var options = EROFSWriterOptions()
            options.compression = compression
            let writer = try EROFSImageWriter(path: path, options: options)
            try writer.addDirectory(source)
            _ = try writer.finish()
        } catch {
            unlink(path)
            throw QemuboxError(.rootfs, "cannot convert \(source) to EROFS: \(error)")
        }
    }

    /// The cache key: a readable 64-bit FNV-1a digest of the identity.
    static func key(path: String, device: UInt64, inode: UInt64, ctimeSeconds: Int64, ctimeNanoseconds: Int64) -> String {
        let identity = "\(path)\u{0}\(device)\u{0}\(inode)\u{0}\(ctimeSeconds).\(ctimeNanoseconds)"
        return String(format: "%016llx-%llx", fnv1a64(identity), inode)
    }

    /// 64-bit FNV-1a of a string's UTF-8 bytes (names, not security).
    static func fnv1a64(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}

extension Duration {
    /// The duration in seconds as a Double.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
