import ContainerdTestSupport
import Foundation
import QemuboxKit
import TestSupport
import Testing

/// `warm_spares`: spare VMs started ahead and taken by the next container, through a
/// private containerd 1.6 with warm start.
@Suite(.serialized) struct ContainerdSpareTests {
    static let qemubox = ContainerdShimTests.qemubox
    static let image = PrivateContainerd.image

    static func spares(_ containerd: PrivateContainerd) -> String { containerd.stateRoot + "/.spares" }

    /// The spare directories that are ready for a claim.
    static func ready(_ containerd: PrivateContainerd) -> [String] {
        let root = spares(containerd)
        return ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter {
            FileManager.default.fileExists(atPath: root + "/" + $0 + "/claim.sock")
        }.sorted()
    }

    /// The spare processes of this containerd that have not been claimed (their command line names the directory).
    static func spareProcesses(_ containerd: PrivateContainerd) -> [Int32] {
        containerd.leftoverProcesses().filter { pid in
            let cmd = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return cmd.contains("spare-vm") && !FileManager.default.fileExists(
                atPath: spares(containerd) + "/" + (cmd.split(separator: "\0").last.map { ($0 as NSString).lastPathComponent } ?? "") + "/claimed")
        }
    }

    /// Runs a first container (whose shim starts the first spare) and returns the spare once it is ready.
    static func firstSpare(_ containerd: PrivateContainerd) async throws -> String {
        let first = try await containerd.ctr("run --rm \(qemubox) \(image) first true")
        #expect(first.status == 0, "\(first.stderr)")
        #expect(await eventually(timeout: .seconds(60)) { ready(containerd).count == 1 },
                "no spare got ready: \(containerd.log().suffix(2000))")
        return try #require(ready(containerd).first)
    }

    /// The nice values of `pid`'s threads (`mainOnly`: of its main thread; libdispatch's
    /// workers in a Swift process set their own from their quality of service).
    static func niceValues(_ pid: Int32, mainOnly: Bool = false) -> Set<Int> {
        let tasks = mainOnly ? ["\(pid)"] : (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return Set(tasks.compactMap { tid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // After the command: state is field 3, nice field 19.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 16 ? Int(fields[16]) : nil
        })
    }

    /// The QEMU whose parent is `parent`.
    static func qemu(childOf parent: Int32) -> Int32? {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).first { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == parent
                && ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").contains("qemu-system")
        }
    }

    /// Ends the spares this containerd's shims started (SIGTERM: each ends its VM and
    /// removes its directory) and checks that nothing of them is left.
    static func stopSpares(_ containerd: PrivateContainerd) async {
        // A spare that is still starting (a refill just now) is let get ready first: SIGTERM
        // before it handles the signal would end it without its cleanup.
        _ = await eventually(timeout: .seconds(60)) {
            spareProcesses(containerd).count == ready(containerd).count
        }
        for pid in spareProcesses(containerd) { kill(pid, SIGTERM) }
        let gone = await eventually(timeout: .seconds(30)) { spareProcesses(containerd).isEmpty }
        #expect(gone, "spare processes left: \(spareProcesses(containerd))")
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: spares(containerd))) ?? []).filter { $0 != ".refill.lock" }
        let details = left.map { name -> String in
            let directory = spares(containerd) + "/" + name
            let log = (try? String(contentsOfFile: directory + "/spare.log", encoding: .utf8)) ?? ""
            let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            return "\(name): \(files), log: \(log.suffix(1500))"
        }
        #expect(left.isEmpty, "spare directories left: \(details)")
        try? FileManager.default.removeItem(atPath: spares(containerd))
    }

    /// qemubox's config.toml lines for warm start from `templates` with one spare.
    static func configuration(_ templates: String) -> String {
        "warm_start = true\ntemplate_dir = \"\(templates)\"\nwarm_spares = 1\n"
    }

    static func withSpares(_ extra: String = "", _ body: @Sendable @escaping (PrivateContainerd) async throws -> Void)
        async throws
    {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with(prefix: "qbx-templates") { templates in
                let config = configuration(templates) + extra
                try await ContainerdShimTests.withContainerd(qemubox: config) { containerd in
                    do {
                        try await body(containerd)
                    } catch {
                        await stopSpares(containerd)
                        throw error
                    }
                    await stopSpares(containerd)
                }
            }
        }
    }

    /// A container created after a spare is ready runs in it (the shim says so), with its
    /// output, exit code and writable layer as in a VM of its own; the spare is replaced (and
    /// an orphaned spare directory swept without a backoff).
    /// One that does not fit (another size) discards the spare and runs in its own VM.
    @Test(.enabled(if: PrivateContainerd.vmAvailable))
    func nextContainerRunsInTheSpare() async throws {
        try await Self.withSpares { containerd in
            let spare = try await Self.firstSpare(containerd)
            // What a refiller killed between making a spare's directory and starting its process
            // leaves (a lock, no log): the next refill removes it without counting a failure.
            let orphan = Self.spares(containerd) + "/0rphan00"
            try FileManager.default.createDirectory(atPath: orphan, withIntermediateDirectories: false)
            #expect(FileManager.default.createFile(atPath: orphan + "/lock", contents: nil))
            let run = try await containerd.ctr(
                "run --rm \(Self.qemubox) \(Self.image) taker sh -c 'echo w > /f; cat /f; cat /proc/self/personality; exit 5'")
            #expect(run.status == 5, "\(run.stderr)")
            #expect(run.stdout == "w\n00000000\n", "\(run.stderr)")
            #expect(containerd.log(last: .max).contains("taker runs in a spare VM"), "\(containerd.log().suffix(3000))")
            // That spare is gone with its container; another one takes its place.
            #expect(await eventually(timeout: .seconds(60)) {
                let now = Self.ready(containerd)
                return now.count == 1 && !now.contains(spare)
            }, "spares now: \(Self.ready(containerd))")
            #expect(!FileManager.default.fileExists(atPath: Self.spares(containerd) + "/" + spare))
            #expect(!FileManager.default.fileExists(atPath: orphan), "the orphaned directory is left")
            #expect(!FileManager.default.fileExists(atPath: Self.spares(containerd) + "/.failed"), "an orphan counted as a failure")

            let other = try await containerd.ctr(
                "run --rm --annotation io.qemubox.memory_mib=384 \(Self.qemubox) \(Self.image) bigger sh -c 'echo big'")
            #expect(other.status == 0, "\(other.stderr)")
            #expect(other.stdout == "big\n", "\(other.stderr)")
            #expect(containerd.log(last: .max).contains("not using the spare VM"),
                    "\(containerd.log(last: .max).split(separator: "\n").filter { $0.contains("spare") || $0.contains("serving") }.joined(separator: "\n"))")
        }
    }

    /// The shim of a container in a spare VM is killed: containerd's cleanup (`delete`)
    /// ends the VM and removes the spare's directory with the task's state.
    @Test(.enabled(if: PrivateContainerd.vmAvailable))
    func killedShimOfASpareIsCleanedUp() async throws {
        try await Self.withSpares { containerd in
            let spare = try await Self.firstSpare(containerd)
            let run = try await containerd.ctr("run -d \(Self.qemubox) \(Self.image) victim sleep 600")
            #expect(run.status == 0, "\(run.stderr)")
            #expect(containerd.log(last: .max).contains("victim runs in a spare VM"))
            let record = try Data(contentsOf: URL(fileURLWithPath: containerd.stateRoot + "/\(containerd.namespace)/victim/shim.json"))
            let shimPid = try #require((try JSONSerialization.jsonObject(with: record) as? [String: Any])?["shimPid"] as? Int)
            let cmdline = (try? String(contentsOfFile: "/proc/\(shimPid)/cmdline", encoding: .utf8)) ?? ""
            #expect(cmdline.contains("spare-vm") && cmdline.contains(spare), "shim \(shimPid): \(cmdline)")
            let listed = try await containerd.ctrCheck("task ls")
            let qemuPid = try #require(listed.split(separator: "\n").first { $0.hasPrefix("victim ") }
                .flatMap { Int32($0.split(separator: " ", omittingEmptySubsequences: true)[1]) })
            #expect(((try? String(contentsOfFile: "/proc/\(qemuPid)/cmdline", encoding: .utf8)) ?? "").contains("qemu-system"))
            // A spare waits at a low priority; the claim gave the container's VM and shim the normal one back.
            #expect(Self.niceValues(qemuPid) == [0] && Self.niceValues(Int32(shimPid), mainOnly: true) == [0],
                    "QEMU \(Self.niceValues(qemuPid)), shim \(Self.niceValues(Int32(shimPid)))")
            #expect(await eventually(timeout: .seconds(60)) { Self.ready(containerd).count == 1 })
            let waiting = try #require(Self.spareProcesses(containerd).first)
            let waitingQEMU = try #require(Self.qemu(childOf: waiting))
            #expect(Self.niceValues(waiting, mainOnly: true) == [10] && Self.niceValues(waitingQEMU) == [10],
                    "spare \(Self.niceValues(waiting)), its QEMU \(Self.niceValues(waitingQEMU))")
            // Template memory holders (this spare template's was started by a spare; the holders'
            // command lines name their template directory, not containerd's) serve at the default priority.
            let holders = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter {
                ((try? String(contentsOfFile: "/proc/\($0)/cmdline", encoding: .utf8)) ?? "").contains("template-memory-holder")
            }
            #expect(!holders.isEmpty && holders.allSatisfy { Self.niceValues($0, mainOnly: true) == [0] },
                    "holders \(holders.map { ($0, Self.niceValues($0)) })")
            kill(Int32(shimPid), SIGKILL)
            // containerd runs the shim's `delete` and drops the task.
            #expect(await eventually(timeout: .seconds(60)) {
                (try? await ContainerdVMTests.status(containerd, "victim")) == .some(nil)
            }, "\(containerd.log().suffix(2000))")
            _ = try await containerd.ctr("container delete victim")
            #expect(await eventually(timeout: .seconds(30)) {
                !FileManager.default.fileExists(atPath: Self.spares(containerd) + "/" + spare)
            }, "the spare's directory is left")
            #expect(await eventually(timeout: .seconds(10)) { kill(qemuPid, 0) != 0 }, "QEMU \(qemuPid) still runs")
        }
    }

    /// After an upgrade (a new shim executable), a spare started by the old one refuses the
    /// new one's claim and ends; the container starts a VM of its own.
    @Test(.enabled(if: PrivateContainerd.vmAvailable))
    func spareOfAReplacedShimIsNotUsed() async throws {
        try await Self.withSpares { containerd in
            let spare = try await Self.firstSpare(containerd)
            // The "upgrade": containerd now runs a copy of the shim (another inode).
            let link = containerd.dir + "/opt/bin/containerd-shim-qemubox-v1"
            let original = try FileManager.default.destinationOfSymbolicLink(atPath: link)
            try FileManager.default.removeItem(atPath: link)
            try FileManager.default.copyItem(atPath: original, toPath: link)
            let run = try await containerd.ctr("run --rm \(Self.qemubox) \(Self.image) upgraded echo new")
            #expect(run.status == 0 && run.stdout == "new\n", "\(run.stderr)")
            #expect(!containerd.log(last: .max).contains("upgraded runs in a spare VM"))
            #expect(await eventually(timeout: .seconds(30)) {
                !FileManager.default.fileExists(atPath: Self.spares(containerd) + "/" + spare)
            }, "the old spare is still there")
        }
    }

    /// A spare that dies unclaimed (killed here) takes its VM with it; the next refill removes
    /// what it left and, as after any failed spare, starts none for a minute.
    @Test(.enabled(if: PrivateContainerd.vmAvailable))
    func deadSpareIsRemovedAndRefillsBackOff() async throws {
        try await Self.withSpares { containerd in
            let spare = try await Self.firstSpare(containerd)
            let process = try #require(Self.spareProcesses(containerd).first)
            let qemu = try #require(Self.qemu(childOf: process))
            kill(process, SIGKILL)
            #expect(await eventually(timeout: .seconds(10)) { kill(qemu, 0) != 0 }, "the spare's QEMU outlived it")
            let run = try await containerd.ctr("run --rm \(Self.qemubox) \(Self.image) second echo ok")
            #expect(run.status == 0 && run.stdout == "ok\n", "\(run.stderr)")
            #expect(await eventually(timeout: .seconds(30)) {
                containerd.log(last: .max).contains("starting none now")
            }, "\(containerd.log(last: .max).split(separator: "\n").filter { $0.contains("spare") }.joined(separator: "\n"))")
            #expect(!FileManager.default.fileExists(atPath: Self.spares(containerd) + "/" + spare))
            #expect(Self.ready(containerd).isEmpty && Self.spareProcesses(containerd).isEmpty)
            try? FileManager.default.removeItem(atPath: Self.spares(containerd) + "/.failed")
        }
    }

    /// `ctr run --cni` in a spare: containerd runs CNI in the task pid's namespace — the spare
    /// QEMU's own — between Create and Start, and the container is reachable both ways with the
    /// interface CNI made, as in a VM of its own (ContainerdNetworkTests' checks).
    @Test(.enabled(if: ContainerdNetworkTests.available))
    func cniNetworkInASpare() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-templates") { templates in
            try await ContainerdNetworkTests.withNetwork(qemubox: { _ in Self.configuration(templates) }) { containerd, netns in
                do {
                    _ = try await Self.firstSpare(containerd)
                    try await containerd.ctrCheck(
                        "run -d --cni \(Self.qemubox) \(Self.image) net1 \(ContainerdNetworkTests.server("net1"))")
                    #expect(containerd.log(last: .max).contains("net1 runs in a spare VM"))
                    _ = try await ContainerdNetworkTests.checkConnectivity(containerd, netns, "net1")
                    try await ContainerdNetworkTests.remove(containerd, "net1")
                } catch {
                    await Self.stopSpares(containerd)
                    throw error
                }
                await Self.stopSpares(containerd)
            }
        }
    }

    /// A spare nobody takes within `warm_spare_idle_seconds` ends its VM and removes its directory.
    @Test(.enabled(if: PrivateContainerd.vmAvailable))
    func idleSpareEnds() async throws {
        try await Self.withSpares("warm_spare_idle_seconds = 2\n") { containerd in
            let first = try await containerd.ctr("run --rm \(Self.qemubox) \(Self.image) first true")
            #expect(first.status == 0, "\(first.stderr)")
            #expect(await eventually(timeout: .seconds(60)) { !Self.ready(containerd).isEmpty })
            #expect(await eventually(timeout: .seconds(30)) {
                Self.spareProcesses(containerd).isEmpty
                    && ((try? FileManager.default.contentsOfDirectory(atPath: Self.spares(containerd))) ?? []) == [".refill.lock"]
            }, "spares: \(Self.spareProcesses(containerd))")
            #expect(containerd.leftoverProcesses().filter { pid in
                ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").contains("qemu-system")
            }.isEmpty)
        }
    }
}
