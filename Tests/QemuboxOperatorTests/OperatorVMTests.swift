import ContainerdTestSupport
import Foundation
import QemuboxKit
@testable import QemuboxOperator
import TestSupport
import Testing

/// The operator command against a real VM: a private containerd runs a container with the
/// qemubox shim (warm start on, so a template is saved and the VM restored from it), and
/// `qemubox` reads the shim's state directory as an operator would.
@Suite(.serialized) struct OperatorVMTests {
    static let runtime = "--runtime io.containerd.qemubox.v1"

    static var available: Bool { PrivateContainerd.vmAvailable && QemuboxBinary.available }

    /// A fresh containerd with `extra` qemubox configuration, torn down whatever happens.
    static func withContainerd(_ extra: String, _ body: (PrivateContainerd) async throws -> Void) async throws {
        try await TemporaryDirectory.with(prefix: "qbx") { dir in
            let containerd = try PrivateContainerd(dir: dir, qemubox: extra.replacingOccurrences(of: "$DIR", with: dir))
            do {
                try await containerd.start()
                try await containerd.importImage()
                try await body(containerd)
            } catch {
                await containerd.tearDown()
                throw error
            }
            await containerd.tearDown()
        }
    }

    /// A file's text, read to its end (`/proc` files come a page per read and report no size).
    static func contents(_ path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        var data = Data()
        while let chunk = try? handle.read(upToCount: 65536), !chunk.isEmpty { data += chunk }
        return String(decoding: data, as: UTF8.self)
    }

    @Test(.enabled(if: available))
    func psConsoleLogsCacheAndTemplatesOfARunningVM() async throws {
        try await ConcurrencyLimit.vms.run {
            try await Self.withContainerd("warm_start = true\ntemplate_dir = \"$DIR/templates\"\nguest_debug = true\n") { containerd in
                let config = containerd.dir + "/qemubox.toml"
                let id = "opsvm"
                let run = try await containerd.ctr("run -d \(Self.runtime) \(PrivateContainerd.image) \(id) sleep 600")
                #expect(run.status == 0, "\(run.stderr)")
                let running = await eventually(timeout: .seconds(120)) {
                    (try? await containerd.ctrCheck("task ls"))?.split(separator: "\n")
                        .contains { $0.hasPrefix(id + " ") && $0.hasSuffix("RUNNING") } ?? false
                }
                #expect(running, "\(containerd.log())")

                // ps: the row, checked against the VM's record, /proc and the shim.
                let vms = try await QemuboxBinary.json([RunningVM].self, ["ps", "--config", config])
                let vm = try #require(vms.first { $0.id == id }, "\(vms)")
                #expect(vms.count == 1)
                #expect(vm.namespace == containerd.namespace)
                let record = try #require(try VMStateRecord.read(from: vm.directory))
                #expect(record.pid == vm.pid && record.matchesLiveProcess())
                let cmdline = Self.contents("/proc/\(vm.pid)/cmdline").replacingOccurrences(of: "\0", with: " ")
                #expect(cmdline.contains("qemu-system") && cmdline.contains("-smp \(vm.vcpus ?? -1)"), "\(cmdline)")
                #expect((vm.memoryMiB ?? 0) >= 64 && cmdline.contains("-m \(vm.memoryMiB ?? -1)M"), "\(cmdline)")
                #expect(vm.accelerator == (AcceleratorDetector().probeKVM().usable ? "kvm" : "tcg"))
                #expect(vm.uptimeSeconds > 0 && vm.uptimeSeconds < 600)
                #expect(vm.shimPid.map { containerd.qemuboxShims(task: id).contains($0) } == true)
                let table = try await QemuboxBinary.run(["ps", "--config", config])
                #expect(table.status == 0 && table.stderr.isEmpty, "\(table.stderr)")
                let row = table.stdout.split(separator: "\n").dropFirst().first.map { $0.split(separator: " ").map(String.init) }
                #expect(row?.prefix(3) == [id, containerd.namespace, "\(vm.pid)"], "\(table.stdout)")
                #expect(try await QemuboxBinary.run(["ps", "-q", "--config", config]).stdout == id + "\n")

                // console: the guest's console log, restored from the template.
                let console = try await QemuboxBinary.run(["console", id, "--config", config])
                #expect(console.status == 0, "\(console.stderr)")
                #expect(console.stdout.contains("restored from a template snapshot"), "\(console.stdout.suffix(2000))")
                #expect(Self.contents(vm.directory + "/console.log").hasPrefix(console.stdout)
                    || console.stdout.hasSuffix(Self.contents(vm.directory + "/console.log")))
                let namespaced = try await QemuboxBinary.run(["console", "-n", containerd.namespace, id, "--config", config])
                #expect(namespaced.status == 0)
                let elsewhere = try await QemuboxBinary.run(["console", "-n", "nope", id, "--config", config])
                #expect(elsewhere.status == 1 && elsewhere.stderr.contains("not_found"), "\(elsewhere.stderr)")
                // logs: QEMU's stderr file, byte for byte.
                let logs = try await QemuboxBinary.run(["logs", id, "--config", config])
                #expect(logs.status == 0 && logs.stdout == Self.contents(vm.directory + "/qemu.stderr"))

                // console --follow prints what the guest writes after it started (an exec's crun lines).
                let follow = containerd.dir + "/follow.out"
                let started = try await Shell.check(
                    "\(Shell.quote(QemuboxBinary.path ?? "qemubox")) console --follow \(id) --config \(config) "
                        + "> \(follow) 2>&1 & echo $!")
                let follower = try #require(Int32(started.trimmingCharacters(in: .whitespacesAndNewlines)))
                defer { kill(follower, SIGKILL) }
                #expect(await eventually(timeout: .seconds(20)) { Self.contents(follow).contains("restored from a template") })
                let before = Self.contents(follow).count
                let exec = try await containerd.ctr("task exec --exec-id marker \(id) echo exec-marker")
                #expect(exec.status == 0 && exec.stdout == "exec-marker\n", "\(exec.stderr)")
                let grew = await eventually(timeout: .seconds(20)) {
                    let text = Self.contents(follow)
                    return text.count > before && text.dropFirst(before).contains("exec")
                }
                #expect(grew, "follow output: \(Self.contents(follow).suffix(1500))")
                // Still following, not exited: a bounded wait, no busy loop (it sleeps in poll).
                #expect(kill(follower, 0) == 0)
                let stat = Self.contents("/proc/\(follower)/stat").split(separator: " ")
                #expect(stat.count > 2 && stat[2] == "S", "the follower should be sleeping: \(stat.prefix(3))")

                // The rootfs layer image is open by this QEMU: listed in use, kept by --all.
                let images = try await QemuboxBinary.json([LayerCacheReport.Image].self, ["cache", "ls", "--config", config])
                let used = images.filter { $0.openBy.contains { $0.hasSuffix("[\(vm.pid)]") } }
                #expect(!used.isEmpty, "\(images)")
                for image in used { LayerCacheTests.age(image.path, 3 * 3600) }  // not just "recently used"
                let pruned = try await QemuboxBinary.json(LayerCacheReport.PruneResult.self,
                                                          ["cache", "prune", "--all", "--config", config])
                for image in used {
                    #expect(pruned.decisions.first { $0.key == image.key }?.removed == false)
                    #expect(pruned.decisions.first { $0.key == image.key }?.reason.hasPrefix("in use by") == true)
                    #expect(FileManager.default.fileExists(atPath: image.path))
                }

                // The template the VM was restored from: complete. Its clone maps a sealed memfd copy
                // of the template's RAM (jailed or not), never the file: the template is not in use,
                // and `templates prune --all` removes it without disturbing the VM.
                let templates = try await QemuboxBinary.json([TemplateReport.Template].self,
                                                             ["templates", "ls", "--config", config])
                #expect(templates.count == 1 && templates.first?.state == "complete", "\(templates)")
                let maps = Self.contents("/proc/\(vm.pid)/maps")
                #expect(maps.contains("/memfd:qemubox-template"), "the clone does not map the sealed template copy")
                #expect(!maps.contains("/memory"), "the clone maps a RAM file")
                #expect(templates.first?.openBy == [], "\(templates)")
                // ls names the template's memory holder and this clone, which maps its sealed copy.
                #expect(templates.first?.memoryHolder != nil, "\(templates)")
                #expect(templates.first?.clones.contains { $0.hasSuffix("[\(vm.pid)]") } == true, "\(templates)")
                let listing = try await QemuboxBinary.run(["templates", "ls", "--config", config])
                #expect(listing.stdout.contains("HOLDER") && listing.stdout.contains("CLONES"), "\(listing.stdout)")
                let kept = try await QemuboxBinary.json(TemplateReport.PruneResult.self,
                                                        ["templates", "prune", "--config", config])
                #expect(kept.decisions.map(\.removed) == [false])
                let removed = try await QemuboxBinary.json(TemplateReport.PruneResult.self,
                                                           ["templates", "prune", "--all", "--config", config])
                #expect(removed.decisions.map(\.removed) == [true])
                let again = try await containerd.ctr("task exec --exec-id after \(id) echo still-running")
                #expect(again.status == 0 && again.stdout == "still-running\n", "\(again.stderr)")

                // The task goes: ps lists nothing, console says there is no such task.
                kill(follower, SIGKILL)
                try await containerd.ctrCheck("task kill -s SIGKILL \(id)")
                _ = await eventually(timeout: .seconds(60)) {
                    (try? await containerd.ctrCheck("task ls"))?.contains("STOPPED") ?? false
                }
                try await containerd.ctrCheck("task delete \(id)")
                try await containerd.ctrCheck("container rm \(id)")
                let after = try await QemuboxBinary.json([RunningVM].self, ["ps", "--config", config])
                #expect(after.isEmpty, "\(after)")
                let gone = try await QemuboxBinary.run(["console", id, "--config", config])
                #expect(gone.status == 1 && gone.stderr.contains("qemubox: not_found:"), "\(gone.stderr)")
            }
        }
    }

    /// ps with records that lie: a malformed record, a pid that is gone, a pid that is alive
    /// but another process. Each is skipped with a warning; ps exits 0 with no rows.
    @Test(.enabled(if: QemuboxBinary.available))
    func psSkipsStaleAndMalformedRecords() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-ps") { dir in
            let fm = FileManager.default
            func task(_ name: String, record: String?, shim: String? = nil) throws {
                let path = dir + "/state/ns1/" + name + "/vm"
                try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
                if let record { try record.write(toFile: path + "/qemu.json", atomically: false, encoding: .utf8) }
                if let shim { try shim.write(toFile: dir + "/state/ns1/" + name + "/shim.json", atomically: false, encoding: .utf8) }
            }
            try task("garbage", record: "{not json")
            try task("gone", record: #"{"pid":999999999,"startTime":1,"name":"gone","binary":"qemu"}"#)
            // Our own pid with the wrong start time and no -name marker: alive, but not that QEMU.
            try task("reused", record: #"{"pid":\#(getpid()),"startTime":1,"name":"reused","binary":"qemu"}"#)
            try task("deadshim", record: nil, shim: #"{"namespace":"ns1","id":"deadshim","bundle":"/b","shimPid":999999999,"socket":"/s","writtenBack":false}"#)
            try task("noshim", record: nil)
            // Spare VMs (warm_spares): an unclaimed one is listed (here: its record is stale), a claimed one is its task's.
            for (name, claimed) in [("5a5a5a5a", false), ("6b6b6b6b", true)] {
                let spare = dir + "/state/.spares/" + name
                try fm.createDirectory(atPath: spare + "/vm", withIntermediateDirectories: true)
                try #"{"pid":999999998,"startTime":1,"name":"spare","binary":"qemu"}"#
                    .write(toFile: spare + "/vm/qemu.json", atomically: false, encoding: .utf8)
                if claimed { _ = fm.createFile(atPath: spare + "/claimed", contents: nil) }
            }
            try fm.createDirectory(atPath: dir + "/state/s", withIntermediateDirectories: true)
            _ = fm.createFile(atPath: dir + "/state/ns1/stray-file", contents: Data("x".utf8))
            let config = try QemuboxBinary.configuration(in: dir, "state_dir = \"\(dir)/state\"\n")

            let result = try await QemuboxBinary.run(["ps", "--config", config, "--format", "json"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try QemuboxBinary.decode([RunningVM].self, result.stdout).isEmpty)
            let warnings = result.stderr.split(separator: "\n")
            #expect(warnings.count == 5, "\(result.stderr)")
            #expect(warnings.contains { $0.contains("(spare)/5a5a5a5a: skipped: stale record, QEMU pid 999999998") })
            #expect(warnings.contains { $0.contains("ns1/garbage: skipped") })
            #expect(warnings.contains { $0.contains("ns1/gone: skipped: stale record, QEMU pid 999999999") })
            #expect(warnings.contains { $0.contains("ns1/reused: skipped: stale record") })
            #expect(warnings.contains { $0.contains("ns1/deadshim: skipped: no VM and shim pid 999999999 is gone") })

            let missing = try await QemuboxBinary.run(["logs", "gone", "--config", config])
            #expect(missing.status == 0)  // the directory exists; its log is simply empty
            let noTask = try await QemuboxBinary.run(["logs", "nosuch", "--config", config])
            #expect(noTask.status == 1 && noTask.stderr.contains("not_found"))
            let badID = try await QemuboxBinary.run(["logs", "../x", "--config", config])
            #expect(badID.status == 2, "\(badID.stderr)")
        }
    }
}
