import Foundation
import TestSupport

/// Locates the guest kernel built by `kernel-config/build.sh`.
enum GuestKernel {
    /// Where build.sh points `current` by default.
    static let defaultPath = "/var/cache/qemubox/kernel/current/vmlinux"

    /// `QEMUBOX_GUEST_KERNEL` if set, else the cached build, if the file exists.
    static var path: String? {
        let candidate = ProcessInfo.processInfo.environment["QEMUBOX_GUEST_KERNEL"] ?? defaultPath
        return FileManager.default.fileExists(atPath: candidate) ? candidate : nil
    }

    /// Whether the boot test should run: the kernel exists, or we are under CI
    /// (where the test then fails loudly: install-deps builds the kernel).
    static var available: Bool {
        if path != nil || Prerequisite.isCI { return true }
        FileHandle.standardError.write(Data(
            "SKIP: no guest kernel at $QEMUBOX_GUEST_KERNEL or \(defaultPath); run kernel-config/build.sh\n".utf8))
        return false
    }

    /// `tsc_early_khz=` for the kernel command line: microvm hangs in about half of
    /// the boots without it (see HOST-NOTES). Nil when /proc/cpuinfo has no MHz.
    static var tscEarlyKHz: Int? {
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("cpu MHz") {
            guard let value = line.split(separator: ":").last,
                  let mhz = Double(value.trimmingCharacters(in: .whitespaces)) else { continue }
            return Int(mhz * 1000)
        }
        return nil
    }
}
