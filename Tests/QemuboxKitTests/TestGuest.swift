import Foundation
import TestSupport
@testable import QemuboxKit

/// The guest used by VM tests: the Debian cloud kernel (from
/// `/var/cache/qemubox/cloud-kernel/current`, see scripts/deps/cloud-kernel.sh, or
/// `QEMUBOX_TEST_KERNEL`) and a busybox initrd built per test.
///
/// The initrd's /init prints `QEMUBOX-TEST-READY`, then acts on the kernel
/// command-line variable `qbtest` (`poweroff`, `panic`) or, failing that, on
/// lines typed on the console: `poweroff`, `panic`, `reboot`, `echo TEXT`, `cpus`,
/// `online N` (waits for hot-added cpuN, onlines it, prints the online mask).
enum TestGuest {
    static let ready = "QEMUBOX-TEST-READY"

    static var kernelPath: String? {
        if let k = ProcessInfo.processInfo.environment["QEMUBOX_TEST_KERNEL"] { return k }
        let boot = "/var/cache/qemubox/cloud-kernel/current/boot"
        guard let name = try? FileManager.default.contentsOfDirectory(atPath: boot)
            .first(where: { $0.hasPrefix("vmlinuz-") }) else { return nil }
        return boot + "/" + name
    }

    /// Whether VM tests can run (or must, under CI).
    static var available: Bool {
        guard Prerequisite.tools("qemu-system-x86_64", "busybox", "cpio") else { return false }
        if kernelPath != nil || Prerequisite.isCI { return true }
        FileHandle.standardError.write(Data("SKIP: no test kernel; run scripts/install-deps.sh\n".utf8))
        return false
    }

    static let initScript = #"""
    #!/bin/busybox sh
    export PATH=/bin
    /bin/busybox mount -t proc proc /proc
    /bin/busybox mount -t sysfs sys /sys
    for m in /lib/pvpanic.ko /lib/pvpanic-mmio.ko; do [ -f $m ] && /bin/busybox insmod $m 2>/dev/null; done
    echo QEMUBOX-TEST-READY
    case "$qbtest" in
      poweroff) /bin/busybox poweroff -f ;;
      panic) echo c > /proc/sysrq-trigger ;;
    esac
    while read -r cmd arg; do
      case "$cmd" in
        poweroff) /bin/busybox poweroff -f ;;
        panic) echo c > /proc/sysrq-trigger ;;
        reboot) /bin/busybox reboot -f ;;
        echo) echo "ECHO:$arg" ;;
        cpus) echo "CPUS:$(/bin/busybox cat /sys/devices/system/cpu/online)" ;;
        online)
          # ACPI CPU hotplug is asynchronous in the guest: wait for cpu$arg to appear.
          for i in $(/bin/busybox seq 1 300); do [ -e /sys/devices/system/cpu/cpu$arg/online ] && break; /bin/busybox usleep 100000; done
          echo 1 > /sys/devices/system/cpu/cpu$arg/online
          echo "ONLINE:$(/bin/busybox cat /sys/devices/system/cpu/online)" ;;
      esac
    done
    /bin/busybox sleep 100000
    """#

    /// Builds the initrd into `dir` and returns its path.
    static func buildInitrd(in dir: String) throws -> String {
        let root = dir + "/initrd-root"
        let fm = FileManager.default
        for sub in ["bin", "proc", "sys", "dev", "lib"] {
            try fm.createDirectory(atPath: root + "/" + sub, withIntermediateDirectories: true)
        }
        let busybox = Prerequisite.which("busybox") ?? "/bin/busybox"
        try fm.copyItem(atPath: busybox, toPath: root + "/bin/busybox")
        try initScript.write(toFile: root + "/init", atomically: true, encoding: .utf8)
        chmod(root + "/init", 0o755)
        // The cloud kernel has pvpanic as modules; copy them next to /init.
        if let kernel = kernelPath {
            let version = URL(fileURLWithPath: kernel).lastPathComponent.replacingOccurrences(of: "vmlinuz-", with: "")
            let base = URL(fileURLWithPath: kernel).deletingLastPathComponent().deletingLastPathComponent().path
            let mods = "\(base)/lib/modules/\(version)/kernel/drivers/misc/pvpanic"
            for m in ["pvpanic.ko", "pvpanic-mmio.ko"] where fm.fileExists(atPath: "\(mods)/\(m)") {
                try fm.copyItem(atPath: "\(mods)/\(m)", toPath: "\(root)/lib/\(m)")
            }
        }
        let out = dir + "/initrd.img"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "cd \"$1\" && find . | cpio -o -H newc --quiet > \"$2\"", "sh", root, out]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw QemuboxError(.system, "cpio failed") }
        try fm.removeItem(atPath: root)
        return out
    }

    /// A description of the test guest.
    static func machine(_ name: String, initrd: String, extraCommandLine: [String] = [],
                        configure: (inout MachineDescription) -> Void = { _ in }) -> MachineDescription {
        var m = MachineDescription(
            name: name,
            kernel: KernelBoot(kernelPath: kernelPath ?? "/missing-kernel", initrdPath: initrd,
                               commandLine: KernelBoot.defaultCommandLine + extraCommandLine),
            accelerator: .auto)
        configure(&m)
        return m
    }

    /// Readiness: the init's marker on the console.
    static let readiness: @Sendable (VirtualMachine) async throws -> Void = { vm in
        guard await vm.waitForConsole(ready, timeout: .seconds(60)) else {
            throw QemuboxError(.notReady, "no ready marker; console: \(await vm.consoleTail.suffix(2000))")
        }
    }

    /// Runs `body` with a fresh initrd and a state directory inside one temporary directory.
    static func with<T: Sendable>(_ body: @Sendable (_ initrd: String, _ dir: String) async throws -> T) async throws -> T {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with(prefix: "qemubox-vm") { dir in
                let initrd = try buildInitrd(in: dir)
                return try await body(initrd, dir)
            }
        }
    }

    /// The live child processes of this test process (pids), zombies included.
    static func children() -> [(pid: Int32, state: Character, comm: String)] {
        let me = getpid()
        var out: [(Int32, Character, String)] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[1]) == me else { continue }
            out.append((pid, fields[0].first ?? "?", String(stat[stat.index(after: open)..<close])))
        }
        return out
    }

    static func processExists(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }
}
