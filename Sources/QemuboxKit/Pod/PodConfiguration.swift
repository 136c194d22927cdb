import Foundation
import Logging
import SwiftProtobuf

/// What a ``Pod`` boots, where it keeps its files, and whom it tells.
public struct PodConfiguration: Sendable {
    /// The pod's id: the first container's (the sandbox's) id; names the VM.
    public var id: String
    /// The containerd namespace (names the network namespace and CNI attachments the pod makes).
    public var namespace: String
    /// The pod's directory: the VM's files in `vm/`, each container's disks in `containers/<digest>/`.
    public var stateDirectory: String
    /// Guest kernel and system image.
    public var assets: GuestAssets
    /// QEMU binary.
    public var qemuBinary = "qemu-system-x86_64"
    /// Accelerator preference.
    public var accelerator: AcceleratorPreference = .auto
    /// How QEMU is confined (nil: not jailed).
    public var jail: QEMUJail? = QEMUJail.standard
    /// The nice value QEMU starts with (nil: the starting thread's; a spare VM waits at 10).
    public var qemuNice: Int32?
    /// Warm start: restore a saved guest from this store instead of booting (nil: always boot).
    public var templates: VMTemplateStore?
    /// VM memory when the spec sets no limit; the floor otherwise.
    public var memoryMiB = 256
    /// Memory added to a container's limit for the guest kernel and agent.
    public var guestOverheadMiB = 64
    /// Under TCG, QEMU's translated-code buffer per VM, MiB.
    public var translationBufferMiB = 64
    /// vCPUs when the spec sets no CPU quota.
    public var vcpus = 1
    /// vCPU hotplug ceiling (nil: none; see ``VMShape``).
    public var maxVCPUs: Int?
    /// Memory hotplug ceiling, MiB (nil: none).
    public var maxMemoryMiB: Int?
    /// Machine type (auto: microvm unless the VM has a ceiling).
    public var machineType: MachineDescription.MachineType = .auto
    /// Size of a writable layer's disk (sparse); 0: read-only root filesystems.
    public var writableBytes: UInt64 = 1 << 30
    /// The EROFS layer cache for containerd's snapshots (nil: every layer converted into the container's directory).
    public var layerCache: EROFSLayerCache?
    /// Time for the agent to answer after QEMU started.
    public var bootTimeout: Duration = .seconds(60)
    /// Time for the guest to power off before QEMU is ended.
    public var shutdownTimeout: Duration = .seconds(10)
    /// Verbose agent logging on the guest console.
    public var debug = false
    /// Words appended to the guest kernel's command line.
    public var extraKernelArguments: [String] = []
    /// false: the VM gets no NIC and QEMU stays in the caller's network namespace, whatever
    /// the spec asks (the container has loopback only).
    public var networking = true
    /// What containers may ask for with `io.qemubox.*` annotations.
    public var annotations = AnnotationPolicy()
    /// CNI networks the pod attaches itself when its container asks for a network namespace without a path.
    public var network = NetworkSettings()
    /// Crash-recovery hooks: what to record before it is created.
    public var journal = PodJournal()
    /// Receives containerd's task events (`TaskCreate`, `TaskStart`, `TaskExit`, `TaskOOM`, …), in order.
    public var onEvent: @Sendable (any SwiftProtobuf.Message) -> Void = { _ in }
    /// Logger.
    public var logger = Logger(label: "qemubox.pod")

    /// A configuration with qemubox's defaults.
    public init(id: String, namespace: String = "default", stateDirectory: String, assets: GuestAssets) {
        self.id = id
        self.namespace = namespace
        self.stateDirectory = stateDirectory
        self.assets = assets
    }

    /// A configuration from the host's `config.toml`.
    public init(id: String, namespace: String, stateDirectory: String, host configuration: QemuboxConfiguration)
        throws
    {
        self.init(id: id, namespace: namespace, stateDirectory: stateDirectory, assets: try configuration.assets())
        qemuBinary = configuration.qemuBinary
        accelerator = configuration.accelerator
        jail = configuration.jail.jail
        templates = configuration.templates
        memoryMiB = configuration.memoryMiB
        guestOverheadMiB = configuration.guestOverheadMiB
        translationBufferMiB = configuration.translationBufferMiB
        vcpus = configuration.vcpus
        maxVCPUs = configuration.maxVCPUs
        maxMemoryMiB = configuration.maxMemoryMiB
        machineType = configuration.machineType
        writableBytes = UInt64(configuration.writableLayerMiB) << 20
        layerCache = EROFSLayerCache(directory: configuration.cacheDirectory)
        bootTimeout = .seconds(configuration.bootTimeoutSeconds)
        shutdownTimeout = .seconds(configuration.shutdownTimeoutSeconds)
        debug = configuration.guestDebug
        network = configuration.network
        annotations = configuration.annotations
    }

    /// The VM's own directory (QEMU's record, console log, agent socket).
    public var vmDirectory: String { stateDirectory + "/vm" }

    /// Where a container's disks go.
    public func containerDirectory(_ id: String) -> String {
        stateDirectory + "/containers/" + PodSpec.digest(id)
    }

    /// The sandbox configuration of a VM for this pod, of the given shape.
    public func sandbox(name: String, directory: String, shape: VMShape) -> SandboxConfiguration {
        var sandbox = SandboxConfiguration(name: name, assets: assets, stateDirectory: directory, memoryMiB: shape.memoryMiB,
                                           vcpus: shape.vcpus, qemuBinary: qemuBinary, agentTimeout: bootTimeout,
                                           debug: debug, logger: logger)
        sandbox.maxVCPUs = shape.maxVCPUs
        sandbox.maxMemoryMiB = shape.maxMemoryMiB
        sandbox.machineType = shape.machineType
        sandbox.translationBufferMiB = translationBufferMiB
        sandbox.accelerator = accelerator
        sandbox.jail = jail
        sandbox.qemuNice = qemuNice
        sandbox.templates = templates
        sandbox.extraKernelArguments = extraKernelArguments
        return sandbox
    }
}

/// What a ``Pod`` reports before it creates what a crash would leave behind, so that
/// a cleanup after the crash (the shim's `delete`) can find and undo it. Each hook
/// may throw to refuse: the step is then not taken.
public struct PodJournal: Sendable {
    /// A container's rootfs is planned (its writable disk and where it goes back) under `policy`.
    public var rootfsPlanned: @Sendable (_ containerID: String, ContainerRootfs, WritebackPolicy) throws -> Void
    /// The pod attached CNI networks (a namespace of its own) — call again as it grows.
    public var networkAttached: @Sendable (CNIAttachment) throws -> Void
    /// A container's writable layer was written back (a cleanup must not repeat it).
    public var writtenBack: @Sendable (_ containerID: String) -> Void

    /// A journal that records nothing.
    public init(rootfsPlanned: @escaping @Sendable (String, ContainerRootfs, WritebackPolicy) throws -> Void = { _, _, _ in },
                networkAttached: @escaping @Sendable (CNIAttachment) throws -> Void = { _ in },
                writtenBack: @escaping @Sendable (String) -> Void = { _ in }) {
        self.rootfsPlanned = rootfsPlanned
        self.networkAttached = networkAttached
        self.writtenBack = writtenBack
    }
}
