import Foundation
import OCISpec
import QemuboxKit
import Testing
import TestSupport

/// OCI bundles run end to end in real VMs (TCG): exit codes, stdio, process
/// settings, limits and the rootfs layers.
@Suite("bundles in VMs", .serialized)
struct BundleRunTests {
    @Test("exit code, stdout and stderr kept apart", .enabled(if: Fixture.available))
    func exitCodeAndStreams() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let bundle = try Fixture.bundle(in: dir, ["sh", "-c", "echo out-1; echo err-1 >&2; echo out-2; exit 3"])
                let output = try await Fixture.run(bundle, in: dir)
                #expect(output.status == 3)
                #expect(output.stdoutText == "out-1\nout-2\n")
                #expect(output.stderrText == "err-1\n")
                #expect(output.events.contains("/tasks/exit"))
            }
        }
    }

    @Test("50 MiB of output arrive byte-exact, written through the writable layer", .enabled(if: Fixture.available))
    func largeOutput() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let bundle = try Fixture.bundle(in: dir, ["sh", "-c",
                    "head -c 52428800 /dev/urandom > /tmp/blob && sha256sum /tmp/blob >&2 && cat /tmp/blob"])
                let output = try await Fixture.run(bundle, in: dir)
                #expect(output.status == 0)
                #expect(output.stdout.count == 50 << 20)
                let digest = try Fixture.sha256(file: dir + "/stdout")
                #expect(output.stderrText.hasPrefix(digest + "  /tmp/blob"), "guest: \(output.stderrText)")
            }
        }
    }

    @Test("stdin is streamed in until EOF", .enabled(if: Fixture.available))
    func stdinToEOF() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let input = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) })
                let bundle = try Fixture.bundle(in: dir, ["sh", "-c", "wc -c; echo done >&2"])
                let output = try await Fixture.run(bundle, in: dir, stdin: input)
                #expect(output.status == 0)
                #expect(output.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "\(input.count)")
                #expect(output.stderrText == "done\n")
            }
        }
    }

    @Test("args, env, cwd, uid and gid come from config.json", .enabled(if: Fixture.available))
    func processSettings() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let bundle = try Fixture.bundle(in: dir, ["sh", "-c", "echo \"$GREETING\"; pwd; id -u; id -g; hostname"]) {
                    $0.process?.env = ["PATH=/bin", "GREETING=hello guest"]
                    $0.process?.cwd = "/home"
                    $0.process?.user = .init(uid: 1000, gid: 1000)
                }
                let output = try await Fixture.run(bundle, in: dir)
                #expect(output.status == 0, "stderr: \(output.stderrText)")
                #expect(output.stdoutText == "hello guest\n/home\n1000\n1000\nqemubox\n")
            }
        }
    }

    @Test("a read-only rootfs refuses writes; a writable one keeps them in the writable layer",
          .enabled(if: Fixture.available))
    func rootfsLayers() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let readOnly = try Fixture.bundle(in: dir, name: "ro", ["sh", "-c", "echo x > /newfile"]) {
                    $0.root?.readonly = true
                }
                let refused = try await Fixture.run(readOnly, in: dir)
                #expect(refused.status != 0)
                #expect(refused.stderrText.contains("Read-only file system"), "stderr: \(refused.stderrText)")

                let writable = try Fixture.bundle(in: dir, name: "rw", ["sh", "-c",
                    "echo kept > /newfile && rm /bin/yes && cat /newfile && grep ' / ' /proc/mounts && ls /bin/yes"])
                let kept = try await Fixture.run(writable, in: dir)
                #expect(kept.status == 1, "ls of the deleted file fails")
                #expect(kept.stdoutText.hasPrefix("kept\noverlay / overlay"), "stdout: \(kept.stdoutText)")
                // The host's rootfs is untouched: the image is a copy, writes went to the layer.
                #expect(FileManager.default.fileExists(atPath: writable + "/rootfs/bin/yes"))
                #expect(!FileManager.default.fileExists(atPath: writable + "/rootfs/newfile"))
            }
        }
    }

    @Test("a seccomp profile denies a syscall with the profile's errno", .enabled(if: Fixture.available))
    func seccompDenies() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let bundle = try Fixture.bundle(in: dir, ["sh", "-c", "mkdir /tmp/d 2>&1 && echo made; echo rc=$?"]) {
                    $0.linux?.seccomp = .init(defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86_64"],
                                              syscalls: [.init(names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO",
                                                               errnoRet: 1)])
                }
                let output = try await Fixture.run(bundle, in: dir)
                #expect(!output.stdoutText.contains("made"))
                #expect(output.stdoutText.contains("Operation not permitted"), "stdout: \(output.stdoutText)")
                #expect(output.stdoutText.hasSuffix("rc=1\n"), "stdout: \(output.stdoutText)")
            }
        }
    }

    @Test("a pids limit stops a fork loop", .enabled(if: Fixture.available))
    func pidsLimit() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                // With a cgroup namespace /sys/fs/cgroup is the container's own cgroup.
                // ash gives up on the first fork that fails.
                let bundle = try Fixture.bundle(in: dir, ["sh", "-c",
                    "cat /sys/fs/cgroup/pids.max; i=0; while [ $i -lt 12 ]; do sleep 30 & i=$((i+1)); done; echo unreachable"]) {
                    $0.setNamespace(.cgroup)
                    var resources = $0.linux?.resources ?? .init()
                    resources.pids = .init(limit: 6)
                    $0.linux?.resources = resources
                }
                let output = try await Fixture.run(bundle, in: dir)
                #expect(output.status != 0)
                #expect(output.stdoutText == "6\n", "stdout: \(output.stdoutText)")
                #expect(output.stderrText.contains("can't fork"), "stderr: \(output.stderrText)")
            }
        }
    }
}
