import Foundation
import QemuboxKit
@testable import QemuboxOperator
import TestSupport
import Testing

/// `qemubox check` on this host, read back in its JSON form and compared with what the
/// host really has.
@Suite struct CheckTests {
    struct Report: Decodable {
        var lines: [CheckLine]
        var summary: [String: Int]
    }

    static func line(_ report: Report, _ name: String) -> CheckLine? { report.lines.first { $0.check == name } }

    @Test(.enabled(if: QemuboxBinary.available))
    func reportsThisHost() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-check") { dir in
            // An empty configuration: the defaults, from a file that exists.
            let config = try QemuboxBinary.configuration(in: dir, "")
            let result = try await QemuboxBinary.run(["check", "--config", config, "--format", "json"])
            let report = try QemuboxBinary.decode(Report.self, result.stdout)
            let names = report.lines.map(\.check)
            for expected in ["configuration", "kvm", "vhost-vsock", "vhost-net", "qemu", "virtiofsd", "kernel", "guest image",
                             "cgroup v2", "cni", "tools", "root", "jail", "user namespaces", "state_dir", "cache_dir"] {
                #expect(names.contains(expected), "no \(expected) line in \(names)")
            }
            // Exit status 1 exactly when a line fails, and the summary counts the lines.
            let failing = report.lines.filter { $0.status == .fail }
            #expect(result.status == (failing.isEmpty ? 0 : 1), "\(result.stderr)")
            #expect(report.summary["fail"] == failing.count)
            #expect(report.summary.values.reduce(0, +) == report.lines.count)
            // Every warn or fail says what to do.
            for line in report.lines where line.status != .ok {
                #expect(line.fix?.isEmpty == false, "\(line.check) has no fix")
            }
            #expect(Self.line(report, "configuration")?.status == .ok)
            #expect(Self.line(report, "configuration")?.detail == config)

            // The accelerator lines agree with QemuboxKit's detection.
            let kvm = AcceleratorDetector().probeKVM()
            #expect(Self.line(report, "kvm")?.status == (kvm.usable ? .ok : .warn))
            #expect(Self.line(report, "kvm")?.detail.hasPrefix(kvm.reason) == true)
            if !kvm.usable {
                // TCG is what VMs use then (this project's machines: /dev/kvm backed only by kvm_pvm).
                #expect(Self.line(report, "tcg")?.status == .ok, "\(report.lines)")
            }
            // Devices as the file system has them.
            for device in ["vhost-vsock", "vhost-net"] {
                let present = FileManager.default.fileExists(atPath: "/dev/" + device)
                #expect(Self.line(report, device)?.status == (present ? .ok : .warn))
            }
            // QEMU's version as QEMU prints it.
            if let qemu = Prerequisite.which("qemu-system-x86_64") {
                let version = try await QemuboxBinary.runShell("\(qemu) --version | head -1")
                #expect(Self.line(report, "qemu")?.detail.contains(version.trimmingCharacters(in: .whitespacesAndNewlines)) == true)
            } else {
                #expect(Self.line(report, "qemu")?.status == .fail)
            }
            // The guest assets as the shim would find them.
            let kernel = try? GuestAssets.locateKernel()
            #expect((Self.line(report, "kernel")?.status == .ok) == (kernel != nil))
            if let kernel { #expect(Self.line(report, "kernel")?.detail.hasPrefix(kernel.kernelPath) == true) }
            let image = try? GuestAssets.locateSystemImage()
            #expect((Self.line(report, "guest image")?.status == .ok) == (image != nil))
            if let image { #expect(Self.line(report, "guest image")?.detail.hasPrefix(image) == true) }
            let v2 = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers")
            #expect(Self.line(report, "cgroup v2")?.status == (v2 ? .ok : .warn))
            #expect(Self.line(report, "root")?.status == (geteuid() == 0 ? .ok : .fail))

            // The human table has the same lines.
            let table = try await QemuboxBinary.run(["--config", config, "check"])
            #expect(table.status == result.status)
            for line in report.lines {
                #expect(table.stdout.contains(line.detail), "\(line.check) missing from the table")
            }
        }
    }

    /// A configuration that cannot work here fails the matching lines, and check exits 1.
    @Test(.enabled(if: QemuboxBinary.available))
    func failingLinesExitOne() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-check") { dir in
            let config = try QemuboxBinary.configuration(in: dir, """
                qemu = "\(dir)/no-such-qemu"
                state_dir = "\(dir)/file/state"
                [network]
                networks = ["missing-net"]
                conf_dir = "\(dir)"
                """)
            _ = FileManager.default.createFile(atPath: dir + "/file", contents: Data())
            let result = try await QemuboxBinary.run(["check", "--config", config, "--format", "json"])
            #expect(result.status == 1)
            #expect(result.stderr.contains("check_failed"), "\(result.stderr)")
            let report = try QemuboxBinary.decode(Report.self, result.stdout)
            #expect(Self.line(report, "qemu")?.status == .fail)
            #expect(Self.line(report, "qemu")?.detail.contains("no-such-qemu") == true)
            #expect(Self.line(report, "cni")?.status == .fail)
            #expect(Self.line(report, "cni")?.detail.contains("missing-net") == true)
            if geteuid() == 0 {
                // Root can write anywhere, but not below a regular file.
                #expect(Self.line(report, "state_dir")?.status == .fail, "\(report.lines)")
            }

            // An invalid file is a failing line of its own; the defaults are checked instead.
            let broken = try QemuboxBinary.configuration(in: dir, "vcpus = 0\n")
            let invalid = try await QemuboxBinary.run(["check", "--config", broken, "--format", "json"])
            #expect(invalid.status == 1)
            let lines = try QemuboxBinary.decode(Report.self, invalid.stdout)
            #expect(Self.line(lines, "configuration")?.status == .fail)
            #expect(Self.line(lines, "configuration")?.detail.contains("vcpus = 0 is out of range") == true)

            // Other commands refuse an invalid or missing named file (exit 1, stable code).
            let ps = try await QemuboxBinary.run(["ps", "--config", broken])
            #expect(ps.status == 1)
            #expect(ps.stderr.contains("invalid_configuration"), "\(ps.stderr)")
            let missing = try await QemuboxBinary.run(["ps", "--config", dir + "/nope.toml"])
            #expect(missing.status == 1)
        }
    }

    /// Usage errors exit 2, help exits 0, as ctr's and nerdctl's do.
    @Test(.enabled(if: QemuboxBinary.available))
    func exitCodes() async throws {
        let help = try await QemuboxBinary.run(["--help"])
        #expect(help.status == 0)
        for command in ["check", "ps", "console", "logs", "cache", "templates", "convert", "inspect"] {
            #expect(help.stdout.contains(command))
            #expect(try await QemuboxBinary.run([command, "--help"]).status == 0)
        }
        #expect(try await QemuboxBinary.run(["frobnicate"]).status == 2)
        #expect(try await QemuboxBinary.run(["console"]).status == 2)
        #expect(try await QemuboxBinary.run(["cache", "prune", "--max-size", "lots"]).status == 2)
        #expect(try await QemuboxBinary.run(["ps", "--format", "yaml"]).status == 2)
        #expect(try await QemuboxBinary.run(["convert", "/nonexistent", "/tmp/x.erofs", "--compression", "zip"]).status == 2)
        let version = try await QemuboxBinary.run(["--version"])
        #expect(version.status == 0 && !version.stdout.isEmpty)
    }
}
