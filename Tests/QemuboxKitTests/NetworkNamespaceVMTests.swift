import Foundation
import Testing
import TestSupport
@testable import QemuboxKit

/// A NIC given by TAP name, opened by QEMU inside a network namespace the test made.
@Suite(.serialized, .enabled(if: TestGuest.available && Prerequisite.isRoot && Prerequisite.tools("ip")))
struct NetworkNamespaceVMTests {
    @discardableResult
    private func ip(_ args: String...) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Prerequisite.which("ip") ?? "/sbin/ip")
        p.arguments = args
        p.standardError = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// `ip -o link show DEV` inside `ns`.
    private func linkFlags(_ ns: String, _ dev: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Prerequisite.which("ip") ?? "/sbin/ip")
        p.arguments = ["-n", ns, "-o", "link", "show", dev]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    @Test func tapByNameInsideTheNamespace() async throws {
        let ns = "qbxvm\(getpid())"
        #expect(try ip("netns", "add", ns) == 0)
        defer { _ = try? ip("netns", "delete", ns) }
        #expect(try ip("netns", "exec", ns, "ip", "tuntap", "add", "dev", "qbtap0", "mode", "tap", "vnet_hdr") == 0)
        #expect(try ip("netns", "exec", ns, "ip", "link", "set", "qbtap0", "up") == 0)
        #expect(try linkFlags(ns, "qbtap0").contains("NO-CARRIER"))
        try await TestGuest.with { initrd, dir in
            let m = TestGuest.machine("netns", initrd: initrd) {
                $0.nics = [NIC(id: "net0", mac: "52:54:00:aa:bb:cc", backend: .tapName("qbtap0"))]
            }
            let vm = VirtualMachine(m, configuration: VMConfiguration(stateDirectory: dir + "/state",
                                                                      networkNamespacePath: "/run/netns/\(ns)"))
            try await vm.start()
            let qmp = try #require(await vm.qmp)
            let info = try await qmp.humanMonitorCommand("info network")
            // The spawner opened the TAP inside the namespace and passed it as a descriptor.
            #expect(info.contains("net0: index=0,type=tap,fd="), "\(info)")
            #expect(!(try linkFlags(ns, "qbtap0").contains("NO-CARRIER")))
            #expect(info.contains("52:54:00:aa:bb:cc"))
            // QEMU holds the TAP inside the namespace; the host has no such device.
            #expect(!FileManager.default.fileExists(atPath: "/sys/class/net/qbtap0"))
            #expect(await vm.stop(StopPolicy(powerdownTimeout: .zero)).kind == .quit)
        }
    }
}
