#if canImport(Glibc)
import Glibc
#endif
import CQemuboxSupport
import Foundation

/// Copies a container's writable layer — the `upper/` directory of the guest's
/// ext4 scratch disk, after the guest unmounted it — back to the host, so that
/// containerd's snapshot (and so `ctr snapshot diff`, commits) sees the changes.
///
/// The scratch image is loop-mounted read-only on the host (root), the upper
/// directory is merged into the target with `cp -a` (ownership, modes, times,
/// xattrs, device nodes), then unmounted. Before copying, every destination
/// entry the layer replaces by a different kind of file, and the old contents of
/// every opaque directory, are removed. Two modes:
/// - ``Mode/overlayUpper``: the target is an overlay `upperdir`; whiteouts (char
///   0:0) and opaque markers (`trusted.overlay.opaque=y`) are kept as they are.
/// - ``Mode/apply``: the target is a plain directory (native snapshotter, a
///   bundle rootfs); whiteouts delete, opaque directories are emptied, and no
///   overlay marker is left behind.
public enum RootfsWriteback {
    /// How the layer is merged.
    public enum Mode: String, Sendable, Hashable, Codable {
        /// Keep overlay metadata (the target is an overlay upperdir).
        case overlayUpper = "overlay-upper"
        /// Apply the changes to a plain directory.
        case apply
    }

    /// Where a writable layer goes.
    public struct Target: Sendable, Hashable, Codable {
        /// Host directory.
        public var directory: String
        /// Merge mode.
        public var mode: Mode

        /// Creates a target.
        public init(directory: String, mode: Mode) {
            self.directory = directory
            self.mode = mode
        }
    }

    /// Copies `upper/` of the ext4 `scratchImage` into `target`. `workDirectory`
    /// receives the temporary mount point (removed afterwards). Returns the number
    /// of entries in the layer. The image must not be mounted anywhere else.
    @discardableResult
    public static func run(scratchImage: String, into target: Target, workDirectory: String) throws -> Int {
        let mountPoint = workDirectory + "/writeback.\(getpid())"
        do {
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        } catch {
            throw QemuboxError(.rootfs, "writeback: cannot create \(mountPoint): \(error)")
        }
        defer { rmdir(mountPoint) }
        try command("/bin/mount", ["-t", "ext4", "-o", "ro,loop,noload", scratchImage, mountPoint],
                    "mount the writable layer \(scratchImage)")
        defer { try? command("/bin/umount", [mountPoint], "unmount \(mountPoint)") }
        let upper = mountPoint + "/upper"
        guard isDirectory(upper) else { return 0 }
        var count = 0
        var whiteouts: [String] = []
        var opaque: [String] = []
        try prepare(upper, target.directory, relative: "", mode: target.mode, count: &count,
                    whiteouts: &whiteouts, opaque: &opaque)
        guard count > 0 else { return 0 }
        try command("/bin/cp", ["-a", "--remove-destination", upper + "/.", target.directory + "/"],
                    "copy the writable layer into \(target.directory)")
        if target.mode == .apply {
            for path in whiteouts { try? FileManager.default.removeItem(atPath: target.directory + "/" + path) }
            for path in opaque { removexattr(target.directory + "/" + path, opaqueXattr) }
        }
        return count
    }

    static let opaqueXattr = "trusted.overlay.opaque"

    /// Walks the layer and clears what it replaces in the destination.
    static func prepare(_ source: String, _ destination: String, relative: String, mode: Mode, count: inout Int,
                        whiteouts: inout [String], opaque: inout [String]) throws {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: source + relative)
        } catch {
            throw QemuboxError(.rootfs, "writeback: cannot list \(source + relative): \(error)")
        }
        for name in names {
            count += 1
            let rel = relative + "/" + name
            let src = source + rel, dst = destination + rel
            var s = stat()
            guard lstat(src, &s) == 0 else { continue }
            let sourceIsDirectory = (s.st_mode & S_IFMT) == S_IFDIR
            let isWhiteout = (s.st_mode & S_IFMT) == S_IFCHR && s.st_rdev == 0
            var d = stat()
            let exists = lstat(dst, &d) == 0
            let destinationIsDirectory = exists && (d.st_mode & S_IFMT) == S_IFDIR
            if exists && !(sourceIsDirectory && destinationIsDirectory) {
                do {
                    try FileManager.default.removeItem(atPath: dst)
                } catch {
                    throw QemuboxError(.rootfs, "writeback: cannot replace \(dst): \(error)")
                }
            }
            if isWhiteout { whiteouts.append(String(rel.dropFirst())) }
            guard sourceIsDirectory else { continue }
            if isOpaque(src) {
                opaque.append(String(rel.dropFirst()))
                if destinationIsDirectory, let children = try? FileManager.default.contentsOfDirectory(atPath: dst) {
                    for child in children { try? FileManager.default.removeItem(atPath: dst + "/" + child) }
                }
            }
            try prepare(source, destination, relative: rel, mode: mode, count: &count, whiteouts: &whiteouts,
                        opaque: &opaque)
        }
    }

    static func isOpaque(_ path: String) -> Bool {
        var value = [UInt8](repeating: 0, count: 8)
        let n = lgetxattr(path, opaqueXattr, &value, value.count)
        return n == 1 && value[0] == UInt8(ascii: "y")
    }

    static func isDirectory(_ path: String) -> Bool {
        var s = stat()
        return lstat(path, &s) == 0 && (s.st_mode & S_IFMT) == S_IFDIR
    }

    /// Runs a tool, throwing its stderr on failure.
    static func command(_ path: String, _ arguments: [String], _ what: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw QemuboxError(.rootfs, "cannot \(what): \(path): \(error)")
        }
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw QemuboxError(.rootfs, "cannot \(what): \(String(decoding: message, as: UTF8.self))")
        }
    }
}
