#if canImport(Glibc)
import Glibc
#endif
import Foundation
import OCISpec
import QemuboxAPI
import QemuboxKit
import SwiftProtobuf
import Testing
import TestSupport
import TTRPCCodec

/// The Pod API itself (the type the shim and BundleRunner adapt): containerd's task
/// semantics around one real VM, its errors with their errdefs statuses, its events in
/// containerd's order, and nothing left after delete.
@Suite("a pod: one VM and its containers", .serialized)
struct PodTests {
    /// Expects `body` to throw a QemuboxError with `code`, whose ttrpc status is `status`.
    func expectError(_ code: QemuboxError.Code, _ status: TTRPCError.Code, _ what: String,
                     _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("\(what): no error")
        } catch let error as QemuboxError {
            #expect(error.code == code, "\(what): \(error)")
            #expect(error.ttrpcStatus.code == status, "\(what): \(error)")
        } catch {
            Issue.record("\(what): \(error)")
        }
    }

    @Test("lifecycle, exec, errors by status, events in order, nothing left", .enabled(if: Fixture.available))
    func lifecycle() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                // crun runs with a fixed address layout; the container's processes (init and exec'd)
                // must get address randomisation back (personality 0, not ADDR_NO_RANDOMIZE).
                let bundle = try Fixture.bundle(in: dir, ["sh", "-c", "cat /proc/self/personality; echo ready; exec sleep 60"])
                let events = EventLog()
                var configuration = PodConfiguration(id: "c1", stateDirectory: dir + "/pod", assets: try Fixture.assets())
                configuration.writableBytes = 64 << 20
                configuration.onEvent = { events.append(ContainerdEvent.topic(for: $0) ?? "?") }
                let pod = Pod(configuration)
                let out = open(dir + "/out", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                let execOut = open(dir + "/exec-out", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                defer { close(out); close(execOut) }
                var create = Containerd_Task_V2_CreateTaskRequest()
                create.id = "c1"
                create.bundle = bundle
                let pid = try await pod.create(create, rootfs: .ephemeral,
                                               io: DescriptorIO(stdin: nil, stdout: out, stderr: out))
                do {
                    #expect(pid > 0)
                    #expect(pid == (await pod.pid))
                    await expectError(.alreadyExists, .alreadyExists, "same id again") {
                        try await pod.create(create, io: DescriptorIO(stdin: nil, stdout: nil, stderr: nil))
                    }
                    var second = create
                    second.id = "c2"
                    await expectError(.unimplemented, .unimplemented, "a second container") {
                        try await pod.create(second, io: DescriptorIO(stdin: nil, stdout: nil, stderr: nil))
                    }
                    await expectError(.notFound, .notFound, "unknown task") { try await pod.start(containerID: "nope") }
                    try await pod.start(containerID: "c1")
                    await expectError(.failedPrecondition, .failedPrecondition, "started twice") {
                        try await pod.start(containerID: "c1")
                    }
                    #expect(await eventually(timeout: .seconds(20)) {
                        (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) == "00000000\nready\n"
                    })
                    var exec = Containerd_Task_V2_ExecProcessRequest()
                    exec.id = "c1"
                    exec.execID = "e1"
                    var process = Google_Protobuf_Any()
                    process.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
                    process.value = try JSONEncoder().encode(RuntimeSpec.Process(args: ["sh", "-c", "cat /proc/self/personality; echo from-exec; exit 7"], env: ["PATH=/bin:/usr/bin"], cwd: "/"))
                    exec.spec = process
                    try await pod.exec(exec, io: DescriptorIO(stdin: nil, stdout: execOut, stderr: execOut))
                    await expectError(.alreadyExists, .alreadyExists, "exec id reused") {
                        try await pod.exec(exec, io: DescriptorIO(stdin: nil, stdout: nil, stderr: nil))
                    }
                    try await pod.start(containerID: "c1", execID: "e1")
                    #expect(try await pod.wait(containerID: "c1", execID: "e1").status == 7)
                    #expect(try await pod.delete(containerID: "c1", execID: "e1").exit.status == 7)
                    #expect(try String(contentsOfFile: dir + "/exec-out", encoding: .utf8) == "00000000\nfrom-exec\n")
                    await expectError(.failedPrecondition, .failedPrecondition, "delete while running") {
                        _ = try await pod.delete(containerID: "c1")
                    }
                    var state = Containerd_Task_V2_StateRequest()
                    state.id = "c1"
                    #expect(try await pod.state(state).status == .running)
                    var kill = Containerd_Task_V2_KillRequest()
                    kill.id = "c1"
                    kill.signal = UInt32(SIGKILL)
                    try await pod.kill(kill)
                    #expect(try await pod.wait(containerID: "c1").status == 128 + UInt32(SIGKILL))
                    #expect(try await pod.delete(containerID: "c1").exit.status == 128 + UInt32(SIGKILL))
                } catch {
                    await pod.terminate()
                    throw error
                }
                await expectError(.notFound, .notFound, "state after delete") {
                    var state = Containerd_Task_V2_StateRequest()
                    state.id = "c1"
                    _ = try await pod.state(state)
                }
                #expect(await pod.vm?.exit != nil, "the VM ended with its last container")
                let topics = events.topics
                #expect(topics.first == "/tasks/create")
                #expect(topics.last == "/tasks/delete")
                let exits = topics.indices.filter { topics[$0] == "/tasks/exit" }
                #expect(exits.count == 2, "\(topics)")
                #expect(topics.contains("/tasks/exec-added") && topics.contains("/tasks/exec-started"), "\(topics)")
                let left = (try? FileManager.default.subpathsOfDirectory(atPath: dir + "/pod")) ?? []
                #expect(left.allSatisfy { $0 == "containers" }, "left behind: \(left)")
            }
        }
    }
}
