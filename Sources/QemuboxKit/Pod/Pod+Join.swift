import Foundation
import Logging
import OCISpec
import QemuboxAPI

extension Pod {
    /// Creates a pod's later container in the running VM: its rootfs disks are added to
    /// the VM (``VirtualMachine/attachDisk(_:)``, SCSI disks the guest finds by serial),
    /// its host mounts copied in, its namespaces pointed at the sandbox's, and the task
    /// created in the guest. The VM keeps its size and network: both belong to the pod.
    /// On failure the disks are detached and the container's files removed.
    func join(_ request: Containerd_Task_V2_CreateTaskRequest, sandbox: Sandbox, spec: RuntimeSpec, configJSON: Data,
              options: ContainerOptions, hostMounts: [HostMount], io: any ProcessIO) async throws -> UInt32 {
        guard sandbox.configuration.hotplugDisks else {
            throw QemuboxError(.unimplemented,
                "task \(request.id): the VM of \(configuration.id) runs a single container; only a CRI pod's sandbox boots a VM that others join")
        }
        guard await vmAlive() else {
            throw QemuboxError(.failedPrecondition, "task \(request.id): the VM of pod \(configuration.id) has exited")
        }
        // containerd passes pod annotations to every container of the pod: the sandbox's
        // VM annotations may come again, but a container cannot ask for another VM.
        if options != sandboxOptions && options != ContainerOptions() {
            throw QemuboxError(.invalidArgument,
                "task \(request.id): io.qemubox.* VM annotations apply to a pod's sandbox; a container joining its VM cannot ask for others")
        }
        try checkJoinNetwork(spec, sandbox: sandbox, id: request.id)
        try PodSpec.checkNamespacePaths(spec, joining: sandboxGuestPid)
        if let shared = hostMounts.first(where: \.shared) {
            throw QemuboxError(.unimplemented,
                "task \(request.id): bind mount \(shared.source) at \(shared.destination) is a read-write directory; a pod's later container cannot get a new virtio-fs share (emptyDir volumes and /dev/shm live in the pod VM)")
        }
        // The VM grows first (where it has a ceiling): a refusal leaves nothing to undo.
        try await growToFit(request.id, resources: spec.linux?.resources, sandbox: sandbox)
        let started = ContinuousClock.now
        joinedCount += 1
        let prefix = "k\(joinedCount)-"
        let directory = configuration.containerDirectory(request.id)
        var attached: [String] = []
        var planned: RootfsPlan?
        var stdio: ProcessStdio?
        do {
            try VirtualMachine.makeDirectory(directory)
            let writable = spec.root?.readonly == true ? 0 : configuration.writableBytes
            var rootfs = try plan(.mounts(request.rootfs), spec: spec, bundle: request.bundle, containerID: request.id,
                                  directory: directory, writableBytes: writable)
            rootfs.plan = rootfs.plan.prefixingDisks(prefix)
            planned = rootfs.plan
            let policy = WritebackPolicy(spec: spec, layerBytes: configuration.writableBytes)
            try configuration.journal.rootfsPlanned(request.id, rootfs, policy)
            let rootfsReady = ContinuousClock.now
            for disk in rootfs.plan.disks {
                try await sandbox.vm.attachDisk(disk)
                attached.append(disk.id)
            }
            let disksReady = ContinuousClock.now
            let copied = hostMounts.filter(\.copied)
            let trees = try await Self.snapshots(copied)
            for (mount, tree) in zip(copied, trees) { try await sandbox.syncTree(mount.guestPath, tree) }
            try await preparePodLocal(hostMounts, on: sandbox)
            let guestConfig = try PodSpec.guestConfig(
                spec, original: configJSON, terminal: request.terminal,
                sources: Dictionary(uniqueKeysWithValues: hostMounts.map { ($0.index, $0.guestPath) }),
                joining: sandboxGuestPid)
            let (response, process) = try await createInGuest(request, sandbox: sandbox, plan: rootfs.plan,
                                                              configJSON: guestConfig, io: io, stdio: &stdio)
            let pid = process.pid
            var container = Container(
                id: request.id, bundle: request.bundle, directory: directory, rootfs: rootfs,
                writebackPolicy: rootfs.writeback == nil ? nil : policy, processes: ["": process],
                hostMounts: hostMounts,
                copiedIn: Dictionary(uniqueKeysWithValues: zip(copied, trees).filter { !$0.0.readOnly }
                    .map { ($0.0.index, $0.1.first?.data ?? Data()) }))
            container.attachedDisks = attached
            container.resources = spec.linux?.resources
            container.ownPIDNamespace = PodSpec.hasOwnPIDNamespace(spec)
            containers[request.id] = container
            watchHostMounts(request.id)
            let created = ContinuousClock.now
            timings = ["rootfs": (rootfsReady - started).podSeconds, "disks": (disksReady - rootfsReady).podSeconds,
                       "create": (created - disksReady).podSeconds,
                       "layers_converted": Double(rootfs.layers.filter { !$0.cached }.count),
                       "layers_cached": Double(rootfs.layers.filter { $0.cached }.count)]
            logger.info("created \(request.id) in the VM of pod \(configuration.id)", metadata: [
                "rootfs_s": "\(timings["rootfs"] ?? 0)", "disks_s": "\(timings["disks"] ?? 0)",
                "create_s": "\(timings["create"] ?? 0)", "disks": "\(attached.count)", "guest_pid": "\(response.pid)"])
            publishCreate(request, pid: pid)
            return pid
        } catch {
            stdio?.resetAll()
            await io.close()
            if let planned, !attached.isEmpty, await vmAlive() {
                // What the guest mounted from the disks goes before the disks do.
                var delete = Containerd_Task_V2_DeleteRequest()
                delete.id = request.id
                _ = try? await sandbox.agent.task.delete(delete)
                for target in planned.unmountTargets {
                    // One by one: a create that failed half-way mounted only some of them.
                    var unmount = Qemubox_Guest_V1_UnmountRequest()
                    unmount.targets = [target]
                    unmount.detach = true
                    _ = try? await sandbox.agent.system.unmount(unmount)
                }
            }
            await detachDisks(attached, of: request.id, from: sandbox)
            try? FileManager.default.removeItem(atPath: directory)
            logger.error("create \(request.id) failed: \(error)")
            throw Self.wrap(error, "create \(request.id)")
        }
    }

    /// Writes the guest bundle (config.json, rootfs mounts), opens the init process's stdio
    /// streams (kept in `stdio` for a rollback) and creates the task in the guest. Returns
    /// the guest's answer and the process as containerd sees it (QEMU's pid).
    func createInGuest(_ request: Containerd_Task_V2_CreateTaskRequest, sandbox: Sandbox, plan: RootfsPlan,
                       configJSON: Data, io: any ProcessIO, stdio: inout ProcessStdio?) async throws
        -> (Containerd_Task_V2_CreateTaskResponse, Process)
    {
        try await sandbox.prepareBundle(plan, configJSON: configJSON)
        let streams = try await ProcessStdio.open(on: sandbox.agent, name: nextKey(), stdin: io.wantsStdin,
                                                  stdout: io.wantsStdout, stderr: io.wantsStderr,
                                                  terminal: request.terminal)
        stdio = streams
        let response = try await sandbox.createTask(id: request.id, bundle: plan.guestBundle,
                                                    stdio: streams, terminal: request.terminal)
        io.attach(streams)
        var process = Process(execID: "", io: io,
                              paths: ProcessIOPaths(stdin: request.stdin, stdout: request.stdout,
                                                    stderr: request.stderr, terminal: request.terminal))
        process.pid = UInt32(await sandbox.vm.pid ?? 0)
        return (response, process)
    }

    /// A later container's network namespace must be the pod's (or none): the VM has one network.
    func checkJoinNetwork(_ spec: RuntimeSpec, sandbox: Sandbox, id: String) throws {
        guard let entry = spec.linux?.namespaces?.first(where: { $0.type == .network }),
              let path = entry.path, !path.isEmpty else { return }
        // CRI points a container at its sandbox's namespace by the sandbox's pid (ours: QEMU's).
        if path.hasPrefix("/proc/") && path.hasSuffix("/ns/net") { return }
        if case .path(let podPath) = sandbox.configuration.network?.namespace, podPath == path { return }
        throw QemuboxError(.invalidArgument,
            "task \(id): network namespace \(path) is not the pod's; the containers of a pod share its VM's network")
    }

    /// Makes the pod-scoped guest directories the mounts name (once per pod): a tmpfs
    /// for CRI's `/dev/shm`, a directory for an emptyDir volume.
    func preparePodLocal(_ mounts: [HostMount], on sandbox: Sandbox) async throws {
        for mount in mounts {
            guard let kind = mount.podLocal, !podLocalReady.contains(mount.guestPath) else { continue }
            do {
                var mkdir = Qemubox_Guest_V1_MkdirRequest()
                mkdir.paths = [mount.guestPath]
                _ = try await sandbox.agent.system.mkdir(mkdir)
                if kind == .tmpfs {
                    var request = Qemubox_Guest_V1_MountRequest()
                    request.mounts = [RootfsPlan.guestMount("tmpfs", "shm", mount.guestPath,
                                                            ["nosuid", "nodev", "noexec", "mode=1777", "size=65536k"])]
                    _ = try await sandbox.agent.system.mount(request)
                }
            } catch {
                throw QemuboxError(.agentError, "making the pod's \(mount.destination) for \(mount.source) in the guest: \(error)")
            }
            podLocalReady.insert(mount.guestPath)
        }
    }

    /// Detaches a later container's disks (after its rootfs is unmounted in the guest).
    func detachDisks(_ ids: [String], of containerID: String, from sandbox: Sandbox) async {
        guard await vmAlive() else { return }
        for id in ids {
            do {
                try await sandbox.vm.detachDisk(id: id)
            } catch {
                logger.warning("detaching disk \(id) of \(containerID) failed: \(error)")
            }
        }
    }

    /// Publishes `TaskCreate`.
    func publishCreate(_ request: Containerd_Task_V2_CreateTaskRequest, pid: UInt32) {
        var event = Containerd_Events_TaskCreate()
        event.containerID = request.id
        event.bundle = request.bundle
        event.rootfs = request.rootfs
        var taskIO = Containerd_Events_TaskIO()
        taskIO.stdin = request.stdin
        taskIO.stdout = request.stdout
        taskIO.stderr = request.stderr
        taskIO.terminal = request.terminal
        event.io = taskIO
        event.pid = pid
        configuration.onEvent(event)
    }
}
