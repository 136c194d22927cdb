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

    /// A sparse file formatted as ext4 without a journal (the writable layer is
    /// per-container scratch; the host copies out what it keeps).
    static func makeScratchDisk(_ path: String, bytes: UInt64) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              truncate(path, off_t(bytes)) == 0 else {
            throw QemuboxError(.rootfs, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        let mkfs = Process()
        mkfs.executableURL = URL(fileURLWithPath: VirtualMachine.findExecutable("mkfs.ext4", fallbackDirectories: ["/usr/sbin", "/sbin"])
            ?? "/sbin/mkfs.ext4")
        mkfs.arguments = ["-q", "-F", "-O", "^has_journal", "-E", "lazy_itable_init=1,root_owner=0:0", "-L", "scratch", path]
        let errors = Pipe()
        mkfs.standardError = errors
        mkfs.standardOutput = FileHandle.nullDevice
        do {
            try mkfs.run()
        } catch {
            throw QemuboxError(.rootfs, "cannot run mkfs.ext4 (apt-get install e2fsprogs): \(error)")
        }
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        mkfs.waitUntilExit()
        guard mkfs.terminationStatus == 0 else {
            throw QemuboxError(.rootfs, "mkfs.ext4 \(path) failed: \(String(decoding: message, as: UTF8.self))")
        }
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
