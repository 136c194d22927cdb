#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers
import QemuboxAPI
import SwiftProtobuf

/// One process of a container as the agent tracks it: the container's init
/// (exec id "") or an exec'd process.
final class ManagedProcess: Sendable {
    /// Lifecycle as containerd sees it.
    enum Status: Sendable { case created, running, stopped }

    struct Exit: Sendable {
        var status: UInt32
        var at: Date
    }

    let containerID: String
    let execID: String
    let io: ProcessIO
    /// For execs: the OCI process JSON, written to a file at start.
    let spec: Data?

    private struct State {
        var status: Status = .created
        var pid: Int32 = 0
        var exit: Exit?
    }
    private let state = NIOLockedValueBox(State())
    private let exited = Latch()

    init(containerID: String, execID: String, io: ProcessIO, spec: Data? = nil) {
        self.containerID = containerID
        self.execID = execID
        self.io = io
        self.spec = spec
    }

    var status: Status { state.withLockedValue { $0.status } }
    var pid: Int32 { state.withLockedValue { $0.pid } }
    var exit: Exit? { state.withLockedValue { $0.exit } }

    /// Records the pid once crun reported it.
    func setPid(_ pid: Int32) { state.withLockedValue { $0.pid = pid } }

    /// Marks the process running.
    func setRunning() {
        state.withLockedValue { if $0.status == .created { $0.status = .running } }
    }

    /// Records the exit and releases waiters.
    func setExited(status: UInt32, at date: Date = Date()) {
        state.withLockedValue { state in
            state.status = .stopped
            state.exit = Exit(status: status, at: date)
        }
        exited.open()
    }

    /// Waits for the exit.
    func waitExit() async -> Exit {
        _ = await exited.wait()
        return exit ?? Exit(status: 255, at: Date())
    }

    /// Starts waiting for `pid` (spawned after reaper mark `since`): when it
    /// exits, waits (briefly) for its output to drain, records the exit and
    /// publishes `TaskExit`.
    func monitor(pid: Int32, since: UInt64, events: EventQueue) {
        setPid(pid)
        Task { [self] in
            let raw = await Reaper.shared.wait(pid: pid, since: since)
            let code = Reaper.exitStatus(fromWaitStatus: raw)
            let date = Date()
            // A daemonised grandchild may keep the pipes open: don't wait forever.
            _ = await io.outputDone.wait(timeout: .seconds(2))
            io.releaseTerminal()
            setExited(status: code, at: date)
            var event = Containerd_Events_TaskExit()
            event.containerID = containerID
            event.id = execID.isEmpty ? containerID : execID
            event.pid = UInt32(pid)
            event.exitStatus = code
            event.exitedAt = Google_Protobuf_Timestamp(date: date)
            events.publish(event, timestamp: date)
        }
    }

    /// The state response fields for this process.
    func stateResponse(bundle: String, paused: Bool) -> Containerd_Task_V2_StateResponse {
        var response = Containerd_Task_V2_StateResponse()
        response.id = containerID
        response.execID = execID
        response.bundle = bundle
        response.pid = UInt32(max(0, pid))
        response.terminal = io.terminal
        switch status {
        case .created: response.status = .created
        case .running: response.status = paused ? .paused : .running
        case .stopped: response.status = .stopped
        }
        if let exit {
            response.exitStatus = exit.status
            response.exitedAt = Google_Protobuf_Timestamp(date: exit.at)
        }
        return response
    }
}

/// A container: its bundle, its init process and its execs.
final class Container: Sendable {
    let id: String
    let bundle: String
    let initProcess: ManagedProcess
    private struct State {
        var execs: [String: ManagedProcess] = [:]
        var paused = false
        var cgroup: String?
        var deleted = false
    }
    private let state = NIOLockedValueBox(State())

    init(id: String, bundle: String, initProcess: ManagedProcess) {
        self.id = id
        self.bundle = bundle
        self.initProcess = initProcess
    }

    var paused: Bool {
        get { state.withLockedValue { $0.paused } }
        set { state.withLockedValue { $0.paused = newValue } }
    }

    /// The container's cgroup directory under /sys/fs/cgroup, once known.
    var cgroup: String? {
        get { state.withLockedValue { $0.cgroup } }
        set { state.withLockedValue { $0.cgroup = newValue } }
    }

    var isDeleted: Bool {
        get { state.withLockedValue { $0.deleted } }
        set { state.withLockedValue { $0.deleted = newValue } }
    }

    var execs: [ManagedProcess] { state.withLockedValue { Array($0.execs.values) } }

    /// The process `execID` names ("" is init).
    func process(_ execID: String) throws -> ManagedProcess {
        if execID.isEmpty { return initProcess }
        guard let process = state.withLockedValue({ $0.execs[execID] }) else {
            throw GuestAgentError(.notFound, "exec \(execID) of container \(id) not found")
        }
        return process
    }

    /// Adds an exec; fails when the id is taken.
    func addExec(_ process: ManagedProcess) throws {
        try state.withLockedValue { state in
            guard state.execs[process.execID] == nil else {
                throw GuestAgentError(.alreadyExists, "exec \(process.execID) of container \(id) already exists")
            }
            state.execs[process.execID] = process
        }
    }

    /// Reserves an exec id before its streams are claimed.
    func removeExec(_ execID: String) {
        _ = state.withLockedValue { $0.execs.removeValue(forKey: execID) }
    }
}
