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

    @Test("templates whose kernel, image or QEMU changed are pruned; current ones stay")
    func pruneStale() async throws {
        try await TemporaryDirectory.with { dir in
            for file in ["vmlinux", "guest.erofs"] {
                try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/" + file))
            }
            let store = VMTemplateStore(directory: dir + "/templates")
            let fm = FileManager.default
            func plant(_ name: String, _ identity: [String]?) throws {
                try fm.createDirectory(atPath: store.directory + "/" + name, withIntermediateDirectories: true)
                if let identity {
                    try (identity.joined(separator: "\n") + "\n").write(toFile: store.directory + "/" + name + "/identity",
                                                                         atomically: true, encoding: .utf8)
                }
                fm.createFile(atPath: store.directory + "/" + name + ".lock", contents: nil)
            }
            try plant("aaaaaaaaaaaaaaaa", try store.identity(for: configuration(dir)))
            // The image is rebuilt: the first template can never be restored again.
            try Data("rebuilt".utf8).write(to: URL(fileURLWithPath: dir + "/guest.erofs"))
            try plant("bbbbbbbbbbbbbbbb", try store.identity(for: configuration(dir)))
            try plant("cccccccccccccccc", nil)
            try plant("not-a-template", nil)
            #expect(store.pruneStale() == 2)
            let left = try fm.contentsOfDirectory(atPath: store.directory).sorted()
            #expect(left == ["bbbbbbbbbbbbbbbb", "bbbbbbbbbbbbbbbb.lock", "not-a-template", "not-a-template.lock"])
            #expect(store.pruneStale() == 0)
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
