import Foundation
import Logging
import OCISpec

/// Spare VMs: a VM started before any container asks for it, which a pod's first
/// container takes instead of starting one (Documentation/warm-start.md, "Spare VMs").
///
/// Under TCG a VM's QEMU translates the guest's code afresh, so a VM that has already
/// run the agent's calls starts the next container in about half the time of a fresh
/// clone. A spare is the VM a container with no special needs would get — the host's
/// default shape, a new network namespace with `nic_slots` NICs — with a disk controller
/// so that the container's disks are added when it comes (``VirtualMachine/attachDisk(_:)``).
extension PodConfiguration {
    /// The sandbox configuration of a spare VM in ``vmDirectory``: the shape of a
    /// container whose spec asks for nothing, disks added later, its own network namespace.
    public func spareSandbox() throws -> SandboxConfiguration {
        let shape = try VMShape(spec: RuntimeSpec(), options: ContainerOptions(), configuration: self)
        var sandbox = self.sandbox(name: PodSpec.vmName(id), directory: vmDirectory, shape: shape)
        sandbox.hotplugDisks = true
        if networking { sandbox.network = SandboxNetwork.new(slots: network.nicSlots) }
        return sandbox
    }
}

extension Pod {
    /// Starts a spare VM (restored from a template where ``PodConfiguration/templates``
    /// is set) and, with `warmUp`, runs a throwaway container in it
    /// (``Sandbox/warmUp(scratchDirectory:)``), for a later ``adopt(spare:)``. On failure
    /// nothing is left.
    public static func startSpare(_ configuration: PodConfiguration, warmUp: Bool = true) async throws -> Sandbox {
        try VirtualMachine.makeDirectory(configuration.stateDirectory)
        let sandbox = try await Sandbox.start(try configuration.spareSandbox())
        guard warmUp else { return sandbox }
        do {
            try await sandbox.warmUp(scratchDirectory: configuration.stateDirectory)
        } catch {
            await sandbox.discard()
            throw Self.wrap(error, "warming the spare VM up")
        }
        return sandbox
    }

    /// Gives the pod a started VM for its first container. The create uses it when it
    /// fits (``spareMismatch(_:_:)``) and otherwise discards it and starts its own; a pod
    /// that ends without a create discards it too, as does one that has a VM or a spare already.
    public func adopt(spare: Sandbox) async {
        guard sandbox == nil, self.spare == nil, !ended else {
            logger.warning("not adopting the spare VM \(spare.configuration.name): the pod has a VM or a spare already")
            await spare.discard()
            return
        }
        self.spare = spare
    }

    /// The spare, if it can be the VM `wanted` describes and still runs; one that
    /// cannot is discarded here, and a link to its directory at ``PodConfiguration/vmDirectory``
    /// (the shim's) removed, so that the pod's own VM gets the directory.
    func takeSpare(fitting wanted: SandboxConfiguration) async -> Sandbox? {
        guard let spare else { return nil }
        self.spare = nil
        if let mismatch = Self.spareMismatch(spare.configuration, wanted) {
            logger.info("not using the spare VM: \(mismatch)")
        } else if let exit = await spare.vm.exit {
            logger.warning("not using the spare VM: it has exited: \(exit)")
        } else if case .path(let path)? = wanted.network?.namespace, let count = wanted.network?.slots.count {
            // The container's namespace exists (CRI's pod namespace, or the pod's CNI networks'):
            // the spare's TAPs go there, where the create joins them to its interfaces.
            do {
                return try await spare.movingNetwork(into: path, nics: count)
            } catch {
                logger.warning("not using the spare VM: \(error)")
            }
        } else {
            return spare
        }
        await spare.discard()
        var st = stat()
        if lstat(configuration.vmDirectory, &st) == 0, st.st_mode & S_IFMT == S_IFLNK { unlink(configuration.vmDirectory) }
        return nil
    }

    /// Discards an unused spare (the pod ends without having created a container).
    func discardSpare() async {
        guard let spare else { return }
        self.spare = nil
        await spare.discard()
    }

    /// Why a spare started as `spare` cannot be the VM `wanted` describes (nil: it can):
    /// the same size, ceilings, machine, kernel command line and accelerator settings, no
    /// shared directories, warm start not refused, and the same network shape: none, a new
    /// namespace with as many NICs, or an existing namespace with at most as many interfaces
    /// as the spare has NICs (those NICs move there).
    nonisolated static func spareMismatch(_ spare: SandboxConfiguration, _ wanted: SandboxConfiguration) -> String? {
        if wanted.vcpus != spare.vcpus || wanted.memoryMiB != spare.memoryMiB {
            return "the container wants \(wanted.vcpus) vCPU and \(wanted.memoryMiB) MiB, the spare has \(spare.vcpus) and \(spare.memoryMiB)"
        }
        if wanted.maxVCPUs != spare.maxVCPUs || wanted.maxMemoryMiB != spare.maxMemoryMiB
            || wanted.machineType != spare.machineType {
            return "another machine type or hotplug ceiling"
        }
        if wanted.extraKernelArguments != spare.extraKernelArguments || wanted.debug != spare.debug {
            return "another kernel command line"
        }
        if wanted.translationBufferMiB != spare.translationBufferMiB || wanted.accelerator != spare.accelerator
            || wanted.jail != spare.jail || wanted.qemuBinary != spare.qemuBinary {
            return "other QEMU settings"
        }
        if !wanted.sharedDirectories.isEmpty { return "the container shares host directories (virtio-fs)" }
        if (wanted.templates == nil) != (spare.templates == nil) { return "the container refuses warm start" }
        switch (wanted.network, spare.network) {
        case (nil, nil):
            return nil
        case (let w?, let s?) where w.namespace == .new && s.namespace == .new && w.slots.count == s.slots.count:
            return nil
        case (let w?, let s?) where w.namespace != .new && s.namespace == .new && w.slots.count <= s.slots.count:
            // An existing namespace: the spare's first NICs move into it (``Sandbox/movingNetwork(into:nics:)``).
            return nil
        default:
            return "another network (the spare has \(spare.network.map { "\($0.slots.count) NICs in a namespace of its own" } ?? "none"))"
        }
    }
}
