import Foundation

/// What a qemubox VM boots: the guest kernel (an uncompressed PVH `vmlinux`
/// built from `kernel-config/`) and the read-only guest system image (EROFS with
/// the static `vminitd` and crun, built by `packaging/build-guest-image.sh`).
public struct GuestAssets: Sendable, Hashable {
    /// The guest kernel.
    public var kernelPath: String
    /// The guest system image, attached read-only as the first disk.
    public var systemImagePath: String

    /// The disk serial of the system image (the guest mounts it as `/`).
    public static let systemDiskID = "qemubox-system"

    /// Creates assets from explicit paths.
    public init(kernelPath: String, systemImagePath: String) {
        self.kernelPath = kernelPath
        self.systemImagePath = systemImagePath
    }

    /// Kernel locations tried in order when none is configured.
    public static let defaultKernelPaths = [
        "/usr/share/qemubox/vmlinux",
        "/var/cache/qemubox/kernel/current/vmlinux",
    ]
    /// System image locations tried in order when none is configured.
    public static let defaultSystemImagePaths = [
        "/usr/share/qemubox/qemubox-guest.erofs",
        "/var/cache/qemubox/guest/qemubox-guest.erofs",
    ]

    /// Finds the assets: `QEMUBOX_KERNEL` / `QEMUBOX_GUEST_IMAGE` from the
    /// environment when set, else the first existing default path.
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> GuestAssets {
        func find(_ variable: String, _ defaults: [String], _ what: String, _ hint: String) throws -> String {
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
        return GuestAssets(
            kernelPath: try find("QEMUBOX_KERNEL", defaultKernelPaths, "guest kernel", "run kernel-config/build.sh"),
            systemImagePath: try find("QEMUBOX_GUEST_IMAGE", defaultSystemImagePaths, "guest system image",
                                      "run packaging/build-guest-image.sh"))
    }

    /// The kernel command line that boots the system image with vminitd as PID 1.
    public static func commandLine(debug: Bool = false) -> [String] {
        KernelBoot.defaultCommandLine + ["root=/dev/vda", "rootfstype=erofs", "ro", "init=/sbin/vminitd"]
            + (debug ? ["qemubox.debug=1"] : [])
    }
}
