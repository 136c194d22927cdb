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

/// `Update` through the Pod API on a real q35 VM: vCPUs and memory hot-added and taken
/// back, seen from inside the container. (Through containerd's own client:
/// ShimTests' `ContainerdResourcesTests`.)
@Suite("a pod's VM follows Update", .serialized)
struct PodResourcesTests {
    func exec(_ pod: Pod, _ id: String, _ args: [String], in dir: String) async throws -> (UInt32, String) {
        try await PodExec.run(pod, id, args, in: dir)
    }

    /// An update request carrying OCI LinuxResources as containerd sends them.
    func update(_ id: String, cpus: Int, memoryMiB: Int) throws -> Containerd_Task_V2_UpdateTaskRequest {
        var resources = RuntimeSpec.Resources()
        resources.cpu = cpu(cpus)
        resources.memory = RuntimeSpec.Memory(limit: Int64(memoryMiB) << 20)
        var request = Containerd_Task_V2_UpdateTaskRequest()
        request.id = id
        request.resources.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
        request.resources.value = try resources.jsonData()
        return request
    }

    /// A CPU quota of `count` CPUs.
    func cpu(_ count: Int) -> RuntimeSpec.CPU {
        var cpu = RuntimeSpec.CPU()
        cpu.quota = Int64(count) * 100_000
        cpu.period = 100_000
        return cpu
    }

    /// MemTotal in KiB from `cat /proc/meminfo`'s output.
    func memTotalKiB(_ meminfo: String) -> Int {
        meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
            .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Int($0) } } ?? 0
    }

    /// Per-CPU busy time (user + nice + system ticks) from /proc/stat, by cpu number.
    func busyTicks(_ stat: String) -> [Int: Int] {
        var ticks: [Int: Int] = [:]
        for line in stat.split(separator: "\n") where line.hasPrefix("cpu") && !line.hasPrefix("cpu ") {
            let fields = line.split(separator: " ")
            guard let cpu = Int(fields[0].dropFirst(3)), fields.count > 3 else { continue }
            ticks[cpu] = fields[1...3].compactMap { Int($0) }.reduce(0, +)
        }
        return ticks
    }

    @Test("1 vCPU/256 MiB → 3 vCPUs/768 MiB → back, without a restart", .enabled(if: Fixture.available),
          .timeLimit(.minutes(3)))
    func growAndShrink() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let bundle = try Fixture.bundle(in: dir, ["sh", "-c", "echo ready; exec sleep 600"]) {
                    var resources = RuntimeSpec.Resources()
                    resources.memory = RuntimeSpec.Memory(limit: 256 << 20)
                    resources.cpu = cpu(1)
                    $0.linux?.resources = resources
                }
                var configuration = PodConfiguration(id: "r1", stateDirectory: dir + "/pod", assets: try Fixture.assets())
                configuration.writableBytes = 64 << 20
                configuration.maxVCPUs = 3
                configuration.maxMemoryMiB = 1024
                let pod = Pod(configuration)
                var create = Containerd_Task_V2_CreateTaskRequest()
                create.id = "r1"
                create.bundle = bundle
                try await pod.create(create, rootfs: .ephemeral, io: DescriptorIO(stdin: nil, stdout: nil, stderr: nil))
                do {
                    try await pod.start(containerID: "r1")
                    #expect(await pod.vm?.resolved?.machineType == .q35, "a ceiling makes the VM a q35")
                    let boot = try await exec(pod, "r1", ["sh", "-c", "nproc; cat /proc/meminfo"], in: dir)
                    #expect(boot.1.hasPrefix("1\n"), "\(boot.1)")
                    let bootKiB = memTotalKiB(boot.1)
                    // 600 MiB in one buffer: beyond the 256 MiB limit and the VM's memory, it fails.
                    let big = ["dd", "if=/dev/zero", "of=/dev/null", "bs=600M", "count=1"]
                    #expect(try await exec(pod, "r1", big, in: dir).0 != 0)

                    let grow = ContinuousClock.now
                    try await pod.update(try update("r1", cpus: 3, memoryMiB: 768))
                    let grown = ContinuousClock.now - grow
                    let after = try await exec(pod, "r1", ["sh", "-c", "nproc; cat /proc/meminfo"], in: dir)
                    #expect(after.1.hasPrefix("3\n"), "\(after.1)")
                    let grownKiB = memTotalKiB(after.1)
                    #expect(grownKiB - bootKiB >= 500 << 10, "MemTotal \(bootKiB) → \(grownKiB) KiB")
                    let resources = try #require(try await pod.vm?.resources())
                    #expect(resources.vcpus == 3 && resources.memoryMiB == 768 + configuration.guestOverheadMiB, "\(resources)")
                    #expect(try await exec(pod, "r1", big, in: dir).0 == 0, "the allocation fits now")
                    // A CPU-bound load spreads over the new vCPUs.
                    let load = try await exec(pod, "r1", ["sh", "-c", """
                        cat /proc/stat; for i in 1 2 3; do (while :; do :; done) & done; sleep 3; kill $(jobs -p); echo ---; cat /proc/stat
                        """], in: dir)
                    let parts = load.1.components(separatedBy: "---\n")
                    let before = busyTicks(parts.first ?? ""), later = busyTicks(parts.last ?? "")
                    for cpu in [1, 2] {
                        #expect((later[cpu] ?? 0) - (before[cpu] ?? 0) > 50, "cpu\(cpu) busy ticks \(before[cpu] ?? -1) → \(later[cpu] ?? -1)")
                    }
                    print("hotplug 2 vCPUs + 512 MiB: \(grown)")

                    try await pod.update(try update("r1", cpus: 1, memoryMiB: 256))
                    let down = try await exec(pod, "r1", ["sh", "-c", "nproc; cat /proc/meminfo"], in: dir)
                    #expect(down.1.hasPrefix("1\n"), "\(down.1)")
                    #expect(memTotalKiB(down.1) == bootKiB, "MemTotal back to \(bootKiB) KiB: \(memTotalKiB(down.1))")
                    #expect(try await pod.vm?.resources().vcpus == 3, "offline, still plugged (never unplugged under TCG)")
                    // Up again: the offline vCPU comes back, no slot is plugged twice.
                    try await pod.update(try update("r1", cpus: 2, memoryMiB: 256))
                    #expect(try await exec(pod, "r1", ["nproc"], in: dir).1 == "2\n")
                    // The limit beyond the ceiling is refused, and nothing changes.
                    await #expect(throws: QemuboxError.self) { try await pod.update(try update("r1", cpus: 1, memoryMiB: 2048)) }
                    #expect(try await exec(pod, "r1", ["nproc"], in: dir).1 == "2\n")
                } catch {
                    await pod.terminate()
                    throw error
                }
                await pod.terminate()
            }
        }
    }
}
