import Foundation
import NIOCore
import QemuboxAPI
import SwiftProtobuf
import Testing
import TestSupport
import TTRPCCodec
import VsockTransport

/// Boots the real guest image (vminitd as PID 1, crun) under QEMU and drives
/// the real agent over virtio-serial + yamux + ttrpc.
@Suite(.serialized, .enabled(if: GuestArtifacts.available))
struct GuestAgentVMTests {
    @Test func systemServiceAnswers() async throws {
        try await TemporaryDirectory.with { dir in
            try await withAgentVM(directory: dir) { vm, agent in
                let info = try await agent.system.info(Qemubox_Guest_V1_InfoRequest())
                #expect(info.agentVersion == GuestAgentProtocol.version)
                #expect(info.kernelRelease.hasPrefix("6."))
                #expect(info.onlineCpus == 1)
                #expect(info.memoryTotalBytes > 256 << 20)
                #expect(info.cgroupControllers.contains("memory"))
                #expect(info.cgroupControllers.contains("pids"))
                #expect(info.runtime.hasPrefix("crun version"))

                var ping = Qemubox_Guest_V1_PingRequest()
                ping.payload = Data("are you there".utf8)
                #expect(try await agent.system.ping(ping).payload == ping.payload)

                var set = Qemubox_Guest_V1_SetTimeRequest()
                let target = Date(timeIntervalSince1970: 1_900_000_000)
                set.time = Google_Protobuf_Timestamp(date: target)
                _ = try await agent.system.setTime(set)
                let guestTime = try await agent.system.ping(ping).guestTime.date
                #expect(abs(guestTime.timeIntervalSince(target)) < 30)

                var bad = Qemubox_Guest_V1_WriteFileRequest()
                bad.path = "relative/file"
                await #expect(throws: TTRPCError.self) { _ = try await agent.system.writeFile(bad) }
                do {
                    _ = try await agent.system.writeFile(bad)
                } catch let error as TTRPCError {
                    #expect(error.code == .invalidArgument)
                }
                do {
                    _ = try await agent.task.state(Containerd_Task_V2_StateRequest.with { $0.id = "nope" })
                    Issue.record("state of a missing container succeeded")
                } catch let error as TTRPCError {
                    #expect(error.code == .notFound)
                }
            }
        }
    }

    /// Mounts the rootfs disk and writes config.json the way the host plans it.
    static func prepareBundle(_ agent: AgentClient, id: String, args: [String], terminal: Bool = false) async throws {
        var mount = Qemubox_Guest_V1_MountRequest()
        var m = Qemubox_Guest_V1_GuestMount()
        m.type = "erofs"
        m.source = "disk:rootfs"
        m.target = "\(GuestAgentProtocol.bundleRoot)/\(id)/rootfs"
        m.options = ["ro"]
        mount.mounts = [m]
        _ = try await agent.system.mount(mount)
        var write = Qemubox_Guest_V1_WriteFileRequest()
        write.path = "\(GuestAgentProtocol.bundleRoot)/\(id)/config.json"
        write.data = try Fixtures.config(id: id, args: args, terminal: terminal)
        _ = try await agent.system.writeFile(write)
    }

    @Test func containerRunsWithSeparateStdoutStderrAndExitEvent() async throws {
        try await TemporaryDirectory.with { dir in
            let rootfs = try Fixtures.busyboxRootfs(in: dir)
            try await withAgentVM(disks: [("rootfs", rootfs)], directory: dir) { vm, agent in
                let id = "c1"
                try await Self.prepareBundle(agent, id: id, args: [
                    "sh", "-c", "echo out; cat /sys/fs/cgroup/pids.max; echo err >&2; "
                        + "if hostname > /proc/sys/kernel/hostname; then echo proc-sys-writable; fi; exit 3",
                ])
                let events = try await agent.system.events(Qemubox_Guest_V1_EventsRequest())
                let stdout = try await agent.openStdio("c1/stdout")
                let stderr = try await agent.openStdio("c1/stderr")
                var create = Containerd_Task_V2_CreateTaskRequest()
                create.id = id
                create.stdout = "c1/stdout"
                create.stderr = "c1/stderr"
                let created = try await agent.task.create(create)
                #expect(created.pid > 1)
                let state = try await agent.task.state(.with { $0.id = id })
                #expect(state.status == .created)
                _ = try await agent.task.start(.with { $0.id = id })
                async let out = Fixtures.readAll(stdout)
                async let err = Fixtures.readAll(stderr)
                let waited = try await agent.task.wait(.with { $0.id = id })
                #expect(waited.exitStatus == 3)
                let (outText, errText) = try await (out, err)
                // The container sees its own cgroup at /sys/fs/cgroup (pids.max
                // exists only below the root): crun made the spec's cgroup namespace.
                #expect(outText == "out\nmax\n")
                // readonlyPaths from config.json are honoured: /proc/sys is read-only.
                #expect(errText.hasPrefix("err\n"))
                #expect(errText.contains("Read-only file system"))

                var iterator = events.makeAsyncIterator()
                let event = try #require(try await iterator.next())
                #expect(event.topic == "/tasks/exit")
                let exit = try #require(try ContainerdEvent.unpack(event.event, as: Containerd_Events_TaskExit.self))
                #expect(exit.containerID == id)
                #expect(exit.id == id)
                #expect(exit.exitStatus == 3)
                #expect(exit.pid == created.pid)

                let stopped = try await agent.task.state(.with { $0.id = id })
                #expect(stopped.status == .stopped)
                let deleted = try await agent.task.delete(.with { $0.id = id })
                #expect(deleted.exitStatus == 3)
                do {
                    _ = try await agent.task.state(.with { $0.id = id })
                    Issue.record("state after delete succeeded")
                } catch let error as TTRPCError {
                    #expect(error.code == .notFound)
                }
                _ = try await agent.system.unmount(.with { $0.targets = ["\(GuestAgentProtocol.bundleRoot)/\(id)/rootfs"] })
            }
        }
    }

    @Test func stdinExecKillAndDelete() async throws {
        try await TemporaryDirectory.with { dir in
            let rootfs = try Fixtures.busyboxRootfs(in: dir)
            try await withAgentVM(disks: [("rootfs", rootfs)], directory: dir) { vm, agent in
                // stdin to EOF: cat echoes what the host sends, then exits 0.
                try await Self.prepareBundle(agent, id: "cat", args: ["cat"])
                let stdin = try await agent.openStdio("cat/in")
                let stdout = try await agent.openStdio("cat/out")
                _ = try await agent.task.create(.with { $0.id = "cat"; $0.stdin = "cat/in"; $0.stdout = "cat/out" })
                _ = try await agent.task.start(.with { $0.id = "cat" })
                try await stdin.write(Array("hello from the host\n".utf8))
                try await stdin.closeWrite()
                #expect(try await Fixtures.readAll(stdout) == "hello from the host\n")
                #expect(try await agent.task.wait(.with { $0.id = "cat" }).exitStatus == 0)
                _ = try await agent.task.delete(.with { $0.id = "cat" })

                // A long-running container: exec into it, then kill it.
                try await Self.prepareBundle(agent, id: "sleeper", args: ["sleep", "1000"])
                _ = try await agent.task.create(.with { $0.id = "sleeper" })
                _ = try await agent.task.start(.with { $0.id = "sleeper" })
                #expect(try await agent.task.state(.with { $0.id = "sleeper" }).status == .running)
                do {
                    _ = try await agent.task.delete(.with { $0.id = "sleeper" })
                    Issue.record("deleting a running task succeeded")
                } catch let error as TTRPCError {
                    #expect(error.code == .failedPrecondition)
                }

                let execOut = try await agent.openStdio("sleeper/e1/out")
                var exec = Containerd_Task_V2_ExecProcessRequest()
                exec.id = "sleeper"
                exec.execID = "e1"
                exec.stdout = "sleeper/e1/out"
                exec.spec.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
                exec.spec.value = try JSONSerialization.data(withJSONObject: Fixtures.process(["sh", "-c", "echo exec-says-hi; exit 7"]))
                _ = try await agent.task.exec(exec)
                let started = try await agent.task.start(.with { $0.id = "sleeper"; $0.execID = "e1" })
                #expect(started.pid > 1)
                #expect(try await Fixtures.readAll(execOut) == "exec-says-hi\n")
                #expect(try await agent.task.wait(.with { $0.id = "sleeper"; $0.execID = "e1" }).exitStatus == 7)
                _ = try await agent.task.delete(.with { $0.id = "sleeper"; $0.execID = "e1" })

                let pids = try await agent.task.pids(.with { $0.id = "sleeper" })
                #expect(pids.processes.count == 1)

                _ = try await agent.task.kill(.with { $0.id = "sleeper"; $0.signal = 9 })
                #expect(try await agent.task.wait(.with { $0.id = "sleeper" }).exitStatus == 137)
                let deleted = try await agent.task.delete(.with { $0.id = "sleeper" })
                #expect(deleted.exitStatus == 137)

                // Events: exec started, then the exits (cat, e1, sleeper), in order.
                let events = try await agent.system.events(Qemubox_Guest_V1_EventsRequest())
                var topics: [String] = []
                var exits: [String: UInt32] = [:]
                for try await event in events {
                    topics.append(event.topic)
                    if let exit = try ContainerdEvent.unpack(event.event, as: Containerd_Events_TaskExit.self) {
                        exits[exit.id] = exit.exitStatus
                    }
                    if topics.count == 4 { break }
                }
                #expect(topics == ["/tasks/exit", "/tasks/exec-started", "/tasks/exit", "/tasks/exit"])
                #expect(exits == ["cat": 0, "e1": 7, "sleeper": 137])
            }
        }
    }

    @Test func shutdownPowersTheVMOff() async throws {
        try await TemporaryDirectory.with { dir in
            try await withAgentVM(directory: dir) { vm, agent in
                _ = try await agent.system.shutdown(.with { $0.reason = "test says bye" })
                #expect(await vm.waitForExit(seconds: 30))
                #expect(await vm.console.contains("vminitd: powering off: test says bye"))
            }
        }
    }

    @Test func terminalResizeAndCloseIO() async throws {
        try await TemporaryDirectory.with { dir in
            let rootfs = try Fixtures.busyboxRootfs(in: dir)
            try await withAgentVM(disks: [("rootfs", rootfs)], directory: dir) { vm, agent in
                try await Self.prepareBundle(agent, id: "tty", args: ["sh", "-c", "stty size; read line; echo got:$line"],
                                             terminal: true)
                let stdin = try await agent.openStdio("tty/in")
                let stdout = try await agent.openStdio("tty/out")
                _ = try await agent.task.create(.with { $0.id = "tty"; $0.terminal = true; $0.stdin = "tty/in"; $0.stdout = "tty/out" })
                _ = try await agent.task.resizePty(.with { $0.id = "tty"; $0.width = 100; $0.height = 40 })
                _ = try await agent.task.start(.with { $0.id = "tty" })
                async let output = Fixtures.readAll(stdout)
                try await stdin.write(Array("hello\n".utf8))
                #expect(try await agent.task.wait(.with { $0.id = "tty" }).exitStatus == 0)
                let text = try await output
                #expect(text.contains("40 100"))
                #expect(text.contains("got:hello"))
                #expect(try await agent.task.state(.with { $0.id = "tty" }).terminal)
                _ = try await agent.task.delete(.with { $0.id = "tty" })

                // CloseIO closes stdin even though the host keeps its stream open.
                try await Self.prepareBundle(agent, id: "cat", args: ["cat"])
                let catIn = try await agent.openStdio("cat/in")
                let catOut = try await agent.openStdio("cat/out")
                _ = try await agent.task.create(.with { $0.id = "cat"; $0.stdin = "cat/in"; $0.stdout = "cat/out" })
                _ = try await agent.task.start(.with { $0.id = "cat" })
                try await catIn.write(Array("line\n".utf8))
                var firstLine = ByteBuffer()
                while firstLine.readableBytes < 5, var chunk = try await catOut.read() { firstLine.writeBuffer(&chunk) }
                _ = try await agent.task.closeIO(.with { $0.id = "cat"; $0.stdin = true })
                #expect(try await agent.task.wait(.with { $0.id = "cat" }).exitStatus == 0)
                _ = try await agent.task.delete(.with { $0.id = "cat" })
            }
        }
    }

    @Test func statsUpdatePauseAndOOM() async throws {
        try await TemporaryDirectory.with { dir in
            let rootfs = try Fixtures.busyboxRootfs(in: dir)
            try await withAgentVM(disks: [("rootfs", rootfs)], directory: dir) { vm, agent in
                let id = "mem"
                try await Self.prepareBundle(agent, id: id, args: ["sleep", "1000"])
                _ = try await agent.task.create(.with { $0.id = id })
                _ = try await agent.task.start(.with { $0.id = id })

                var update = Containerd_Task_V2_UpdateTaskRequest()
                update.id = id
                update.resources.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
                update.resources.value = Data(#"{"memory":{"limit":16777216,"swap":16777216},"pids":{"limit":20}}"#.utf8)
                _ = try await agent.task.update(update)

                let stats = try await agent.task.stats(.with { $0.id = id })
                #expect(stats.stats.typeURL == "io.containerd.cgroups.v2.Metrics")
                let metrics = try #require(try ContainerdEvent.unpack(stats.stats, as: Io_Containerd_Cgroups_V2_Metrics.self))
                #expect(metrics.pids.current == 1)
                #expect(metrics.pids.limit == 20)
                #expect(metrics.memory.usageLimit == 16_777_216)
                #expect(metrics.memory.usage > 0)

                _ = try await agent.task.pause(.with { $0.id = id })
                #expect(try await agent.task.state(.with { $0.id = id }).status == .paused)
                _ = try await agent.task.resume(.with { $0.id = id })
                #expect(try await agent.task.state(.with { $0.id = id }).status == .running)

                // A process that outgrows the limit is OOM-killed: TaskOOM, exit 137.
                var exec = Containerd_Task_V2_ExecProcessRequest()
                exec.id = id
                exec.execID = "hog"
                exec.spec.value = try JSONSerialization.data(withJSONObject: Fixtures.process(
                    ["sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived"]))
                _ = try await agent.task.exec(exec)
                _ = try await agent.task.start(.with { $0.id = id; $0.execID = "hog" })
                #expect(try await agent.task.wait(.with { $0.id = id; $0.execID = "hog" }).exitStatus == 137)
                let events = try await agent.system.events(Qemubox_Guest_V1_EventsRequest())
                var sawOOM = false
                for try await event in events {
                    if event.topic == "/tasks/oom" {
                        sawOOM = try ContainerdEvent.unpack(event.event, as: Containerd_Events_TaskOOM.self)?.containerID == id
                        break
                    }
                }
                #expect(sawOOM)
                _ = try await agent.task.kill(.with { $0.id = id; $0.signal = 9 })
                _ = try await agent.task.wait(.with { $0.id = id })
                _ = try await agent.task.delete(.with { $0.id = id })
            }
        }
    }
}
