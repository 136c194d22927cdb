import Foundation

/// The qemubox guest system image the VM tests boot.
public enum GuestImage {
    /// This clone's build of it (packaging/build-guest-image.sh).
    public static let builtPath = GoPeer.repositoryRoot + "/.build-guest/qemubox-guest.erofs"

    /// `base` with `QEMUBOX_GUEST_IMAGE` pointing at this clone's build when it is
    /// unset and the build exists (what QemuboxKit's `GuestAssets.locate` reads).
    public static func environment(_ base: [String: String] = ProcessInfo.processInfo.environment) -> [String: String] {
        var environment = base
        if environment["QEMUBOX_GUEST_IMAGE"] == nil, FileManager.default.isReadableFile(atPath: builtPath) {
            environment["QEMUBOX_GUEST_IMAGE"] = builtPath
        }
        return environment
    }
}
