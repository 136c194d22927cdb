#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import QemuboxAPI

/// Mounting and unmounting for System/Mount and PID 1.
enum Mounter {
    /// Resolves `disk:SERIAL` to `/dev/vdX` by the serials under /sys/block.
    static func resolveSource(_ source: String, sysBlock: String = "/sys/block") throws -> String {
        guard source.hasPrefix(GuestAgentProtocol.diskSourcePrefix) else { return source }
        let serial = String(source.dropFirst(GuestAgentProtocol.diskSourcePrefix.count))
        let names = (try? FileManager.default.contentsOfDirectory(atPath: sysBlock)) ?? []
        for name in names.sorted() {
            guard let text = try? String(contentsOfFile: "\(sysBlock)/\(name)/serial", encoding: .utf8) else { continue }
            if text.trimmedWhitespace() == serial { return "/dev/\(name)" }
        }
        throw GuestAgentError(.notFound, "no disk with serial \(serial) (disks: \(names.sorted().joined(separator: ", ")))")
    }

    /// `/dev/vdX` of every virtio disk except the one holding `/` (the system image).
    static func dataDisks(sysBlock: String = "/sys/block") -> [String] {
        var root = stat()
        let rootDevice = stat("/", &root) == 0 ? root.st_dev : 0
        let names = (try? FileManager.default.contentsOfDirectory(atPath: sysBlock)) ?? []
        return names.sorted().filter { $0.hasPrefix("vd") }.compactMap { name in
            var info = stat()
            guard stat("/dev/\(name)", &info) == 0 else { return nil }
            return info.st_rdev == rootDevice ? nil : "/dev/\(name)"
        }
    }

    /// Performs one mount, creating the target.
    static func mount(type: String, source: String, target: String, options: [String]) throws {
        guard target.hasPrefix("/") else { throw GuestAgentError(.invalidArgument, "mount target \(target) is not absolute") }
        let device = try resolveSource(source)
        try ensureDirectory(target)
        let parsed = MountOptions.parse(options)
        let fstype = parsed.isBind ? "" : type
        if Glibc.mount(device, target, fstype, parsed.flags, parsed.data.isEmpty ? nil : parsed.data) != 0 {
            throw GuestAgentError.system("mount \(type) \(device) on \(target) (\(options.joined(separator: ",")))")
        }
        // A bind mount ignores ro (and other flags) until remounted.
        if parsed.isBind, parsed.flags & UInt(MS_RDONLY) != 0 {
            let flags = parsed.flags | UInt(MS_REMOUNT)
            if Glibc.mount("", target, "", flags, nil) != 0 {
                let err = errno
                umount2(target, CInt(MNT_DETACH))
                throw GuestAgentError.system("remount \(target) read-only", errno: err)
            }
        }
    }

    /// Unmounts `target` (lazily when `detach` and it is busy).
    static func unmount(_ target: String, detach: Bool) throws {
        sync()
        if umount2(target, 0) == 0 { return }
        let err = errno
        if err == EBUSY, detach, umount2(target, CInt(MNT_DETACH)) == 0 { return }
        if err == EINVAL {
            throw GuestAgentError(.notFound, "\(target) is not a mount point")
        }
        throw GuestAgentError.system("unmount \(target)", errno: err)
    }

    /// Whether `path` is a mount point (its device differs from its parent's, or it is /).
    static func isMountPoint(_ path: String) -> Bool {
        var own = stat()
        var parent = stat()
        guard stat(path, &own) == 0, stat(path + "/..", &parent) == 0 else { return false }
        return own.st_dev != parent.st_dev || own.st_ino == parent.st_ino
    }
}
