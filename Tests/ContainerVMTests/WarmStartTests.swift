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
}
