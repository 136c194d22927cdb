import Foundation
import QemuboxKit
import Testing
import TestSupport

/// Warm start: a guest saved once (VMTemplateStore) and restored per container.
@Suite("warm start from a saved guest", .serialized)
struct WarmStartTests {
    /// Prints the rootfs marker, writes and reads the writable layer, the guest's
    /// wall clock and 16 bytes of /dev/urandom.
    static let probe = ["sh", "-c", "cat /marker; echo written > /w; cat /w; date +%s; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo"]

    @Test("clones get their own disks, the host's clock and a reseeded CRNG; a broken template is replaced",
          .enabled(if: Fixture.available))
    func restoreClones() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let store = VMTemplateStore(directory: dir + "/templates")
                let first = try Fixture.bundle(in: dir, name: "first", Self.probe)
                try "bundle-one\n".write(toFile: first + "/rootfs/marker", atomically: true, encoding: .utf8)
                let second = try Fixture.bundle(in: dir, name: "second", Self.probe)
                try "bundle-two\n".write(toFile: second + "/rootfs/marker", atomically: true, encoding: .utf8)

                // First run: saves the template, then runs as its first clone.
                let one = try await Fixture.run(first, in: dir, templates: store)
                #expect(one.status == 0, "stderr: \(one.stderrText)")
                let key = try store.key(for: SandboxConfiguration(name: "x", assets: try Fixture.assets(), stateDirectory: dir))
                let template = VMTemplate(directory: store.directory + "/" + key, slots: store.slots)
                for file in [template.memoryPath, template.statePath, template.directory + "/complete"] {
                    #expect(FileManager.default.fileExists(atPath: file), "\(file) missing")
                }

                // The template's clock stands still while it is saved: a clone that kept it would be behind.
                try await Task.sleep(for: .seconds(3))
                let two = try await Fixture.run(second, in: dir, templates: store)
                let hostNow = Int(Date().timeIntervalSince1970)
                #expect(two.status == 0, "stderr: \(two.stderrText)")
                let a = one.stdoutText.split(separator: "\n").map(String.init)
                let b = two.stdoutText.split(separator: "\n").map(String.init)
                try #require(a.count == 4 && b.count == 4, "stdout: \(one.stdoutText) / \(two.stdoutText)")
                // Each clone mounts its own rootfs disk in the template's slot, not cached blocks.
                #expect(a[0] == "bundle-one")
                #expect(b[0] == "bundle-two")
                #expect(a[1] == "written" && b[1] == "written")
                let guestNow = Int(b[2]) ?? 0
                #expect(abs(guestNow - hostNow) <= 2, "guest clock \(guestNow), host \(hostNow)")
                #expect(a[3].count == 32 && b[3].count == 32)
                #expect(a[3] != b[3], "two clones produced the same random bytes")

                // A damaged template: the start fails with a reason, the template is dropped.
                try Data("not a migration stream".utf8).write(to: URL(fileURLWithPath: template.statePath))
                await #expect {
                    _ = try await Fixture.run(first, in: dir, templates: store)
                } throws: { error in
                    "\(error)".contains("restoring the VM template") && "\(error)".contains("removed")
                }
                #expect(!FileManager.default.fileExists(atPath: template.directory))

                // The next start saves a new one; a template missing its RAM file is rebuilt too.
                let three = try await Fixture.run(first, in: dir, templates: store)
                #expect(three.status == 0 && three.stdoutText.hasPrefix("bundle-one\n"), "\(three.stderrText)")
                try FileManager.default.removeItem(atPath: template.memoryPath)
                let four = try await Fixture.run(second, in: dir, templates: store)
                #expect(four.status == 0 && four.stdoutText.hasPrefix("bundle-two\n"), "\(four.stderrText)")
                #expect(FileManager.default.fileExists(atPath: template.memoryPath))
            }
        }
    }

    @Test("two clones of one template run at the same time", .enabled(if: Fixture.available))
    func concurrentClones() async throws {
        // Both VM slots: the two clones run side by side and nothing else does.
        try await ConcurrencyLimit.vms.run {
            try await ConcurrencyLimit.vms.run {
                try await TemporaryDirectory.with { dir in
                    let store = VMTemplateStore(directory: dir + "/templates", slots: 2)
                    var bundles: [String] = []
                    for n in 0..<2 {
                        let bundle = try Fixture.bundle(in: dir, name: "b\(n)",
                                                        ["sh", "-c", "cat /marker; echo w > /w; cat /w"])
                        try "clone-\(n)\n".write(toFile: bundle + "/rootfs/marker", atomically: true, encoding: .utf8)
                        bundles.append(bundle)
                    }
                    // Saves the template first, so that the two below both restore.
                    _ = try await store.template(for: SandboxConfiguration(name: "t", assets: try Fixture.assets(),
                                                                           stateDirectory: dir + "/t"))
                    try FileManager.default.createDirectory(atPath: dir + "/0", withIntermediateDirectories: true)
                    try FileManager.default.createDirectory(atPath: dir + "/1", withIntermediateDirectories: true)
                    async let first = Fixture.run(bundles[0], in: dir + "/0", templates: store)
                    async let second = Fixture.run(bundles[1], in: dir + "/1", templates: store)
                    let (a, b) = try await (first, second)
                    #expect(a.status == 0 && a.stdoutText == "clone-0\nw\n", "\(a.stdoutText) \(a.stderrText)")
                    #expect(b.status == 0 && b.stdoutText == "clone-1\nw\n", "\(b.stdoutText) \(b.stderrText)")
                }
            }
        }
    }
}
