import Foundation

/// Which accelerator a machine asks for.
public enum AcceleratorPreference: String, Sendable, Hashable, CaseIterable {
    /// KVM when it can run a standard guest, TCG otherwise.
    case auto
    /// KVM or fail.
    case kvm
    /// Software emulation (multi-threaded TCG).
    case tcg
}

/// The accelerator a machine will use.
public enum Accelerator: String, Sendable, Hashable {
    case kvm
    case tcg
}

/// The outcome of accelerator detection: the choice and why.
public struct AcceleratorDecision: Sendable, Hashable {
    /// The accelerator to use.
    public var accelerator: Accelerator
    /// Why (for logs and errors).
    public var reason: String

    /// Creates a decision.
    public init(_ accelerator: Accelerator, reason: String) {
        self.accelerator = accelerator
        self.reason = reason
    }
}

/// Decides whether KVM can really run a standard guest on this host.
///
/// `/dev/kvm` alone proves nothing: on nested clouds it may be backed only by
/// `kvm_pvm`, a paravirtual KVM under which a standard kernel hangs in early boot.
/// KVM counts as usable when `/dev/kvm` exists and is read-writable and a hardware
/// KVM module (`kvm_intel` or `kvm_amd`) is present in `/sys/module`. The roots are
/// parameters so that tests can point them at fake trees.
public struct AcceleratorDetector: Sendable {
    /// Root of sysfs (`/sys`).
    public var sysRoot: String
    /// Root of devfs (`/dev`).
    public var devRoot: String

    /// Creates a detector reading the given roots.
    public init(sysRoot: String = "/sys", devRoot: String = "/dev") {
        self.sysRoot = sysRoot
        self.devRoot = devRoot
    }

    /// Whether hardware KVM is usable, with the reason.
    public func probeKVM() -> (usable: Bool, reason: String) {
        let fm = FileManager.default
        let dev = devRoot + "/kvm"
        guard fm.fileExists(atPath: dev) else { return (false, "\(dev) does not exist") }
        guard access(dev, R_OK | W_OK) == 0 else { return (false, "\(dev) is not read-writable") }
        let modules = sysRoot + "/module"
        let hw = ["kvm_intel", "kvm_amd"].filter { fm.fileExists(atPath: modules + "/" + $0) }
        if !hw.isEmpty {
            return (true, "\(dev) backed by \(hw.joined(separator: ","))")
        }
        if fm.fileExists(atPath: modules + "/kvm_pvm") {
            return (false, "\(dev) is backed only by kvm_pvm, which cannot run a standard guest kernel")
        }
        return (false, "\(dev) exists but neither kvm_intel nor kvm_amd is loaded")
    }

    /// Resolves a preference into a decision. `.kvm` throws when KVM is not usable.
    public func decide(_ preference: AcceleratorPreference) throws -> AcceleratorDecision {
        switch preference {
        case .tcg:
            return AcceleratorDecision(.tcg, reason: "tcg requested")
        case .kvm:
            let probe = probeKVM()
            guard probe.usable else { throw QemuboxError(.acceleratorUnavailable, "kvm requested: \(probe.reason)") }
            return AcceleratorDecision(.kvm, reason: probe.reason)
        case .auto:
            let probe = probeKVM()
            return probe.usable ? AcceleratorDecision(.kvm, reason: probe.reason)
                                : AcceleratorDecision(.tcg, reason: probe.reason)
        }
    }
}

/// Facts about the host that the command line depends on.
public struct HostFacts: Sendable, Hashable {
    /// The accelerator decision.
    public var accelerator: AcceleratorDecision
    /// CPU frequency in kHz for `tsc_early_khz=` (microvm hangs in about half the boots without it).
    public var tscKHz: Int

    /// Creates host facts.
    public init(accelerator: AcceleratorDecision, tscKHz: Int) {
        self.accelerator = accelerator
        self.tscKHz = tscKHz
    }

    /// Reads the facts of this host for a preference.
    public static func probe(_ preference: AcceleratorPreference,
                             detector: AcceleratorDetector = AcceleratorDetector(),
                             cpuinfoPath: String = "/proc/cpuinfo") throws -> HostFacts {
        let decision = try detector.decide(preference)
        let text = (try? String(contentsOfFile: cpuinfoPath, encoding: .utf8)) ?? ""
        guard let khz = cpuKHz(fromCPUInfo: text) else {
            throw QemuboxError(.system, "no 'cpu MHz' line in \(cpuinfoPath)")
        }
        return HostFacts(accelerator: decision, tscKHz: khz)
    }

    /// Parses the first `cpu MHz : 2445.426` line of /proc/cpuinfo into kHz.
    public static func cpuKHz(fromCPUInfo text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix("cpu MHz") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if let mhz = Double(value), mhz > 0 { return Int((mhz * 1000).rounded()) }
        }
        return nil
    }
}
