#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QemuboxKit

/// One finding of ``HostCheck``: what was looked at, whether it is fine, why, and what to do.
public struct CheckLine: Codable, Sendable, Hashable {
    /// How a finding affects qemubox on this host.
    public enum Status: String, Codable, Sendable, Hashable, CaseIterable {
        /// Works as intended.
        case ok
        /// Works, but slower or with less (e.g. TCG instead of KVM, virtio-serial instead of vsock).
        case warn
        /// Containers cannot run (or not as configured) until it is fixed.
        case fail
    }

    /// A short stable name (`kvm`, `vhost-vsock`, `qemu`, …).
    public var check: String
    /// The finding.
    public var status: Status
    /// What was found, and why it matters.
    public var detail: String
    /// What to do about it (nil when nothing needs doing).
    public var fix: String?

    /// Creates a line.
    public init(_ check: String, _ status: Status, _ detail: String, fix: String? = nil) {
        self.check = check
        self.status = status
        self.detail = detail
        self.fix = fix
    }
}

/// What this host can do for qemubox and why, as `qemubox check` reports it: the accelerator
/// (KVM, `kvm_pvm`, the TCG fallback), vhost devices, QEMU, the guest kernel and image,
/// cgroups, CNI plugins, what the QEMU jail needs and the directories qemubox writes.
///
/// Every probe only reads (the one program it runs is `qemu-system-x86_64 --version` and
/// `-accel help`); the roots are parameters so that a test can point them elsewhere.
public struct HostCheck: Sendable {
    /// The configuration to check against.
    public var configuration: QemuboxConfiguration
    /// Where the configuration came from (a path, or "defaults").
    public var configurationSource: String
    /// Why the configuration file could not be used (the defaults are checked instead).
    public var configurationError: String?
    /// The environment (`PATH`, `QEMUBOX_KERNEL`, …).
    public var environment: [String: String]
    /// Root of sysfs.
    public var sysRoot = "/sys"
    /// Root of devfs.
    public var devRoot = "/dev"
    /// /proc/cpuinfo.
    public var cpuinfoPath = "/proc/cpuinfo"

    /// Creates a check of `configuration`.
    public init(configuration: QemuboxConfiguration, configurationSource: String, configurationError: String? = nil,
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.configuration = configuration
        self.configurationSource = configurationSource
        self.configurationError = configurationError
        self.environment = environment
    }

    /// Runs every probe, in a fixed order.
    public func run() -> [CheckLine] {
        var lines: [CheckLine] = []
        lines.append(configurationLine())
        lines += acceleratorLines()
        lines.append(device("vhost-vsock", "vhost_vsock",
                            ok: "the host↔guest pipe uses AF_VSOCK",
                            missing: "the host↔guest pipe falls back to a virtio-serial port (works; slightly more latency)"))
        lines.append(device("vhost-net", "vhost_net",
                            ok: "NICs get in-kernel vhost packet processing",
                            missing: "NICs work without vhost (QEMU moves the packets: lower network throughput)"))
        lines.append(qemuLine())
        lines.append(virtiofsdLine())
        lines += guestAssetLines()
        lines.append(cgroupLine())
        lines.append(cniLine())
        lines.append(toolsLine())
        lines += jailLines()
        lines += directoryLines()
        return lines
    }

    /// Whether any line fails.
    public static func failed(_ lines: [CheckLine]) -> Bool { lines.contains { $0.status == .fail } }

    func configurationLine() -> CheckLine {
        if let configurationError {
            return CheckLine("configuration", .fail, "\(configurationError); the defaults are checked instead",
                             fix: "correct the file (keys: Documentation/configuration.md)")
        }
        return CheckLine("configuration", .ok, configurationSource)
    }

    /// virtiofsd serves read-write directory bind mounts (virtio-fs).
    func virtiofsdLine() -> CheckLine {
        let path = VirtualMachine.virtiofsdPath
        guard FileManager.default.isExecutableFile(atPath: path) else {
            return CheckLine("virtiofsd", .warn, "\(path) is missing: a container with a read-write directory bind mount fails to create",
                             fix: "apt-get install qemu-system-common")
        }
        return CheckLine("virtiofsd", .ok, "\(path): read-write directory bind mounts are shared through virtio-fs")
    }

    func device(_ name: String, _ module: String, ok: String, missing: String) -> CheckLine {
        let path = devRoot + "/" + name
        guard FileManager.default.fileExists(atPath: path) else {
            return CheckLine(name, .warn, "\(path) does not exist: \(missing)",
                             fix: "modprobe \(module) (not available inside most cloud VMs)")
        }
        guard access(path, R_OK | W_OK) == 0 else {
            return CheckLine(name, .warn, "\(path) is not read-writable: \(missing)", fix: "run the shim as root")
        }
        return CheckLine(name, .ok, "\(path): \(ok)")
    }
}
