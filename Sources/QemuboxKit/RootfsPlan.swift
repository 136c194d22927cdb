import EROFSImage
import Foundation
import QemuboxAPI

/// How a container's root filesystem reaches the guest: the disks to attach and
/// the guest-side steps (mounts and directories) that assemble the rootfs at
/// `/run/qemubox/bundles/<id>/rootfs` (see Documentation/guest-agent.md).
public struct RootfsPlan: Sendable {
    /// One guest-side step, performed in order through the System service.
    public enum Step: Sendable {
        /// `System/Mount`.
        case mount([Qemubox_Guest_V1_GuestMount])
        /// `System/Mkdir`.
        case mkdir([String])
    }

    /// Disks to attach (read-only layers, then the writable disk).
    public var disks: [Disk]
    /// Guest steps, in order.
    public var steps: [Step]
    /// Guest mount targets to unmount after the task is deleted, innermost first.
    public var unmountTargets: [String]
    /// The bundle directory in the guest.
    public var guestBundle: String
    /// The writable layer's overlay upper directory in the guest (nil: no writable layer).
    public var guestUpper: String?
    /// The writable disk's serial (`disk:SERIAL` in guest mounts), when there is one.
    public static let scratchDiskID = "scratch0"

    /// Where a container's writable disk is mounted in the guest.
    public static func guestScratch(_ containerID: String) -> String { "/run/qemubox/scratch/\(containerID)" }

    /// Builds the plan for a host rootfs directory: an EROFS image of it (the
    /// read-only layer) and, unless `writableBytes` is 0, a sparse ext4 disk for
    /// the writable layer, joined by an overlay in the guest. Files are written
    /// into `directory` (the VM's state directory).
    public static func fromDirectory(
        _ rootfs: String, containerID: String, directory: String,
        writableBytes: UInt64 = 1 << 30, compression: EROFSCompression = .lz4
    ) throws -> RootfsPlan {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: rootfs, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw QemuboxError(.invalidBundle, "rootfs \(rootfs) is not a directory")
        }
        let image = directory + "/rootfs0.erofs"
        do {
            var options = EROFSWriterOptions()
            options.compression = compression
            let writer = try EROFSImageWriter(path: image, options: options)
            try writer.addDirectory(rootfs)
            _ = try writer.finish()
        } catch {
            try? FileManager.default.removeItem(atPath: image)
            throw QemuboxError(.rootfs, "cannot convert \(rootfs) to EROFS: \(error)")
        }
        let guestBundle = GuestAgentProtocol.bundleRoot + "/" + containerID
        let layer = "/run/qemubox/layers/\(containerID)/0"
        var disks = [Disk(id: "rootfs0", path: image, readOnly: true)]
        guard writableBytes > 0 else {
            return RootfsPlan(
                disks: disks,
                steps: [.mount([guestMount("erofs", "disk:rootfs0", guestBundle + "/rootfs", ["ro"])])],
                unmountTargets: [guestBundle + "/rootfs"], guestBundle: guestBundle)
        }
        let scratchImage = directory + "/scratch0.ext4"
        try makeScratchDisk(scratchImage, bytes: writableBytes)
        disks.append(Disk(id: scratchDiskID, path: scratchImage, readOnly: false))
        let scratch = guestScratch(containerID)
        return RootfsPlan(
            disks: disks,
            steps: [
                .mount([guestMount("erofs", "disk:rootfs0", layer, ["ro"]),
                        guestMount("ext4", "disk:" + scratchDiskID, scratch, ["rw", "nodev"])]),
                .mkdir([scratch + "/upper", scratch + "/work"]),
                .mount([guestMount("overlay", "overlay", guestBundle + "/rootfs",
                                   ["lowerdir=\(layer)", "upperdir=\(scratch)/upper", "workdir=\(scratch)/work"])]),
            ],
            unmountTargets: [guestBundle + "/rootfs", scratch, layer], guestBundle: guestBundle,
            guestUpper: scratch + "/upper")
    }

    /// The same plan with every disk id (and `disk:ID` mount source) prefixed: a pod's
    /// later containers bring their own disks into a VM that has the first one's.
    public func prefixingDisks(_ prefix: String) -> RootfsPlan {
        var plan = self
        plan.disks = disks.map { disk in
            var renamed = disk
            renamed.id = prefix + disk.id
            return renamed
        }
        let marker = GuestAgentProtocol.diskSourcePrefix
        plan.steps = steps.map { step in
            guard case .mount(let mounts) = step else { return step }
            return .mount(mounts.map { mount in
                var renamed = mount
                if mount.source.hasPrefix(marker) {
                    renamed.source = marker + prefix + mount.source.dropFirst(marker.count)
                }
                return renamed
            })
        }
        return plan
    }

    /// A sparse file formatted as ext4 without a journal (the writable layer is
    /// per-container scratch; the host copies out what it keeps).
    static func makeScratchDisk(_ path: String, bytes: UInt64) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              truncate(path, off_t(bytes)) == 0 else {
            throw QemuboxError(.rootfs, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        let mkfs = VirtualMachine.findExecutable("mkfs.ext4", fallbackDirectories: ["/usr/sbin", "/sbin"]) ?? "/sbin/mkfs.ext4"
        let arguments = ["-q", "-F", "-O", "^has_journal", "-E", "lazy_itable_init=1,root_owner=0:0", "-L", "scratch", path]
        let (status, message) = try runCapturingStderr(mkfs, arguments, what: "mkfs.ext4 (apt-get install e2fsprogs)")
        guard status == 0 else {
            throw QemuboxError(.rootfs, "mkfs.ext4 \(path) failed: \(message)")
        }
    }

    /// Runs a short host tool through ProcessSpawn with stdin and stdout on /dev/null,
    /// stderr captured (at most 64 KiB); returns the wait status's exit code (-1 if it
    /// was killed) and the stderr text. Blocks the calling thread until it exits.
    static func runCapturingStderr(_ path: String, _ arguments: [String], what: String) throws -> (Int32, String) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw QemuboxError(.system, "pipe: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        defer { close(fds[0]) }
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if null >= 0 { close(null) } }
        let pid: pid_t
        do {
            pid = try ProcessSpawner.shared.spawnBlocking(.init(
                path: path, arguments: arguments, environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                descriptors: [(source: null, target: Int32(0)), (source: null, target: Int32(1)), (source: fds[1], target: Int32(2))]))
        } catch {
            close(fds[1])
            throw QemuboxError(.rootfs, "cannot run \(what): \(error)")
        }
        close(fds[1])
        var message = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            if message.count < 64 << 10 { message.append(contentsOf: buffer[0..<n]) }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let code: Int32 = status & 0x7f == 0 ? (status >> 8) & 0xff : -1
        return (code, String(decoding: message, as: UTF8.self))
    }

    static func guestMount(_ type: String, _ source: String, _ target: String, _ options: [String])
        -> Qemubox_Guest_V1_GuestMount
    {
        var mount = Qemubox_Guest_V1_GuestMount()
        mount.type = type
        mount.source = source
        mount.target = target
        mount.options = options
        return mount
    }
}
