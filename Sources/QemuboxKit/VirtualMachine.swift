import Foundation
import Tracing
import ProcessSpawn
import NIOPosix
import Logging
import QMPClient

/// One QEMU machine: launched from a ``MachineDescription``, supervised until it
/// exits, stopped gracefully, and cleaned up after.
///
/// States: `created → starting → running → stopping → stopped` (any state may jump
/// to `stopped` when QEMU exits). QEMU starts paused; QMP is connected and its
/// events are flowing before `cont`, so nothing the guest does is missed. QEMU
/// gets `PR_SET_PDEATHSIG(SIGKILL)`, so it dies with the owning process; the pid
/// record in the state directory lets ``VMStateRecord/cleanupStale(stateDirectory:procRoot:)``
/// remove what such a death left behind.
public actor VirtualMachine {
    /// Lifecycle state.
    public enum State: String, Sendable, Hashable {
        case created, starting, running, stopping, stopped
    }

    /// The description this machine was created from.
    public nonisolated let machine: MachineDescription
    /// Launch configuration.
    public nonisolated let configuration: VMConfiguration

    /// Current state.
    public private(set) var state: State = .created
    /// The resolved machine (after ``start(readiness:)`` began).
    public private(set) var resolved: ResolvedMachine?
    /// The QMP connection while QEMU runs.
    public private(set) var qmp: QMPClient?
    /// QEMU's pid while it runs.
    public var pid: Int32? { process?.termination == nil ? process?.pid : nil }

    private var process: Subprocess?
    /// The virtiofsd of each shared directory, ended after QEMU.
    var sharers: [Sharer] = []
    private var console: ConsoleLog?
    /// QEMU's stderr, drained like the console and capped on disk the same way: a guest
    /// that makes QEMU complain in a loop cannot fill the state directory's file system.
    private var qemuStderr: ConsoleLog?
    private var eventPump: Task<Void, Never>?
    private var monitor: Task<Void, Never>?
    private var shutdownReason: ShutdownReason?
    private var panicked = false
    private var killedByUs = false
    private var exitReason: ExitReason?
    private var exitWaiters: [CheckedContinuation<ExitReason, Never>] = []
    private var subscribers: [Int: AsyncStream<QMPEvent>.Continuation] = [:]
    private var nextSubscriber = 0
    private var logger: Logger
    /// The jailed QEMU's uid and gid, held until it has exited.
    private var jailIdentity: JailIdentity?
    /// Files handed to the jailed QEMU's uid for its lifetime (a template's RAM file).
    private var handBackToRoot: [String] = []
    /// Disks added while running (``attachDisk(_:)``), by id.
    var hotplugged: [String: HotpluggedDisk] = [:]
    var nextFDSet = 0
    /// The descriptor numbers QEMU was started with.
    private(set) var descriptorLayout: QEMUCommandLine.DescriptorLayout?

    /// Creates a machine; nothing runs until ``start(readiness:)``.
    public init(_ machine: MachineDescription, configuration: VMConfiguration) {
        self.machine = machine
        self.configuration = configuration
        var logger = configuration.logger
        logger[metadataKey: "vm"] = "\(machine.name)"
        self.logger = logger
    }

    private var stateDirectory: String { configuration.stateDirectory }
    private var stderrPath: String { stateDirectory + "/qemu.stderr" }
    /// The control monitor's socket (descriptor passing, see `QMPControlChannel`).
    var controlSocketPath: String { stateDirectory + "/qmp-control.sock" }
    /// Path of the console log.
    public nonisolated var consoleLogPath: String { configuration.stateDirectory + "/console.log" }

    // MARK: start

    /// Starts QEMU, connects QMP, resumes the vCPUs and runs `readiness` (e.g. wait
    /// for the agent). On any failure QEMU is killed, everything is released and the
    /// error is thrown.
    public func start(readiness: (@Sendable (VirtualMachine) async throws -> Void)? = nil) async throws {
        guard state == .created else { throw QemuboxError(.invalidState, "start in state \(state)") }
        state = .starting
        do {
            try await withSpan("qemubox.vm.launch") { _ in try await launch() }
        } catch {
            await abortStart()
            throw error
        }
        if let readiness {
            do {
                try await withTimeout(configuration.readinessTimeout, "readiness") { [self] in
                    // A machine that dies meanwhile (guest panic, QEMU crash) ends the wait at once.
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await readiness(self) }
                        group.addTask {
                            while await self.exit == nil { try await Task.sleep(for: .milliseconds(50)) }
                            let reason = await self.exit.map { "\($0)" } ?? "?"
                            throw QemuboxError(.startFailed, "QEMU exited before the machine was ready: \(reason)")
                        }
                        defer { group.cancelAll() }
                        try await group.next()
                    }
                }
            } catch {
                await abortStart()
                if let e = error as? QemuboxError, e.code == .timeout {
                    throw QemuboxError(.notReady, "\(machine.name): readiness timed out: \(e.message)")
                }
                throw QemuboxError(.notReady, "\(machine.name): readiness failed: \(error)")
            }
        }
        if state == .starting { state = .running }
        if state == .stopped {
            throw QemuboxError(.startFailed, "\(machine.name): QEMU exited during start: \(exitReason?.description ?? "?")")
        }
    }

    private func abortStart() async {
        if process == nil {
            await Self.stopSharers(sharers, grace: .zero)
            sharers = []
        }
        if let process {
            killedByUs = true
            process.signal(SIGKILL)
            _ = await waitForExit()
        } else {
            removeFiles()
            finish(ExitReason(kind: .neverStarted, termination: nil, shutdownReason: nil, consoleTail: "",
                              qemuStderrTail: ""))
        }
    }

    private func launch() async throws {
        let facts = try configuration.hostFacts ?? HostFacts.probe(machine.accelerator)
        for path in [machine.kernel.kernelPath] + (machine.kernel.initrdPath.map { [$0] } ?? [])
        where !FileManager.default.isReadableFile(atPath: path) {
            throw QemuboxError(.spawnFailed, "\(path) is not readable")
        }
        var binary = try resolveBinary(configuration.qemuBinary)
        // The jail has no symlinks: exec the file itself.
        if configuration.jail != nil { binary = try QEMUJail.resolve(binary) }
        try Self.makeDirectory(stateDirectory)
        var effective = machine
        if let jail = configuration.jail {
            let identity = try jail.allocateIdentity()
            jailIdentity = identity
            let prepared = try await NIOThreadPool.singleton.runIfActive { [machine, stateDirectory] in
                try QEMULaunch.jailedMachine(machine, identity: identity, stateDirectory: stateDirectory)
            }
            effective = prepared.0
            handBackToRoot = prepared.handBack
        }
        let resolved = try ResolvedMachine(effective, host: facts)
        self.resolved = resolved
        let incoming = configuration.restoreState != nil
        logger.info("starting", metadata: ["machine": "\(resolved.machineType)",
                                           "accel": "\(facts.accelerator.accelerator)",
                                           "jail": "\(jailIdentity.map { "uid \($0.id)" } ?? "none")",
                                           "restore": "\(incoming ? "template" : "no")",
                                           "why": "\(resolved.machineTypeReason); \(facts.accelerator.reason)"])

        let layout = QEMUCommandLine.layout(for: resolved, incoming: incoming)
        descriptorLayout = layout
        var launch = try QEMULaunch.openDescriptors(resolved, layout: layout, controlSocket: controlSocketPath,
                                         incomingState: configuration.restoreState)
        defer { launch.closeAll() }
        var toClose: [Int32] = []
        defer { for fd in toClose { close(fd) } }
        let qmpPair = try Self.socketPair()
        toClose.append(qmpPair.1)
        var qmpHost: Int32? = qmpPair.0
        defer { if let fd = qmpHost { close(fd) } }
        let consolePair = try Self.socketPair()
        toClose.append(consolePair.1)
        var consoleHost: Int32? = consolePair.0
        defer { if let fd = consoleHost { close(fd) } }
        let devNull = try Self.openFile("/dev/null", O_RDONLY | O_CLOEXEC)
        toClose.append(devNull)
        let stderrPair = try Self.socketPair()
        let stderrFD = stderrPair.1
        toClose.append(stderrFD)
        var stderrHost: Int32? = stderrPair.0
        defer { if let fd = stderrHost { close(fd) } }
        var netns: Int32?
        if let path = configuration.networkNamespacePath {
            let fd = try Self.openFile(path, O_RDONLY | O_CLOEXEC)
            toClose.append(fd)
            netns = fd
        }
        let descriptors: [(source: Int32, target: Int32)] = [
            (devNull, 0), (stderrFD, 1), (stderrFD, 2),
            (qmpPair.1, QEMUCommandLine.qmpDescriptor), (consolePair.1, QEMUCommandLine.consoleDescriptor),
        ] + launch.descriptors
        sharers = try await startSharers(resolved.description.sharedDirectories, listeners: launch.shareListeners,
                                         devNull: devNull)
        var jailSpec: JailSpec?
        if let jail = configuration.jail, let identity = jailIdentity {
            jailSpec = try jail.spec(for: resolved, binary: binary, identity: identity, root: stateDirectory + "/root")
        }
        let env = ProcessInfo.processInfo.environment.filter { $0.key == "PATH" || $0.key.hasPrefix("LC_") || $0.key == "LANG" }
            .map { "\($0.key)=\($0.value)" }
        let pid: pid_t
        do {
            pid = try await ProcessSpawner.shared.spawn(.init(
            path: binary, arguments: QEMUCommandLine.arguments(for: resolved, incoming: incoming),
            environment: env,
            descriptors: descriptors, networkNamespace: netns,
            newNetworkNamespace: netns == nil && configuration.newNetworkNamespace,
            taps: launch.taps, jail: jailSpec, nice: configuration.nice))
        } catch let error as SpawnError {
            throw QemuboxError(.spawnFailed, error.message)
        }
        let process = Subprocess(pid: pid)
        self.process = process
        // Watch for the exit from the first moment: QEMU may die before QMP is up.
        monitor = Task { [weak self] in
            let t = await process.wait()
            await self?.processExited(t)
        }
        for fd in toClose { close(fd) }
        toClose = []
        launch.closeAll()
        logger.debug("spawned", metadata: ["pid": "\(pid)"])

        let record = VMStateRecord(pid: pid, startTime: VMStateRecord.startTime(of: pid) ?? 0,
                                   name: machine.name, binary: binary)
        try record.write(to: stateDirectory)

        let consoleFD = consolePair.0
        consoleHost = nil
        console = try ConsoleLog(fd: consoleFD, logPath: consoleLogPath, settings: machine.console)
        let stderrHostFD = stderrPair.0
        stderrHost = nil
        qemuStderr = try ConsoleLog(fd: stderrHostFD, logPath: stderrPath,
                                    settings: ConsoleSettings(maxLogBytes: Self.stderrLogBytes, memoryTailBytes: 4096))

        let qmpFD = qmpPair.0
        qmpHost = nil
        let client: QMPClient
        do {
            client = try await QMPClient.connect(
                takingOwnershipOf: qmpFD,
                configuration: .init(handshakeTimeout: configuration.startTimeout))
        } catch {
            // QEMU usually closed QMP because it is exiting with an error on stderr: let it
            // exit and its stderr drain (bounded) so the message carries its last words.
            if await process.wait(timeout: .seconds(2)) != nil { await qemuStderr?.waitFinished() }
            throw QemuboxError(.startFailed, "\(machine.name): QMP handshake failed: \(error); \(stderrTail())")
        }
        if exitReason != nil {
            await client.close()
            throw QemuboxError(.startFailed, "\(machine.name): QEMU exited during start; \(stderrTail())")
        }
        qmp = client
        eventPump = Task { [weak self] in
            for await event in client.events { await self?.handle(event) }
        }
        if let state = configuration.restoreState {
            try await loadState(state, client)
        }
        do {
            try await client.cont()
        } catch {
            throw QemuboxError(.startFailed, "\(machine.name): cont failed: \(error); \(stderrTail())")
        }
    }

    // MARK: events and exit

    private func handle(_ event: QMPEvent) {
        switch event.kind {
        case .shutdown(_, let reason):
            shutdownReason = reason
        case .guestPanicked:
            panicked = true
        default: break
        }
        logger.debug("event", metadata: ["name": "\(event.name)", "data": "\(event.data)"])
        for (_, c) in subscribers { c.yield(event) }
    }

    private func processExited(_ termination: ProcessTermination) async {
        await Self.stopSharers(sharers, grace: .seconds(2))
        sharers = []
        // The QMP socket closes with QEMU: drain the remaining events first, so the
        // final SHUTDOWN / GUEST_PANICKED count in the classification.
        await eventPump?.value
        await qmp?.close()
        await console?.waitFinished()
        await qemuStderr?.waitFinished()
        let kind = ExitReason.classify(termination: termination, shutdownReason: shutdownReason,
                                       panicked: panicked, killedByUs: killedByUs)
        let reason = ExitReason(kind: kind, termination: termination, shutdownReason: shutdownReason,
                                consoleTail: String(console?.tail.suffix(4096) ?? ""), qemuStderrTail: stderrFileTail())
        logger.info("exited", metadata: ["reason": "\(reason)"])
        removeFiles()
        finish(reason)
    }

    private func finish(_ reason: ExitReason) {
        exitReason = reason
        state = .stopped
        qmp = nil
        eventPump = nil
        monitor = nil
        for (_, c) in subscribers { c.finish() }
        subscribers = [:]
        let waiters = exitWaiters
        exitWaiters = []
        for w in waiters { w.resume(returning: reason) }
    }

    private func removeFiles() {
        let fm = FileManager.default
        for path in handBackToRoot { _ = chown(path, 0, 0) }
        handBackToRoot = []
        jailIdentity = nil
        try? fm.removeItem(atPath: controlSocketPath)
        for port in machine.serialPorts { try? fm.removeItem(atPath: port.socketPath) }
        if configuration.removeStateDirectoryOnExit {
            try? fm.removeItem(atPath: stateDirectory)
        } else {
            try? fm.removeItem(atPath: stateDirectory + "/" + VMStateRecord.fileName)
            // A jailed clone's private RAM copy and the jail's (empty) mount point.
            try? fm.removeItem(atPath: stateDirectory + "/memory")
            try? fm.removeItem(atPath: stateDirectory + "/root")
        }
    }

    /// QEMU's stderr: from the exit reason once finished (the file is gone then), else the file.
    func stderrTail() -> String {
        if let exitReason { return exitReason.qemuStderrTail }
        return stderrFileTail()
    }

    private func stderrFileTail() -> String {
        String(qemuStderr?.tail.suffix(2048) ?? "")
    }

    /// QEMU's stderr on disk at most (twice this with the previous generation).
    static let stderrLogBytes = 256 << 10

    /// Waits until QEMU has exited and everything is released; returns why it stopped.
    public func waitForExit() async -> ExitReason {
        if let exitReason { return exitReason }
        return await withCheckedContinuation { exitWaiters.append($0) }
    }

    /// The exit reason once stopped.
    public var exit: ExitReason? { exitReason }

    /// A new stream of the QMP events from now on; finishes when the machine stops.
    public func events() -> AsyncStream<QMPEvent> {
        let (stream, continuation) = AsyncStream<QMPEvent>.makeStream()
        if state == .stopped {
            continuation.finish()
            return stream
        }
        let id = nextSubscriber
        nextSubscriber += 1
        subscribers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.unsubscribe(id) }
        }
        return stream
    }

    private func unsubscribe(_ id: Int) { subscribers[id] = nil }

    // MARK: console

    /// Waits until the console output contains `text`; false if QEMU exited or time ran out.
    public func waitForConsole(_ text: String, timeout: Duration = .seconds(60)) async -> Bool {
        guard let console else { return false }
        return await console.wait(for: text, timeout: timeout)
    }

    /// The recent console output.
    public var consoleTail: String { console?.tail ?? "" }

    /// Types `text` on the serial console (guest's /dev/console input).
    public func writeConsole(_ text: String) throws {
        guard let console else { throw QemuboxError(.invalidState, "no console") }
        try console.write(text)
    }

    // MARK: stop

    /// Stops the machine: the guest request (if any), then `system_powerdown`, then
    /// `quit`, then SIGKILL, each step bounded by the policy's timeout. Returns the
    /// exit reason once everything is released. Idempotent.
    @discardableResult
    public func stop(_ policy: StopPolicy = StopPolicy()) async -> ExitReason {
        if let exitReason { return exitReason }
        guard let process else {
            finish(ExitReason(kind: .neverStarted, termination: nil, shutdownReason: nil, consoleTail: "", qemuStderrTail: ""))
            return exitReason!
        }
        if state == .stopping { return await waitForExit() }
        state = .stopping
        if let request = policy.guestRequest {
            logger.debug("stop: asking the guest")
            do {
                try await request()
                if await process.wait(timeout: policy.guestTimeout) != nil { return await waitForExit() }
            } catch {
                logger.debug("stop: guest request failed: \(error)")
            }
        }
        if policy.powerdownTimeout > .zero, let qmp {
            logger.debug("stop: system_powerdown")
            if await step(policy.powerdownTimeout, process, { try await qmp.execute("system_powerdown", timeout: $0) }) {
                return await waitForExit()
            }
        }
        if let qmp {
            logger.debug("stop: quit")
            if await step(policy.quitTimeout, process, { try await qmp.execute("quit", timeout: $0) }) {
                return await waitForExit()
            }
        }
        logger.info("stop: SIGKILL")
        killedByUs = true
        process.signal(SIGKILL)
        return await waitForExit()
    }

    /// Sends one QMP command of the stop sequence and waits for QEMU to exit, all
    /// within `timeout` (a frozen QEMU must not hold the sequence up). True if it exited.
    private func step(_ timeout: Duration, _ process: Subprocess,
                      _ command: @Sendable (Duration) async throws -> JSONValue) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        do {
            _ = try await command(timeout)
        } catch let e as QMPError where e.code == .connectionClosed {
            // `quit` may close the socket before answering; QEMU is on its way out.
        } catch {
            logger.debug("stop: \(error)")
        }
        let left = deadline - ContinuousClock.now
        return await process.wait(timeout: max(left, .milliseconds(1))) != nil
    }

    /// Kills QEMU at once (SIGKILL); the exit reason is ``ExitReason/Kind/killed``.
    public func kill() {
        guard let process, process.termination == nil else { return }
        killedByUs = true
        process.signal(SIGKILL)
    }
}
