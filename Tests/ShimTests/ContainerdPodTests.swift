#if canImport(Glibc)
import Glibc
#endif
import ContainerdTestSupport
import Foundation
import QemuboxKit
import TestSupport
import Testing

/// A pod's containers grouped into one shim and one VM through containerd, as CRI asks
/// for them (its `io.kubernetes.cri.*` annotations, set here with `ctr run --annotation`).
@Suite(.serialized) struct ContainerdPodTests {
    static let qemubox = ContainerdShimTests.qemubox
    static let image = PrivateContainerd.image

    static func annotations(_ type: String, pod: String) -> String {
        "--annotation io.kubernetes.cri.container-type=\(type) --annotation io.kubernetes.cri.sandbox-id=\(pod)"
    }

    /// QEMU processes of this containerd (children of its qemubox shims).
    static func qemus(_ containerd: PrivateContainerd) -> [Int32] {
        let shims = Set(qemuboxShims(containerd))
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, let parent = Int32(fields[1]), shims.contains(parent) else { return false }
            return ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").contains("qemu-system")
        }
    }

    static func qemuboxShims(_ containerd: PrivateContainerd) -> [Int32] {
        containerd.leftoverProcesses().filter { pid in
            ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").contains("containerd-shim-qemubox-v1")
        }
    }

    /// The PID column of `ctr task ls` for `id`.
    static func taskPid(_ containerd: PrivateContainerd, _ id: String) async throws -> String? {
        for line in try await containerd.ctrCheck("task ls").split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            if fields.first == id, fields.count >= 3 { return fields[1] }
        }
        return nil
    }

    @Test("a sandbox and its container: one shim, one VM; the container goes, the pod stays", .enabled(if: PrivateContainerd.vmAvailable))
    func podSharesOneShimAndVM() async throws {
        try await ContainerdVMTests.withVM { containerd in
            try await containerd.ctrCheck("run -d \(Self.annotations("sandbox", pod: "p1")) \(Self.qemubox) \(Self.image) p1 sleep 1000")
            try await containerd.ctrCheck("run -d \(Self.annotations("container", pod: "p1")) \(Self.qemubox) \(Self.image) c1 sleep 1000")
            #expect(await ContainerdVMTests.waitStatus(containerd, "c1", "RUNNING"))
            #expect(Self.qemuboxShims(containerd).count == 1, "one shim serves the pod")
            #expect(Self.qemus(containerd).count == 1, "one VM runs the pod")
            let sandboxPid = try await Self.taskPid(containerd, "p1")
            let containerPid = try await Self.taskPid(containerd, "c1")
            #expect(sandboxPid != nil && sandboxPid == containerPid, "both report the pod's QEMU")
            // The container runs its own image rootfs and writable layer beside the sandbox's.
            let out = try await containerd.ctrCheck("task exec --exec-id e1 c1 sh -c 'echo joined > /mine; cat /mine; ls /'")
            #expect(out.hasPrefix("joined\n") && out.contains("bin"), "\(out)")
            let sandbox = try await containerd.ctr("task exec --exec-id e2 p1 cat /mine")
            #expect(sandbox.status != 0, "the sandbox does not see the container's writable layer")
            try await containerd.ctrCheck("task kill -s SIGKILL c1")
            #expect(await ContainerdVMTests.waitStatus(containerd, "c1", "STOPPED"))
            try await containerd.ctrCheck("task delete c1")
            try await containerd.ctrCheck("container rm c1")
            let podAlive = await ContainerdVMTests.waitStatus(containerd, "p1", "RUNNING")
            #expect(podAlive, "the pod outlives its container")
            if !podAlive {
                let log = (try? String(contentsOfFile: containerd.dir + "/containerd.log", encoding: .utf8)) ?? ""
                print(log.split(separator: "\n").filter { $0.contains("qemubox") || $0.contains("p1") }.suffix(60).joined(separator: "\n"))
            }
            #expect(Self.qemus(containerd).count == 1)
            // A container created again in the pod (a restart under CRI) joins the same VM.
            let again = try await containerd.ctr("run --rm \(Self.annotations("container", pod: "p1")) \(Self.qemubox) \(Self.image) c2 sh -c 'echo again; exit 4'")
            #expect(again.status == 4, "\(again.stderr)")
            #expect(again.stdout == "again\n", "\(again.stderr)")
            #expect(Self.qemus(containerd).count == 1)
            try await containerd.ctrCheck("task kill -s SIGKILL p1")
            #expect(await ContainerdVMTests.waitStatus(containerd, "p1", "STOPPED"))
            try await containerd.ctrCheck("task delete p1")
            try await containerd.ctrCheck("container rm p1")
        }
    }

    @Test("a SIGKILLed pod shim: both tasks stop, nothing is left", .enabled(if: PrivateContainerd.vmAvailable))
    func podShimKilled() async throws {
        try await ContainerdVMTests.withVM { containerd in
            try await containerd.ctrCheck("run -d \(Self.annotations("sandbox", pod: "p2")) \(Self.qemubox) \(Self.image) p2 sleep 1000")
            try await containerd.ctrCheck("run -d \(Self.annotations("container", pod: "p2")) \(Self.qemubox) \(Self.image) c3 sleep 1000")
            #expect(await ContainerdVMTests.waitStatus(containerd, "c3", "RUNNING"))
            let shims = Self.qemuboxShims(containerd)
            try #require(shims.count == 1)
            kill(shims[0], SIGKILL)
            for id in ["c3", "p2"] {
                #expect(await eventually(timeout: .seconds(60)) {
                    let status = try? await ContainerdVMTests.status(containerd, id)
                    return status == nil || status == "STOPPED"
                }, "\(id) is reported stopped")
                _ = try? await containerd.ctr("task delete \(id)")
                try await containerd.ctrCheck("container rm \(id)")
            }
        }
    }

    @Test("warm start: a pod VM restored from its template takes the container's disks", .enabled(if: PrivateContainerd.vmAvailable))
    func podFromTemplate() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with(prefix: "qbx-templates") { templates in
                try await ContainerdShimTests.withContainerd(qemubox: "warm_start = true\ntemplate_dir = \"\(templates)\"\n") { containerd in
                    for n in 0..<2 {
                        try await containerd.ctrCheck("run -d \(Self.annotations("sandbox", pod: "w\(n)")) \(Self.qemubox) \(Self.image) w\(n) sleep 1000")
                        let run = try await containerd.ctr(
                            "run --rm \(Self.annotations("container", pod: "w\(n)")) \(Self.qemubox) \(Self.image) wc\(n) sh -c 'echo joined-\(n); exit 6'")
                        #expect(run.status == 6, "\(run.stderr)")
                        #expect(run.stdout == "joined-\(n)\n", "\(run.stderr)")
                        try await containerd.ctrCheck("task kill -s SIGKILL w\(n)")
                        #expect(await ContainerdVMTests.waitStatus(containerd, "w\(n)", "STOPPED"))
                        try await containerd.ctrCheck("task delete w\(n)")
                        try await containerd.ctrCheck("container rm w\(n)")
                    }
                    let saved = try FileManager.default.contentsOfDirectory(atPath: templates).filter { !$0.hasSuffix(".lock") }
                    #expect(saved.count == 1, "one template for the pod VM's shape: \(saved)")
                }
            }
        }
    }
}
