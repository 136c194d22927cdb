#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Prints a log that its writer rotates by rename (`NAME` → `NAME.1`, then a new `NAME`),
/// as QemuboxKit does with a VM's `console.log` and `qemu.stderr`: the previous generation
/// first, then the current file, then — when following — whatever is appended, across
/// rotations, until the log's directory is removed (the task was deleted) or `shouldStop`
/// says so. Following waits on inotify with a bounded poll (500 ms) as a backstop, never
/// spinning.
public struct LogFollower: Sendable {
    /// The log file.
    public var path: String
    /// How long one wait lasts before the file is looked at again anyway.
    public var pollInterval: Duration = .milliseconds(500)

    /// Creates a follower of `path`.
    public init(path: String) {
        self.path = path
    }

    /// How ``run(follow:write:shouldStop:)`` ended.
    public enum End: Sendable, Hashable {
        /// Everything was printed (no follow).
        case printed
        /// `shouldStop` returned true.
        case stopped
        /// The log's directory was removed (the VM is gone).
        case directoryRemoved
    }

    /// Prints the log through `write`; with `follow`, keeps printing appended bytes.
    @discardableResult
    public func run(follow: Bool, write: ([UInt8]) -> Void, shouldStop: () -> Bool = { false }) throws -> End {
        if let previous = FileManager.default.contents(atPath: path + ".1"), !previous.isEmpty {
            write(Array(previous))
        }
        var current = OpenLog(path: path)
        defer { current?.close() }
        current?.drain(write)
        guard follow else { return .printed }

        let directory = (path as NSString).deletingLastPathComponent
        let watch = DirectoryWatch(directory: directory)
        defer { watch?.close() }
        while true {
            if shouldStop() { return .stopped }
            if let watch { watch.wait(pollInterval) } else { Self.sleep(pollInterval) }
            current?.drain(write)
            // Rotated (a new file at the path) or created: finish the old one, start the new one.
            if let identity = OpenLog.identity(of: path), identity != current?.identity {
                current?.drain(write)
                current?.close()
                current = OpenLog(path: path)
                current?.drain(write)
            }
            if !FileManager.default.fileExists(atPath: directory) {
                current?.drain(write)
                return .directoryRemoved
            }
        }
    }

    static func sleep(_ duration: Duration) {
        let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        usleep(UInt32(max(1, ms)) * 1000)
    }
}

/// An open generation of the log and how far it was read.
private struct OpenLog {
    let fd: Int32
    let identity: FileIdentity
    var offset: off_t = 0

    init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            Glibc.close(fd)
            return nil
        }
        self.fd = fd
        identity = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    static func identity(of path: String) -> FileIdentity? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// Writes what was appended since the last call (from the start again if the file shrank).
    mutating func drain(_ write: ([UInt8]) -> Void) {
        var st = stat()
        if fstat(fd, &st) == 0, st.st_size < offset { offset = 0 }
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += off_t(n)
            write(Array(buffer[0..<n]))
        }
    }

    func close() { Glibc.close(fd) }
}

/// A file's identity: device and inode.
struct FileIdentity: Hashable, Sendable {
    var device: UInt64
    var inode: UInt64
}

/// An inotify watch on a directory: wakes on any change of its entries.
private final class DirectoryWatch {
    let fd: Int32

    init?(directory: String) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        let mask = UInt32(IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE
                          | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
        guard inotify_add_watch(fd, directory, mask) >= 0 else {
            Glibc.close(fd)
            return nil
        }
        self.fd = fd
    }

    /// Waits until something changed or `timeout` passed, and consumes the events.
    func wait(_ timeout: Duration) {
        let ms = timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(clamping: ms)) > 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
    }

    func close() { Glibc.close(fd) }
}
