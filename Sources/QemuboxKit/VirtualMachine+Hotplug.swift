import CQemuboxSupport
import Foundation
import NIOPosix
import QMPClient

/// A disk added to a running machine: where it sits and what QEMU holds for it.
struct HotpluggedDisk: Sendable {
    /// The SCSI target id on the hotplug controller.
    var slot: Int
    /// The fd set holding the file's descriptors in QEMU.
    var fdset: Int
    /// The block node's name.
    var node: String
    /// The device's id.
    var device: String
}

/// Disks added and removed while the machine runs (a pod's later containers). QEMU
/// opens no file: the launcher opens the image and passes the descriptor over the
/// control monitor (`add-fd`), then `blockdev-add` reads it from `/dev/fdset/N`, and
/// `device_add` puts a SCSI disk with the disk's serial at a free target of the
/// machine's virtio-scsi controller (``MachineDescription/hotplugDisks``); the guest
/// learns of it through a virtio-scsi event and scans it in. Removal (`device_del`)
/// is immediate: the guest must have unmounted the disk first.
extension VirtualMachine {
    /// fd set numbers for hot-added disks start here (boot disks use their descriptor numbers).
    static let hotplugFDSetBase = 1000
    /// How many disks may be attached at once (SCSI targets of the controller).
    public static let maxAttachedDisks = 256

    /// The ids of the disks added with ``attachDisk(_:)`` and not yet detached.
    public var attachedDiskIDs: [String] { hotplugged.keys.sorted() }

    /// Adds `disk` to the running machine in a free slot; the guest finds it by its
    /// serial (``Disk/id``). Fails with `resourceExhausted` when every slot is taken,
    /// `alreadyExists` for an id in use. On failure nothing stays in QEMU.
    public func attachDisk(_ disk: Disk) async throws {
        guard state == .running, let qmp else { throw QemuboxError(.invalidState, "attach a disk in state \(state)") }
        guard machine.hotplugDisks else {
            throw QemuboxError(.failedPrecondition, "\(machine.name) takes no disks while running (hotplugDisks is off)")
        }
        guard hotplugged[disk.id] == nil, !machine.disks.contains(where: { $0.id == disk.id }) else {
            throw QemuboxError(.alreadyExists, "\(machine.name): a disk \(disk.id) is attached")
        }
        guard disk.emptyBytes == nil, disk.format == "raw" || disk.format == "qcow2" else {
            throw QemuboxError(.invalidDescription, "\(machine.name): disk \(disk.id) must be a raw or qcow2 file")
        }
        guard disk.id.utf8.count <= 20, ResolvedMachine.isValidID(disk.id) else {
            throw QemuboxError(.invalidDescription,
                               "\(machine.name): disk id '\(disk.id)' must be 1-20 of [A-Za-z0-9._-] starting with a letter (it is the disk's serial)")
        }
        let used = Set(hotplugged.values.map(\.slot))
        guard let slot = (0..<Self.maxAttachedDisks).first(where: { !used.contains($0) }) else {
            throw QemuboxError(.resourceExhausted, "\(machine.name): \(Self.maxAttachedDisks) disks are attached already")
        }
        nextFDSet += 1
        let record = HotpluggedDisk(slot: slot, fdset: Self.hotplugFDSetBase + nextFDSet,
                                    node: "hp-\(disk.id)", device: "hpdev-\(disk.id)")
        // The slot is taken before the first suspension point: a concurrent attach picks another.
        hotplugged[disk.id] = record
        var nodeAdded = false
        do {
            try await passDescriptors(disk, fdset: record.fdset)
            var options: [String: JSONValue] = ["driver": .string("file"), "filename": .string("/dev/fdset/\(record.fdset)"),
                                                "aio": .string(disk.aio.rawValue)]
            if disk.cache.isDirect { options["cache"] = .object(["direct": .bool(true)]) }
            _ = try await qmp.execute("blockdev-add", arguments: .object([
                "node-name": .string(record.node), "driver": .string(disk.format), "read-only": .bool(disk.readOnly),
                "file": .object(options),
            ]))
            nodeAdded = true
            try await qmp.deviceAdd(driver: "scsi-hd", id: record.device, properties: [
                "drive": .string(record.node), "serial": .string(disk.id),
                "bus": .string(QEMUCommandLine.hotplugController + ".0"), "channel": .int(0),
                "scsi-id": .int(Int64(slot)), "lun": .int(0),
            ])
        } catch {
            if nodeAdded { _ = try? await qmp.execute("blockdev-del", arguments: .object(["node-name": .string(record.node)])) }
            _ = try? await qmp.execute("remove-fd", arguments: .object(["fdset-id": .int(Int64(record.fdset))]))
            hotplugged[disk.id] = nil
            throw QemuboxError(.system, "\(machine.name): adding disk \(disk.id) failed: \(error)")
        }
    }

    /// Removes a disk added with ``attachDisk(_:)`` (`device_del`), waits up to `timeout`
    /// for QEMU's DEVICE_DELETED, then drops the block node and the descriptors. The
    /// guest must have unmounted it first. If QEMU does not confirm, the slot stays
    /// taken and the error says so.
    public func detachDisk(id: String, timeout: Duration = .seconds(10)) async throws {
        guard let record = hotplugged[id] else { throw QemuboxError(.notFound, "\(machine.name): no hot-added disk \(id)") }
        guard state == .running, let qmp else {
            hotplugged[id] = nil
            return
        }
        try await removeDevice(record.device, what: "disk \(id)", timeout: timeout)
        _ = try? await qmp.execute("blockdev-del", arguments: .object(["node-name": .string(record.node)]))
        _ = try? await qmp.execute("remove-fd", arguments: .object(["fdset-id": .int(Int64(record.fdset))]))
        hotplugged[id] = nil
    }

    /// Opens the disk's file and hands the descriptor (and a read-only one for a
    /// writable disk: QEMU picks by access mode) to QEMU's fd set `fdset`.
    private func passDescriptors(_ disk: Disk, fdset: Int) async throws {
        let control = controlSocketPath
        try await NIOThreadPool.singleton.runIfActive {
            let direct = disk.cache.isDirect ? qbx_o_direct() : 0
            var modes = [(disk.readOnly ? O_RDONLY : O_RDWR) | direct]
            if !disk.readOnly { modes.append(O_RDONLY | direct) }
            let channel = try QMPControlChannel(unixSocketPath: control)
            defer { channel.close() }
            for mode in modes {
                let fd = open(disk.path, mode | O_CLOEXEC)
                guard fd >= 0 else {
                    throw QemuboxError(.system, "open \(disk.path): \(String(cString: strerror(errno)))")
                }
                defer { close(fd) }
                _ = try channel.execute("add-fd", arguments: .object([
                    "fdset-id": .int(Int64(fdset)), "opaque": .string(disk.id),
                ]), passing: fd)
            }
        }
    }
}
