import Foundation

/// What a qemubox VM boots: the guest kernel (an uncompressed PVH `vmlinux`
/// built from `kernel-config/`) and the read-only guest system image (EROFS with
/// the static `vminitd` and crun, built by `packaging/build-guest-image.sh`).
public struct GuestAssets: Sendable, Hashable {
    /// The guest kernel.
    public var kernelPath: String
    /// The guest system image, attached read-only as the first disk.
    public var systemImagePath: String
    /// An initramfs to boot through (the Debian cloud kernel's, which loads the
    /// virtio/erofs/overlay modules and switch_roots into the system image);
    /// nil for the project's kernel, which needs none.
    public var initrdPath: String?

    /// The disk serial of the system image (the guest mounts it as `/`).
    public static let systemDiskID = "qemubox-system"

    /// Creates assets from explicit paths.
    public init(kernelPath: String, systemImagePath: String, initrdPath: String? = nil) {
        self.kernelPath = kernelPath
        self.systemImagePath = systemImagePath
        self.initrdPath = initrdPath
    }

    /// Where scripts/deps/cloud-kernel.sh unpacks the Debian cloud kernel.
    public static let cloudKernelDirectory = "/var/cache/qemubox/cloud-kernel/current"
    /// Initramfs locations tried for the cloud kernel (packaging/build-cloud-initrd.sh).
    public static let defaultCloudInitrdPaths = [
        "/usr/share/qemubox/qemubox-cloud-initrd.cpio",
        "/var/cache/qemubox/guest/qemubox-cloud-initrd.cpio",
    ]

    /// Kernel locations tried in order when none is configured: an installed release's own
    /// (``installedAssetDirectory``), the package's, the build cache's.
    public static var defaultKernelPaths: [String] {
        installed("vmlinux") + ["/usr/share/qemubox/vmlinux", "/var/cache/qemubox/kernel/current/vmlinux"]
    }
    /// System image locations tried in order when none is configured.
    public static var defaultSystemImagePaths: [String] {
        installed("qemubox-guest.erofs")
            + ["/usr/share/qemubox/qemubox-guest.erofs", "/var/cache/qemubox/guest/qemubox-guest.erofs"]
    }

    /// `PREFIX/share/qemubox` of the running program when it runs from `PREFIX/bin`: where a
    /// release installed under any prefix (`install.sh --prefix`) keeps the kernel and image
    /// it was built with. nil for a program elsewhere (a build directory).
    public static let installedAssetDirectory: String? = {
        guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else {
            return nil
        }
        let bin = (executable as NSString).deletingLastPathComponent
        guard (bin as NSString).lastPathComponent == "bin" else { return nil }
        return (bin as NSString).deletingLastPathComponent + "/share/qemubox"
    }()

    private static func installed(_ name: String) -> [String] {
        guard let directory = installedAssetDirectory, directory != "/usr/share/qemubox" else { return [] }
        return [directory + "/" + name]
    }

    /// Finds the assets: `QEMUBOX_KERNEL` / `QEMUBOX_GUEST_IMAGE` from the
    /// environment when set, else the first existing default path. With
    /// `QEMUBOX_KERNEL_FLAVOR=cloud` the Debian cloud kernel boots through its
    /// initramfs (`QEMUBOX_INITRD`, else the default paths) instead.
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> GuestAssets {
        let image = try locateSystemImage(environment: environment)
        let kernel = try locateKernel(environment: environment)
        return GuestAssets(kernelPath: kernel.kernelPath, systemImagePath: image, initrdPath: kernel.initrdPath)
    }

    /// The guest system image alone, as ``locate(environment:)`` finds it (for reports that
    /// name each missing piece, such as `qemubox check`).
    public static func locateSystemImage(environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> String
    {
        try find("QEMUBOX_GUEST_IMAGE", defaultSystemImagePaths, "guest system image",
                 "run packaging/build-guest-image.sh", environment)
    }

    /// The guest kernel (and the initramfs the cloud flavour needs) alone, as
    /// ``locate(environment:)`` finds it.
    public static func locateKernel(environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> (kernelPath: String, initrdPath: String?)
    {
        switch environment["QEMUBOX_KERNEL_FLAVOR"] ?? "qemubox" {
        case "qemubox", "":
            return (try find("QEMUBOX_KERNEL", defaultKernelPaths, "guest kernel", "run kernel-config/build.sh",
                             environment), nil)
        case "cloud":
            let boot = cloudKernelDirectory + "/boot"
            let vmlinuz = (try? FileManager.default.contentsOfDirectory(atPath: boot))?
                .filter { $0.hasPrefix("vmlinuz-") }.sorted().last.map { boot + "/" + $0 }
            return (try find("QEMUBOX_KERNEL", vmlinuz.map { [$0] } ?? [], "Debian cloud kernel",
                             "run scripts/install-deps.sh", environment),
                    try find("QEMUBOX_INITRD", defaultCloudInitrdPaths, "cloud-kernel initramfs",
                             "run packaging/build-cloud-initrd.sh", environment))
        case let other:
            throw QemuboxError(.guestAssetsMissing, "QEMUBOX_KERNEL_FLAVOR=\(other): expected qemubox or cloud")
        }
    }

    /// `variable` from the environment when set (it must be readable), else the first readable default.
    private static func find(_ variable: String, _ defaults: [String], _ what: String, _ hint: String,
                             _ environment: [String: String]) throws -> String {
        if let path = environment[variable], !path.isEmpty {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw QemuboxError(.guestAssetsMissing, "\(variable)=\(path): no readable \(what) there")
            }
            return path
        }
        if let path = defaults.first(where: { FileManager.default.isReadableFile(atPath: $0) }) { return path }
        throw QemuboxError(.guestAssetsMissing,
            "no \(what) found (looked at \(defaults.joined(separator: ", ")); set \(variable) or \(hint))")
    }

    /// The kernel command line that boots the system image with vminitd as PID 1.
    public static func commandLine(debug: Bool = false) -> [String] {
        KernelBoot.defaultCommandLine + ["root=/dev/vda", "rootfstype=erofs", "ro", "init=/sbin/vminitd"]
            + (debug ? ["qemubox.debug=1"] : [])
    }
}
