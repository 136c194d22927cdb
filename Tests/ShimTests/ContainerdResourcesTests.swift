import ContainerdTestSupport
import Foundation
import QemuboxAPI
import QemuboxKit
import QemuboxOperator
import SwiftProtobuf
import TestSupport
import Testing

/// containerd's `task.Update` and `task.Metrics` through containerd's own Go client
/// (`ctr` 1.6 has no `task update`): a VM with a hotplug ceiling grows and shrinks with
/// its container's limits; Stats carries the VM's figures; the resource annotations are
/// honoured or refused.
@Suite(.serialized) struct ContainerdResourcesTests {
    static let qemubox = ContainerdShimTests.qemubox
    static let image = PrivateContainerd.image

    /// Runs the Go client against `containerd`.
    static func client(_ containerd: PrivateContainerd, _ arguments: [String]) async throws -> [String: Any] {
        let binary = try await GoPeer.build("containerd-client")
        let out = try await GoPeer.run(binary, ["-address", containerd.socket, "-namespace", containerd.namespace] + arguments)
        return try #require(try JSONSerialization.jsonObject(with: out) as? [String: Any])
    }

    /// `nproc` and MemTotal (KiB) inside container `id`, through `ctr task exec`.
    static func size(_ containerd: PrivateContainerd, _ id: String, exec: String) async throws -> (Int, Int) {
        let out = try await containerd.ctrCheck("task exec --exec-id \(exec) \(id) sh -c 'nproc; grep MemTotal /proc/meminfo'")
        let lines = out.split(separator: "\n")
        let cpus = lines.first.flatMap { Int($0) } ?? 0
        let kib = lines.dropFirst().first.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        return (cpus, kib)
    }

    @Test(.enabled(if: PrivateContainerd.vmAvailable))
    func updateGrowsAndShrinksTheVM() async throws {
        try await ConcurrencyLimit.vms.run {
            try await ContainerdShimTests.withContainerd(qemubox: "max_vcpus = 3\nmax_memory_mib = 1024\n") { containerd in
                try await containerd.ctrCheck("run -d --cpus 1 --memory-limit \(256 << 20) \(Self.qemubox) \(Self.image) u1 sleep 1000")
                let boot = try await Self.size(containerd, "u1", exec: "s1")
                #expect(boot.0 == 1, "nproc at start")
                let big = "task exec --exec-id %@ u1 dd if=/dev/zero of=/dev/null bs=600M count=1"
                #expect(try await containerd.ctr(String(format: big, "b1")).status != 0, "600 MiB do not fit 256 MiB")

                let grown = try await Self.client(containerd, ["update", "u1", "-cpus", "3", "-memory-mib", "768"])
                let after = try await Self.size(containerd, "u1", exec: "s2")
                #expect(after.0 == 3, "nproc after Update")
                #expect(after.1 - boot.1 >= 500 << 10, "MemTotal \(boot.1) → \(after.1) KiB")
                let fits = try await containerd.ctr(String(format: big, "b2"))
                #expect(fits.status == 0, "the allocation fits after Update: \(fits.stderr)")
                print("Update 1→3 vCPUs, 256→768 MiB through containerd: \(grown["seconds"] ?? "?") s")
                // `qemubox ps` shows the live size, not the boot size of QEMU's command line.
                let listed = VMInventory(stateDirectory: containerd.stateRoot).scan().vms.first { $0.id == "u1" }
                #expect(listed?.vcpus == 3 && listed?.memoryMiB == 768 + 128, "\(String(describing: listed))")

                // Stats: the container's cgroup as containerd decodes it, the VM's figures beside it.
                let stats = try await Self.client(containerd, ["stats", "u1"])
                #expect(stats["type_url"] as? String == "io.containerd.cgroups.v2.Metrics")
                #expect((stats["memory_limit"] as? NSNumber)?.intValue == 768 << 20, "\(stats)")
                let raw = try #require(Data(base64Encoded: stats["raw"] as? String ?? ""))
                let vm = try Qemubox_Shim_V1_StatsExtension(serializedBytes: raw).vm
                #expect(vm.machine == "q35" && vm.vcpus == 3 && vm.maxVcpus == 3, "\(vm)")
                #expect(vm.memoryBytes == UInt64(768 + 128) << 20 && vm.maxMemoryBytes == 1024 << 20, "\(vm)")
                #expect(vm.qemuCpuUsec > 0 && vm.qemuRssBytes > 64 << 20, "\(vm)")

                // Beyond the ceiling: refused, nothing changes.
                await #expect { _ = try await Self.client(containerd, ["update", "u1", "-memory-mib", "2048"]) } throws: {
                    "\($0)".contains("do not fit the VM") && "\($0)".contains("can grow to 1024 MiB")
                }
                _ = try await Self.client(containerd, ["update", "u1", "-cpus", "1", "-memory-mib", "256"])
                let down = try await Self.size(containerd, "u1", exec: "s3")
                #expect(down.0 == 1, "nproc after Update back down")
                #expect(down.1 == boot.1, "MemTotal back to \(boot.1) KiB: \(down.1)")
                // Offline, not unplugged; and up again without a new vCPU.
                let shrunk = try Qemubox_Shim_V1_StatsExtension(serializedBytes: try #require(
                    Data(base64Encoded: try await Self.client(containerd, ["stats", "u1"])["raw"] as? String ?? ""))).vm
                #expect(shrunk.vcpus == 3 && shrunk.onlineVcpus == 1 && shrunk.memoryBytes == 384 << 20, "\(shrunk)")
                _ = try await Self.client(containerd, ["update", "u1", "-cpus", "2"])
                #expect(try await Self.size(containerd, "u1", exec: "s4").0 == 2, "nproc after growing again")
                try await containerd.ctrCheck("task kill -s SIGKILL u1")
                _ = await ContainerdVMTests.waitStatus(containerd, "u1", "STOPPED")
                try await containerd.ctrCheck("task delete u1")
                try await containerd.ctrCheck("container rm u1")
            }
        }
    }

    /// Each resource annotation changes the VM, and one the host does not allow is refused.
    @Test(.enabled(if: PrivateContainerd.vmAvailable))
    func resourceAnnotations() async throws {
        try await ConcurrencyLimit.vms.run {
            try await ContainerdShimTests.withContainerd(qemubox: "max_vcpus = 2\n") { containerd in
                // PCI devices exist on q35 only: the host's ceiling makes a q35, hotplug=false a microvm.
                let probe = "sh -c 'ls /sys/bus/pci/devices | wc -l'"
                let q35 = try await containerd.ctr("run --rm \(Self.qemubox) \(Self.image) a1 \(probe)")
                #expect(q35.status == 0 && (Int(q35.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 0,
                        "\(q35.stdout) \(q35.stderr)")
                let microvm = try await containerd.ctr(
                    "run --rm --annotation io.qemubox.hotplug=false \(Self.qemubox) \(Self.image) a2 \(probe)")
                #expect(microvm.status == 0 && microvm.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0",
                        "\(microvm.stdout) \(microvm.stderr)")
                // A ceiling of its own, then grown to it.
                try await containerd.ctrCheck("run -d --annotation io.qemubox.max_vcpus=3 --annotation io.qemubox.max_memory_mib=640 "
                    + "\(Self.qemubox) \(Self.image) a3 sleep 1000")
                _ = try await Self.client(containerd, ["update", "a3", "-cpus", "3", "-memory-mib", "512"])
                let grown = try await Self.size(containerd, "a3", exec: "s1")
                #expect(grown.0 == 3, "nproc after Update to the annotated ceiling")
                let vm = try Qemubox_Shim_V1_StatsExtension(serializedBytes: try #require(
                    Data(base64Encoded: try await Self.client(containerd, ["stats", "a3"])["raw"] as? String ?? ""))).vm
                #expect(vm.maxVcpus == 3 && vm.maxMemoryBytes == 640 << 20 && vm.memoryBytes == 640 << 20, "\(vm)")
                try await containerd.ctrCheck("task kill -s SIGKILL a3")
                _ = await ContainerdVMTests.waitStatus(containerd, "a3", "STOPPED")
                try await containerd.ctrCheck("task delete a3")
                try await containerd.ctrCheck("container rm a3")
                // Refused: beyond the host's bounds, not allowed by the host, a ceiling below the start size.
                for (annotation, message) in [("io.qemubox.max_vcpus=9", "io.qemubox.max_vcpus=9"),
                                              ("io.qemubox.machine=q35", "not allowed by this host"),
                                              ("io.qemubox.max_memory_mib=100", "below the VM's")] {
                    let refused = try await containerd.ctr("run --rm --annotation \(annotation) \(Self.qemubox) \(Self.image) r1 true")
                    #expect(refused.status != 0 && refused.stderr.contains(message), "\(annotation): \(refused.stderr)")
                }
            }
        }
    }

    /// Warm start keeps a template per machine shape: a q35 with ceilings restores from its own
    /// (and still grows on Update), a microvm beside it from another.
    @Test(.enabled(if: PrivateContainerd.vmAvailable))
    func warmStartTemplatePerShape() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with(prefix: "qbx-templates") { templates in
                let config = "warm_start = true\ntemplate_dir = \"\(templates)\"\nmax_vcpus = 2\nmax_memory_mib = 768\n"
                try await ContainerdShimTests.withContainerd(qemubox: config) { containerd in
                    try await containerd.ctrCheck("run -d --memory-limit \(256 << 20) \(Self.qemubox) \(Self.image) w1 sleep 1000")
                    // Its QEMU (the pid the VM's record names: the template's saving VM had the same
                    // name and may still be exiting) waited for the template's state on a q35.
                    let pid = try #require(VMInventory(stateDirectory: containerd.stateRoot).scan().vms.first { $0.id == "w1" }?.pid)
                    let qemu = (try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)).replacingOccurrences(of: "\0", with: " ")
                    #expect(qemu.contains("-incoming") && qemu.contains("-M q35"), "\(qemu)")
                    let boot = try await Self.size(containerd, "w1", exec: "s1")
                    _ = try await Self.client(containerd, ["update", "w1", "-cpus", "2", "-memory-mib", "512"])
                    let grown = try await Self.size(containerd, "w1", exec: "s2")
                    #expect(boot.0 == 1 && grown.0 == 2, "nproc \(boot.0) → \(grown.0)")
                    #expect(grown.1 - boot.1 >= 250 << 10, "MemTotal \(boot.1) → \(grown.1) KiB")
                    try await containerd.ctrCheck("task kill -s SIGKILL w1")
                    _ = await ContainerdVMTests.waitStatus(containerd, "w1", "STOPPED")
                    try await containerd.ctrCheck("task delete w1")
                    try await containerd.ctrCheck("container rm w1")
                    let fast = try await containerd.ctr("run --rm --annotation io.qemubox.hotplug=false \(Self.qemubox) \(Self.image) w2 nproc")
                    #expect(fast.status == 0 && fast.stdout == "1\n", "\(fast.stdout) \(fast.stderr)")
                    let saved = try FileManager.default.contentsOfDirectory(atPath: templates).filter { !$0.hasSuffix(".lock") }
                    #expect(saved.count == 2, "one template per shape: \(saved)")
                    let identities = saved.compactMap { try? String(contentsOfFile: templates + "/" + $0 + "/identity", encoding: .utf8) }
                    #expect(identities.contains { $0.contains("max-vcpus=2") && $0.contains("max-memory=768") }, "\(identities)")
                }
            }
        }
    }
}
