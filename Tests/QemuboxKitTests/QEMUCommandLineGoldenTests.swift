import Foundation
import Testing
@testable import QemuboxKit

/// Description → argv, compared with golden files (one argument per line) in
/// `Tests/QemuboxKitTests/Golden`. Regenerate with `QEMUBOX_UPDATE_GOLDEN=1`.
@Suite struct QEMUCommandLineGoldenTests {
    static let tcg = HostFacts(accelerator: AcceleratorDecision(.tcg, reason: "test"), tscKHz: 2_445_426)
    static let kvm = HostFacts(accelerator: AcceleratorDecision(.kvm, reason: "test"), tscKHz: 3_000_000)
    static let kernel = KernelBoot(kernelPath: "/k/vmlinux", initrdPath: "/k/initrd.img")

    private func check(_ name: String, _ m: MachineDescription, host: HostFacts = tcg,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let argv = QEMUCommandLine.arguments(for: try ResolvedMachine(m, host: host))
        let text = argv.joined(separator: "\n") + "\n"
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Golden/\(name).argv").path
        if ProcessInfo.processInfo.environment["QEMUBOX_UPDATE_GOLDEN"] == "1" {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let golden = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text == golden, "argv differs from \(name).argv", sourceLocation: sourceLocation)
    }

    @Test func minimalMicrovm() throws {
        try check("microvm-minimal", MachineDescription(name: "m1", kernel: Self.kernel))
    }

    @Test func fullMicrovm() throws {
        let m = MachineDescription(
            name: "full", kernel: KernelBoot(kernelPath: "/k/bzImage", commandLine: ["console=ttyS0", "panic=-1"]),
            vcpus: 2, memoryMiB: 512,
            disks: [Disk(id: "rootfs", path: "/img/root.erofs"),
                    Disk(id: "rw", path: "/img/rw.ext4", readOnly: false, cache: .none, aio: .native),
                    Disk(id: "scratch", path: "/img/s.qcow2", readOnly: false, format: "qcow2", cache: .unsafe, aio: .ioUring)],
            nics: [NIC(id: "net0", mac: "52:54:00:12:34:56", backend: .tapDescriptor(17)),
                   NIC(id: "net1", backend: .tapName("tap1")),
                   NIC(id: "net2", backend: .tapDescriptor(9))],
            serialPorts: [SerialPort(name: "org.qemubox.agent", socketPath: "/run/qb/agent.sock"),
                          SerialPort(name: "org.qemubox.log", socketPath: "/run/qb/log.sock")],
            vsock: Vsock(guestCID: 42))
        try check("microvm-full", m)
        // Inherited descriptors: TAPs in NIC order, serial listeners, disks, vsock, the control monitor.
        let layout = QEMUCommandLine.layout(for: try ResolvedMachine(m, host: Self.tcg))
        #expect(layout.taps == ["net0": 5, "net1": 6, "net2": 7])
        #expect(layout.serialPorts == [8, 9])
        #expect(layout.disks == ["rootfs": 10, "rw": 11, "scratch": 13])
        #expect(layout.diskReadOnlyCopies == ["rw": 12, "scratch": 14])
        #expect(layout.vsock == 15 && layout.control == 16 && layout.incomingState == nil)
        #expect(QEMUCommandLine.layout(for: try ResolvedMachine(m, host: Self.tcg), incoming: true).incomingState == 17)
    }

    @Test func templateCloneMicrovm() throws {
        var m = MachineDescription(name: "clone", kernel: Self.kernel,
                                   disks: [Disk(id: "rootfs0", path: "/img/root.erofs"),
                                           .empty(id: "qemubox-slot1", bytes: 1 << 40)])
        m.memoryFile = MemoryFile(path: "/t/memory", shared: false)
        try check("microvm-template-clone", m)
        let argv = QEMUCommandLine.arguments(for: try ResolvedMachine(m, host: Self.tcg), incoming: true)
        #expect(argv.suffix(2) == ["-incoming", "defer"])
        // The template's RAM as a sealed descriptor: mapped as /proc/self/fd/N, N after the
        // incoming state; nothing of the template's path is in the argv.
        m.memoryFile = MemoryFile(path: "/t/memory", shared: false, descriptor: 42)
        let resolved = try ResolvedMachine(m, host: Self.tcg)
        let layout = QEMUCommandLine.layout(for: resolved, incoming: true)
        #expect(layout.memory == layout.control + 2 && layout.incomingState == layout.control + 1)
        let withDescriptor = QEMUCommandLine.arguments(for: resolved, incoming: true)
        #expect(withDescriptor.contains("memory-backend-file,id=qemubox-ram,size=256M,mem-path=/proc/self/fd/\(layout.memory ?? -1),share=off"))
        #expect(!withDescriptor.joined(separator: " ").contains("/t/memory"))
        #expect(MemoryFile(path: "/t/memory", shared: true, descriptor: 42).descriptor == nil)
    }

    /// Shared directories: shared memfd RAM (vhost-user), one vhost-user-fs device per share
    /// on a descriptor after the serial listeners.
    @Test func sharedDirectoriesMicrovm() throws {
        var m = MachineDescription(name: "fs", kernel: Self.kernel,
                                   serialPorts: [SerialPort(name: "org.qemubox.agent", socketPath: "/run/qb/agent.sock")])
        m.sharedDirectories = [SharedDirectory(tag: "qbx-data-1", path: "/srv/data", capabilityChanges: ["-mknod"]),
                               SharedDirectory(tag: "qbx-data-2", path: "/srv/other")]
        try check("microvm-shared-directories", m)
        let layout = QEMUCommandLine.layout(for: try ResolvedMachine(m, host: Self.tcg))
        #expect(layout.serialPorts == [5] && layout.sharedDirectories == [6, 7] && layout.control == 8)
        var privateRAM = m
        privateRAM.memoryFile = MemoryFile(path: "/t/memory", shared: false)
        #expect(throws: QemuboxError.self) { try ResolvedMachine(privateRAM, host: Self.tcg) }
    }

    /// A warm-start template's NICs are connected to nothing (a hub port each); a clone has TAPs
    /// with the same netdev ids and device MACs in their place.
    @Test func templateNICsAndTheirClones() throws {
        var template = MachineDescription(name: "t", kernel: Self.kernel)
        template.nics = SandboxNetwork.placeholderNICs(2)
        let argv = QEMUCommandLine.arguments(for: try ResolvedMachine(template, host: Self.tcg))
        #expect(argv.contains("hubport,id=net0,hubid=0") && argv.contains("hubport,id=net1,hubid=1"))
        #expect(argv.contains("virtio-net-device,netdev=net1,mac=02:51:42:00:00:01"))
        var clone = template
        clone.nics = SandboxNetwork.new(slots: 2).nics(vhost: true)
        let cloneArgv = QEMUCommandLine.arguments(for: try ResolvedMachine(clone, host: Self.tcg))
        #expect(cloneArgv.contains("tap,id=net1,fd=6,vhost=on,vhostfd=8"))
        #expect(cloneArgv.filter { $0.hasPrefix("virtio-net") } == argv.filter { $0.hasPrefix("virtio-net") })
        var mtu = template
        mtu.nics = [NIC(id: "n", backend: .tapName("t"), mtu: 1400)]
        #expect(QEMUCommandLine.arguments(for: try ResolvedMachine(mtu, host: Self.tcg)).contains("virtio-net-device,netdev=n,host_mtu=1400"))
        mtu.nics[0].mtu = 20
        #expect(throws: QemuboxError.self) { try ResolvedMachine(mtu, host: Self.tcg) }
    }

    @Test func hotplugCeilingPicksQ35() throws {
        let m = MachineDescription(name: "hp", kernel: Self.kernel, vcpus: 1, maxVCPUs: 4,
                                   memoryMiB: 256, maxMemoryMiB: 2048,
                                   disks: [Disk(id: "d0", path: "/img/d0")], nics: [NIC(id: "n0", backend: .tapDescriptor(3))],
                                   serialPorts: [SerialPort(name: "p", socketPath: "/s")], vsock: Vsock(guestCID: 3))
        let r = try ResolvedMachine(m, host: Self.tcg)
        #expect(r.machineType == .q35)
        #expect(r.machineTypeReason.contains("microvm cannot hotplug"))
        try check("q35-hotplug", m)
        // q35 gets no tsc_early_khz (it is microvm's TSC calibration problem).
        #expect(!QEMUCommandLine.kernelCommandLine(for: r).contains("tsc_early_khz"))
    }

    @Test func kvmMicrovm() throws {
        try check("microvm-kvm", MachineDescription(name: "k", kernel: Self.kernel, rng: false, panicDevice: false), host: Self.kvm)
    }

    @Test func tscEarlyKHzAlwaysOnMicrovm() throws {
        let noDefaults = MachineDescription(name: "t", kernel: KernelBoot(kernelPath: "/k", commandLine: ["quiet"]))
        let r = try ResolvedMachine(noDefaults, host: Self.tcg)
        #expect(QEMUCommandLine.kernelCommandLine(for: r) == "quiet tsc_early_khz=2445426")
        // An explicit value is kept, not duplicated.
        let explicit = MachineDescription(name: "t", kernel: KernelBoot(kernelPath: "/k", commandLine: ["tsc_early_khz=1000"]))
        #expect(QEMUCommandLine.kernelCommandLine(for: try ResolvedMachine(explicit, host: Self.tcg)) == "tsc_early_khz=1000")
    }

    @Test func explicitMicrovmWithCeilingIsRejected() {
        let m = MachineDescription(name: "x", kernel: Self.kernel, machineType: .microvm, vcpus: 1, maxVCPUs: 2)
        let e = #expect(throws: QemuboxError.self) { try ResolvedMachine(m, host: Self.tcg) }
        #expect(e?.code == .invalidDescription)
    }

    @Test func ceilingEqualToBootIsNoHotplug() throws {
        let m = MachineDescription(name: "x", kernel: Self.kernel, vcpus: 2, maxVCPUs: 2, memoryMiB: 256, maxMemoryMiB: 256)
        #expect(try ResolvedMachine(m, host: Self.tcg).machineType == .microvm)
    }

    @Test(arguments: [
        ("bad name", MachineDescription(name: "a b", kernel: kernel)),
        ("zero cpus", MachineDescription(name: "a", kernel: kernel, vcpus: 0)),
        ("ceiling below boot", MachineDescription(name: "a", kernel: kernel, vcpus: 2, maxVCPUs: 1)),
        ("tiny memory", MachineDescription(name: "a", kernel: kernel, memoryMiB: 8)),
        ("mem ceiling below boot", MachineDescription(name: "a", kernel: kernel, memoryMiB: 512, maxMemoryMiB: 256)),
        ("aio native without O_DIRECT", MachineDescription(name: "a", kernel: kernel,
                                                           disks: [Disk(id: "d", path: "/d", cache: .writeback, aio: .native)])),
        ("duplicate id", MachineDescription(name: "a", kernel: kernel, disks: [Disk(id: "d", path: "/d")],
                                            nics: [NIC(id: "d", backend: .tapName("t"))])),
        ("comma in path", MachineDescription(name: "a", kernel: kernel, disks: [Disk(id: "d", path: "/d,format=qcow2")])),
        ("bad mac", MachineDescription(name: "a", kernel: kernel, nics: [NIC(id: "n", mac: "52:54:00:zz:00:00", backend: .tapName("t"))])),
        ("long tap name", MachineDescription(name: "a", kernel: kernel, nics: [NIC(id: "n", backend: .tapName("tap-name-too-long-x"))])),
        ("cid 2", MachineDescription(name: "a", kernel: kernel, vsock: Vsock(guestCID: 2))),
        ("space in cmdline word", MachineDescription(name: "a", kernel: KernelBoot(kernelPath: "/k", commandLine: ["a b"]))),
        ("bad share tag", { var m = MachineDescription(name: "a", kernel: kernel)
            m.sharedDirectories = [SharedDirectory(tag: "a b", path: "/d")]; return m }()),
        ("relative share", { var m = MachineDescription(name: "a", kernel: kernel)
            m.sharedDirectories = [SharedDirectory(tag: "t", path: "d")]; return m }()),
        ("bad modcaps", { var m = MachineDescription(name: "a", kernel: kernel)
            m.sharedDirectories = [SharedDirectory(tag: "t", path: "/d", capabilityChanges: ["mknod"])]; return m }()),
        ("duplicate port", MachineDescription(name: "a", kernel: kernel, serialPorts: [SerialPort(name: "p", socketPath: "/a"),
                                                                                       SerialPort(name: "p", socketPath: "/b")])),
    ])
    func invalidDescriptions(_ label: String, _ m: MachineDescription) {
        let e = #expect(throws: QemuboxError.self, "\(label)") { try ResolvedMachine(m, host: Self.tcg) }
        #expect(e?.code == .invalidDescription)
    }
}
