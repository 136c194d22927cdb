#if canImport(Glibc)
import Glibc
#endif
import CQemuboxSupport
import Foundation

/// Where a container's writable layer goes back to on the host, so that containerd's
/// snapshot (and so `ctr snapshot diff`, commits) sees the changes. The layer comes
/// back as a stream the guest sends and the host parses and applies
/// (``Sandbox/writeBack(upper:into:policy:)``, ``ChangeApplier``); the host never
/// mounts the disk the guest wrote. Entries the layer replaces by a different kind
/// of file, and the old contents of opaque directories, are removed. Two modes:
/// - ``Mode/overlayUpper``: the target is an overlay `upperdir`; whiteouts (char
///   0:0) and opaque markers (`trusted.overlay.opaque=y`) are kept as they are.
/// - ``Mode/apply``: the target is a plain directory (native snapshotter, a
///   bundle rootfs); whiteouts delete, opaque directories are emptied, and no
///   overlay marker is left behind.
public enum RootfsWriteback {
    /// How the layer is merged.
    public enum Mode: String, Sendable, Hashable, Codable {
        /// Keep overlay metadata (the target is an overlay upperdir).
        case overlayUpper = "overlay-upper"
        /// Apply the changes to a plain directory.
        case apply
    }

    /// Where a writable layer goes.
    public struct Target: Sendable, Hashable, Codable {
        /// Host directory.
        public var directory: String
        /// Merge mode.
        public var mode: Mode

        /// Creates a target.
        public init(directory: String, mode: Mode) {
            self.directory = directory
            self.mode = mode
        }
    }

    static let opaqueXattr = "trusted.overlay.opaque"
}
