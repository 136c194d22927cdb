import Logging

/// How a ``VirtualMachine`` is launched and supervised (the host side; the
/// machine itself is the ``MachineDescription``).
public struct VMConfiguration: Sendable {
    /// QEMU binary: a path, or a name looked up on PATH.
    public var qemuBinary: String
    /// The machine's state directory (created 0700 if absent): `qemu.json`, `console.log`, `qemu.stderr`.
    public var stateDirectory: String
    /// Host facts; nil probes this host (accelerator, TSC frequency) at start.
    public var hostFacts: HostFacts?
    /// A network namespace file (e.g. `/run/netns/NAME`) QEMU runs in, so TAPs by name open there.
    public var networkNamespacePath: String?
    /// Without ``networkNamespacePath``: QEMU starts in a new, empty network namespace
    /// of its own (`/proc/PID/ns/net`, gone with QEMU), where TAPs by name are created
    /// and where containerd's CNI (`ctr run --cni`) puts the container's interfaces.
    public var newNetworkNamespace = false
    /// Time for QEMU to come up and answer QMP.
    public var startTimeout: Duration
    /// Time the readiness hook may take.
    public var readinessTimeout: Duration
    /// Remove the state directory when QEMU has exited and been reaped.
    public var removeStateDirectoryOnExit: Bool
    /// Logger.
    public var logger: Logger
    /// Restore instead of boot: the migration stream written by
    /// ``VirtualMachine/saveState(to:timeout:)`` of a machine with the same
    /// description (devices in the same order) whose RAM is the description's
    /// ``MemoryFile`` (mapped private here, so the file stays as saved). QEMU starts
    /// with `-incoming defer`, loads the state and only then resumes.
    public var restoreState: String?
    /// How QEMU is confined; nil runs it with the launcher's identity (and `-sandbox`
    /// only). Defaults to ``QEMUJail/standard``: jailed whenever the launcher is root.
    public var jail: QEMUJail? = QEMUJail.standard
    /// QEMU's nice value from its first instruction (nil: the starting thread's).
    public var nice: Int32?

    /// Creates a configuration.
    public init(stateDirectory: String, qemuBinary: String = "qemu-system-x86_64", hostFacts: HostFacts? = nil,
                networkNamespacePath: String? = nil, startTimeout: Duration = .seconds(30),
                readinessTimeout: Duration = .seconds(120), removeStateDirectoryOnExit: Bool = true,
                logger: Logger = Logger(label: "qemubox.vm")) {
        self.stateDirectory = stateDirectory
        self.qemuBinary = qemuBinary
        self.hostFacts = hostFacts
        self.networkNamespacePath = networkNamespacePath
        self.startTimeout = startTimeout
        self.readinessTimeout = readinessTimeout
        self.removeStateDirectoryOnExit = removeStateDirectoryOnExit
        self.logger = logger
    }
}

/// The graceful stop sequence: each step gets a bounded time before the next, harsher one.
public struct StopPolicy: Sendable {
    /// Ask the guest first (e.g. the agent's shutdown call); nil skips the step.
    public var guestRequest: (@Sendable () async throws -> Void)?
    /// Time the guest gets after ``guestRequest``.
    public var guestTimeout: Duration
    /// Time after `system_powerdown` (ACPI power button); zero skips the step.
    public var powerdownTimeout: Duration
    /// Time after `quit`.
    public var quitTimeout: Duration

    /// Creates a policy.
    public init(guestRequest: (@Sendable () async throws -> Void)? = nil, guestTimeout: Duration = .seconds(10),
                powerdownTimeout: Duration = .seconds(5), quitTimeout: Duration = .seconds(5)) {
        self.guestRequest = guestRequest
        self.guestTimeout = guestTimeout
        self.powerdownTimeout = powerdownTimeout
        self.quitTimeout = quitTimeout
    }
}
