import CQemuboxSupport
import Foundation
import ProcessSpawn

/// How each VM's QEMU is confined, with Firecracker's jailer as the model.
///
/// QEMU starts as root only long enough to be set up: in the launching process's
/// child, after its network namespace, TAPs and descriptors are in place, it gets
/// new mount and IPC namespaces and a root of its own (a read-only tmpfs holding
/// `/usr`, the loader's symlinks, `/dev/null`, `/dev/zero`, `/dev/urandom`, `/dev/random`
/// (`/dev/kvm` under KVM), the kernel and initrd read-only and its own RAM file, nothing
/// else: no `/etc`, `/home`, `/root`, `/proc`, `/sys`, `/run`). It then becomes a uid and
/// gid of its own (one per VM, from ``firstID``…), drops every capability (bounding and
/// ambient sets too, with libcap-ng), sets `PR_SET_NO_NEW_PRIVS` and loads a seccomp
/// allow-list (libseccomp; see `allowedSystemCalls`) before exec. QEMU adds its own
/// `-sandbox` deny-list on top once it is up. Every file QEMU works on is opened by
/// the launcher and passed in as a descriptor (disks, sockets, TAPs, migration
/// streams), so the jail needs no access to any host path.
///
/// Requires root in the launching process (the shim always is); ``standard`` is nil
/// for others, and QEMU then runs with the launcher's identity and `-sandbox` only.
public struct QEMUJail: Sendable, Hashable {
    /// First uid and gid of the range jailed QEMUs run as.
    public var firstID: UInt32
    /// How many ids the range holds (at most this many VMs at once).
    public var idCount: UInt32
    /// Lock files of the ids in use (`<id>.lock`, held with `flock` while the VM runs).
    public var lockDirectory: String
    /// What the seccomp allow-list does with a system call not on it.
    public enum SeccompMode: String, Sendable, Hashable, CaseIterable {
        /// Kill QEMU (`SIGSYS`; the VM's exit reason says so). The default.
        case enforce
        /// Allow it and have the kernel's audit log it (`dmesg`: `type=1326 … syscall=N`),
        /// to find what the list lacks without killing VMs.
        case log
        /// No filter (QEMU's own `-sandbox` still applies).
        case off
    }

    /// The seccomp mode.
    public var seccomp: SeccompMode

    /// Creates a jail configuration.
    public init(firstID: UInt32 = QEMUJail.defaultFirstID, idCount: UInt32 = 65_536,
                lockDirectory: String = "/run/qemubox/jail-ids", seccomp: SeccompMode = .enforce) {
        self.firstID = firstID
        self.idCount = idCount
        self.lockDirectory = lockDirectory
        self.seccomp = seccomp
    }

    /// The default first id: far above login users (1000…) and the usual `/etc/subuid`
    /// ranges (100000…), below the 32-bit overflow ids.
    public static let defaultFirstID: UInt32 = 1_500_000_000

    /// The jail used when none is configured: on for root, nil otherwise. The
    /// environment variable `QEMUBOX_JAIL_SECCOMP` (`enforce`, `log`, `off`) overrides its
    /// seccomp mode, for diagnosing a system call the list lacks.
    public static var standard: QEMUJail? {
        guard geteuid() == 0 else { return nil }
        return QEMUJail().overridden()
    }

    /// This jail with the seccomp mode `QEMUBOX_JAIL_SECCOMP` names, if it names one.
    public func overridden(by environment: [String: String] = ProcessInfo.processInfo.environment) -> QEMUJail {
        var jail = self
        if let mode = environment["QEMUBOX_JAIL_SECCOMP"].flatMap(SeccompMode.init(rawValue:)) { jail.seccomp = mode }
        return jail
    }

    /// Checks the range: never root, never the overflow id, no wrap.
    public func validate() throws {
        guard firstID > 0, idCount > 0, UInt64(firstID) + UInt64(idCount) <= UInt64(UInt32.max - 1) else {
            throw QemuboxError(.invalidConfiguration, "jail ids \(firstID)+\(idCount): must be above 0 and below \(UInt32.max - 1)")
        }
        guard lockDirectory.hasPrefix("/") else {
            throw QemuboxError(.invalidConfiguration, "jail lock directory \(lockDirectory) must be absolute")
        }
    }

    /// Takes a free id of the range for one VM; held until the lease is released (or the process exits).
    func allocateIdentity() throws -> JailIdentity {
        try validate()
        try VirtualMachine.makeDirectory(lockDirectory)
        let start = UInt64(UInt32(truncatingIfNeeded: getpid()) % idCount)
        for i in 0..<UInt64(idCount) {
            let id = firstID + UInt32((start + i) % UInt64(idCount))
            let path = "\(lockDirectory)/\(id).lock"
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard fd >= 0 else {
                throw QemuboxError(.system, "open \(path): \(String(cString: strerror(errno)))")
            }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return JailIdentity(id: id, lockFD: fd) }
            let err = errno
            close(fd)
            guard err == EWOULDBLOCK else {
                throw QemuboxError(.system, "flock \(path): \(String(cString: strerror(err)))")
            }
        }
        throw QemuboxError(.resourceExhausted, "all \(idCount) jail ids from \(firstID) are in use (\(lockDirectory))")
    }
}

/// One VM's uid and gid, held by a lock file until released.
final class JailIdentity: Sendable {
    let id: UInt32
    private let lockFD: Int32

    init(id: UInt32, lockFD: Int32) {
        self.id = id
        self.lockFD = lockFD
    }

    deinit { close(lockFD) }
}

