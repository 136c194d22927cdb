#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QemuboxKit

/// The EROFS layer cache as `qemubox cache ls|prune` sees it: each image with whether a
/// running container may be using it.
///
/// An image is **in use** when a process holds it open (QEMU keeps every disk open for the
/// VM's life; identity by device and inode, see ``OpenFiles``), and **recently used** when it
/// was handed out less than ``recentUse`` ago: a container that is starting has looked the
/// image up but its QEMU may not have opened it yet (converting the other layers of a large
/// image takes minutes). Prune never removes either.
public struct LayerCacheReport: Sendable {
    /// One image with its use.
    public struct Image: Codable, Sendable, Hashable {
        /// The cache key.
        public var key: String
        /// The image file.
        public var path: String
        /// Size in bytes.
        public var bytes: UInt64
        /// Bytes on disk.
        public var allocatedBytes: UInt64
        /// When it was last handed out.
        public var lastUsed: Date
        /// The snapshot directory it was converted from (nil when unknown).
        public var source: String?
        /// Whether that directory still exists.
        public var sourceExists: Bool
        /// Processes holding it open.
        public var openBy: [String]
    }

    /// The cache.
    public var cache: EROFSLayerCache
    /// How long after its last hand-out an image counts as possibly in use (default 10 minutes).
    public var recentUse: TimeInterval = 600
    /// Root of procfs.
    public var procRoot = "/proc"

    /// A report on the cache in `directory`.
    public init(directory: String) {
        cache = EROFSLayerCache(directory: directory)
    }

    /// The images, least recently used first, with who holds them open now.
    public func list() -> [Image] {
        scan().map { image, openBy in
            Image(key: image.key, path: image.path, bytes: image.bytes, allocatedBytes: image.allocatedBytes,
                  lastUsed: image.lastUsed, source: image.source, sourceExists: image.sourceExists, openBy: openBy)
        }
    }

    func scan() -> [(image: EROFSLayerCache.CachedImage, openBy: [String])] {
        let open = OpenFiles.scan(procRoot: procRoot) { $0.contains(".erofs") }
        return cache.images().sorted { $0.lastUsed < $1.lastUsed }.map { image in
            (image, open.holders(of: image.path).map { "\($0.command)[\($0.pid)]" })
        }
    }

    /// What `cache prune` is asked to remove besides images whose snapshot is gone.
    public struct PruneOptions: Sendable, Hashable {
        /// Every image not in use.
        public var all = false
        /// Images last used longer ago than this many seconds.
        public var olderThan: TimeInterval?
        /// Remove the least recently used images until the cache takes at most this many bytes.
        public var maxBytes: UInt64?
        /// Decide and report, remove nothing.
        public var dryRun = false

        /// Snapshot-gone images only.
        public init() {}
    }

    /// What prune did (or would do) with one image.
    public struct Decision: Codable, Sendable, Hashable {
        /// The image.
        public var key: String
        /// The file.
        public var path: String
        /// Bytes on disk.
        public var allocatedBytes: UInt64
        /// Whether it was removed (or would be, in a dry run).
        public var removed: Bool
        /// Why.
        public var reason: String
    }

    /// What prune did.
    public struct PruneResult: Codable, Sendable, Hashable {
        /// A decision for every image (removed or kept) and every removed leftover file.
        public var decisions: [Decision]
        /// Bytes freed (that would be, in a dry run).
        public var freedBytes: UInt64
        /// Bytes the cache takes afterwards.
        public var remainingBytes: UInt64
        /// Whether nothing was removed because it was a dry run.
        public var dryRun: Bool
    }

    /// Removes images whose snapshot directory is gone, files of dead conversions, and what
    /// `options` asks for, never an image in use or recently used.
    public func prune(_ options: PruneOptions, now: Date = Date()) throws -> PruneResult {
        var decisions: [Decision] = []
        var freed: UInt64 = 0
        let listed = scan()
        var total = listed.reduce(UInt64(0)) { $0 + $1.image.allocatedBytes }
        func decide(_ image: EROFSLayerCache.CachedImage, remove: Bool, _ reason: String) throws {
            var removed = false
            var why = reason
            if remove {
                if options.dryRun {
                    removed = true
                } else if try cache.remove(image) {
                    removed = true
                } else {
                    why = "kept: handed out to a container during the prune"
                }
            }
            if removed {
                freed += image.allocatedBytes
                total -= image.allocatedBytes
            }
            decisions.append(Decision(key: image.key, path: image.path, allocatedBytes: image.allocatedBytes,
                                      removed: removed, reason: why))
        }
        // Least recently used first, so that --max-size removes the coldest images.
        var candidates: [EROFSLayerCache.CachedImage] = []
        for (image, openBy) in listed {
            let idle = now.timeIntervalSince(image.lastUsed)
            if !openBy.isEmpty {
                try decide(image, remove: false, "in use by " + openBy.joined(separator: ", "))
            } else if idle < recentUse {
                try decide(image, remove: false, "used \(Units.duration(idle)) ago (a container may be starting with it)")
            } else if let source = image.source, !image.sourceExists {
                try decide(image, remove: true, "snapshot \(source) is gone")
            } else if options.all {
                try decide(image, remove: true, "--all")
            } else if let olderThan = options.olderThan, idle > olderThan {
                try decide(image, remove: true, "unused for \(Units.duration(idle))")
            } else {
                candidates.append(image)
            }
        }
        for image in candidates {
            if let max = options.maxBytes, total > max {
                try decide(image, remove: true, "cache over --max-size \(Units.bytes(max))")
            } else {
                try decide(image, remove: false, "kept")
            }
        }
        for leftover in cache.leftovers() where !leftover.writerAlive {
            let reason = leftover.writerPid.map { "partial image of a conversion whose process \($0) is gone" }
                ?? "source record without an image"
            if !options.dryRun { unlink(leftover.path) }
            freed += leftover.bytes
            decisions.append(Decision(key: (leftover.path as NSString).lastPathComponent, path: leftover.path,
                                      allocatedBytes: leftover.bytes, removed: true, reason: reason))
        }
        return PruneResult(decisions: decisions, freedBytes: freed, remainingBytes: total, dryRun: options.dryRun)
    }
}
