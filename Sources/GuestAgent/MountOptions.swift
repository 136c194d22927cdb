#if canImport(Glibc)
import Glibc
#endif

/// containerd-style mount options split into `mount(2)` flags and filesystem data.
public struct MountOptions: Sendable, Hashable {
    /// `MS_*` flags.
    public var flags: UInt
    /// Comma-joined filesystem-specific options (`lowerdir=…`, `size=…`).
    public var data: String
    /// Whether the mount is a bind (`bind` or `rbind`).
    public var isBind: Bool { flags & UInt(MS_BIND) != 0 }

    /// Parses options; unknown words go to ``data`` unchanged.
    public static func parse(_ options: [String]) -> MountOptions {
        var flags: UInt = 0
        var data: [String] = []
        for option in options {
            switch option {
            case "ro": flags |= UInt(MS_RDONLY)
            case "rw": flags &= ~UInt(MS_RDONLY)
            case "nosuid": flags |= UInt(MS_NOSUID)
            case "suid": flags &= ~UInt(MS_NOSUID)
            case "nodev": flags |= UInt(MS_NODEV)
            case "dev": flags &= ~UInt(MS_NODEV)
            case "noexec": flags |= UInt(MS_NOEXEC)
            case "exec": flags &= ~UInt(MS_NOEXEC)
            case "sync": flags |= UInt(MS_SYNCHRONOUS)
            case "async": flags &= ~UInt(MS_SYNCHRONOUS)
            case "dirsync": flags |= UInt(MS_DIRSYNC)
            case "remount": flags |= UInt(MS_REMOUNT)
            case "bind": flags |= UInt(MS_BIND)
            case "rbind": flags |= UInt(MS_BIND) | UInt(MS_REC)
            case "noatime": flags |= UInt(MS_NOATIME)
            case "atime": flags &= ~UInt(MS_NOATIME)
            case "nodiratime": flags |= UInt(MS_NODIRATIME)
            case "relatime": flags |= UInt(MS_RELATIME)
            case "norelatime": flags &= ~UInt(MS_RELATIME)
            case "strictatime": flags |= UInt(MS_STRICTATIME)
            case "defaults", "": break
            default: data.append(option)
            }
        }
        return MountOptions(flags: flags, data: data.joined(separator: ","))
    }
}
