#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Starting helper processes (the shim daemon, `binary://` log drivers) with
/// posix_spawn: exact descriptors, default signal dispositions, optionally a
/// new session so the child outlives its parent's process group.
enum Spawn {
    /// glibc's POSIX_SPAWN_SETSID (not exported by the Swift Glibc module).
    static let setsidFlag: Int32 = 0x80

    /// Spawns `path` with `arguments` (argv[1...]), `environment`, and `descriptors`
    /// mapped (source → target); every other descriptor is closed by CLOEXEC.
    static func run(_ path: String, _ arguments: [String], environment: [String],
                    descriptors: [(source: Int32, target: Int32)], newSession: Bool) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Map through fresh high duplicates, so that no mapping's target clobbers
        // another mapping's source; the child's dup2 clears CLOEXEC on the target.
        var spares: [Int32] = []
        defer { for fd in spares { close(fd) } }
        for (source, target) in descriptors {
            let spare = fcntl(source, F_DUPFD_CLOEXEC, 100)
            guard spare >= 0 else { throw ShimError(.internal, "dup: \(String(cString: strerror(errno)))") }
            spares.append(spare)
            posix_spawn_file_actions_adddup2(&actions, spare, target)
        }
        // Close every other inherited descriptor: descriptors opened elsewhere in this
        // process without CLOEXEC (Foundation's pipes, for one) must not leak into a
        // long-lived child, where they would hold a pipe's end-of-file back.
        let targets = Set(descriptors.map(\.target))
        if let open = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            for fd in open.compactMap(Int32.init) where fd > 2 && !targets.contains(fd) {
                posix_spawn_file_actions_addclose(&actions, fd)
            }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var flags = Int32(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
        if newSession { flags |= setsidFlag }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw ShimError(.internal, "cannot start \(path): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// A pipe with both ends close-on-exec.
    static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else {
            throw ShimError(.internal, "pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    /// This executable's path.
    static func executablePath() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Waits for `pid` without blocking the caller's thread for longer than `timeout`;
    /// SIGKILLs it after that. Returns the wait status.
    static func reap(_ pid: pid_t, timeout: Duration) async -> Int32 {
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno != EINTR) { return status }
            if ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return status
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
