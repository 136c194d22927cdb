import ContainerdTestSupport
import Foundation
import ProcessSpawn
import QemuboxKit
@testable import QemuboxOperator
import TestSupport
import Testing

/// `qemubox templates ls|prune` on a store laid out as `VMTemplateStore` saves it: complete,
/// stale and incomplete templates, and work directories of a running and of a dead save (the
/// running one holds the key's lock from another process, as a saving shim does).
@Suite struct TemplateStoreTests {
    typealias Template = TemplateReport.Template
    typealias Result = TemplateReport.PruneResult

    /// `SIZE:MTIME` as the store records files in `identity`.
    static func stamp(_ path: String) -> String {
        var st = stat()
        _ = stat(path, &st)
        return "\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }

    /// A template directory: RAM file (sparse, `memoryMiB`), state, identity naming `kernel`,
    /// and the `complete` marker when `complete`.
    static func template(_ directory: String, kernel: String, memoryMiB: Int = 64, ramMiB: Int? = nil,
                         complete: Bool = true) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let fd = open(directory + "/memory", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0, ftruncate(fd, off_t(ramMiB ?? memoryMiB) << 20) == 0 else { throw PeerError("memory file") }
        close(fd)
        try Data(repeating: 7, count: 5000).write(to: URL(fileURLWithPath: directory + "/state"))
        let identity = ["qemubox-template-v1", "slots=16", "memory=\(memoryMiB)", "vcpus=2", "accel=tcg",
                        "kernel=\(kernel):\(stamp(kernel))"].joined(separator: "\n") + "\n"
        try identity.write(toFile: directory + "/identity", atomically: false, encoding: .utf8)
        if complete { try "saved\n".write(toFile: directory + "/complete", atomically: false, encoding: .utf8) }
    }

    /// `flock -x -o LOCK sleep 600`: a save holding the key's lock, in another process (flock
    /// itself holds it; `-o` keeps it from its child). Both are in a session of their own.
    static func holdLock(_ path: String) throws -> pid_t {
        try ProcessSpawner.shared.spawnBlocking(.init(
            path: Prerequisite.which("flock") ?? "/usr/bin/flock",
            arguments: ["-x", "-o", path, Prerequisite.which("sleep") ?? "/bin/sleep", "600"], environment: [],
            descriptors: []))
    }

    /// Kills the lock holder's session (flock and its sleep) and reaps flock.
    static func release(_ pid: pid_t) {
        kill(-pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }

    static func state(_ list: [Template], _ name: String) -> String? {
        list.first { ($0.directory as NSString).lastPathComponent == name }?.state
    }

    static func removed(_ result: Result) -> Set<String> {
        Set(result.decisions.filter(\.removed).map { ($0.directory as NSString).lastPathComponent })
    }

    @Test(.enabled(if: QemuboxBinary.available && Prerequisite.tools("flock", "sleep")))
    func listAndPrune() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-templates") { dir in
            let store = dir + "/templates"
            let kernel = dir + "/vmlinux"
            try Data(repeating: 1, count: 1000).write(to: URL(fileURLWithPath: kernel))
            let oldKernel = dir + "/vmlinux-old"
            try Data(repeating: 1, count: 1000).write(to: URL(fileURLWithPath: oldKernel))
            let (complete, stale, incomplete, short, saving, dead, mapped) =
                ("00000000000000a1", "00000000000000b2", "00000000000000c3", "00000000000000d4",
                 "00000000000000e5", "00000000000000f6", "0000000000000107")
            try Self.template(store + "/" + complete, kernel: kernel)
            try Self.template(store + "/" + mapped, kernel: kernel)
            // A process maps the RAM file and closes its descriptor, as an unjailed VM restored
            // from the template does: the template is in use through the mapping alone.
            let mapper = try ProcessSpawner.shared.spawnBlocking(.init(
                path: Prerequisite.which("python3") ?? "/usr/bin/python3",
                arguments: ["-c", "import mmap,time\nf=open('\(store)/\(mapped)/memory','rb')\n"
                    + "m=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ)\nf.close()\nprint('mapped',flush=True)\ntime.sleep(600)"],
                environment: [], descriptors: []))
            defer {
                kill(mapper, SIGKILL)
                var status: Int32 = 0
                _ = waitpid(mapper, &status, 0)
            }
            try Self.template(store + "/" + stale, kernel: oldKernel)
            try Data(repeating: 2, count: 2000).write(to: URL(fileURLWithPath: oldKernel))  // rebuilt: stale now
            try Self.template(store + "/" + incomplete, kernel: kernel, complete: false)
            try Self.template(store + "/" + short, kernel: kernel, ramMiB: 1)
            try Self.template(store + "/\(saving).tmp-4242", kernel: kernel, complete: false)
            try Self.template(store + "/\(dead).tmp-4343", kernel: kernel, complete: false)
            _ = FileManager.default.createFile(atPath: store + "/\(dead).lock", contents: nil)
            _ = FileManager.default.createFile(atPath: store + "/unrelated.txt", contents: Data("x".utf8))
            let locker = try Self.holdLock(store + "/\(saving).lock")
            var lockerRunning = true
            defer { if lockerRunning { Self.release(locker) } }
            let reportStore = VMTemplateStore(directory: store)
            #expect(await eventually(timeout: .seconds(10)) { reportStore.isLocked(key: saving) })
            let config = try QemuboxBinary.configuration(in: dir, "template_dir = \"\(store)\"\n")

            #expect(await eventually(timeout: .seconds(20)) {
                (try? String(contentsOfFile: "/proc/\(mapper)/maps", encoding: .utf8))?.contains("\(mapped)/memory") ?? false
            })
            let list = try await QemuboxBinary.json([Template].self, ["templates", "ls", "--config", config])
            #expect(list.count == 7, "\(list.map(\.directory))")
            #expect(list.first { $0.key == mapped }?.openBy == ["python3[\(mapper)]"], "\(list)")
            #expect(Self.state(list, complete) == "complete")
            #expect(Self.state(list, stale) == "stale")
            #expect(Self.state(list, incomplete) == "incomplete")
            #expect(Self.state(list, short) == "incomplete")
            #expect(Self.state(list, "\(saving).tmp-4242") == "saving")
            #expect(Self.state(list, "\(dead).tmp-4343") == "incomplete")
            let full = try #require(list.first { $0.key == complete })
            #expect(full.memoryMiB == 64 && full.vcpus == 2 && full.complete && !full.locked)
            #expect(full.bytes > 64 << 20 && full.allocatedBytes < 1 << 20, "the RAM file is sparse")
            #expect(full.openBy.isEmpty)

            let plain = try await QemuboxBinary.json(Result.self, ["templates", "prune", "--config", config])
            #expect(Self.removed(plain) == [stale, incomplete, short, "\(dead).tmp-4343"])
            let remaining = try FileManager.default.contentsOfDirectory(atPath: store).sorted()
            #expect(remaining == [mapped, complete, "\(saving).lock", "\(saving).tmp-4242", "unrelated.txt"].sorted(),
                    "\(remaining)")

            let all = try await QemuboxBinary.json(Result.self, ["templates", "prune", "--all", "--config", config])
            #expect(Self.removed(all) == [complete])
            #expect(all.decisions.first { $0.key == saving }?.reason.contains("a save is running") == true)
            #expect(all.decisions.first { $0.key == mapped }?.reason.hasPrefix("in use by python3[\(mapper)]") == true)
            try FileManager.default.removeItem(atPath: store + "/" + mapped)  // not part of what follows
            #expect(FileManager.default.fileExists(atPath: store + "/\(saving).tmp-4242"))

            // The save ends (its process dies without finishing): its work directory goes next time.
            Self.release(locker)
            lockerRunning = false
            let after = try await QemuboxBinary.json(Result.self, ["templates", "prune", "--config", config])
            #expect(Self.removed(after) == ["\(saving).tmp-4242"])
            #expect(try FileManager.default.contentsOfDirectory(atPath: store) == ["unrelated.txt"])

            let table = try await QemuboxBinary.run(["templates", "ls", "--config", config])
            #expect(table.status == 0 && table.stdout.hasPrefix("KEY"))
        }
    }
}
