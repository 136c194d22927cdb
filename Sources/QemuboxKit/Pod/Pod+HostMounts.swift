import Foundation
import NIOPosix
import QemuboxAPI

extension Sandbox {
    /// Makes `path` in the guest hold exactly `entries` (``HostMount/snapshot()``).
    func syncTree(_ path: String, _ entries: [Qemubox_Guest_V1_TreeEntry]) async throws {
        var request = Qemubox_Guest_V1_SyncTreeRequest()
        request.path = path
        request.entries = entries
        do {
            _ = try await agent.system.syncTree(request)
        } catch {
            throw QemuboxError(.agentError, "copying a bind mount into the guest at \(path): \(error)")
        }
    }
}

extension Sandbox {
    /// Mounts the virtio-fs shares of a container's read-write directories at their guest paths.
    func mountShared(_ mounts: [HostMount], containerID: String) async throws {
        guard !mounts.isEmpty else { return }
        var request = Qemubox_Guest_V1_MountRequest()
        request.mounts = mounts.map {
            RootfsPlan.guestMount("virtiofs", $0.tag(containerID: containerID), $0.guestPath, ["nodev"])
        }
        do {
            // A share whose virtiofsd failed leaves the guest's mount waiting: bounded.
            _ = try await agent.system.mount(request, options: .init(timeout: .seconds(60)))
        } catch {
            throw QemuboxError(.agentError, "mounting the shared directories of \(containerID) in the guest: \(error)")
        }
    }
}

extension Pod {
    /// The mounts' sources as they are now, read on NIO's blocking pool.
    static func snapshots(_ mounts: [HostMount]) async throws -> [[Qemubox_Guest_V1_TreeEntry]] {
        guard !mounts.isEmpty else { return [] }
        return try await NIOThreadPool.singleton.runIfActive { try mounts.map { try $0.snapshot() } }
    }

    /// Starts keeping the container's read-only host mounts current.
    func watchHostMounts(_ containerID: String) {
        guard let mounts = containers[containerID]?.hostMounts.filter(\.readOnly), !mounts.isEmpty else { return }
        do {
            let watcher = try HostMountWatcher(mounts) { [weak self] changed in
                let indices = changed.map { mounts[$0].index }
                Task { await self?.resync(containerID, indices: Set(indices)) }
            }
            containers[containerID]?.watcher = watcher
        } catch {
            logger.warning("bind mounts of \(containerID) will not follow changes on the host: \(error)")
        }
    }

    /// Copies changed read-only mounts into the guest again.
    func resync(_ containerID: String, indices: Set<Int>) async {
        guard let container = containers[containerID], !container.deleted, let sandbox else { return }
        for mount in container.hostMounts where indices.contains(mount.index) {
            do {
                let tree = try await Self.snapshots([mount]).first ?? []
                try await sandbox.syncTree(mount.guestPath, tree)
                logger.debug("bind mount \(mount.source) synced into \(containerID)", metadata: ["entries": "\(tree.count)"])
            } catch {
                logger.warning("bind mount \(mount.source) of \(containerID) could not follow a change: \(error)")
            }
        }
    }

    /// Stops the watcher and copies read-write files back into their host files (when the
    /// container changed them), bounded by ``HostMount/maximumBytes``. The VM must still run.
    func releaseHostMounts(_ container: Container) async {
        container.watcher?.stop()
        guard let sandbox, await vmAlive() else {
            if container.hostMounts.contains(where: { !$0.readOnly && $0.kind == .file }) {
                logger.warning("the VM of \(container.id) is gone: read-write bind mounts are not copied back")
            }
            return
        }
        let shared = container.hostMounts.filter(\.shared).map(\.guestPath)
        if !shared.isEmpty {
            var request = Qemubox_Guest_V1_UnmountRequest()
            request.targets = shared
            request.detach = true
            _ = try? await sandbox.agent.system.unmount(request)
        }
        for mount in container.hostMounts where !mount.readOnly && mount.kind == .file {
            do {
                var request = Qemubox_Guest_V1_ReadFileRequest()
                request.path = mount.guestPath
                request.maxBytes = UInt64(HostMount.maximumBytes)
                let data = try await sandbox.agent.system.readFile(request).data
                guard data != container.copiedIn[mount.index] else { continue }
                try await NIOThreadPool.singleton.runIfActive { try mount.writeBack(data) }
                logger.info("bind mount \(mount.source) copied back from \(container.id)", metadata: ["bytes": "\(data.count)"])
            } catch {
                logger.error("bind mount \(mount.source) of \(container.id) could not be copied back: \(error)")
            }
        }
    }
}

extension HostMount {
    /// Writes a read-write file mount's content back into the host file, in place (the
    /// path resolved as runc resolves a bind mount's source; no file is created).
    func writeBack(_ data: Data) throws {
        let fd = open(source, O_WRONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw QemuboxError(.system, "open \(source): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw QemuboxError(.system, "\(source) is no longer a regular file")
        }
        try data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let n = pwrite(fd, base + offset, raw.count - offset, off_t(offset))
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { throw QemuboxError(.system, "write \(source): \(String(cString: strerror(errno)))") }
                offset += n
            }
        }
        guard ftruncate(fd, off_t(data.count)) == 0 else {
            throw QemuboxError(.system, "truncate \(source): \(String(cString: strerror(errno)))")
        }
    }
}
