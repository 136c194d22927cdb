import ContainerdTestSupport
import Foundation
import QemuboxKit
import TestSupport
import Testing

/// The shim driven by a real, private containerd 1.6 through `ctr`, beside runc.
@Suite(.serialized) struct ContainerdShimTests {
    static let qemubox = "--runtime io.containerd.qemubox.v1"
    static let runc = "--runtime io.containerd.runc.v2"
    static let image = PrivateContainerd.image

    /// Runs `body` with a fresh containerd (image imported) and checks that
    /// nothing of qemubox's is left afterwards: no process, mount, socket or state file.
    static func withContainerd(qemubox extra: String = "", importImage: Bool = true,
                               _ body: (PrivateContainerd) async throws -> Void) async throws {
        try await TemporaryDirectory.with(prefix: "qbx") { dir in
            let containerd = try PrivateContainerd(dir: dir, qemubox: extra)
            do {
                try await containerd.start()
                if importImage { try await containerd.importImage() }
                try await body(containerd)
                try await Self.expectClean(containerd)
            } catch {
                await containerd.tearDown()
                throw error
            }
            await containerd.tearDown()
        }
    }

    static func expectClean(_ containerd: PrivateContainerd) async throws {
        let gone = await eventually(timeout: .seconds(20)) { containerd.leftoverProcesses().filter { pid in
            let cmd = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return cmd.contains("qemubox") || cmd.contains("qemu-system")
        }.isEmpty }
        #expect(gone, "qemubox processes left: \(containerd.leftoverProcesses())")
        let files = (FileManager.default.enumerator(atPath: containerd.stateRoot)?.allObjects as? [String]) ?? []
        let leftovers = files.filter { !["s", containerd.namespace].contains($0) }
        #expect(leftovers.isEmpty, "state left: \(leftovers)")
        #expect(containerd.mounts().filter { $0.contains("/qb/") }.isEmpty)
    }

    @Test func versionFlag() async throws {
        guard let shim = PrivateContainerd.shimBinary else { return }
        let out = try await Shell.check("\(shim) -v")
        #expect(out.contains("Version:") && out.contains("io.containerd.qemubox.v1"))
        let bad = try await Shell.run("\(shim) -namespace n start")
        #expect(bad.status == 2 && bad.stderr.contains("-id is required"))
    }

    @Test(.enabled(if: PrivateContainerd.available))
    func invalidConfigurationIsReportedAndNothingLeaks() async throws {
        try await Self.withContainerd(qemubox: "vcpus = 0\n") { containerd in
            let result = try await containerd.ctr("run --rm \(Self.qemubox) \(Self.image) bad1 true")
            #expect(result.status != 0)
            #expect(result.stderr.contains("vcpus = 0 is out of range"), "\(result.stderr)")
            let tasks = try await containerd.ctrCheck("task ls -q")
            #expect(tasks.isEmpty)
            _ = try? await containerd.ctr("container rm bad1")
        }
    }

    @Test(.enabled(if: PrivateContainerd.available))
    func failedCreateIsReportedAndNothingLeaks() async throws {
        try await Self.withContainerd(qemubox: "qemu = \"/nonexistent/qemu-system-x86_64\"\n") { containerd in
            let result = try await containerd.ctr("run --rm \(Self.qemubox) \(Self.image) bad2 true")
            #expect(result.status != 0)
            // Without guest assets the search is reported; with them, the missing QEMU.
            #expect(result.stderr.contains("/nonexistent/qemu-system-x86_64") || result.stderr.contains("guest"),
                    "\(result.stderr)")
            #expect(try await containerd.ctrCheck("task ls -q").isEmpty)
            _ = try? await containerd.ctr("container rm bad2")
        }
    }
}
