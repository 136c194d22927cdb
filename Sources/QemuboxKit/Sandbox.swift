import Foundation
import Tracing
import Logging
import NIOConcurrencyHelpers
import QemuboxAPI

/// One VM running the qemubox guest (vminitd on the system image) with its agent
/// connected: the unit a container runs in.
///
/// ```swift
/// let sandbox = try await Sandbox.start(SandboxConfiguration(name: "c1", assets: try .locate(), stateDirectory: dir))
/// print(try await sandbox.agent.system.info(.init()).kernelRelease)
/// await sandbox.shutdown(reason: "done")
/// ```
public final class Sandbox: Sendable {
    /// The VM.
    public let vm: VirtualMachine
    /// The connection to the guest agent.
    public let agent: GuestAgentConnection
    /// The configuration it was started with.
    public let configuration: SandboxConfiguration

    init(vm: VirtualMachine, agent: GuestAgentConnection, configuration: SandboxConfiguration) {
        self.vm = vm
        self.agent = agent
        self.configuration = configuration
    }

    /// Boots the VM with the system image first and `extraDisks` after it, waits
    /// for the agent to answer and sets the guest clock. With
    /// ``SandboxConfiguration/templates`` set, restores a saved guest instead (saving
    /// one first if the store has none for this configuration) unless the disks
    /// outnumber the template's slots; a template that fails to restore is removed
    /// (the next start saves a new one) and the error says so. On failure everything
    /// is released and the error carries the console's last lines.
    public static func start(_ configuration: SandboxConfiguration, extraDisks: [Disk] = []) async throws -> Sandbox {
        if configuration.templates != nil, !configuration.sharedDirectories.isEmpty {
            configuration.logger.info("cold boot: a machine with shared directories (virtio-fs) cannot be restored from a template",
                                      metadata: ["shares": "\(configuration.sharedDirectories.count)"])
        }
        if let store = configuration.templates, configuration.sharedDirectories.isEmpty {
            if extraDisks.count <= store.slots {
                let template = try await store.template(for: configuration)
                do {
                    let memory = try await store.memoryDescriptor(for: template, configuration: configuration)
                    defer { close(memory) }
                    return try await boot(configuration, disks: try template.slotDisks(extraDisks),
                                          memoryFile: MemoryFile(path: template.memoryPath, shared: false,
                                                                 descriptor: memory),
                                          restore: template)
                } catch {
                    // A template that does not restore (damaged, or saved by a QEMU that
                    // changed in place) is dropped, so the next start saves a new one.
                    store.remove(template)
                    throw QemuboxError(.startFailed, "restoring the VM template \(template.directory) failed; "
                        + "it was removed and the next start saves a new one: \(error)")
                }
            }
            configuration.logger.info("cold boot: more disks than template slots",
                                      metadata: ["disks": "\(extraDisks.count)", "slots": "\(store.slots)"])
        }
        return try await boot(configuration, disks: extraDisks, memoryFile: nil, restore: nil)
    }

    /// The kernel command line of a sandbox (also part of a template's key).
    static func commandLine(_ configuration: SandboxConfiguration) -> [String] {
        GuestAssets.commandLine(debug: configuration.debug) + configuration.extraKernelArguments
    }

    /// Boots (or, with `restore`, restores) the machine and connects to the agent; reports the
    /// time it took, or the failure, to swift-metrics (``SandboxMetrics``).
    static func boot(_ configuration: SandboxConfiguration, disks: [Disk], memoryFile: MemoryFile?,
                     restore template: VMTemplate?) async throws -> Sandbox {
        let started = ContinuousClock.now
        return try await withSpan(template == nil ? "qemubox.vm.boot" : "qemubox.vm.restore") { span in
            span.attributes["qemubox.vm"] = configuration.name
            do {
                let sandbox = try await bootMachine(configuration, disks: disks, memoryFile: memoryFile, restore: template)
                SandboxMetrics.started(restored: template != nil, after: ContinuousClock.now - started)
                return sandbox
            } catch {
                SandboxMetrics.failed(restored: template != nil)
                throw error
            }
        }
    }

    private static func bootMachine(_ configuration: SandboxConfiguration, disks: [Disk], memoryFile: MemoryFile?,
                                     restore template: VMTemplate?) async throws -> Sandbox {
        let agentSocket = configuration.stateDirectory + "/agent.sock"
        configuration.logger.info("guest assets", metadata: ["kernel": "\(configuration.assets.kernelPath)",
                                                             "image": "\(configuration.assets.systemImagePath)"])
        var machine = MachineDescription(
            name: configuration.name,
            kernel: KernelBoot(kernelPath: configuration.assets.kernelPath, initrdPath: configuration.assets.initrdPath,
                               commandLine: commandLine(configuration)))
        machine.memoryMiB = configuration.memoryMiB
        machine.accelerator = configuration.accelerator
        machine.vcpus = configuration.vcpus
        machine.maxVCPUs = configuration.maxVCPUs
        machine.maxMemoryMiB = configuration.maxMemoryMiB
        machine.machineType = configuration.machineType
        machine.translationBufferMiB = configuration.translationBufferMiB
        machine.memoryFile = memoryFile
        machine.disks = [Disk(id: GuestAssets.systemDiskID, path: configuration.assets.systemImagePath, readOnly: true)]
            + disks
        machine.serialPorts = [SerialPort(name: GuestAgentProtocol.portName, socketPath: agentSocket)]
        machine.sharedDirectories = configuration.sharedDirectories
        machine.hotplugDisks = configuration.hotplugDisks
        if let network = configuration.network {
            machine.nics = network.nics(vhost: SandboxNetwork.vhostNetUsable)
        } else if configuration.placeholderNICs > 0 {
            machine.nics = SandboxNetwork.placeholderNICs(configuration.placeholderNICs)
        }
        var vmConfiguration = VMConfiguration(stateDirectory: configuration.stateDirectory,
                                              qemuBinary: configuration.qemuBinary,
                                              readinessTimeout: configuration.agentTimeout,
                                              removeStateDirectoryOnExit: configuration.removeStateDirectoryOnExit,
                                              logger: configuration.logger)
        vmConfiguration.hostFacts = configuration.hostFacts
        vmConfiguration.jail = configuration.jail
        vmConfiguration.nice = configuration.qemuNice
        vmConfiguration.restoreState = template?.statePath
        switch configuration.network?.namespace {
        case .path(let path): vmConfiguration.networkNamespacePath = path
        case .new: vmConfiguration.newNetworkNamespace = true
        case nil: break
        }
        let vm = VirtualMachine(machine, configuration: vmConfiguration)
        let connected = NIOLockedValueBox<GuestAgentConnection?>(nil)
        do {
            try await vm.start { vm in
                let agent = try await withSpan("qemubox.agent.connect") { _ in
                    try await GuestAgentConnection.connect(virtioSerialSocket: agentSocket,
                                                           timeout: configuration.agentTimeout)
                }
                connected.withLockedValue { $0 = agent }
                if template == nil {
                    _ = try await agent.system.ping(.init(), options: .init(timeout: .seconds(30)))
                } else {
                    // Before anything else (and in place of a ping, one round trip less): a clone
                    // must not run on the template's clock and CRNG state.
                    var request = Qemubox_Guest_V1_RestoredRequest()
                    request.time = .init(date: Date())
                    var generator = SystemRandomNumberGenerator()
                    request.entropy = Data((0..<64).map { _ in UInt8.random(in: 0...255, using: &generator) })
                    _ = try await agent.system.restored(request, options: .init(timeout: .seconds(30)))
                }
            }
        } catch {
            if let agent = connected.withLockedValue({ $0 }) { await agent.close() }
            let live = await vm.consoleTail
            let console = live.isEmpty ? (await vm.exit?.consoleTail ?? "") : live
            let tail = console.split(separator: "\n").suffix(20).joined(separator: "\n")
            let what = template.map { "restored from \($0.directory)" } ?? "booted"
            throw QemuboxError(.agentUnavailable, "\(configuration.name) (\(what)): the guest agent did not come up: \(error)"
                + (tail.isEmpty ? "" : "\nconsole:\n\(tail)"))
        }
        guard let agent = connected.withLockedValue({ $0 }) else {
            await vm.stop()
            throw QemuboxError(.agentUnavailable, "\(configuration.name): no agent connection after start")
        }
        let sandbox = Sandbox(vm: vm, agent: agent, configuration: configuration)
        if template == nil {
            do {
                var time = Qemubox_Guest_V1_SetTimeRequest()
                time.time = .init(date: Date())
                _ = try await agent.system.setTime(time)
            } catch {
                configuration.logger.warning("cannot set the guest clock: \(error)")
            }
        }
        return sandbox
    }

    /// Asks the agent to power the guest off (it syncs and unmounts first), then
    /// makes sure QEMU is gone (powerdown, quit, SIGKILL as needed).
    @discardableResult
    public func shutdown(reason: String = "shutdown requested", timeout: Duration = .seconds(10)) async -> ExitReason {
        let agent = self.agent
        let policy = StopPolicy(guestRequest: {
            var request = Qemubox_Guest_V1_ShutdownRequest()
            request.reason = reason
            _ = try await agent.system.shutdown(request, options: .init(timeout: timeout))
        }, guestTimeout: timeout)
        let exit = await vm.stop(policy)
        await agent.close()
        return exit
    }

    /// Ends QEMU at once (QMP `quit`, SIGKILL if that does not work) without the
    /// guest's power-off, and closes the agent connection: for a guest that holds
    /// nothing worth saving any more. Saves the ~0.3 s of a guest power-off under TCG.
    @discardableResult
    public func discard() async -> ExitReason {
        let exit = await vm.stop(StopPolicy(guestRequest: nil, powerdownTimeout: .zero, quitTimeout: .seconds(5)))
        await agent.close()
        return exit
    }

    /// Ends the VM once its container is deleted: unmounts `plan`'s rootfs in the guest
    /// (which syncs the writable layer to its disk), then ``discard()``s the VM; if the
    /// unmount fails, the guest's own power-off (``shutdown(reason:timeout:)``) syncs
    /// and unmounts what it can. Returns the unmount's error, if any.
    @discardableResult
    public func stop(releasing plan: RootfsPlan, reason: String, timeout: Duration = .seconds(10)) async
        -> (any Error)?
    {
        do {
            try await releaseBundle(plan)
            await discard()
            return nil
        } catch {
            await shutdown(reason: reason, timeout: timeout)
            return error
        }
    }

    /// Kills QEMU at once and releases everything.
    @discardableResult
    public func kill() async -> ExitReason {
        await vm.kill()
        let exit = await vm.waitForExit()
        await agent.close()
        return exit
    }
}

/// What a ``Sandbox`` boots and how.
public struct SandboxConfiguration: Sendable {
    /// VM name (logs, QEMU's `-name`).
    public var name: String
    /// Guest kernel and system image.
    public var assets: GuestAssets
    /// The VM's state directory (sockets, console log, disks).
    public var stateDirectory: String
    /// Guest memory.
    public var memoryMiB: Int
    /// vCPUs at boot.
    public var vcpus: Int
    /// vCPU hotplug ceiling (nil: none). With either ceiling the machine is q35 unless
    /// ``machineType`` says otherwise (microvm cannot hotplug: an error).
    public var maxVCPUs: Int?
    /// Memory hotplug ceiling, MiB (nil: none).
    public var maxMemoryMiB: Int?
    /// Machine type.
    public var machineType: MachineDescription.MachineType = .auto
    /// Under TCG, QEMU's translated-code buffer, MiB (``MachineDescription/translationBufferMiB``).
    public var translationBufferMiB = 64
    /// Accelerator preference (auto: KVM when it can run a standard guest, else TCG).
    public var accelerator: AcceleratorPreference = .auto
    /// QEMU binary.
    public var qemuBinary: String
    /// Host facts (nil: probe this host).
    public var hostFacts: HostFacts?
    /// Time for the agent to answer after QEMU started.
    public var agentTimeout: Duration
    /// Verbose agent logging on the guest console.
    public var debug: Bool
    /// Remove the state directory once QEMU has exited.
    public var removeStateDirectoryOnExit: Bool
    /// Words appended to the kernel command line (later words win, e.g. `init=`).
    public var extraKernelArguments: [String] = []
    /// Host directories shared through virtio-fs (a machine with them always boots: it
    /// cannot be saved or restored as a template).
    public var sharedDirectories: [SharedDirectory] = []
    /// A controller for disks added while the VM runs (``VirtualMachine/attachDisk(_:)``):
    /// a pod VM, whose later containers bring their own disks.
    public var hotplugDisks = false
    /// Warm start: restore a saved guest from this store instead of booting (nil: always boot).
    public var templates: VMTemplateStore?
    /// The network namespace QEMU runs in and the VM's NICs (nil: the host's
    /// namespace, no NIC; the guest has loopback only).
    public var network: SandboxNetwork?
    /// How QEMU is confined (``QEMUJail/standard``: jailed when running as root).
    public var jail: QEMUJail? = QEMUJail.standard
    /// QEMU's nice value (nil: the starting thread's; a spare VM waits at 10).
    public var qemuNice: Int32?
    /// NICs connected to nothing (a warm-start template's, standing for its clones' ``network`` slots).
    var placeholderNICs = 0
    /// Logger.
    public var logger: Logger

    /// Creates a configuration.
    public init(name: String, assets: GuestAssets, stateDirectory: String, memoryMiB: Int = 256, vcpus: Int = 1,
                qemuBinary: String = "qemu-system-x86_64", hostFacts: HostFacts? = nil,
                agentTimeout: Duration = .seconds(60), debug: Bool = false,
                removeStateDirectoryOnExit: Bool = true, logger: Logger = Logger(label: "qemubox.sandbox")) {
        self.name = name
        self.assets = assets
        self.stateDirectory = stateDirectory
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
        self.qemuBinary = qemuBinary
        self.hostFacts = hostFacts
        self.agentTimeout = agentTimeout
        self.debug = debug
        self.removeStateDirectoryOnExit = removeStateDirectoryOnExit
        self.logger = logger
    }
}
