#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers

/// Allocates vsock guest CIDs without collisions across concurrent shims, with
/// one lock file per CID (`<directory>/<cid>.lock`) held by `flock`.
///
/// A CID is in use exactly while some process holds its lock; the kernel drops
/// the lock when that process exits, so a crashed shim's CIDs become free again
/// without any cleanup. Lock files themselves are left in place (reused).
public struct GuestCIDAllocator: Sendable {
    /// Where the lock files live (created if missing).
    public var directory: String
    /// The CIDs handed out (0–2 are reserved by vsock; `UInt32.max` is "any").
    public var range: ClosedRange<UInt32>

    /// An allocator over `range` with lock files in `directory`.
    public init(directory: String = "/run/qemubox/vsock-cids", range: ClosedRange<UInt32> = 3...65_535) {
        self.directory = directory
        self.range = max(3, range.lowerBound)...min(UInt32.max - 1, range.upperBound)
    }

    /// Takes the first free CID, starting at `preferred` (or a per-process
    /// offset, to spread concurrent shims) and wrapping around.
    public func allocate(preferred: UInt32? = nil) throws -> GuestCIDLease {
        try makeDirectory()
        let count = UInt64(range.upperBound - range.lowerBound) + 1
        let start: UInt64
        if let preferred, range.contains(preferred) {
            start = UInt64(preferred - range.lowerBound)
        } else {
            start = UInt64(getpid()) % count
        }
        for i in 0..<count {
            let cid = range.lowerBound + UInt32((start + i) % count)
            if let lease = try tryLock(cid) { return lease }
        }
        throw VsockTransportError(.cidExhausted, "all \(count) CIDs in \(range) are locked in \(directory)")
    }

    /// Locks `cid` if it is free; nil if another holder has it.
    public func tryLock(_ cid: UInt32) throws -> GuestCIDLease? {
        let path = "\(directory)/\(cid).lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw VsockTransportError(.ioError, "open \(path): \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return GuestCIDLease(cid: cid, fd: fd) }
        let err = errno
        close(fd)
        if err == EWOULDBLOCK { return nil }
        throw VsockTransportError(.ioError, "flock \(path): \(String(cString: strerror(err)))")
    }

    private func makeDirectory() throws {
        var path = ""
        for part in directory.split(separator: "/") {
            path += "/" + part
            if mkdir(path, 0o755) != 0, errno != EEXIST {
                throw VsockTransportError(.ioError, "mkdir \(path): \(String(cString: strerror(errno)))")
            }
        }
    }
}

/// A CID held for one VM. Release it when the VM is gone (or let the process
/// exit); dropping the lease releases it too.
public final class GuestCIDLease: @unchecked Sendable {
    /// The allocated guest CID (QEMU's `vhost-vsock-device,guest-cid=`).
    public let cid: UInt32
    private var fd: CInt
    private let lock = NIOLock()

    init(cid: UInt32, fd: CInt) {
        self.cid = cid
        self.fd = fd
    }

    /// Frees the CID. Idempotent.
    public func release() {
        lock.withLock {
            if fd >= 0 {
                // Unlock explicitly: a child forked meanwhile (before its exec closes
                // the O_CLOEXEC copy) shares this open file description, and a bare
                // close would leave the CID locked until that child execs or exits.
                flock(fd, LOCK_UN)
                close(fd)
                fd = -1
            }
        }
    }

    deinit { release() }
}
