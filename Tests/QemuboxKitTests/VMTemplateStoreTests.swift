import Foundation
import Testing
import TestSupport
@testable import QemuboxKit

/// Template keys and slots, without VMs (WarmStartTests in ContainerVMTests restore real ones).
@Suite struct VMTemplateStoreTests {
    private func configuration(_ dir: String) -> SandboxConfiguration {
        let assets = GuestAssets(kernelPath: dir + "/vmlinux", systemImagePath: dir + "/guest.erofs")
        return SandboxConfiguration(name: "t", assets: assets, stateDirectory: dir + "/state", qemuBinary: "/bin/true")
    }

    @Test("the key follows every input that shapes the saved guest")
    func keyInputs() async throws {
        try await TemporaryDirectory.with { dir in
            for file in ["vmlinux", "guest.erofs"] {
                try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/" + file))
            }
            let store = VMTemplateStore(directory: dir + "/templates")
            let base = try store.key(for: configuration(dir))
            #expect(try store.key(for: configuration(dir)) == base)
            var more = configuration(dir)
            more.memoryMiB = 512
            #expect(try store.key(for: more) != base)
            var debug = configuration(dir)
            debug.debug = true
            #expect(try store.key(for: debug) != base)
            #expect(try VMTemplateStore(directory: store.directory, slots: 4).key(for: configuration(dir)) != base)
            // A rebuilt image (new size or mtime) is a new template.
            try Data("xy".utf8).write(to: URL(fileURLWithPath: dir + "/guest.erofs"))
            #expect(try store.key(for: configuration(dir)) != base)
            // A missing asset is a clear error.
            try FileManager.default.removeItem(atPath: dir + "/vmlinux")
            #expect(throws: QemuboxError.self) { try store.key(for: configuration(dir)) }
        }
    }

    @Test("a clone's disks fill the slots in order, the rest are empty placeholders")
    func slots() throws {
        let template = VMTemplate(directory: "/t", slots: 3)
        let disks = try template.slotDisks([Disk(id: "rootfs0", path: "/r.erofs")])
        #expect(disks.map(\.id) == ["rootfs0", "qemubox-slot1", "qemubox-slot2"])
        #expect(disks[1].emptyBytes == VMTemplate.slotBytes && !disks[1].readOnly)
        #expect(throws: QemuboxError.self) {
            try template.slotDisks((0..<4).map { Disk(id: "d\($0)", path: "/d\($0)") })
        }
    }
}
