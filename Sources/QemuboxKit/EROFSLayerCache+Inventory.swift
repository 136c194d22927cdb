#if canImport(Glibc)
import Glibc
#endif
import Foundation

extension EROFSLayerCache {
    /// One image in the cache: `<key>.erofs` and, beside it, `<key>.source` naming the
    /// snapshot directory it was converted from.
    public struct CachedImage: Sendable, Hashable {
        /// The cache key (`<fnv64>-<inode>`).
        public var key: String
        /// The image file.
        public var path: String
        /// Its size in bytes.
        public var bytes: UInt64
        /// Bytes it takes on disk.
        public var allocatedBytes: UInt64
        /// When it was last handed out (its mtime; the conversion time if never reused).
        public var lastUsed: Date
        /// The snapshot directory it was made from (nil when `<key>.source` is missing or unreadable).
        public var source: String?
        /// Whether that directory still exists (false when the source is unknown).
        public var sourceExists: Bool
    }

    /// A file a conversion left behind: `<key>.erofs.tmp.<pid>.<random>` (the converting
    /// process died), or a `<key>.source` whose image is gone.
    public struct Leftover: Sendable, Hashable {
        /// The file.
        public var path: String
        /// Its size in bytes.
        public var bytes: UInt64
        /// The process that was writing it (nil for an orphaned `.source`).
        public var writerPid: Int32?
        /// Whether that process still runs (a conversion in progress: never remove it).
        public var writerAlive: Bool
    }

    /// The images in the cache, sorted by key. Files that do not look like entries are ignored.
    public func images() -> [CachedImage] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.filter { $0.hasSuffix(".erofs") }.sorted().compactMap { name in
            let key = String(name.dropLast(".erofs".count))
            let path = directory + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
            let source = (try? String(contentsOfFile: directory + "/" + key + ".source", encoding: .utf8))
                .flatMap { $0.isEmpty ? nil : $0 }
            return CachedImage(
                key: key, path: path, bytes: UInt64(st.st_size), allocatedBytes: UInt64(st.st_blocks) * 512,
                lastUsed: Date(timeIntervalSince1970: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9),
                source: source, sourceExists: source.map { FileManager.default.fileExists(atPath: $0) } ?? false)
        }
    }

    /// Temporaries of conversions and `.source` files without an image.
    public func leftovers() -> [Leftover] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        let images = Set(names.filter { $0.hasSuffix(".erofs") }.map { $0.dropLast(".erofs".count) })
        var found: [Leftover] = []
        for name in names.sorted() {
            let path = directory + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            if let range = name.range(of: ".erofs.tmp.") {
                // <key>.erofs.tmp.<pid>.<random>
                let pid = name[range.upperBound...].split(separator: ".").first.flatMap { Int32($0) }
                let alive = pid.map { kill($0, 0) == 0 || errno == EPERM } ?? false
                found.append(Leftover(path: path, bytes: UInt64(st.st_size), writerPid: pid, writerAlive: alive))
            } else if name.hasSuffix(".source"), !images.contains(name.dropLast(".source".count)) {
                found.append(Leftover(path: path, bytes: UInt64(st.st_size), writerPid: nil, writerAlive: false))
            }
        }
        return found
    }

    /// Removes an image and its `.source` file, unless it was handed out again since
    /// `image` was listed (its mtime changed): then it is kept and the result is false.
    @discardableResult
    public func remove(_ image: CachedImage) throws -> Bool {
        var st = stat()
        if lstat(image.path, &st) == 0 {
            let mtime = Date(timeIntervalSince1970: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9)
            guard mtime == image.lastUsed else { return false }
        }
        guard unlink(image.path) == 0 || errno == ENOENT else {
            throw QemuboxError(.system, "remove \(image.path): \(String(cString: strerror(errno)))")
        }
        unlink(directory + "/" + image.key + ".source")
        return true
    }
}
