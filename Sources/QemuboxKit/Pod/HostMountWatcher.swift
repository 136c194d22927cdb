#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOConcurrencyHelpers

/// Watches the sources of read-only host bind mounts with inotify and reports which
/// changed, once a burst of changes has settled (the kubelet swaps a ConfigMap's
/// `..data` symlink after writing a new directory: one report for the whole update).
/// One thread per watcher, blocked in `poll`; ``stop()`` ends it.
final class HostMountWatcher: Sendable {
    private let inotify: Int32
    private let wake: (read: Int32, write: Int32)
    private let stopped = NIOLockedValueBox(false)

    /// What one watch descriptor stands for: a mount, and for a file mount (watched through
    /// its directory, as editors and the kubelet replace files by rename) the file's name.
    private struct Watch: Sendable {
        var mount: Int
        var name: String?
    }

    /// Starts watching `mounts`; `onChange` gets the indices (into `mounts`) that changed.
    init(_ mounts: [HostMount], onChange: @escaping @Sendable (Set<Int>) -> Void) throws {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw QemuboxError(.system, "inotify_init1: \(String(cString: strerror(errno)))") }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            close(fd)
            throw QemuboxError(.system, "pipe: \(String(cString: strerror(errno)))")
        }
        for end in pipeFDs {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, O_NONBLOCK)
        }
        inotify = fd
        wake = (pipeFDs[0], pipeFDs[1])
        var watches: [Int32: Watch] = [:]
        for (index, mount) in mounts.enumerated() { Self.watch(mount, index, inotify: fd, into: &watches) }
        let table = NIOLockedValueBox(watches)
        let (inotifyFD, wakeFD) = (fd, pipeFDs[0])
        let worker = Thread {
            Self.run(inotify: inotifyFD, wake: wakeFD, mounts: mounts, watches: table, onChange: onChange)
        }
        worker.name = "qemubox-mount-watch"
        worker.start()
    }

    deinit {
        stop()
    }

    /// Stops the thread (it exits within one `poll`) and closes the descriptors it owns.
    func stop() {
        let first = stopped.withLockedValue { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        close(wake.write)
    }

    private static let mask = UInt32(IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO
                                      | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

    /// Adds watches for a mount: every directory of a directory mount (not following
    /// symlinks below its root), or a file mount's directory.
    private static func watch(_ mount: HostMount, _ index: Int, inotify: Int32, into watches: inout [Int32: Watch]) {
        switch mount.kind {
        case .file:
            // The file's own directory, symlinks in the path resolved (`/etc/resolv.conf` → `/run/…`).
            let resolved = realpath(mount.source, nil).map { pointer in
                defer { free(pointer) }
                return String(cString: pointer)
            } ?? mount.source
            let directory = (resolved as NSString).deletingLastPathComponent
            let wd = inotify_add_watch(inotify, directory.isEmpty ? "/" : directory, mask | UInt32(IN_ONLYDIR))
            if wd >= 0 { watches[wd] = Watch(mount: index, name: (resolved as NSString).lastPathComponent) }
        case .directory:
            var pending = [mount.source]
            var count = 0
            while let directory = pending.popLast(), count < HostMount.maximumEntries {
                count += 1
                let flags = mask | UInt32(IN_ONLYDIR) | (directory == mount.source ? 0 : UInt32(IN_DONT_FOLLOW))
                let wd = inotify_add_watch(inotify, directory, flags)
                guard wd >= 0 else { continue }
                watches[wd] = Watch(mount: index, name: nil)
                for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                    let path = directory + "/" + name
                    var info = stat()
                    if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR { pending.append(path) }
                }
            }
        }
    }

    private static func run(inotify: Int32, wake: Int32, mounts: [HostMount], watches: NIOLockedValueBox<[Int32: Watch]>,
                            onChange: @Sendable (Set<Int>) -> Void) {
        defer {
            close(inotify)
            close(wake)
        }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var changed: Set<Int> = []
        var firstChange: ContinuousClock.Instant?
        while true {
            var fds = [pollfd(fd: inotify, events: Int16(POLLIN), revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            // While changes arrive, wait until 150 ms pass without one (but report at most
            // a second after the first, so a file written without pause still syncs).
            var timeout: Int32 = -1
            if let firstChange {
                let left = Duration.seconds(1) - (ContinuousClock.now - firstChange)
                timeout = Int32(max(0, min(150, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
            }
            let ready = poll(&fds, 2, timeout)
            if ready < 0 && errno == EINTR { continue }
            if ready < 0 || fds[1].revents != 0 { return }
            if ready > 0 {
                let n = buffer.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) }
                let table = watches.withLockedValue { $0 }
                var offset = 0
                while n > 0, offset + MemoryLayout<inotify_event>.size <= n {
                    let (wd, length, name) = buffer.withUnsafeBytes { raw -> (Int32, Int, String) in
                        let event = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                        let start = offset + MemoryLayout<inotify_event>.size
                        let end = min(n, start + Int(event.len))
                        let name = String(decoding: raw[start..<end].prefix(while: { $0 != 0 }), as: UTF8.self)
                        return (event.wd, Int(event.len), name)
                    }
                    offset += MemoryLayout<inotify_event>.size + length
                    guard let watch = table[wd] else { continue }
                    if let file = watch.name, file != name { continue }
                    changed.insert(watch.mount)
                    if firstChange == nil { firstChange = .now }
                }
            }
            guard let first = firstChange, ready == 0 || ContinuousClock.now - first >= .seconds(1) else { continue }
            firstChange = nil
            let report = changed
            changed = []
            // New directories (a ConfigMap's next `..<timestamp>`) get watches too.
            watches.withLockedValue { table in
                for index in report where mounts[index].kind == .directory {
                    watch(mounts[index], index, inotify: inotify, into: &table)
                }
            }
            if !report.isEmpty { onChange(report) }
        }
    }
}
