#if canImport(Glibc)
import Glibc
#endif
import CNIRunner
import EROFSImage
import Foundation
import ProcessSpawn
import QemuboxKit

extension HostCheck {
    /// The QEMU binary of the configuration, resolved on PATH.
    var qemuPath: String? { HostCommand.which(configuration.qemuBinary, environment: environment) }

    /// `kvm` (is hardware KVM usable, and why not) and `accelerator` (what VMs will use).
    func acceleratorLines() -> [CheckLine] {
        let detector = AcceleratorDetector(sysRoot: sysRoot, devRoot: devRoot)
        let probe = detector.probeKVM()
        let preference = configuration.accelerator
        var kvm: CheckLine
        if probe.usable {
            kvm = CheckLine("kvm", .ok, probe.reason)
        } else {
            let pvm = probe.reason.contains("kvm_pvm")
            let fix = pvm
                ? "for KVM speed, use a host or instance type with nested virtualization (kvm_intel/kvm_amd) "
                    + "or bare metal; nothing to do for TCG"
                : "enable virtualization (VT-x/AMD-V, nested virtualization in a VM) and modprobe kvm_intel or kvm_amd"
            switch preference {
            case .kvm:
                kvm = CheckLine("kvm", .fail, "\(probe.reason), but the configuration says accelerator = \"kvm\"",
                                fix: "set accelerator = \"auto\" to use TCG here, or " + fix)
            case .tcg:
                kvm = CheckLine("kvm", .ok, "not used (accelerator = \"tcg\"); \(probe.reason)")
            case .auto:
                kvm = CheckLine("kvm", .warn, "\(probe.reason): VMs run under TCG (software emulation, several times slower)",
                                fix: fix)
            }
        }
        var lines = [kvm]
        do {
            let facts = try HostFacts.probe(preference, detector: detector, cpuinfoPath: cpuinfoPath)
            let tsc = "tsc_early_khz=\(facts.tscKHz)"
            switch facts.accelerator.accelerator {
            case .kvm:
                lines.append(CheckLine("accelerator", .ok, "VMs use KVM (\(tsc))"))
            case .tcg:
                let accels = qemuPath.flatMap { try? HostCommand.capture($0, ["-accel", "help"]).output } ?? ""
                if accels.split(separator: "\n").contains(where: { $0.trimmingCharacters(in: .whitespaces) == "tcg" }) {
                    lines.append(CheckLine("tcg", .ok,
                        "VMs use multi-threaded TCG (-accel tcg,thread=multi; single-threaded with a vCPU hotplug ceiling; \(tsc)): \(facts.accelerator.reason)"))
                } else {
                    lines.append(CheckLine("tcg", .fail, "KVM is not usable and QEMU does not list the tcg accelerator",
                                           fix: "install Debian's qemu-system-x86 (its QEMU has TCG)"))
                }
            }
        } catch {
            lines.append(CheckLine("accelerator", .fail, Self.message(error),
                                   fix: "set accelerator = \"auto\" (or \"tcg\") in the configuration"))
        }
        return lines
    }

    /// `qemu`: the binary and its version.
    func qemuLine() -> CheckLine {
        guard let path = qemuPath else {
            return CheckLine("qemu", .fail, "\(configuration.qemuBinary) not found on PATH",
                             fix: "apt-get install qemu-system-x86, or set qemu = \"/path/to/qemu-system-x86_64\"")
        }
        let result: (status: Int32, output: String)
        do {
            result = try HostCommand.capture(path, ["--version"])
        } catch {
            return CheckLine("qemu", .fail, "\(path): \(Self.message(error))", fix: "reinstall qemu-system-x86")
        }
        let first = result.output.split(separator: "\n").first.map(String.init) ?? ""
        guard result.status == 0, let version = Self.qemuVersion(first) else {
            return CheckLine("qemu", .fail, "\(path) --version exited \(result.status): \(first)",
                             fix: "reinstall qemu-system-x86")
        }
        let described = "\(path): \(first.trimmingCharacters(in: .whitespaces))"
        if version.lexicographicallyPrecedes([7, 2]) {
            return CheckLine("qemu", .warn, described + "; qemubox is tested with QEMU 7.2",
                             fix: "upgrade to QEMU 7.2 or newer (Debian 12's qemu-system-x86)")
        }
        return CheckLine("qemu", .ok, described)
    }

    /// `[7, 2, 19]` from `QEMU emulator version 7.2.19 (Debian …)`.
    static func qemuVersion(_ line: String) -> [Int]? {
        guard let range = line.range(of: "version ") else { return nil }
        let word = line[range.upperBound...].prefix { $0.isNumber || $0 == "." }
        let parts = word.split(separator: ".").compactMap { Int($0) }
        return parts.isEmpty ? nil : parts
    }

    /// `kernel` and `guest image`, found as the shim finds them.
    func guestAssetLines() -> [CheckLine] {
        let search = configuration.assetsEnvironment(environment)
        var lines: [CheckLine] = []
        do {
            let kernel = try GuestAssets.locateKernel(environment: search)
            var detail = "\(kernel.kernelPath) (\(Units.bytes(Self.size(kernel.kernelPath))))"
            if let initrd = kernel.initrdPath { detail += ", initramfs \(initrd)" }
            lines.append(CheckLine("kernel", .ok, detail))
        } catch {
            lines.append(CheckLine("kernel", .fail, Self.message(error),
                                   fix: "run kernel-config/build.sh (scripts/install-deps.sh does), or set kernel = \"PATH\""))
        }
        do {
            let image = try GuestAssets.locateSystemImage(environment: search)
            do {
                let superblock = try EROFSReader(path: image).superblock()
                lines.append(CheckLine("guest image", .ok,
                    "\(image) (EROFS, \(superblock.inodes) inodes, \(Units.bytes(Self.size(image))))"))
            } catch {
                lines.append(CheckLine("guest image", .fail, "\(image) is not a readable EROFS image: \(error)",
                                       fix: "rebuild it with packaging/build-guest-image.sh"))
            }
        } catch {
            lines.append(CheckLine("guest image", .fail, Self.message(error),
                                   fix: "run packaging/build-guest-image.sh, or set guest_image = \"PATH\""))
        }
        return lines
    }

    /// `cgroup v2`: the unified hierarchy and its controllers.
    func cgroupLine() -> CheckLine {
        let controllers = sysRoot + "/fs/cgroup/cgroup.controllers"
        guard let text = try? String(contentsOfFile: controllers, encoding: .utf8) else {
            let hybrid = FileManager.default.fileExists(atPath: sysRoot + "/fs/cgroup/unified")
            return CheckLine("cgroup v2", .warn,
                             "\(controllers) is missing: cgroup v1\(hybrid ? " (hybrid layout)" : ""). qemubox applies a "
                                + "container's limits inside the guest and sizes the VM from them, but containerd and the "
                                + "kubelet expect the unified hierarchy",
                             fix: "boot with systemd.unified_cgroup_hierarchy=1 (the default since Debian 11)")
        }
        let names = text.split(whereSeparator: \.isWhitespace).map(String.init)
        let missing = ["cpu", "memory", "pids"].filter { !names.contains($0) }
        guard missing.isEmpty else {
            return CheckLine("cgroup v2", .warn, "unified hierarchy without the \(missing.joined(separator: ", ")) controller(s)",
                             fix: "enable them (cgroup_enable= on the kernel command line, or the parent's subtree_control)")
        }
        return CheckLine("cgroup v2", .ok, "unified hierarchy; controllers: \(names.joined(separator: " "))")
    }

    /// `cni`: the plugins the configured networks (or `ctr run --cni`'s usual bridge) need.
    func cniLine() -> CheckLine {
        let settings = configuration.network
        var needed = ["bridge", "host-local", "loopback"]
        if !settings.networks.isEmpty {
            needed = []
            for name in settings.networks {
                do {
                    let list = try CNINetworkList.load(directory: settings.configurationDirectory, name: name)
                    needed += list.plugins.map(\.type)
                } catch {
                    return CheckLine("cni", .fail, "network \(name) in \(settings.configurationDirectory): \(error)",
                                     fix: "add the conflist, or remove \(name) from [network] networks")
                }
            }
            needed = Array(Set(needed)).sorted()
        }
        var found: [String: String] = [:]
        for plugin in needed {
            found[plugin] = settings.binaryDirectories.first {
                FileManager.default.isExecutableFile(atPath: $0 + "/" + plugin)
            }
        }
        let missing = needed.filter { found[$0] == nil }
        let directories = Set(found.values).sorted().joined(separator: ", ")
        if missing.isEmpty {
            return CheckLine("cni", .ok, "\(needed.joined(separator: ", ")) in \(directories)")
        }
        let detail = "\(missing.joined(separator: ", ")) not in \(settings.binaryDirectories.joined(separator: ", "))"
        let fix = "apt-get install containernetworking-plugins, or list its directory in [network] bin_dirs"
        if settings.networks.isEmpty {
            return CheckLine("cni", .warn, detail + ": needed only for [network] networks and `ctr run --cni`", fix: fix)
        }
        return CheckLine("cni", .fail, detail + ": the configured networks cannot be attached", fix: fix)
    }

    /// `tools`: what the shim runs besides QEMU.
    func toolsLine() -> CheckLine {
        var required = ["nsenter", "ip"]
        if configuration.writableLayerMiB > 0 { required.insert("mkfs.ext4", at: 0) }
        let missing = required.filter { HostCommand.which($0, environment: environment) == nil }
        if missing.isEmpty { return CheckLine("tools", .ok, required.joined(separator: ", ") + " found") }
        return CheckLine("tools", .fail, "\(missing.joined(separator: ", ")) not found on PATH",
                         fix: "apt-get install e2fsprogs iproute2 util-linux")
    }

    /// `root`, `jail`, `user namespaces`: what the QEMU jail needs.
    func jailLines() -> [CheckLine] {
        var lines: [CheckLine] = []
        if geteuid() == 0 {
            lines.append(CheckLine("root", .ok, "running as root, as the shim does (the jail, TAPs and mounts need it)"))
        } else {
            lines.append(CheckLine("root", .fail, "not running as root: the shim must (jail, TAPs, mounts); this report is partial",
                                   fix: "run qemubox check as root"))
        }
        let settings = configuration.jail
        if !settings.enabled {
            lines.append(CheckLine("jail", .warn, "[jail] enabled = false: QEMU runs as root with every capability",
                                   fix: "remove enabled = false from [jail]"))
        } else {
            do {
                _ = try SeccompProgram.allowList(["read", "write", "exit_group"])
                var detail = "libseccomp and libcap-ng are linked and libseccomp compiles filters; QEMU runs as uids "
                    + "\(settings.firstID)…\(UInt64(settings.firstID) + UInt64(settings.idCount) - 1), no capabilities"
                detail += settings.seccomp == .off ? ", no seccomp filter" : ", seccomp = \(settings.seccomp.rawValue)"
                lines.append(CheckLine("jail", settings.seccomp == .off ? .warn : .ok, detail,
                                       fix: settings.seccomp == .off ? "set [jail] seccomp = \"enforce\"" : nil))
            } catch {
                lines.append(CheckLine("jail", .fail, "libseccomp cannot compile a filter: \(error)",
                                       fix: "apt-get install libseccomp2 libcap-ng0 (scripts/deps/jail.sh)"))
            }
        }
        lines.append(CheckLine("user namespaces", .ok,
                               "not needed: the jail is a mount namespace, its own uid and no capabilities"))
        return lines
    }

    /// `state_dir`, `cache_dir` (and `template_dir` with warm start): writable or creatable.
    func directoryLines() -> [CheckLine] {
        var directories = [("state_dir", configuration.stateDirectory), ("cache_dir", configuration.cacheDirectory)]
        if configuration.warmStart { directories.append(("template_dir", configuration.templateDirectory)) }
        return directories.map { key, path in
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else {
                    return CheckLine(key, .fail, "\(path) is not a directory", fix: "remove it or set \(key) elsewhere")
                }
                guard access(path, W_OK | X_OK) == 0 else {
                    return CheckLine(key, .fail, "\(path) is not writable", fix: "run as root, or set \(key) elsewhere")
                }
                return CheckLine(key, .ok, "\(path) is writable")
            }
            var parent = (path as NSString).deletingLastPathComponent
            while !parent.isEmpty && parent != "/" && !FileManager.default.fileExists(atPath: parent) {
                parent = (parent as NSString).deletingLastPathComponent
            }
            if parent.isEmpty { parent = "/" }
            guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
                return CheckLine(key, .fail, "\(path) cannot be created: \(parent) is not a directory",
                                 fix: "remove \(parent), or set \(key) elsewhere")
            }
            guard access(parent, W_OK | X_OK) == 0 else {
                return CheckLine(key, .fail, "\(path) does not exist and \(parent) is not writable",
                                 fix: "create \(path), or set \(key) elsewhere")
            }
            return CheckLine(key, .ok, "\(path) will be created (\(parent) is writable)")
        }
    }

    static func size(_ path: String) -> UInt64 {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_size) : 0
    }

    /// The message of a QemuboxError without its prefix; any other error as it describes itself.
    static func message(_ error: any Error) -> String {
        (error as? QemuboxError)?.message ?? "\(error)"
    }
}
