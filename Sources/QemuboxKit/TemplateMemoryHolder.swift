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
            listener = try UnixSocket.listen(at: path)
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
                    if UnixSocket.peerUID(client) == me { _ = qbx_send_fd(client, memory) }
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
        let fd = try UnixSocket.connect(to: path, receiveTimeout: .seconds(10))
        defer { close(fd) }
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
                // It serves every clone of its template, whoever started it (a spare waits at nice 10).
                newSession: true, deathSignal: nil, nice: 0))
        } catch let error as SpawnError {
            throw QemuboxError(.spawnFailed, "template memory holder \(executable): \(error.message)")
        }
        _ = Subprocess(pid: pid)  // reaped if it exits while this process runs
        close(fds[1])
        fds[1] = -1
        let reader = fds[0]
        let line = try await NIOThreadPool.singleton.runIfActive {
            UnixSocket.readLine(reader, limit: 4096, timeout: .milliseconds(Int(readyTimeoutMilliseconds)))
        }
        guard line == "ok" else {
            throw QemuboxError(.spawnFailed,
                "template memory holder: \(line ?? "exited before it was ready, or did not answer within \(readyTimeoutMilliseconds) ms")")
        }
    }
}
