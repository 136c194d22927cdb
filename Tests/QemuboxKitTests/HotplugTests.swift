import Foundation
import QMPClient
import Testing
import TestSupport
@testable import QemuboxKit

/// CPU and memory hotplug at the QMP level, on the machine type the description picks.
@Suite(.serialized, .enabled(if: TestGuest.available)) struct HotplugTests {
    @Test func cpuAndMemoryHotplugOnTheAutoChosenMachine() async throws {
        try await TestGuest.with { initrd, dir in
            let m = TestGuest.machine("hotplug", initrd: initrd) {
                $0.vcpus = 1
                $0.maxVCPUs = 2
                $0.memoryMiB = 256
                $0.maxMemoryMiB = 512
                $0.memorySlots = 2
            }
            let vm = VirtualMachine(m, configuration: VMConfiguration(stateDirectory: dir + "/state"))
            try await vm.start(readiness: TestGuest.readiness)
            #expect(await vm.resolved?.machineType == .q35, "a ceiling makes auto pick q35")
            let qmp = try #require(await vm.qmp)

            // vCPU: take a free slot from query-hotpluggable-cpus and plug it.
            let slots = try await qmp.queryHotpluggableCPUs()
            #expect(slots.count == 2)
            let free = try #require(slots.first { !$0.isPlugged })
            try await qmp.deviceAdd(driver: free.type, id: "cpu1", properties: free.props.deviceArguments)
            #expect(try await qmp.queryCPUsFast().count == 2)
            #expect(try await qmp.queryHotpluggableCPUs().allSatisfy(\.isPlugged))
            // The guest sees it through ACPI and can online it.
            try await vm.writeConsole("online 1\n")
            let online = await vm.waitForConsole("ONLINE:0-1", timeout: .seconds(60))
            let console = await vm.consoleTail.suffix(1500)
            #expect(online, "\(console)")

            // Memory: a RAM backend plus a pc-dimm.
            let size: Int64 = 128 << 20
            try await qmp.objectAdd(qomType: "memory-backend-ram", id: "mem1", properties: ["size": .int(size)])
            try await qmp.deviceAdd(driver: "pc-dimm", id: "dimm1", properties: ["memdev": "mem1"])
            let devices = try await qmp.queryMemoryDevices()
            let dimm = try #require(devices.first?.dimm)
            #expect(dimm.id == "dimm1")
            #expect(dimm.size == size)
            #expect(dimm.hotplugged)
            let summary = try await qmp.queryMemorySizeSummary()
            #expect(summary.baseMemory == 256 << 20)
            #expect(summary.pluggedMemory == size)

            // Beyond the ceiling QEMU says no, as a typed error.
            try await qmp.objectAdd(qomType: "memory-backend-ram", id: "mem2", properties: ["size": .int(512 << 20)])
            let e = await #expect(throws: QMPError.self) {
                try await qmp.deviceAdd(driver: "pc-dimm", id: "dimm2", properties: ["memdev": "mem2"])
            }
            #expect(e?.code == .commandFailed)
            try await qmp.objectDel(id: "mem2")

            let reason = await vm.stop(StopPolicy(guestRequest: { try await vm.writeConsole("poweroff\n") }))
            #expect(reason.kind == .guestPoweroff, "\(reason)")
        }
    }

    @Test func microvmCannotHotplugWhichIsWhyAutoAvoidsIt() async throws {
        try await TestGuest.with { initrd, dir in
            let vm = VirtualMachine(TestGuest.machine("nohotplug", initrd: initrd),
                                    configuration: VMConfiguration(stateDirectory: dir + "/state"))
            try await vm.start()
            #expect(await vm.resolved?.machineType == .microvm)
            let qmp = try #require(await vm.qmp)
            let cpus = await #expect(throws: QMPError.self) { try await qmp.queryHotpluggableCPUs() }
            #expect(cpus?.qmpClass == "GenericError")
            try await qmp.objectAdd(qomType: "memory-backend-ram", id: "m", properties: ["size": .int(64 << 20)])
            let dimm = await #expect(throws: QMPError.self) {
                try await qmp.deviceAdd(driver: "pc-dimm", id: "d", properties: ["memdev": "m"])
            }
            #expect(dimm?.message.contains("hotplug") == true)
            #expect(await vm.stop(StopPolicy(powerdownTimeout: .zero)).kind == .quit)
        }
    }
}
