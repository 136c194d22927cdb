import Foundation
import NIOCore
import QemuboxAPI
import QemuboxKit
import SwiftProtobuf
import Testing
import TestSupport

/// Signals, exec, terminals, OOM and a dying VM, driven through the guest's task API.
@Suite("containers controlled through the agent", .serialized)
struct ContainerControlTests {
    static let loop = "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done"

    @Test("SIGTERM is trapped by the process; SIGKILL is not (137)", .enabled(if: Fixture.available))
    func signals() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let container = try await LiveContainer.start(in: dir, ["sh", "-c", Self.loop])
                #expect(await container.stdout.waitFor("ready\n"))
                try await container.kill(SIGTERM)
                #expect(try await container.wait() == 7)
                #expect(await container.stdout.waitFor("got-term\n"))
                await container.finish()
            }
            try await TemporaryDirectory.with { dir in
                let container = try await LiveContainer.start(in: dir, ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"])
                #expect(await container.stdout.waitFor("ready\n"))
                try await container.kill(SIGKILL)
                #expect(try await container.wait() == 128 + 9)
                #expect(await eventually(timeout: .seconds(20)) { container.events.topics.contains("/tasks/exit") })
                await container.finish()
            }
        }
    }

    @Test("an exec'd second process runs beside init with its own stdio and exit code", .enabled(if: Fixture.available))
    func execSecondProcess() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let container = try await LiveContainer.start(in: dir, ["sh", "-c", "echo init-$$ > /tmp/marker; " + Self.loop])
                #expect(await container.stdout.waitFor("ready\n"))
                let process = #"{"args":["sh","-c","cat /tmp/marker; echo exec-err >&2; exit 5"],"cwd":"/","env":["PATH=/bin"],"user":{"uid":0,"gid":0}}"#
                let stdio = try await ProcessStdio.open(on: container.sandbox.agent, name: "live.e1", stdin: false)
                let out = Collector(stdio.stdout), err = Collector(stdio.stderr)
                try await container.sandbox.exec(containerID: container.id, execID: "e1", processJSON: Data(process.utf8),
                                                 stdio: stdio, terminal: false)
                #expect(try await container.wait(execID: "e1") == 5)
                #expect(await out.waitFor("init-1\n"), "the exec sees init's files (pid 1 in the container)")
                #expect(await err.waitFor("exec-err\n"))
                #expect(await eventually(timeout: .seconds(20)) { container.events.topics.contains("/tasks/exec-started") })

                var pids = Containerd_Task_V2_PidsRequest()
                pids.id = container.id
                #expect(try await container.sandbox.agent.task.pids(pids).processes.count >= 1)

                try await container.kill(SIGTERM)
                #expect(try await container.wait() == 7)
                await container.finish()
            }
        }
    }

    @Test("a terminal session: the process sees a tty and follows resizes", .enabled(if: Fixture.available))
    func terminal() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let container = try await LiveContainer.start(
                    in: dir, ["sh", "-c", "tty; read line; stty size; echo got:$line"], terminal: true, stdin: true)
                #expect(await container.stdout.waitFor("/dev/pts/"), "output: \(container.stdout.text)")
                var resize = Containerd_Task_V2_ResizePtyRequest()
                resize.id = container.id
                resize.width = 100
                resize.height = 33
                _ = try await container.sandbox.agent.task.resizePty(resize)
                try await container.stdio.stdin?.write(ByteBuffer(string: "typed\r"))
                #expect(try await container.wait() == 0)
                #expect(await container.stdout.waitFor("33 100"), "output: \(container.stdout.text)")
                #expect(await container.stdout.waitFor("got:typed"), "output: \(container.stdout.text)")
                await container.finish()
            }
        }
    }

    @Test("a memory limit kills the hog and raises an OOM event", .enabled(if: Fixture.available))
    func memoryLimitOOM() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let container = try await LiveContainer.start(in: dir, ["sh", "-c",
                    "cat /sys/fs/cgroup/memory.max; echo ready; dd if=/dev/zero of=/dev/null bs=64M count=1"]) {
                    $0.setNamespace(.cgroup)
                    var resources = $0.linux?.resources ?? .init()
                    resources.memory = .init(limit: 32 << 20, swap: 32 << 20)
                    $0.linux?.resources = resources
                }
                let status = try await container.wait()
                #expect(container.stdout.text.hasPrefix("\(32 << 20)\n"), "stdout: \(container.stdout.text)")
                #expect(status == 128 + 9, "the hog (init) is killed by the OOM killer")
                #expect(await eventually(timeout: .seconds(20)) { container.events.topics.contains("/tasks/oom") },
                        "events: \(container.events.topics)")
                await container.finish()
            }
        }
    }

    @Test("a VM killed under a running container is reported with its reason, not a hang",
          .enabled(if: Fixture.available))
    func deadVMIsReported() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let container = try await LiveContainer.start(in: dir, ["sh", "-c", Self.loop])
                #expect(await container.stdout.waitFor("ready\n"))
                let pid = try #require(await container.sandbox.vm.pid)
                #expect(Glibc.kill(pid, SIGKILL) == 0)
                await #expect { _ = try await container.wait() } throws: { error in
                    "\(error)".contains("VM exited")
                }
                await container.sandbox.kill()
            }
        }
    }

    @Test("a guest whose PID 1 dies panics, and start reports the panic with the console, not a hang",
          .enabled(if: Fixture.available))
    func guestPanicIsReported() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                var configuration = SandboxConfiguration(name: "panic", assets: try Fixture.assets(),
                                                         stateDirectory: dir + "/state", agentTimeout: .seconds(60))
                // crun as PID 1 prints its usage and exits: the kernel panics ("Attempted to kill init").
                configuration.extraKernelArguments = ["init=/usr/bin/crun"]
                let started = ContinuousClock.now
                await #expect { _ = try await Sandbox.start(configuration) } throws: { error in
                    let text = "\(error)"
                    return (error as? QemuboxError)?.code == .agentUnavailable
                        && text.contains("Kernel panic") && text.contains("guest")
                }
                #expect(ContinuousClock.now - started < .seconds(55), "noticed by QEMU's exit, not the agent timeout")
                #expect(!FileManager.default.fileExists(atPath: dir + "/state"), "nothing left behind")
            }
        }
    }

    @Test("System service: info, ping and the guest clock", .enabled(if: Fixture.available))
    func systemService() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let sandbox = try await Sandbox.start(
                    SandboxConfiguration(name: "sys", assets: try Fixture.assets(), stateDirectory: dir + "/state"))
                let info = try await sandbox.agent.system.info(.init())
                #expect(info.agentVersion == GuestAgentProtocol.version)
                #expect(info.kernelRelease.hasPrefix("6.1"))
                #expect(info.uptimeNs > 0)
                #expect(info.cgroupControllers.contains("memory") && info.cgroupControllers.contains("pids"))
                #expect(info.runtime.contains("crun"))
                var ping = Qemubox_Guest_V1_PingRequest()
                ping.payload = Data("are you there".utf8)
                let pong = try await sandbox.agent.system.ping(ping)
                #expect(pong.payload == ping.payload)
                // Sandbox.start set the guest clock from the host's.
                #expect(abs(pong.guestTime.date.timeIntervalSinceNow) < 30)
                let exit = await sandbox.shutdown(reason: "test done")
                #expect(exit.kind == .guestPoweroff, "\(exit)")
                #expect(exit.consoleTail.contains("test done"), "the reason is printed on the console")
            }
        }
    }
}
