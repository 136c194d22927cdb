import Foundation
import Logging
import OCISpec
import QemuboxAPI

/// Where a container's root filesystem comes from.
public enum PodRootfs: Sendable {
    /// containerd's rootfs mounts (``RootfsPlan/fromMounts(_:bundleRootfs:containerID:directory:cache:writableBytes:readOnlyRoot:)``;
    /// none: the bundle's root directory, written back into it).
    case mounts([Containerd_Types_Mount])
    /// The bundle's root directory, converted for this run only: its writable layer is
    /// discarded with the container.
    case ephemeral
}

extension Pod {
    /// Creates a container (`Task/Create`): reads the bundle's config.json, plans the
    /// rootfs, and either boots the VM (the pod's first container; a CRI sandbox boots a
    /// pod VM that later containers join) or joins the running one (`join`),
    /// writes the guest's bundle and creates the task in the guest with `io` joined to its
    /// stdio. Returns the pid containerd sees (QEMU's). On failure everything made is released.
    @discardableResult
    public func create(_ request: Containerd_Task_V2_CreateTaskRequest, rootfs source: PodRootfs? = nil,
                       io: any ProcessIO) async throws -> UInt32 {
        guard request.checkpoint.isEmpty else {
            throw QemuboxError(.unimplemented, "qemubox cannot restore checkpoints")
        }
        // One create at a time: the first boots the VM, later ones add disks to it.
        await acquireCreateTurn()
        defer { releaseCreateTurn() }
        guard !ended else { throw QemuboxError(.failedPrecondition, "the pod \(configuration.id) has ended") }
        if let existing = containers[request.id], !existing.deleted {
            throw QemuboxError(.alreadyExists, "task \(request.id) exists")
        }
        let started = ContinuousClock.now
        let configPath = request.bundle + "/config.json"
        guard let configJSON = FileManager.default.contents(atPath: configPath) else {
            throw QemuboxError(.invalidArgument, "\(configPath) is missing or unreadable")
        }
        let spec: RuntimeSpec
        do {
            spec = try RuntimeSpec.load(bundle: request.bundle)
        } catch {
            throw QemuboxError(.invalidArgument, "\(configPath): \(error)")
        }
        // What the spec asks for is checked before anything is made.
        let options = try ContainerOptions(annotations: spec.annotations ?? [:], policy: configuration.annotations)
        let shape = try VMShape(spec: spec, options: options, configuration: configuration)
        let podVM = sandbox?.configuration.hotplugDisks ?? PodSpec.isPodSandbox(spec)
        let hostMounts = try HostMount.plan(spec, guestBundle: GuestAgentProtocol.bundleRoot + "/" + request.id,
                                            podVM: podVM)
        if let sandbox {
            return try await join(request, sandbox: sandbox, spec: spec, configJSON: configJSON, options: options,
                                  hostMounts: hostMounts, io: io)
        }
        try PodSpec.checkNamespacePaths(spec, joining: nil)
        let directory = configuration.containerDirectory(request.id)
        var box: Sandbox?
        var stdio: ProcessStdio?
        var attachment: CNIAttachment?
        do {
            try VirtualMachine.makeDirectory(directory)
            let writable = spec.root?.readonly == true ? 0 : configuration.writableBytes
            let rootfs = try plan(source ?? .mounts(request.rootfs), spec: spec, bundle: request.bundle,
                                  containerID: request.id, directory: directory, writableBytes: writable)
            let policy = WritebackPolicy(spec: spec, layerBytes: configuration.writableBytes)
            try configuration.journal.rootfsPlanned(request.id, rootfs, policy)
            let rootfsReady = ContinuousClock.now
            var sandboxConfiguration = configuration.sandbox(
                name: PodSpec.vmName(configuration.id), directory: configuration.vmDirectory, shape: shape)
            if options.warmStart == false { sandboxConfiguration.templates = nil }
            sandboxConfiguration.hotplugDisks = podVM
            sandboxConfiguration.extraKernelArguments += options.kernelArguments
            let networkPlan = try await self.networkPlan(spec)
            attachment = networkPlan.attachment
            sandboxConfiguration.network = networkPlan.network
            let networkReady = ContinuousClock.now
            let files = PodSpec.networkFiles(attachment, spec: spec, plan: rootfs.plan)
            let copied = hostMounts.filter(\.copied)
            let trees = try await Self.snapshots(copied)
            sandboxConfiguration.sharedDirectories = hostMounts.filter(\.shared).map {
                SharedDirectory(tag: $0.tag(containerID: request.id), path: $0.source,
                                capabilityChanges: HostMount.capabilityChanges(spec))
            }
            let guestConfig = try PodSpec.guestConfig(
                spec, original: configJSON, terminal: request.terminal,
                files: files.map { ($0.destination, $0.guestPath) },
                sources: Dictionary(uniqueKeysWithValues: hostMounts.map { ($0.index, $0.guestPath) }))
            let sandbox: Sandbox
            if let spare = await takeSpare(fitting: sandboxConfiguration) {
                // A VM started ahead: the container's disks join it now.
                box = spare
                for disk in rootfs.plan.disks { try await spare.vm.attachDisk(disk) }
                sandbox = spare
                logger.info("\(request.id) runs in a spare VM", metadata: ["vm": "\(spare.configuration.name)"])
            } else {
                sandbox = try await Sandbox.start(sandboxConfiguration, extraDisks: rootfs.plan.disks)
            }
            box = sandbox
            for file in files {
                var write = Qemubox_Guest_V1_WriteFileRequest()
                write.path = file.guestPath
                write.data = Data(file.content.utf8)
                _ = try await sandbox.agent.system.writeFile(write)
            }
            for (mount, tree) in zip(copied, trees) { try await sandbox.syncTree(mount.guestPath, tree) }
            try await sandbox.mountShared(hostMounts.filter(\.shared), containerID: request.id)
            try await preparePodLocal(hostMounts, on: sandbox)
            var attached: [AttachedInterface] = []
            if !networkPlan.attachAtStart, sandboxConfiguration.network != nil {
                attached = try await sandbox.attachNetwork()
            }
            let booted = ContinuousClock.now
            let (response, process) = try await createInGuest(request, sandbox: sandbox, plan: rootfs.plan,
                                                              configJSON: guestConfig, io: io, stdio: &stdio)
            let pid = process.pid
            self.sandbox = sandbox
            sandboxGuestPid = response.pid
            sandboxOptions = options
            cniAttachment = attachment
            attachNetworkAtStart = networkPlan.attachAtStart
            self.attached = attached
            containers[request.id] = Container(
                id: request.id, bundle: request.bundle, directory: directory, rootfs: rootfs,
                writebackPolicy: rootfs.writeback == nil ? nil : policy, processes: ["": process],
                hostMounts: hostMounts,
                copiedIn: Dictionary(uniqueKeysWithValues: zip(copied, trees).filter { !$0.0.readOnly }
                    .map { ($0.0.index, $0.1.first?.data ?? Data()) }))
            containers[request.id]?.resources = spec.linux?.resources
            containers[request.id]?.ownPIDNamespace = PodSpec.hasOwnPIDNamespace(spec)
            startBackground(sandbox)
            watchHostMounts(request.id)
            let created = ContinuousClock.now
            timings = ["rootfs": (rootfsReady - started).podSeconds, "network": (networkReady - rootfsReady).podSeconds,
                       "boot": (booted - networkReady).podSeconds, "create": (created - booted).podSeconds,
                       "layers_converted": Double(rootfs.layers.filter { !$0.cached }.count),
                       "layers_cached": Double(rootfs.layers.filter { $0.cached }.count)]
            logger.info("created \(request.id) in its VM", metadata: [
                "rootfs_s": "\(timings["rootfs"] ?? 0)", "boot_s": "\(timings["boot"] ?? 0)",
                "create_s": "\(timings["create"] ?? 0)", "layers": "\(rootfs.layers.count)",
                "layers_cached": "\(rootfs.layers.filter { $0.cached }.count)", "guest_pid": "\(response.pid)"])
            publishCreate(request, pid: pid)
            return pid
        } catch {
            stdio?.resetAll()
            await io.close()
            if let box { await box.kill() }
            if let attachment { await attachment.detach(logger: logger) }
            try? FileManager.default.removeItem(atPath: directory)
            logger.error("create \(request.id) failed: \(error)")
            throw Self.wrap(error, "create \(request.id)")
        }
    }

    /// The rootfs plan for a container.
    func plan(_ source: PodRootfs, spec: RuntimeSpec, bundle: String, containerID: String, directory: String,
              writableBytes: UInt64) throws -> ContainerRootfs {
        let rootPath = spec.root?.path ?? "rootfs"
        let bundleRootfs = rootPath.hasPrefix("/") ? rootPath : bundle + "/" + rootPath
        switch source {
        case .mounts(let mounts):
            let cache = configuration.layerCache ?? EROFSLayerCache(directory: directory + "/layers")
            return try RootfsPlan.fromMounts(mounts, bundleRootfs: bundleRootfs, containerID: containerID,
                                             directory: directory, cache: cache, writableBytes: writableBytes,
                                             readOnlyRoot: spec.root?.readonly == true)
        case .ephemeral:
            let plan = try RootfsPlan.fromDirectory(bundleRootfs, containerID: containerID, directory: directory,
                                                    writableBytes: writableBytes)
            return ContainerRootfs(plan: plan, scratchImage: nil, writeback: nil, layers: [])
        }
    }

    /// How the VM gets its network, from the spec's network namespace:
    /// - a path (CRI's pod namespace): QEMU joins it and its interfaces become NICs now;
    /// - no path, with `[network] networks` configured: the pod makes a namespace (names a
    ///   held spare's own), runs those CNI networks in it (journalled for a cleanup after a
    ///   crash), NICs now;
    /// - no path otherwise: QEMU gets a new namespace of its own with `nic_slots` NICs, and
    ///   whatever containerd's CNI puts there by Start (`ctr run --cni`) is attached then;
    /// - no network namespace (host networking under runc): no NIC, loopback only, and
    ///   QEMU stays in the caller's namespace.
    struct NetworkPlan {
        var network: SandboxNetwork?
        var attachment: CNIAttachment?
        var attachAtStart = false
    }

    func networkPlan(_ spec: RuntimeSpec) async throws -> NetworkPlan {
        guard configuration.networking,
              let entry = spec.linux?.namespaces?.first(where: { $0.type == .network }) else {
            return NetworkPlan()
        }
        if let path = entry.path, !path.isEmpty {
            return NetworkPlan(network: try await SandboxNetwork.existing(path: path))
        }
        let settings = configuration.network
        guard !settings.networks.isEmpty else {
            return NetworkPlan(network: SandboxNetwork.new(slots: settings.nicSlots), attachAtStart: true)
        }
        let journal = configuration.journal
        // A spare VM's QEMU has a namespace of its own with its TAPs: the networks go there,
        // so that QEMU's namespace is the container's as in a VM of its own (the name keeps it
        // for the VM that starts instead should the spare not fit).
        var spareNamespace: String?
        if let spare, spare.configuration.network?.namespace == .new, await spare.vm.exit == nil {
            spareNamespace = await spare.networkNamespacePath
        }
        let attachment = try await CNIAttachment.attach(
            settings, containerID: "\(configuration.namespace)-\(configuration.id)",
            namespaceName: PodSpec.namespaceName(namespace: configuration.namespace, id: configuration.id),
            pinning: spareNamespace, logger: logger
        ) { attachment in
            try journal.networkAttached(attachment)
        }
        return NetworkPlan(network: try await SandboxNetwork.existing(path: attachment.namespacePath),
                           attachment: attachment)
    }
}

extension Duration {
    /// Seconds as a Double.
    var podSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
