#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import OCISpec
import QemuboxAPI
import TTRPCCodec

/// One VM and the containers in it, with containerd's task semantics: the unit the
/// shim serves (`containerd-shim-qemubox-v1` is a thin ttrpc adapter over it) and
/// ``BundleRunner`` drives.
///
/// The first container created boots the VM (sized from its spec, networked from its
/// network namespace); when it is a CRI sandbox the VM is a pod VM, which the pod's later
/// containers join with their own disks (`join`).
/// The pod ends with its last container's delete. Every process is
/// reported with QEMU's pid, a host process in the VM's network namespace (Kata's
/// convention). Events go to ``PodConfiguration/onEvent`` in containerd's order: a
/// container's init exit after those of its execs. Errors are ``QemuboxError``s, whose
/// codes map to containerd's `errdefs` statuses; the guest's ttrpc errors pass through.
///
/// ```swift
/// let pod = Pod(PodConfiguration(id: "c1", stateDirectory: dir, assets: try .locate()))
/// var create = Containerd_Task_V2_CreateTaskRequest(); create.id = "c1"; create.bundle = bundle
/// _ = try await pod.create(create, io: DescriptorIO(stdin: nil, stdout: 1, stderr: 2))
/// _ = try await pod.start(containerID: "c1")
/// print(try await pod.wait(containerID: "c1").status); _ = try await pod.delete(containerID: "c1")
/// ```
public actor Pod {
    /// How a process ended.
    public struct Exit: Sendable, Hashable {
        /// Exit status (128+N when killed by signal N).
        public var status: UInt32
        /// When.
        public var at: Date
    }

    enum Status { case created, running, paused, stopped }

    struct Process {
        var execID: String
        var pid: UInt32 = 0
        var io: any ProcessIO
        var paths: ProcessIOPaths
        var status: Status = .created
        var exit: Exit?
        var waiters: [CheckedContinuation<Exit, Never>] = []
        var started = false
    }

    struct Container {
        var id: String
        var bundle: String
        var directory: String
        var rootfs: ContainerRootfs
        /// What the writable layer may bring back (nil: nothing goes back).
        var writebackPolicy: WritebackPolicy?
        var processes: [String: Process]
        /// Host bind mounts copied into the guest, and what a read-write file held when copied in.
        var hostMounts: [HostMount] = []
        var copiedIn: [Int: Data] = [:]
        var watcher: HostMountWatcher?
        var deleted = false
        var initExitPublished = false
        /// Disks added to the running VM for this container (a pod's later container), detached at its delete.
        var attachedDisks: [String] = []
        /// Its cgroup limits: the spec's, then each `Update`'s (what the VM is sized for).
        var resources: RuntimeSpec.Resources?
        /// The spec gives it a PID namespace of its own: when its init exits, the guest
        /// kernel ends every process of the container.
        var ownPIDNamespace = false
    }

    /// The pod's configuration.
    public nonisolated let configuration: PodConfiguration
    var logger: Logger { configuration.logger }
    /// The VM, once the first container is created.
    var sandbox: Sandbox?
    /// A VM started ahead for the first container (``adopt(spare:)``), until that create.
    var spare: Sandbox?
    var containers: [String: Container] = [:]
    var background: [Task<Void, Never>] = []
    var ended = false
    /// A create is under way (the actor is reentrant: the next one waits its turn).
    var creating = false
    var createWaiters: [CheckedContinuation<Void, Never>] = []
    /// The guest pid of the first container's init: later containers join its namespaces.
    var sandboxGuestPid: UInt32 = 0
    /// The first container's `io.qemubox.*` options (the VM's).
    var sandboxOptions = ContainerOptions()
    /// Disk id prefixes handed out to later containers (`k1-`, `k2-`, …).
    var joinedCount = 0
    /// Pod-scoped guest directories already made (``HostMount/podLocalPath(_:)``).
    var podLocalReady: Set<String> = []
    var nextStdioKey = 0
    /// The networks the pod attached itself (`[network]`), undone at the end.
    var cniAttachment: CNIAttachment?
    /// The namespace is filled after Create (containerd's CNI): attach at the first Start.
    var attachNetworkAtStart = false
    /// What was joined to the VM's NICs (undone at the end in a namespace the caller owns).
    var attached: [AttachedInterface] = []
    /// vCPUs the guest has online (nil: the boot count); above it, vCPUs stay plugged but offline.
    var onlineVCPUs: Int?
    /// Where the last create's time went, in seconds (rootfs, network, boot, create), and layer counts.
    public internal(set) var timings: [String: Double] = [:]

    /// A pod that boots its VM with the first `create`.
    public init(_ configuration: PodConfiguration) {
        self.configuration = configuration
    }

    /// The VM (nil before the first create).
    public var vm: VirtualMachine? { sandbox?.vm }

    /// QEMU's pid (nil before the first create and after the VM exited).
    public var pid: UInt32? {
        get async {
            guard let sandbox, let pid = await sandbox.vm.pid else { return nil }
            return UInt32(pid)
        }
    }

    /// The pid of a container's init process (0: unknown).
    public func initPid(_ containerID: String) -> UInt32 {
        containers[containerID]?.processes[""]?.pid ?? 0
    }

    /// Whether any container is still there (not deleted).
    public var hasLiveContainers: Bool {
        containers.values.contains { !$0.deleted }
    }

    // MARK: lookups

    func requireContainer(_ id: String) throws -> Container {
        guard let container = containers[id], !container.deleted else {
            throw QemuboxError(.notFound, "task \(id) not found")
        }
        return container
    }

    func requireProcess(_ id: String, _ execID: String) throws -> (Container, Process) {
        let container = try requireContainer(id)
        guard let process = container.processes[execID] else {
            throw QemuboxError(.notFound, "process \(execID) of task \(id) not found")
        }
        return (container, process)
    }

    func requireSandbox() throws -> Sandbox {
        guard let sandbox else { throw QemuboxError(.notFound, "the pod \(configuration.id) has no VM") }
        return sandbox
    }

    /// Whether the VM still runs.
    func vmAlive() async -> Bool {
        guard let sandbox else { return false }
        return await sandbox.vm.exit == nil
    }

    func update(_ containerID: String, _ execID: String, _ change: (inout Process) -> Void) {
        guard var process = containers[containerID]?.processes[execID] else { return }
        change(&process)
        containers[containerID]?.processes[execID] = process
    }

    /// Waits until no other create runs, then takes the turn.
    func acquireCreateTurn() async {
        while creating {
            await withCheckedContinuation { createWaiters.append($0) }
        }
        creating = true
    }

    /// Ends a create's turn and wakes the next one.
    func releaseCreateTurn() {
        creating = false
        if !createWaiters.isEmpty { createWaiters.removeFirst().resume() }
    }

    func nextKey() -> String {
        nextStdioKey += 1
        return "p\(nextStdioKey)"
    }

    /// Wraps an error from a step of `operation`: qemubox's and the guest's errors keep
    /// their codes (with context), anything else is internal.
    nonisolated static func wrap(_ error: any Error, _ operation: String) -> any Error {
        switch error {
        case let error as QemuboxError: QemuboxError(error.code, "\(operation): \(error.message)")
        case is TTRPCError: error
        default: QemuboxError(.system, "\(operation): \(error)")
        }
    }
}
