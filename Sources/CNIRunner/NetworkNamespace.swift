import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Persistent named network namespaces, like `ip netns add/del`: a file in `/run/netns`
/// with the namespace bind-mounted on it.
///
/// ``create(name:)`` and ``remove(path:)`` are a handful of system calls (no child process);
/// they block their caller only for that long.
public struct NetworkNamespace: Sendable, Hashable {
    /// Where named namespaces live (`ip netns` uses the same directory).
    public static let directory = "/run/netns"

    /// The namespace's path (`/run/netns/NAME`), usable as `CNI_NETNS` or `nsenter --net=`.
    public let path: String

    /// Wraps an existing namespace path (not checked; see ``exists(path:)``).
    public init(path: String) { self.path = path }

    /// The namespace's name (the last path component).
    public var name: String { (path as NSString).lastPathComponent }

    /// Creates a new network namespace at `/run/netns/NAME`, or with `pinning`, gives the
    /// existing namespace at that path (`/proc/PID/ns/net` of a process that made one of its
    /// own) the name: the file keeps it alive after that process ends. Throws
    /// ``CNIError/Code/namespace`` if the name is invalid, already exists, or the namespace
    /// cannot be made or named.
    public static func create(name: String, pinning source: String? = nil) throws -> NetworkNamespace {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.contains("\0"), name.utf8.count <= 255 else {
            throw CNIError(.namespace, "invalid network namespace name \"\(name.prefix(80))\"")
        }
        try prepareDirectory()
        let path = directory + "/" + name
        let fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0)
        guard fd >= 0 else {
            let reason = errno == EEXIST ? "it already exists" : String(cString: strerror(errno))
            throw CNIError(.namespace, "cannot create network namespace \(path): \(reason)")
        }
        close(fd)
        if let source {
            guard exists(path: source), let mount = LinuxCalls.mount else {
                unlink(path)
                throw CNIError(.namespace, "cannot name network namespace \(source) \(path): it is not a network namespace")
            }
            guard mount(source, path, "none", LinuxCalls.MS_BIND, nil) == 0 else {
                let reason = String(cString: strerror(errno))
                unlink(path)
                throw CNIError(.namespace, "cannot name network namespace \(source) \(path): bind mount: \(reason)")
            }
            return NetworkNamespace(path: path)
        }
        // unshare(CLONE_NEWNET) changes only the calling thread: do it on a thread that ends
        // right after bind-mounting its new namespace onto the file.
        let outcome = ThreadOutcome()
        let thread = Thread {
            outcome.finish(unshareAndMount(onto: path))
        }
        thread.start()
        if let failure = outcome.wait() {
            unlink(path)
            throw CNIError(.namespace, "cannot create network namespace \(path): \(failure)")
        }
        return NetworkNamespace(path: path)
    }

    /// Unmounts and removes a namespace file. Missing (or already unmounted) is fine.
    public static func remove(path: String) throws {
        if let umount2 = LinuxCalls.umount2, umount2(path, LinuxCalls.MNT_DETACH) != 0,
           errno != EINVAL, errno != ENOENT {
            throw CNIError(.namespace, "cannot unmount network namespace \(path): \(String(cString: strerror(errno)))")
        }
        if unlink(path) != 0, errno != ENOENT {
            throw CNIError(.namespace, "cannot remove network namespace \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Removes this namespace (see ``remove(path:)``).
    public func remove() throws { try Self.remove(path: path) }

    /// Whether `path` is a network namespace file (an nsfs mount such as `/run/netns/NAME`
    /// or `/proc/PID/ns/net`).
    public static func exists(path: String) -> Bool {
        // A namespace file is on nsfs: the same device as this thread's own namespace link.
        var target = stat(), reference = stat()
        guard stat(path, &target) == 0, stat("/proc/thread-self/ns/net", &reference) == 0 else { return false }
        return target.st_dev == reference.st_dev
    }

    /// Makes `/run/netns` exist and a shared mount, as `ip netns` does, so namespaces
    /// mounted there are visible in other mount namespaces.
    private static func prepareDirectory() throws {
        if mkdir(directory, 0o755) != 0, errno != EEXIST {
            throw CNIError(.namespace, "cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        guard let mount = LinuxCalls.mount else { throw CNIError(.namespace, "mount(2) is unavailable") }
        if mount("", directory, "none", LinuxCalls.MS_SHARED | LinuxCalls.MS_REC, nil) == 0 { return }
        guard errno == EINVAL else {
            throw CNIError(.namespace, "cannot make \(directory) a shared mount: \(String(cString: strerror(errno)))")
        }
        guard mount(directory, directory, "none", LinuxCalls.MS_BIND | LinuxCalls.MS_REC, nil) == 0,
              mount("", directory, "none", LinuxCalls.MS_SHARED | LinuxCalls.MS_REC, nil) == 0 else {
            throw CNIError(.namespace, "cannot make \(directory) a shared mount: \(String(cString: strerror(errno)))")
        }
    }

    /// Runs on a throwaway thread: returns nil on success, else the reason.
    private static func unshareAndMount(onto path: String) -> String? {
        guard let unshare = LinuxCalls.unshare, let mount = LinuxCalls.mount else { return "unshare(2)/mount(2) unavailable" }
        guard unshare(LinuxCalls.CLONE_NEWNET) == 0 else { return "unshare: \(String(cString: strerror(errno)))" }
        guard mount("/proc/thread-self/ns/net", path, "none", LinuxCalls.MS_BIND, nil) == 0 else {
            return "bind mount: \(String(cString: strerror(errno)))"
        }
        return nil
    }
}

/// A one-shot result handed from a helper thread to its waiting creator.
private final class ThreadOutcome: @unchecked Sendable {
    private let condition = NSCondition()
    private var done = false
    private var failure: String?

    func finish(_ failure: String?) {
        condition.lock()
        self.failure = failure
        done = true
        condition.signal()
        condition.unlock()
    }

    func wait() -> String? {
        condition.lock()
        defer { condition.unlock() }
        while !done { condition.wait() }
        return failure
    }
}

/// Linux system calls the Glibc module does not export (declared under _GNU_SOURCE),
/// looked up at run time, and their constants.
enum LinuxCalls {
    typealias Unshare = @convention(c) (Int32) -> Int32
    typealias Mount = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, UInt, UnsafeRawPointer?) -> Int32
    typealias Umount2 = @convention(c) (UnsafePointer<CChar>?, Int32) -> Int32

    static let unshare: Unshare? = symbol("unshare").map { unsafeBitCast($0, to: Unshare.self) }
    static let mount: Mount? = symbol("mount").map { unsafeBitCast($0, to: Mount.self) }
    static let umount2: Umount2? = symbol("umount2").map { unsafeBitCast($0, to: Umount2.self) }

    static let CLONE_NEWNET: Int32 = 0x4000_0000
    static let MS_BIND: UInt = 4096
    static let MS_REC: UInt = 16384
    static let MS_SHARED: UInt = 1 << 20
    static let MNT_DETACH: Int32 = 2

    private static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), name)
    }
}
