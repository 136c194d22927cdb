#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CGuestAgentSupport
import QemuboxAPI

/// Mounting and unmounting for System/Mount and PID 1.
enum Mounter {
    /// Resolves `disk:SERIAL` to `/dev/vdX` by the serials under /sys/block. A disk the
    /// host adds to the running VM (a pod's later container) shows up a moment after
    /// the host's `device_add`: a serial not there yet is waited for, woken by the
    /// kernel's uevents, for at most `wait`.
    static func resolveSource(_ source: String, sysBlock: String = "/sys/block",
                              wait: Duration = .seconds(10)) throws -> String {
        guard source.hasPrefix(GuestAgentProtocol.diskSourcePrefix) else { return source }
        let serial = String(source.dropFirst(GuestAgentProtocol.diskSourcePrefix.count))
        if let device = Uevents.wait(for: wait, { findDisk(serial: serial, sysBlock: sysBlock) }) { return device }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: sysBlock)) ?? []
        throw GuestAgentError(.notFound, "no disk with serial \(serial) after \(wait) (disks: \(names.sorted().joined(separator: ", ")))")
    }

    /// The device whose serial is `serial`, if present now: a virtio disk's `serial`, or
    /// a SCSI disk's unit serial number (VPD page 0x80: a 4-byte header, then the text).
    static func findDisk(serial: String, sysBlock: String) -> String? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: sysBlock)) ?? []
        for name in names.sorted() {
            if let text = try? String(contentsOfFile: "\(sysBlock)/\(name)/serial", encoding: .utf8) {
                if text.trimmedWhitespace() == serial { return "/dev/\(name)" }
            } else if name.hasPrefix("sd"), let page = FileManager.default.contents(atPath: "\(sysBlock)/\(name)/device/vpd_pg80"),
                      page.count > 4 {
                let text = String(decoding: page.dropFirst(4), as: UTF8.self)
                if text.trimmedWhitespace() == serial { return "/dev/\(name)" }
            }
        }
        return nil
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
