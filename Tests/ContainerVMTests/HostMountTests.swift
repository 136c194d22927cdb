#if canImport(Glibc)
import Glibc
#endif
import Foundation
import OCISpec
import QemuboxAPI
@testable import QemuboxKit
import Testing
import TestSupport

/// Host bind mounts: planned and copied into the VM (bounded), read-only ones kept current
/// as the kubelet updates ConfigMaps (an atomic `..data` swap), read-write files copied back,
/// read-write directories shared live through virtio-fs.
@Suite("host bind mounts", .serialized)
struct HostMountTests {
    static func spec(_ mounts: [RuntimeSpec.Mount]) -> RuntimeSpec {
        var spec = RuntimeSpec()
        spec.mounts = [RuntimeSpec.Mount(destination: "/proc", type: "proc", source: "proc", options: nil)] + mounts
        return spec
    }

    /// A kubelet-style ConfigMap volume: `..<ts>/<key>` files, `..data → ..<ts>`, `<key> → ..data/<key>`.
    static func writeConfigMap(_ dir: String, generation: String, _ values: [String: String]) throws {
        let next = "..\(generation)"
        try FileManager.default.createDirectory(atPath: dir + "/" + next, withIntermediateDirectories: true)
        for (key, value) in values { try value.write(toFile: dir + "/" + next + "/" + key, atomically: false, encoding: .utf8) }
        try FileManager.default.createSymbolicLink(atPath: dir + "/..data_tmp", withDestinationPath: next)
        guard rename(dir + "/..data_tmp", dir + "/..data") == 0 else { throw PeerError("rename ..data") }
        for key in values.keys where !FileManager.default.fileExists(atPath: dir + "/" + key) {
            try FileManager.default.createSymbolicLink(atPath: dir + "/" + key, withDestinationPath: "..data/" + key)
        }
    }

    /// Runs `bundle` in a pod (id `id`, files under `dir/pod`) with its output in `dir/out`:
    /// `during` runs once the container started (the output path given); returns the exit
    /// status and the output after delete. Whatever happens, the pod is ended.
    func runInPod(_ bundle: String, id: String, in dir: String, templates: VMTemplateStore? = nil,
                  during: (String) async throws -> Void) async throws -> (status: UInt32, output: String) {
        let outPath = dir + "/out"
        let out = open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { close(out) }
        var configuration = PodConfiguration(id: id, stateDirectory: dir + "/pod", assets: try Fixture.assets())
        configuration.writableBytes = 64 << 20
        configuration.templates = templates
        let pod = Pod(configuration)
        var create = Containerd_Task_V2_CreateTaskRequest()
        create.id = id
        create.bundle = bundle
        let status: UInt32
        do {
            try await pod.create(create, rootfs: .ephemeral, io: DescriptorIO(stdin: nil, stdout: out, stderr: out))
            try await pod.start(containerID: id)
            try await during(outPath)
            status = try await pod.wait(containerID: id).status
            _ = try await pod.delete(containerID: id)
        } catch {
            await pod.terminate()
            throw error
        }
        let left = (try? FileManager.default.subpathsOfDirectory(atPath: dir + "/pod")) ?? []
        #expect(left.allSatisfy { $0 == "containers" }, "left behind: \(left)")
        return (status, try String(contentsOfFile: outPath, encoding: .utf8))
    }

    @Test func planTakesBindMountsAndRefusesWhatCannotBeCopied() throws {
        try TemporaryDirectory.withSync { dir in
            try "x".write(toFile: dir + "/file", atomically: false, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: dir + "/d", withIntermediateDirectories: true)
            let planned = try HostMount.plan(Self.spec([
                RuntimeSpec.Mount(destination: "/a", type: "bind", source: dir + "/file", options: ["rbind", "rw"]),
                RuntimeSpec.Mount(destination: "/b", type: nil, source: dir + "/d", options: ["rbind", "ro"]),
                RuntimeSpec.Mount(destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid"]),
            ]), guestBundle: "/run/b")
            #expect(planned.map(\.destination) == ["/a", "/b"])
            #expect(planned.map(\.kind) == [.file, .directory])
            #expect(planned.map(\.readOnly) == [false, true])
            #expect(planned.map(\.guestPath) == ["/run/b/mounts/1", "/run/b/mounts/2"])
            #expect(planned.map(\.shared) == [false, false])
            let rw = try HostMount.plan(Self.spec([
                RuntimeSpec.Mount(destination: "/c", type: "bind", source: dir + "/d", options: ["rbind", "rw"]),
            ]), guestBundle: "/run/b")
            #expect(rw.map(\.shared) == [true])
            #expect(rw[0].tag(containerID: "c1").utf8.count <= 36)
            var spec = RuntimeSpec()
            spec.process = RuntimeSpec.Process()
            spec.process?.capabilities = RuntimeSpec.Capabilities()
            spec.process?.capabilities?.bounding = ["CAP_CHOWN", "CAP_MKNOD"]
            #expect(HostMount.capabilityChanges(spec) == ["-fowner", "-fsetid", "-setfcap"])
            for (mount, code) in [
                (RuntimeSpec.Mount(destination: "/c", type: "bind", source: "/dev/null", options: ["rbind", "ro"]), QemuboxError.Code.unimplemented),
                (RuntimeSpec.Mount(destination: "/c", type: "bind", source: dir + "/missing", options: ["rbind", "ro"]), .invalidArgument),
                (RuntimeSpec.Mount(destination: "/c", type: "bind", source: "relative", options: ["rbind", "ro"]), .invalidArgument),
            ] {
                #expect { try HostMount.plan(Self.spec([mount]), guestBundle: "/run/b") } throws: {
                    ($0 as? QemuboxError)?.code == code && "\($0)".contains("/c")
                }
            }
        }
    }

    @Test func snapshotKeepsSymlinksOwnersAndModesWithinLimits() throws {
        try TemporaryDirectory.withSync { dir in
            let volume = dir + "/cm"
            try Self.writeConfigMap(volume, generation: "1", ["key": "one", "other": "two"])
            chmod(volume + "/..1/key", 0o640)
            let mount = HostMount(source: volume, destination: "/etc/cm", readOnly: true, kind: .directory,
                                  guestPath: "/g", index: 0)
            let tree = try mount.snapshot()
            #expect(tree.first?.path == "" && tree.first?.kind == .directory)
            let byPath = Dictionary(uniqueKeysWithValues: tree.map { ($0.path, $0) })
            #expect(byPath["..data"]?.kind == .symlink && byPath["..data"]?.target == "..1")
            #expect(byPath["key"]?.kind == .symlink && byPath["key"]?.target == "..data/key")
            #expect(byPath["..1/key"]?.data == Data("one".utf8) && byPath["..1/key"]?.mode == 0o640)
            #expect(byPath["..1/key"]?.uid == getuid())
            // Parents before children.
            for (index, entry) in tree.enumerated() where entry.path.contains("/") {
                let parent = String(entry.path[..<(entry.path.lastIndex(of: "/") ?? entry.path.startIndex)])
                #expect(tree[..<index].contains { $0.path == parent }, "\(entry.path)")
            }
            // Over the byte limit: a clear error, nothing half-read.
            let big = dir + "/big"
            try FileManager.default.createDirectory(atPath: big, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: big + "/blob", contents: Data(count: HostMount.maximumBytes + 1))
            let bigMount = HostMount(source: big, destination: "/big", readOnly: true, kind: .directory, guestPath: "/g", index: 0)
            #expect { try bigMount.snapshot() } throws: {
                ($0 as? QemuboxError)?.code == .resourceExhausted && "\($0)".contains("/big")
            }
        }
    }

    /// The watcher reports a settled burst once, reports a directory created later (the kubelet's
    /// next generation), and does not wait for a file written without pause to go quiet.
    @Test func watcherReportsBurstsNewDirectoriesAndEndlessWrites() async throws {
        try await TemporaryDirectory.with { dir in
            try FileManager.default.createDirectory(atPath: dir + "/d", withIntermediateDirectories: true)
            try "0".write(toFile: dir + "/f", atomically: false, encoding: .utf8)
            let mounts = [HostMount(source: dir + "/d", destination: "/d", readOnly: true, kind: .directory, guestPath: "/g/0", index: 0),
                          HostMount(source: dir + "/f", destination: "/f", readOnly: true, kind: .file, guestPath: "/g/1", index: 1)]
            let reports = EventLog()
            let watcher = try HostMountWatcher(mounts) { changed in
                for index in changed.sorted() { reports.append("\(index)") }
            }
            defer { watcher.stop() }
            try FileManager.default.createDirectory(atPath: dir + "/d/..2", withIntermediateDirectories: true)
            #expect(await eventually(timeout: .seconds(10)) { reports.topics.contains("0") })
            // A file in the directory made after the watch started is seen too.
            try "x".write(toFile: dir + "/d/..2/key", atomically: false, encoding: .utf8)
            #expect(await eventually(timeout: .seconds(10)) { reports.topics.filter { $0 == "0" }.count >= 2 })
            // The file mount is reported even while it never goes quiet.
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/f"))
            defer { try? handle.close() }
            var sawWhileWriting = false
            for _ in 0..<100 where !sawWhileWriting {
                try handle.write(contentsOf: Data("more".utf8))
                try await Task.sleep(for: .milliseconds(50))
                sawWhileWriting = reports.topics.contains("1")
            }
            #expect(sawWhileWriting, "no report for the file within 5 s of writes every 50 ms: \(reports.topics)")
        }
    }

    @Test("read-only mounts follow host changes; a read-write file is copied back", .enabled(if: Fixture.available))
    func throughAPod() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let volume = dir + "/cm"
                try Self.writeConfigMap(volume, generation: "1", ["greeting": "hello"])
                try "v1\n".write(toFile: dir + "/plain", atomically: false, encoding: .utf8)
                try "".write(toFile: dir + "/termination-log", atomically: false, encoding: .utf8)
                // The container prints what it sees, waits for the ConfigMap to change, writes the
                // termination log and exits.
                let script = """
                    cat /etc/cm/greeting; echo; cat /etc/plain
                    (echo attempt > /etc/cm/x) 2>/dev/null && echo WRITABLE
                    i=0; while [ "$(cat /etc/cm/greeting)" = hello ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
                    cat /etc/cm/greeting; echo; cat /etc/cm/added
                    echo "done: bye" > /dev/termination-log
                    """
                let bundle = try Fixture.bundle(in: dir, ["sh", "-c", script]) {
                    $0.mounts = ($0.mounts ?? []) + [
                        RuntimeSpec.Mount(destination: "/etc/cm", type: "bind", source: volume, options: ["rbind", "ro"]),
                        RuntimeSpec.Mount(destination: "/etc/plain", type: "bind", source: dir + "/plain", options: ["rbind", "ro"]),
                        RuntimeSpec.Mount(destination: "/dev/termination-log", type: "bind", source: dir + "/termination-log",
                                          options: ["rbind", "rw"]),
                    ]
                }
                let run = try await runInPod(bundle, id: "m1", in: dir) { outPath in
                    #expect(await eventually(timeout: .seconds(30)) {
                        (try? String(contentsOfFile: outPath, encoding: .utf8))?.hasPrefix("hello\nv1\n") == true
                    })
                    // The kubelet's update: a new generation, then the `..data` swap.
                    try Self.writeConfigMap(volume, generation: "2", ["greeting": "updated", "added": "new key"])
                }
                #expect(run.status == 0)
                #expect(run.output == "hello\nv1\nupdated\nnew key", "output: \(run.output)")
                #expect(try String(contentsOfFile: dir + "/termination-log", encoding: .utf8) == "done: bye\n")
            }
        }
    }

    @Test("a read-write directory is shared live both ways through virtio-fs", .enabled(if: Fixture.available))
    func readWriteDirectoryIsShared() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let data = dir + "/data"
                try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
                try "from host\n".write(toFile: data + "/in.txt", atomically: false, encoding: .utf8)
                // Reads the host's file, writes its own, waits for one the host adds while it runs;
                // mknod is refused (the spec's bounding set has no CAP_MKNOD).
                let script = """
                    cat /data/in.txt; echo from guest > /data/out.txt; mkdir /data/sub
                    mknod /data/null c 1 3 2>/dev/null && echo MKNOD
                    i=0; while [ ! -e /data/late.txt ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
                    cat /data/late.txt
                    """
                let bundle = try Fixture.bundle(in: dir, ["sh", "-c", script]) {
                    $0.mounts = ($0.mounts ?? []) + [
                        RuntimeSpec.Mount(destination: "/data", type: "bind", source: data, options: ["rbind", "rw"]),
                    ]
                    $0.process?.capabilities?.bounding?.removeAll { $0 == "CAP_MKNOD" }
                }
                // With warm start on, a VM with a share still boots cold: nothing is saved or restored.
                let templates = VMTemplateStore(directory: dir + "/templates")
                let run = try await runInPod(bundle, id: "m2", in: dir, templates: templates) { _ in
                    #expect(await eventually(timeout: .seconds(30)) {
                        (try? String(contentsOfFile: data + "/out.txt", encoding: .utf8)) == "from guest\n"
                    })
                    try "added later\n".write(toFile: data + "/late.txt", atomically: false, encoding: .utf8)
                }
                #expect(run.status == 0)
                #expect(run.output == "from host\nadded later\n", "output: \(run.output)")
                var info = stat()
                #expect(stat(data + "/sub", &info) == 0 && info.st_mode & S_IFMT == S_IFDIR)
                #expect(!FileManager.default.fileExists(atPath: data + "/null"), "mknod reached the host")
                let saved = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/templates")) ?? []
                #expect(saved.filter { !$0.hasSuffix(".lock") }.isEmpty, "templates: \(saved)")
            }
        }
    }
}
