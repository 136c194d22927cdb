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
/// as the kubelet updates ConfigMaps (an atomic `..data` swap), read-write files copied back.
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
            for (mount, code) in [
                (RuntimeSpec.Mount(destination: "/c", type: "bind", source: dir + "/d", options: ["rbind", "rw"]), QemuboxError.Code.unimplemented),
                (RuntimeSpec.Mount(destination: "/c", type: "bind", source: "/dev/null", options: ["rbind", "ro"]), .unimplemented),
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
                let outPath = dir + "/out"
                let out = open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                defer { close(out) }
                var configuration = PodConfiguration(id: "m1", stateDirectory: dir + "/pod", assets: try Fixture.assets())
                configuration.writableBytes = 64 << 20
                let pod = Pod(configuration)
                var create = Containerd_Task_V2_CreateTaskRequest()
                create.id = "m1"
                create.bundle = bundle
                do {
                    try await pod.create(create, rootfs: .ephemeral, io: DescriptorIO(stdin: nil, stdout: out, stderr: out))
                    try await pod.start(containerID: "m1")
                    #expect(await eventually(timeout: .seconds(30)) {
                        (try? String(contentsOfFile: outPath, encoding: .utf8))?.hasPrefix("hello\nv1\n") == true
                    })
                    // The kubelet's update: a new generation, then the `..data` swap.
                    try Self.writeConfigMap(volume, generation: "2", ["greeting": "updated", "added": "new key"])
                    let exit = try await pod.wait(containerID: "m1")
                    #expect(exit.status == 0)
                    _ = try await pod.delete(containerID: "m1")
                } catch {
                    await pod.terminate()
                    throw error
                }
                let output = try String(contentsOfFile: outPath, encoding: .utf8)
                #expect(output == "hello\nv1\nupdated\nnew key", "output: \(output)")
                #expect(try String(contentsOfFile: dir + "/termination-log", encoding: .utf8) == "done: bye\n")
            }
        }
    }

    @Test("a read-write directory is refused at create, nothing left", .enabled(if: Fixture.available))
    func readWriteDirectoryIsRefused() async throws {
        try await TemporaryDirectory.with { dir in
            try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
            let bundle = try Fixture.bundle(in: dir, ["true"]) {
                $0.mounts = ($0.mounts ?? []) + [
                    RuntimeSpec.Mount(destination: "/data", type: "bind", source: dir + "/data", options: ["rbind", "rw"]),
                ]
            }
            let pod = Pod(PodConfiguration(id: "m2", stateDirectory: dir + "/pod", assets: try Fixture.assets()))
            var create = Containerd_Task_V2_CreateTaskRequest()
            create.id = "m2"
            create.bundle = bundle
            await #expect { try await pod.create(create, rootfs: .ephemeral, io: DescriptorIO(stdin: nil, stdout: nil, stderr: nil)) }
                throws: { ($0 as? QemuboxError)?.code == .unimplemented && "\($0)".contains("read-write directory") }
            #expect(await pod.vm == nil, "no VM was booted")
            let left = (try? FileManager.default.subpathsOfDirectory(atPath: dir + "/pod")) ?? []
            #expect(left.allSatisfy { $0 == "containers" }, "left behind: \(left)")
        }
    }
}
