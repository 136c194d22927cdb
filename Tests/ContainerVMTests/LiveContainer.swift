import Foundation
import NIOCore
import OCISpec
import QemuboxAPI
import QemuboxKit
import TestSupport
import VsockTransport

/// A container running in a sandbox, driven call by call through the agent's
/// task API (what the shim will do), with its output collected.
struct LiveContainer {
    let sandbox: Sandbox
    let id: String
    let plan: RootfsPlan
    let stdio: ProcessStdio
    let stdout: Collector
    let stderr: Collector
    let events: EventLog

    static func start(in dir: String, _ args: [String], terminal: Bool = false, stdin: Bool = false,
                      network: SandboxNetwork? = nil, templates: VMTemplateStore? = nil,
                      configure: (inout RuntimeSpec) -> Void = { _ in },
                      beforeStart: (Sandbox) async throws -> Void = { _ in }) async throws -> LiveContainer {
        let bundle = try Fixture.bundle(in: dir, args) {
            configure(&$0)
            $0.process?.terminal = terminal
        }
        let id = "live"
        let state = dir + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let plan = try RootfsPlan.fromDirectory(bundle + "/rootfs", containerID: id, directory: state,
                                                writableBytes: 64 << 20)
        var configuration = SandboxConfiguration(name: id, assets: try Fixture.assets(), stateDirectory: state)
        configuration.network = network
        configuration.templates = templates
        let sandbox = try await Sandbox.start(configuration, extraDisks: plan.disks)
        do {
            let events = EventLog()
            Task {
                for try await event in try await sandbox.agent.system.events(.init(), options: .unbounded) {
                    events.append(event.topic)
                }
            }
            let config = try Data(contentsOf: URL(fileURLWithPath: bundle + "/config.json"))
            try await sandbox.prepareBundle(plan, configJSON: config)
            let stdio = try await ProcessStdio.open(on: sandbox.agent, name: id, stdin: stdin, terminal: terminal)
            try await sandbox.createTask(id: id, bundle: plan.guestBundle, stdio: stdio, terminal: terminal)
            let container = LiveContainer(sandbox: sandbox, id: id, plan: plan, stdio: stdio,
                                          stdout: Collector(stdio.stdout), stderr: Collector(stdio.stderr),
                                          events: events)
            try await beforeStart(sandbox)
            var start = Containerd_Task_V2_StartRequest()
            start.id = id
            _ = try await sandbox.agent.task.start(start)
            return container
        } catch {
            await sandbox.kill()
            throw error
        }
    }

    func kill(_ signal: Int32, execID: String = "", all: Bool = false) async throws {
        var request = Containerd_Task_V2_KillRequest()
        request.id = id
        request.execID = execID
        request.signal = UInt32(signal)
        request.all = all
        _ = try await sandbox.agent.task.kill(request)
    }

    func wait(execID: String = "") async throws -> UInt32 {
        try await sandbox.wait(containerID: id, execID: execID).exitStatus
    }

    /// Deletes the task and powers the VM off.
    func finish() async {
        var delete = Containerd_Task_V2_DeleteRequest()
        delete.id = id
        _ = try? await sandbox.agent.task.delete(delete)
        await sandbox.shutdown(reason: "test done")
    }
}

/// Collects a stream's bytes as they arrive.
final class Collector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var ended = false

    init(_ stream: YamuxStream?) {
        guard let stream else {
            ended = true
            return
        }
        Task {
            while let chunk = try? await stream.read() {
                lock.withLock { data.append(contentsOf: chunk.readableBytesView) }
            }
            lock.withLock { ended = true }
        }
    }

    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
    var isEnded: Bool { lock.withLock { ended } }

    /// Waits until the collected text contains `needle`.
    func waitFor(_ needle: String, timeout: Duration = .seconds(60)) async -> Bool {
        await eventually(timeout: timeout) { self.text.contains(needle) }
    }
}
