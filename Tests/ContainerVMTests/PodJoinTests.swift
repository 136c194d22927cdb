#if canImport(Glibc)
import Glibc
#endif
import Foundation
import OCISpec
import QemuboxAPI
@testable import QemuboxKit
import SwiftProtobuf
import Testing
import TestSupport
import TTRPCCodec

/// A CRI pod in one VM through the Pod API: the sandbox boots a pod VM, a later
/// container joins it with its own rootfs disks added to the running VM, shares the
/// sandbox's IPC and UTS namespaces and the pod's `/dev/shm`, and leaves nothing when
/// deleted (its disks detached, the VM running on for the sandbox).
@Suite("a pod's containers in one VM", .serialized)
struct PodJoinTests {
    /// Runs `command` in container `id` of `pod` as an exec, expects it to succeed, returns its output.
    func run(_ pod: Pod, _ id: String, _ execID: String, _ command: String, in dir: String) async throws -> String {
        let (status, output) = try await PodExec.run(pod, id, ["sh", "-c", command], execID: execID, in: dir)
        #expect(status == 0, "\(command): \(output)")
        return output
    }

    /// The guest's mount table (its PID 1's, the agent's).
    func guestMounts(_ pod: Pod) async throws -> String {
        let sandbox = try #require(await pod.sandbox)
        var request = Qemubox_Guest_V1_ReadFileRequest()
        request.path = "/proc/1/mounts"
        request.maxBytes = 1 << 20
        return String(decoding: try await sandbox.agent.system.readFile(request).data, as: UTF8.self)
    }

    @Test("sandbox + joined container: own disks, shared namespaces and /dev/shm, detached at delete",
          .enabled(if: Fixture.available))
    func joinedContainer() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                // CRI's shape: the sandbox's shm directory bind-mounted read-write at /dev/shm in every container.
                let shm = dir + "/cri/sandboxes/pod1/shm"
                try FileManager.default.createDirectory(atPath: shm, withIntermediateDirectories: true)
                let shmMount = RuntimeSpec.Mount(destination: "/dev/shm", type: "bind", source: shm,
                                                 options: ["rbind", "rw"])
                let sandboxBundle = try Fixture.bundle(in: dir, name: "sandbox", ["sh", "-c", "echo sandbox-up; exec sleep 600"]) {
                    $0.annotations = ["io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "pod1"]
                    $0.hostname = "pod1-host"
                    $0.mounts = ($0.mounts ?? []) + [shmMount]
                }
                let app: (inout RuntimeSpec) -> Void = {
                    $0.annotations = ["io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "pod1"]
                    $0.hostname = nil
                    $0.mounts = ($0.mounts ?? []) + [shmMount]
                    // CRI points the container at the sandbox's namespaces by the pid it was told (QEMU's, a host pid).
                    for (i, entry) in ($0.linux?.namespaces ?? []).enumerated() where entry.type == "ipc" || entry.type == "uts" {
                        $0.linux?.namespaces?[i].path = "/proc/1/ns/\(entry.type)"
                    }
                }
                let appBundle = try Fixture.bundle(in: dir, name: "app", ["sh", "-c", "echo app-up; exec sleep 600"], configure: app)
                // A restarted container: a new bundle (the first one's writable layer went back into its own).
                let restartBundle = try Fixture.bundle(in: dir, name: "app2", ["sleep", "600"], configure: app)
                let brokenBundle = try Fixture.bundle(in: dir, name: "broken", ["true"]) {
                    app(&$0)
                    $0.mounts = ($0.mounts ?? []) + [RuntimeSpec.Mount(destination: "/x", type: "qbx-no-such-fs", source: "none")]
                }
                var configuration = PodConfiguration(id: "pod1", stateDirectory: dir + "/pod", assets: try Fixture.assets())
                configuration.writableBytes = 64 << 20
                let pod = Pod(configuration)
                let sandboxOut = open(dir + "/sandbox.out", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                let appOut = open(dir + "/app.out", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                defer { close(sandboxOut); close(appOut) }
                var create = Containerd_Task_V2_CreateTaskRequest()
                create.id = "pod1"
                create.bundle = sandboxBundle
                try await pod.create(create, rootfs: .ephemeral, io: DescriptorIO(stdin: nil, stdout: sandboxOut, stderr: sandboxOut))
                do {
                    _ = try await pod.start(containerID: "pod1")
                    let qemu = await pod.pid
                    var join = Containerd_Task_V2_CreateTaskRequest()
                    join.id = "app1"
                    join.bundle = appBundle
                    let pid = try await pod.create(join, io: DescriptorIO(stdin: nil, stdout: appOut, stderr: appOut))
                    #expect(pid == qemu, "one VM: the joined container reports the same QEMU")
                    #expect(await pod.vm?.attachedDiskIDs.isEmpty == false, "the joined container's disks were added")
                    _ = try await pod.start(containerID: "app1")
                    #expect(await eventually(timeout: .seconds(20)) {
                        (try? String(contentsOfFile: dir + "/app.out", encoding: .utf8)) == "app-up\n"
                    })
                    // Same IPC and UTS namespaces as the sandbox, its own mount namespace and rootfs.
                    let sandboxNS = try await run(pod, "pod1", "s1", "for n in ipc uts mnt; do readlink /proc/self/ns/$n; done; hostname", in: dir)
                    let appNS = try await run(pod, "app1", "a1", "for n in ipc uts mnt; do readlink /proc/self/ns/$n; done; hostname", in: dir)
                    let s = sandboxNS.split(separator: "\n"), a = appNS.split(separator: "\n")
                    #expect(s.count == 4 && a.count == 4, "\(sandboxNS) / \(appNS)")
                    if s.count == 4 && a.count == 4 {
                        #expect(s[0] == a[0] && s[1] == a[1], "ipc and uts shared: \(s) vs \(a)")
                        #expect(s[2] != a[2], "mount namespaces differ")
                        #expect(a[3] == "pod1-host")
                    }
                    // The pod's /dev/shm is one tmpfs in the guest; the writable layers are separate.
                    _ = try await run(pod, "app1", "a2", "echo from-app > /dev/shm/note && echo mine > /only-app", in: dir)
                    #expect(try await run(pod, "pod1", "s2", "cat /dev/shm/note; test -e /only-app && echo leak || echo separate", in: dir)
                        == "from-app\nseparate\n")
                    #expect(try await run(pod, "app1", "a3", "stat -f -c %T /dev/shm", in: dir) == "tmpfs\n")
                    // The app goes; its disks leave the VM, the sandbox stays.
                    var kill = Containerd_Task_V2_KillRequest()
                    kill.id = "app1"
                    kill.signal = UInt32(SIGKILL)
                    try await pod.kill(kill)
                    #expect(try await pod.wait(containerID: "app1").status == 137)
                    _ = try await pod.delete(containerID: "app1")
                    #expect(await pod.vm?.attachedDiskIDs == [], "the joined container's disks were detached")
                    #expect(await pod.vm?.exit == nil, "the VM runs on for the sandbox")
                    // A join the guest refuses (crun cannot mount an unknown file system type)
                    // fails with the guest's error and leaves no disk in the VM.
                    var broken = join
                    broken.id = "broken"
                    broken.bundle = brokenBundle
                    await #expect(throws: (any Error).self) {
                        try await pod.create(broken, io: DescriptorIO(stdin: nil, stdout: nil, stderr: nil))
                    }
                    #expect(await pod.vm?.attachedDiskIDs == [], "a failed join detaches its disks")
                    let mounts = try await guestMounts(pod)
                    #expect(mounts.contains("/bundles/pod1/rootfs"), "the guest's own mount table: \(mounts)")
                    #expect(!mounts.contains("/broken"), "a failed join leaves no mount in the guest: \(mounts)")
                    // A container created again in the same pod (a restart) gets new disks.
                    join.id = "app2"
                    join.bundle = restartBundle
                    try await pod.create(join, io: DescriptorIO(stdin: nil, stdout: appOut, stderr: appOut))
                    _ = try await pod.start(containerID: "app2")
                    #expect(try await run(pod, "app2", "b1", "cat /dev/shm/note; test -e /only-app && echo kept || echo fresh", in: dir)
                        == "from-app\nfresh\n")
                    kill.id = "app2"
                    try await pod.kill(kill)
                    _ = try await pod.wait(containerID: "app2")
                    _ = try await pod.delete(containerID: "app2")
                    kill.id = "pod1"
                    try await pod.kill(kill)
                    _ = try await pod.wait(containerID: "pod1")
                    _ = try await pod.delete(containerID: "pod1")
                } catch {
                    await pod.terminate()
                    throw error
                }
                #expect(await pod.vm?.exit != nil, "the VM ended with the pod's last container")
                let left = (try? FileManager.default.subpathsOfDirectory(atPath: dir + "/pod")) ?? []
                #expect(left.allSatisfy { $0 == "containers" }, "left behind: \(left)")
            }
        }
    }

    /// A pod VM with a ceiling grows for a joining container's limits (CRI gives the sandbox
    /// none); limits beyond the ceiling fail the join before anything is added.
    @Test("a joining container's limits grow a pod VM with a ceiling", .enabled(if: Fixture.available))
    func joinGrowsThePodVM() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let sandboxBundle = try Fixture.bundle(in: dir, name: "sandbox", ["sleep", "600"]) {
                    $0.annotations = ["io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "pod2"]
                }
                func app(memoryMiB: Int64) -> (inout RuntimeSpec) -> Void {
                    return {
                        $0.annotations = ["io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "pod2"]
                        var resources = RuntimeSpec.Resources()
                        var cpu = RuntimeSpec.CPU()
                        cpu.quota = 200_000
                        cpu.period = 100_000
                        resources.cpu = cpu
                        resources.memory = RuntimeSpec.Memory(limit: memoryMiB << 20)
                        $0.linux?.resources = resources
                    }
                }
                let appBundle = try Fixture.bundle(in: dir, name: "app", ["sleep", "600"], configure: app(memoryMiB: 512))
                let hugeBundle = try Fixture.bundle(in: dir, name: "huge", ["true"], configure: app(memoryMiB: 1024))
                var configuration = PodConfiguration(id: "pod2", stateDirectory: dir + "/pod", assets: try Fixture.assets())
                configuration.writableBytes = 64 << 20
                configuration.maxVCPUs = 2
                configuration.maxMemoryMiB = 768
                let pod = Pod(configuration)
                var create = Containerd_Task_V2_CreateTaskRequest()
                create.id = "pod2"
                create.bundle = sandboxBundle
                try await pod.create(create, rootfs: .ephemeral, io: DescriptorIO(stdin: nil, stdout: nil, stderr: nil))
                do {
                    _ = try await pod.start(containerID: "pod2")
                    #expect(try await pod.vm?.resources().memoryMiB == 256)
                    var huge = create
                    huge.id = "huge"
                    huge.bundle = hugeBundle
                    await #expect { try await pod.create(huge, io: DescriptorIO(stdin: nil, stdout: nil, stderr: nil)) } throws: {
                        "\($0)".contains("do not fit the VM") && "\($0)".contains("can grow to 768 MiB")
                    }
                    #expect(await pod.vm?.attachedDiskIDs == [], "a refused join adds no disk")
                    var join = create
                    join.id = "app"
                    join.bundle = appBundle
                    try await pod.create(join, io: DescriptorIO(stdin: nil, stdout: nil, stderr: nil))
                    _ = try await pod.start(containerID: "app")
                    let resources = try #require(try await pod.vm?.resources())
                    #expect(resources.vcpus == 2 && resources.memoryMiB == 512 + configuration.guestOverheadMiB, "\(resources)")
                    #expect(try await run(pod, "app", "n1", "nproc", in: dir) == "2\n")
                } catch {
                    await pod.terminate()
                    throw error
                }
                await pod.terminate()
            }
        }
    }
}
