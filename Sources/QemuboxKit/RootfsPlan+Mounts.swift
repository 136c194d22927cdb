#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QemuboxAPI

/// A container's root filesystem planned from containerd's mounts: the guest
/// plan plus what the host must do with the writable layer afterwards.
public struct ContainerRootfs: Sendable {
    /// Disks and guest steps.
    public var plan: RootfsPlan
    /// The scratch ext4 image holding the guest's writable layer (`upper/`), if any.
    public var scratchImage: String?
    /// Where the writable layer goes back after the task, and how.
    public var writeback: RootfsWriteback.Target?
    /// Layer conversions performed or reused, top layer first (for timing breakdowns).
    public var layers: [EROFSLayerCache.Entry]
}

extension RootfsPlan {
    /// Plans a rootfs from the mounts containerd passes in `CreateTaskRequest.rootfs`:
    /// - `overlay` (overlayfs snapshotter): every `lowerdir` becomes a cached EROFS
    ///   image, the writable layer an ext4 scratch disk written back into `upperdir`;
    /// - `bind` (a read-only view, or the native snapshotter's writable directory):
    ///   read-only → one cached layer; writable → an uncached layer plus scratch,
    ///   whose changes are applied back to the directory itself;
    /// - `erofs` (an EROFS image file): attached as it is, with an ephemeral
    ///   writable layer;
    /// - no mounts: the bundle's `rootfs` directory, as a writable bind.
    /// Images and disks that are not cached are written into `directory`. With
    /// `readOnlyRoot` (the spec's `root.readonly`, which crun enforces once the container's
    /// mounts are in place) and no writable disk, the layers get a small tmpfs on top, as
    /// runc's writable snapshot would be: crun can then create mount points (CRI's
    /// `/etc/resolv.conf` in a pause image that has no `/etc`).
    public static func fromMounts(
        _ mounts: [Containerd_Types_Mount], bundleRootfs: String, containerID: String, directory: String,
        cache: EROFSLayerCache, writableBytes: UInt64 = 1 << 30, readOnlyRoot: Bool = false
    ) throws -> ContainerRootfs {
        guard mounts.count <= 1 else {
            throw QemuboxError(.rootfs, "\(mounts.count) rootfs mounts: only one (overlay, bind or erofs) is supported")
        }
        guard let mount = mounts.first else {
            return try writableDirectory(bundleRootfs, containerID: containerID, directory: directory,
                                         writableBytes: writableBytes)
        }
        let options = MountOptions(mount.options)
        switch mount.type {
        case "overlay":
            guard let lower = options.value("lowerdir"), !lower.isEmpty else {
                throw QemuboxError(.rootfs, "overlay mount without lowerdir: \(mount.options)")
            }
            let lowers = lower.split(separator: ":").map(String.init)
            var entries = try lowers.map { try cache.image(for: $0) }
            var writeback: RootfsWriteback.Target?
            if let upper = options.value("upperdir") {
                // A non-empty upperdir (a task started again on the same snapshot)
                // joins as the topmost read-only layer; its whiteouts still apply.
                if let contents = try? FileManager.default.contentsOfDirectory(atPath: upper), !contents.isEmpty {
                    let image = directory + "/upper.erofs"
                    try EROFSLayerCache.convert(upper, to: image, compression: cache.compression)
                    entries.insert(EROFSLayerCache.Entry(path: image, cached: false, seconds: 0), at: 0)
                }
                writeback = RootfsWriteback.Target(directory: upper, mode: .overlayUpper)
            }
            let readOnly = options.flags.contains("ro") || (writeback == nil && writableBytes == 0)
            return try layered(entries, containerID: containerID, directory: directory,
                               writableBytes: readOnly ? 0 : writableBytes, writeback: writeback,
                               mountPoints: readOnlyRoot)
        case "bind", "rbind":
            let readOnly = options.flags.contains("ro")
            if readOnly {
                return try layered([try cache.image(for: mount.source)], containerID: containerID,
                                   directory: directory, writableBytes: 0, writeback: nil, mountPoints: readOnlyRoot)
            }
            return try writableDirectory(mount.source, containerID: containerID, directory: directory,
                                         writableBytes: writableBytes)
        case "erofs":
            guard FileManager.default.isReadableFile(atPath: mount.source) else {
                throw QemuboxError(.rootfs, "erofs mount source \(mount.source) is not a readable image")
            }
            return try layered([EROFSLayerCache.Entry(path: mount.source, cached: true, seconds: 0)],
                               containerID: containerID, directory: directory,
                               writableBytes: options.flags.contains("ro") ? 0 : writableBytes, writeback: nil,
                               mountPoints: readOnlyRoot)
        default:
            throw QemuboxError(.rootfs, "rootfs mount type \(mount.type.debugDescription) is not supported "
                + "(overlay, bind and erofs are)")
        }
    }

    /// A mutable directory as the rootfs: converted (uncached) and written back in place.
    static func writableDirectory(_ path: String, containerID: String, directory: String,
                                  writableBytes: UInt64) throws -> ContainerRootfs {
        let image = directory + "/rootfs.erofs"
        try EROFSLayerCache.convert(path, to: image, compression: .lz4)
        return try layered([EROFSLayerCache.Entry(path: image, cached: false, seconds: 0)], containerID: containerID,
                           directory: directory, writableBytes: writableBytes,
                           writeback: writableBytes > 0 ? RootfsWriteback.Target(directory: path, mode: .apply) : nil)
    }

    /// The guest plan for read-only layers (top first) and an optional writable disk
    /// (without one, `mountPoints` puts a small guest tmpfs on top, discarded with the container).
    static func layered(_ layers: [EROFSLayerCache.Entry], containerID: String, directory: String,
                        writableBytes: UInt64, writeback: RootfsWriteback.Target?,
                        mountPoints: Bool = false) throws -> ContainerRootfs {
        let guestBundle = GuestAgentProtocol.bundleRoot + "/" + containerID
        let rootfs = guestBundle + "/rootfs"
        let disks = layers.enumerated().map { Disk(id: "layer\($0.offset)", path: $0.element.path, readOnly: true) }
        if writableBytes == 0 && layers.count == 1 && !mountPoints {
            let plan = RootfsPlan(disks: disks, steps: [.mount([guestMount("erofs", "disk:layer0", rootfs, ["ro"])])],
                                  unmountTargets: [rootfs], guestBundle: guestBundle)
            return ContainerRootfs(plan: plan, scratchImage: nil, writeback: nil, layers: layers)
        }
        let layerTargets = layers.indices.map { "/run/qemubox/layers/\(containerID)/\($0)" }
        var mounts = layerTargets.enumerated().map { guestMount("erofs", "disk:layer\($0.offset)", $0.element, ["ro"]) }
        var steps: [Step] = []
        var unmount = [rootfs]
        var allDisks = disks
        var scratchImage: String?
        var overlayOptions = ["lowerdir=" + layerTargets.joined(separator: ":")]
        if writableBytes > 0 {
            let image = directory + "/scratch.ext4"
            try makeScratchDisk(image, bytes: writableBytes)
            scratchImage = image
            allDisks.append(Disk(id: scratchDiskID, path: image, readOnly: false))
            let scratch = guestScratch(containerID)
            mounts.append(guestMount("ext4", "disk:" + scratchDiskID, scratch, ["rw", "nodev"]))
            steps.append(.mount(mounts))
            steps.append(.mkdir([scratch + "/upper", scratch + "/work"]))
            overlayOptions += ["upperdir=\(scratch)/upper", "workdir=\(scratch)/work"]
            unmount.append(scratch)
        } else if mountPoints {
            let scratch = guestScratch(containerID)
            mounts.append(guestMount("tmpfs", "tmpfs", scratch, ["nodev", "nosuid", "mode=0755", "size=16m"]))
            steps.append(.mount(mounts))
            steps.append(.mkdir([scratch + "/upper", scratch + "/work"]))
            overlayOptions += ["upperdir=\(scratch)/upper", "workdir=\(scratch)/work"]
            unmount.append(scratch)
        } else {
            steps.append(.mount(mounts))
            overlayOptions.insert("ro", at: 0)
        }
        steps.append(.mount([guestMount("overlay", "overlay", rootfs, overlayOptions)]))
        unmount += layerTargets
        let plan = RootfsPlan(disks: allDisks, steps: steps, unmountTargets: unmount, guestBundle: guestBundle,
                              guestUpper: scratchImage == nil ? nil : guestScratch(containerID) + "/upper")
        return ContainerRootfs(plan: plan, scratchImage: scratchImage, writeback: scratchImage == nil ? nil : writeback,
                               layers: layers)
    }
}

/// containerd mount options split into flags (`ro`, `rbind`) and `key=value` data.
struct MountOptions {
    var flags: Set<String> = []
    var values: [String: String] = [:]

    init(_ options: [String]) {
        for option in options {
            if let equals = option.firstIndex(of: "=") {
                values[String(option[..<equals])] = String(option[option.index(after: equals)...])
            } else {
                flags.insert(option)
            }
        }
    }

    func value(_ key: String) -> String? { values[key] }
}
