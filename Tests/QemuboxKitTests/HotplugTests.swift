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

            // Memory: one virtio-mem device over the region above boot memory (whole
            // 128 MiB guest blocks), empty at boot. (The test kernel has no virtio-mem
            // driver built in: plugging is PodResourcesTests', with qemubox's kernel.)
            let mem = try #require(try await qmp.queryMemoryDevices().compactMap(\.virtioMem).first)
            #expect(mem.id == QEMUCommandLine.hotplugMemoryDevice)
            #expect(mem.maxSize == 256 << 20 && mem.requestedSize == 0 && mem.size == 0, "\(mem)")
            let resources = try await vm.resources()
            #expect(resources.vcpus == 2 && resources.maxVCPUs == 2, "\(resources)")
            #expect(resources.bootMemoryMiB == 256 && resources.maxMemoryMiB == 512 && resources.pluggedMemoryMiB == 0)
            // Beyond the ceilings: refused before QEMU is asked.
            let memory = await #expect(throws: QemuboxError.self) { try await vm.setMemory(mib: 1024) }
            #expect(memory?.code == .failedPrecondition)
            let cpus = await #expect(throws: QemuboxError.self) { try await vm.setVCPUs(3) }
            #expect(cpus?.code == .failedPrecondition)
            // Under TCG a vCPU is not unplugged (QEMU 7.2 aborts when its slot is plugged again).
            if await vm.resolved?.host.accelerator.accelerator == .tcg {
                let unplug = await #expect(throws: QemuboxError.self) { try await vm.setVCPUs(1) }
                #expect(unplug?.message.contains("not unplugged under TCG") == true)
            }

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

    /// Disks added to and removed from a running (jailed, when root) microvm at the QMP
    /// level: the image's descriptors go in over the control monitor, and out again.
    @Test func disksAttachAndDetachWhileRunning() async throws {
        try await TestGuest.with { initrd, dir in
            let m = TestGuest.machine("diskplug", initrd: initrd) { $0.hotplugDisks = true }
            let vm = VirtualMachine(m, configuration: VMConfiguration(stateDirectory: dir + "/state"))
            try await vm.start(readiness: TestGuest.readiness)
            #expect(await vm.resolved?.machineType == .microvm, "disks plug into virtio-scsi: microvm stays")
            let qmp = try #require(await vm.qmp)
            for name in ["ro.img", "rw.img"] {
                #expect(FileManager.default.createFile(atPath: dir + "/" + name, contents: Data(count: 1 << 20)))
            }
            try await vm.attachDisk(Disk(id: "d-ro", path: dir + "/ro.img", readOnly: true))
            try await vm.attachDisk(Disk(id: "d-rw", path: dir + "/rw.img", readOnly: false))
            #expect(await vm.attachedDiskIDs == ["d-ro", "d-rw"])
            func blockDevices() async throws -> String { "\(try await qmp.execute("query-block"))" }
            #expect(try await blockDevices().contains("hpdev-d-ro"))
            #expect(try await blockDevices().contains("hpdev-d-rw"))
            let again = await #expect(throws: QemuboxError.self) {
                try await vm.attachDisk(Disk(id: "d-ro", path: dir + "/ro.img", readOnly: true))
            }
            #expect(again?.code == .alreadyExists)
            let badID = await #expect(throws: QemuboxError.self) {
                try await vm.attachDisk(Disk(id: "a-serial-longer-than-twenty", path: dir + "/ro.img", readOnly: true))
            }
            #expect(badID?.code == .invalidDescription)
            let missing = await #expect(throws: QemuboxError.self) {
                try await vm.attachDisk(Disk(id: "d-none", path: dir + "/nonexistent.img", readOnly: true))
            }
            #expect(missing?.code == .system)
            #expect(await vm.attachedDiskIDs == ["d-ro", "d-rw"], "a failed attach leaves nothing behind")
            try await vm.detachDisk(id: "d-ro")
            try await vm.detachDisk(id: "d-rw")
            #expect(await vm.attachedDiskIDs.isEmpty)
            #expect(!(try await blockDevices().contains("hpdev-")))
            let fdsets = "\(try await qmp.execute("query-fdsets"))"
            #expect(!fdsets.contains("d-ro") && !fdsets.contains("d-rw"), "descriptors released: \(fdsets)")
            let unknown = await #expect(throws: QemuboxError.self) { try await vm.detachDisk(id: "d-ro") }
            #expect(unknown?.code == .notFound)
            #expect(await vm.stop(StopPolicy(powerdownTimeout: .zero)).kind == .quit)
        }
    }
}
