import CQemuboxSupport
import Foundation
import NIOPosix
import ProcessSpawn

/// The process that keeps one sealed copy of a template's RAM and hands it to every VM
/// start on the host (``TemplateMemorySharing/holder(executable:arguments:)``), so that all
/// clones of the template share the pages they have not written, whichever process
/// started them.
///
/// It listens on `memory.sock` in the template directory (0600; only its own uid is
/// served) and answers each connection with the descriptor (`SCM_RIGHTS`). One holder per
/// template (an exclusive lock on `memory.holder.lock`); it exits once nobody has asked for
/// `idleTimeout`, or when the template is removed or saved again. The pages stay as long
/// as a QEMU maps them.
public enum TemplateMemoryHolder {
    static let socketName = "memory.sock"
    static let lockName = "memory.holder.lock"
    /// Taken by a process that connects or starts a holder, so that a burst of starts
    /// starts one holder and the others wait for it.
    static let startLockName = "memory.holder-start.lock"
    /// How long a start waits for a new holder to be ready.
    static let readyTimeoutMilliseconds: Int32 = 10_000

    /// Runs the holder for `templateDirectory` in this process (a program's entry point
    /// calls it for the arguments ``TemplateMemorySharing/holder(executable:arguments:)``
    /// names). `readyDescriptor`: a pipe written `ok` once the socket listens, or
    /// `error: …` (then closed). Returns the exit status.
    public static func run(templateDirectory: String, readyDescriptor: Int32?,
                           idleTimeout: Duration = .seconds(600)) -> Int32 {
        var ready = readyDescriptor
        func report(_ line: String) {
            guard let fd = ready else { return }
            _ = (line + "\n").utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
            close(fd)
            ready = nil
        }
        let lock = open(templateDirectory + "/" + lockName, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lock >= 0 else {
            report("error: open \(lockName): \(String(cString: strerror(errno)))")
            return 1
        }
        defer { close(lock) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            // Another holder serves this template: the caller connects to it.
            report("ok")
            return 0
        }
        let identity: TemplateMemory.Identity
        let memory: Int32
        do {
            identity = try TemplateMemory.Identity(directory: templateDirectory)
            memory = try TemplateMemory.sealedCopy(of: templateDirectory + "/memory")
        } catch {
            report("error: \(error)")
            return 1
        }
        defer { close(memory) }
        let path = templateDirectory + "/" + socketName
        let listener: Int32
        do {
            listener = try listen(at: path)
        } catch {
            report("error: \(error)")
            return 1
        }
        defer { close(listener) }
        var socketInode = stat()
        _ = stat(path, &socketInode)
        report("ok")
        let me = geteuid()
        var lastUse = ContinuousClock.now
        while true {
            var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, 2_000)
            if n > 0 {
                let client = accept(listener, nil, nil)
                if client >= 0 {
                    var uid: UInt32 = 0
                    if qbx_peer_uid(client, &uid) == 0, uid == me { _ = qbx_send_fd(client, memory) }
                    close(client)
                    lastUse = .now
                }
            }
            // Still the template it copied, and still its socket?
            var st = stat()
            let current = (try? TemplateMemory.Identity(directory: templateDirectory)) == identity
            let ours = stat(path, &st) == 0 && st.st_ino == socketInode.st_ino
            if !current || !ours || ContinuousClock.now - lastUse > idleTimeout {
                if ours { unlink(path) }
                return 0
            }
        }
    }

    /// A listening unix socket at `path` (a stale one is replaced: the lock says no holder owns it).
    private static func listen(at path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw QemuboxError(.stateDirectory, "socket: \(String(cString: strerror(errno)))") }
        do {
            var address = try unixAddress(path)
            unlink(path)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0, chmod(path, 0o600) == 0, Glibc.listen(fd, 64) == 0 else {
                throw QemuboxError(.stateDirectory, "listening on \(path): \(String(cString: strerror(errno)))")
            }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    static func unixAddress(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw QemuboxError(.stateDirectory, "socket path too long (\(bytes.count) bytes): \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return address
    }

    /// The template's memory from its holder, starting one if none answers.
    static func obtain(template: VMTemplate, executable: String, arguments: [String]) async throws -> Int32 {
        let path = template.directory + "/" + socketName
        if let fd = try? await NIOThreadPool.singleton.runIfActive({ try receive(from: path) }) { return fd }
        let lock = try FileLock(path: template.directory + "/" + startLockName)
        defer { lock.release() }
        try await lock.acquire(timeout: .seconds(30))
        // Someone else may have started it while this process waited.
        if let fd = try? await NIOThreadPool.singleton.runIfActive({ try receive(from: path) }) { return fd }
        try await start(template: template, executable: executable, arguments: arguments)
        return try await NIOThreadPool.singleton.runIfActive { try receive(from: path) }
    }

    /// Connects to the holder's socket and receives the descriptor.
    static func receive(from path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw QemuboxError(.stateDirectory, "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = try unixAddress(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            throw QemuboxError(.stateDirectory, "connect \(path): \(String(cString: strerror(errno)))")
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let memory = qbx_receive_fd(fd)
        guard memory >= 0 else {
            throw QemuboxError(.stateDirectory, "no descriptor from \(path): \(String(cString: strerror(errno)))")
        }
        return memory
    }

    /// Starts a holder for `template` (a daemon: its own session, not killed with this
    /// process) and waits until it listens or says why it cannot.
    static func start(template: VMTemplate, executable: String, arguments: [String]) async throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw QemuboxError(.spawnFailed, "pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer {
            close(fds[0])
            if fds[1] >= 0 { close(fds[1]) }
            if devNull >= 0 { close(devNull) }
        }
        guard devNull >= 0 else { throw QemuboxError(.spawnFailed, "open /dev/null: \(String(cString: strerror(errno)))") }
        let pid: pid_t
        do {
            pid = try await ProcessSpawner.shared.spawn(.init(
                path: executable, arguments: arguments + [template.directory], environment: [],
                descriptors: [(devNull, Int32(0)), (devNull, Int32(1)), (devNull, Int32(2)), (fds[1], Int32(3))],
                newSession: true, deathSignal: nil))
        } catch let error as SpawnError {
            throw QemuboxError(.spawnFailed, "template memory holder \(executable): \(error.message)")
        }
        _ = Subprocess(pid: pid)  // reaped if it exits while this process runs
        close(fds[1])
        fds[1] = -1
        let reader = fds[0]
        let line = try await NIOThreadPool.singleton.runIfActive { readLine(reader) }
        guard line == "ok" else {
            throw QemuboxError(.spawnFailed, "template memory holder: \(line.isEmpty ? "exited before it was ready" : line)")
        }
    }

    /// One line (at most 4 KiB) from `fd`, waiting at most ``readyTimeoutMilliseconds``.
    private static func readLine(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        let deadline = ContinuousClock.now + .milliseconds(Int(readyTimeoutMilliseconds))
        var chunk = [UInt8](repeating: 0, count: 512)
        while bytes.count < 4096, !bytes.contains(UInt8(ascii: "\n")) {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return "timed out waiting for it" }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
            if poll(&p, 1, max(ms, 1)) < 0 { if errno == EINTR { continue } else { break } }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR || errno == EAGAIN { continue }
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
    }
}
