import Foundation
import NIOConcurrencyHelpers
import QemuboxAPI
import SwiftProtobuf
import TTRPCCodec
import VsockTransport

/// The stdio streams of one process, opened before the create or exec call
/// that names them.
public struct ProcessStdio: Sendable {
    /// The stream the host writes stdin into (nil: no stdin).
    public var stdin: YamuxStream?
    /// The process's stdout (a terminal's output with `terminal`).
    public var stdout: YamuxStream?
    /// The process's stderr (nil with `terminal`).
    public var stderr: YamuxStream?
    /// The keys to put into the request's `stdin`/`stdout`/`stderr` (empty: none).
    public var keys: (stdin: String, stdout: String, stderr: String)

    /// Opens the streams a process needs: `name` makes the keys unique in the VM
    /// (e.g. `ctr1` or `ctr1.exec2`).
    public static func open(on agent: GuestAgentConnection, name: String, stdin: Bool, stdout: Bool = true,
                            stderr: Bool = true, terminal: Bool = false) async throws -> ProcessStdio {
        var result = ProcessStdio(stdin: nil, stdout: nil, stderr: nil, keys: ("", "", ""))
        do {
            if stdin {
                result.keys.stdin = "\(name)/stdin"
                result.stdin = try await agent.openStdio(key: result.keys.stdin)
            }
            if stdout {
                result.keys.stdout = "\(name)/stdout"
                result.stdout = try await agent.openStdio(key: result.keys.stdout)
            }
            if stderr && !terminal {
                result.keys.stderr = "\(name)/stderr"
                result.stderr = try await agent.openStdio(key: result.keys.stderr)
            }
        } catch {
            result.resetAll()
            throw error
        }
        return result
    }

    /// Resets every stream (after a failed create or exec).
    public func resetAll() {
        for stream in [stdin, stdout, stderr] { stream?.reset() }
    }
}

extension Sandbox {
    /// Prepares a container's bundle in the guest: writes `configJSON` (the
    /// bytes as given) as its config.json and performs the rootfs plan's steps.
    public func prepareBundle(_ plan: RootfsPlan, configJSON: Data) async throws {
        do {
            var file = Qemubox_Guest_V1_WriteFileRequest()
            file.path = plan.guestBundle + "/config.json"
            file.data = configJSON
            file.mode = 0o644
            _ = try await agent.system.writeFile(file)
            for step in plan.steps {
                switch step {
                case .mount(let mounts):
                    var request = Qemubox_Guest_V1_MountRequest()
                    request.mounts = mounts
                    _ = try await agent.system.mount(request)
                case .mkdir(let paths):
                    var request = Qemubox_Guest_V1_MkdirRequest()
                    request.paths = paths
                    _ = try await agent.system.mkdir(request)
                }
            }
        } catch let error as TTRPCError {
            throw QemuboxError(.agentError, "preparing bundle \(plan.guestBundle): \(error)")
        }
    }

    /// Unmounts what ``prepareBundle(_:configJSON:)`` mounted (after the task is deleted).
    public func releaseBundle(_ plan: RootfsPlan) async throws {
        var request = Qemubox_Guest_V1_UnmountRequest()
        request.targets = plan.unmountTargets
        request.detach = true
        _ = try await agent.system.unmount(request)
    }

    /// Creates the container's task (`Task/Create`) with the stdio keys.
    @discardableResult
    public func createTask(id: String, bundle: String, stdio: ProcessStdio, terminal: Bool) async throws
        -> Containerd_Task_V2_CreateTaskResponse
    {
        var request = Containerd_Task_V2_CreateTaskRequest()
        request.id = id
        request.bundle = bundle
        request.terminal = terminal
        request.stdin = stdio.keys.stdin
        request.stdout = stdio.keys.stdout
        request.stderr = stdio.keys.stderr
        return try await agent.task.create(request)
    }

    /// Starts an exec'd process (`Task/Exec` with the OCI process as JSON, then `Task/Start`).
    public func exec(containerID: String, execID: String, processJSON: Data, stdio: ProcessStdio, terminal: Bool)
        async throws
    {
        var request = Containerd_Task_V2_ExecProcessRequest()
        request.id = containerID
        request.execID = execID
        request.terminal = terminal
        request.stdin = stdio.keys.stdin
        request.stdout = stdio.keys.stdout
        request.stderr = stdio.keys.stderr
        var spec = Google_Protobuf_Any()
        spec.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
        spec.value = processJSON
        request.spec = spec
        _ = try await agent.task.exec(request)
        var start = Containerd_Task_V2_StartRequest()
        start.id = containerID
        start.execID = execID
        _ = try await agent.task.start(start)
    }

    /// Waits for a process to exit (`Task/Wait`), or for the VM to die, whichever
    /// comes first; a dead VM is reported as an error with its exit reason.
    public func wait(containerID: String, execID: String = "") async throws -> Containerd_Task_V2_WaitResponse {
        let agent = self.agent
        let vm = self.vm
        let once = NIOLockedValueBox(false)
        return try await withCheckedThrowingContinuation { continuation in
            @Sendable func finish(_ result: Result<Containerd_Task_V2_WaitResponse, any Error>) {
                let first = once.withLockedValue { done in
                    defer { done = true }
                    return !done
                }
                if first { continuation.resume(with: result) }
            }
            Task {
                do {
                    var request = Containerd_Task_V2_WaitRequest()
                    request.id = containerID
                    request.execID = execID
                    finish(.success(try await agent.task.wait(request, options: .unbounded)))
                } catch {
                    // A broken connection usually means the VM died: prefer its reason.
                    try? await Task.sleep(for: .seconds(1))
                    if let reason = await vm.exit {
                        finish(.failure(QemuboxError(.agentUnavailable, "the VM exited while waiting for \(containerID): \(reason)")))
                    } else {
                        finish(.failure(error))
                    }
                }
            }
            Task {
                let reason = await vm.waitForExit()
                finish(.failure(QemuboxError(.agentUnavailable, "the VM exited while waiting for \(containerID): \(reason)")))
            }
        }
    }
}
