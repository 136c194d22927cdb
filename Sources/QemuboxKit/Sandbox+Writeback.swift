import Foundation
import Logging
import NIOPosix
import QemuboxAPI

/// ``ChangeApplier`` is used by one task at a time, its calls hopping to NIO's blocking pool.
private struct ApplierBox: @unchecked Sendable {
    let applier: ChangeApplier
}

extension Sandbox {
    /// Brings the writable layer back to the host: the guest streams the overlay
    /// upper directory `upper` (`System/ExportChanges`) and the host applies it to
    /// `target` under `policy` (``ChangeApplier``: parsed, bounded, beneath-only;
    /// nothing the guest wrote is ever mounted on the host). Call it after the task
    /// is deleted and before the rootfs is unmounted.
    @discardableResult
    public func writeBack(upper: String, into target: RootfsWriteback.Target, policy: WritebackPolicy) async throws
        -> ChangeApplier.Summary
    {
        let box = try ApplierBox(applier: ChangeApplier(target: target, policy: policy))
        var request = Qemubox_Guest_V1_ExportChangesRequest()
        request.directory = upper
        let pool = NIOThreadPool.singleton
        do {
            let stream = try await agent.system.exportChanges(request, options: .unbounded)
            var batch: [Qemubox_Guest_V1_ChangeRecord] = []
            var batchBytes = 0
            for try await record in stream {
                batch.append(record)
                batchBytes += record.data.count
                if batch.count >= 256 || batchBytes >= 4 << 20 {
                    let records = batch
                    try await pool.runIfActive { for r in records { try box.applier.apply(r) } }
                    batch = []
                    batchBytes = 0
                }
            }
            let records = batch
            return try await pool.runIfActive {
                for r in records { try box.applier.apply(r) }
                return try box.applier.finish()
            }
        } catch let error as QemuboxError {
            throw error
        } catch {
            throw QemuboxError(.rootfs, "writeback of \(upper) into \(target.directory): \(error)")
        }
    }

    /// The writeback after a crash (the VM that ran the container is gone): a fresh
    /// VM gets the container's writable disk, mounts it read-only in the guest and
    /// streams its upper directory back as ``writeBack(upper:into:policy:)`` does.
    /// The host kernel never sees the guest-written filesystem.
    @discardableResult
    public static func rescueWriteBack(scratchImage: String, into target: RootfsWriteback.Target,
                                       policy: WritebackPolicy, configuration: SandboxConfiguration) async throws
        -> ChangeApplier.Summary
    {
        var rescue = configuration
        rescue.name = String((configuration.name + "-rescue").prefix(64))
        rescue.templates = nil
        rescue.network = nil
        let sandbox = try await Sandbox.start(rescue, extraDisks: [
            Disk(id: RootfsPlan.scratchDiskID, path: scratchImage, readOnly: true),
        ])
        do {
            let mountPoint = "/run/qemubox/rescue"
            var mount = Qemubox_Guest_V1_MountRequest()
            mount.mounts = [RootfsPlan.guestMount("ext4", "disk:\(RootfsPlan.scratchDiskID)", mountPoint,
                                                  ["ro", "noload", "nodev", "nosuid", "noexec"])]
            _ = try await sandbox.agent.system.mount(mount)
            let summary = try await sandbox.writeBack(upper: mountPoint + "/upper", into: target, policy: policy)
            await sandbox.discard()
            return summary
        } catch {
            await sandbox.kill()
            throw error
        }
    }
}
