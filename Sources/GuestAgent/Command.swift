#if canImport(Glibc)
import Glibc
#endif
import CGuestAgentSupport
import Dispatch
import NIOConcurrencyHelpers
import ProcessSpawn
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Running a helper program (crun) and collecting its status and output, with
/// the ``Reaper`` as the only `waitpid` caller.
enum Command {
    /// What a finished command produced.
    struct Result: Sendable {
        /// containerd-style exit status (128+N for signal N).
        var status: UInt32
        /// Captured stdout (empty when stdout was redirected).
        var output: String
        /// Captured stderr (empty when stderr was redirected).
        var errorOutput: String
    }

    /// The environment children get.
    static let environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/"]

    /// Spawns `argv` with the given child fds (-1: /dev/null; nil: captured).
    /// Returns the pid; the caller waits with the reaper from `since`.
    static func spawn(_ argv: [String], stdin: CInt, stdout: CInt, stderr: CInt) throws -> pid_t {
        guard let path = argv.first else { throw GuestAgentError(.invalidArgument, "empty command") }
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if null >= 0 { close(null) } }
        let descriptors = [stdin, stdout, stderr].enumerated().map { index, fd in
            (source: fd < 0 ? null : fd, target: CInt(index))
        }
        let pid: pid_t
        do {
            // In vminitd's session (crun manages its containers' sessions), no death signal:
            // PID 1 outlives everything, and the reaper is the only waitpid caller.
            var request = ProcessSpawner.Request(
                path: path, arguments: Array(argv.dropFirst()), environment: environment,
                descriptors: descriptors, newSession: false, deathSignal: nil)
            // crun (the only program run here) at the same addresses every time: QEMU's TCG
            // finds a translation by its guest virtual address, so with address randomisation
            // each crun run translated its libraries afresh. The containers' own processes
            // get randomisation back: the host's config.json sets `linux.personality`, which
            // crun applies before it executes them.
            request.fixedAddressLayout = true
            pid = try ProcessSpawner.shared.spawnBlocking(request)
        } catch let error as SpawnError {
            throw GuestAgentError.system("spawn \(path): \(error.message)", errno: error.errno ?? EIO)
        }
        Reaper.shared.childSpawned()
        return pid
    }

    /// Runs `argv` to completion. stdout and stderr are captured unless fds are given.
    static func run(_ argv: [String], stdin: CInt = -1, stdout: CInt? = nil, stderr: CInt? = nil) async throws -> Result {
        var outPipe: [CInt] = [-1, -1]
        var errPipe: [CInt] = [-1, -1]
        if stdout == nil { outPipe = try makePipe() }
        if stderr == nil {
            do { errPipe = try makePipe() } catch {
                closeAll(outPipe)
                throw error
            }
        }
        let since = Reaper.shared.mark()
        PID1.debugLog("run \(argv.joined(separator: " "))")
        let pid: pid_t
        do {
            pid = try spawn(argv, stdin: stdin, stdout: stdout ?? outPipe[1], stderr: stderr ?? errPipe[1])
        } catch {
            closeAll(outPipe)
            closeAll(errPipe)
            throw error
        }
        if outPipe[1] >= 0 { close(outPipe[1]) }
        if errPipe[1] >= 0 { close(errPipe[1]) }
        async let out = readAll(outPipe[0])
        async let err = readAll(errPipe[0])
        let status = await Reaper.shared.wait(pid: pid, since: since)
        PID1.debugLog("\(argv.first ?? "?") \(argv.dropFirst(3).first ?? "") (pid \(pid)) exited: \(Reaper.exitStatus(fromWaitStatus: status))")
        return Result(status: Reaper.exitStatus(fromWaitStatus: status),
                      output: String(decoding: await out, as: UTF8.self),
                      errorOutput: String(decoding: await err, as: UTF8.self))
    }

    /// A close-on-exec pipe: [read end, write end].
    static func makePipe() throws -> [CInt] {
        var fds: [CInt] = [-1, -1]
        guard qb_pipe_cloexec(&fds) == 0 else { throw GuestAgentError.system("pipe2") }
        return fds
    }

    static func closeAll(_ fds: [CInt]) {
        for fd in fds where fd >= 0 { close(fd) }
    }

    /// Reads `fd` to EOF on a thread of its own and closes it (-1: nothing).
    static func readAll(_ fd: CInt, limit: Int = 1 << 20) async -> [UInt8] {
        guard fd >= 0 else { return [] }
        return await onThread {
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 16 * 1024)
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n > 0 {
                    if bytes.count < limit { bytes.append(contentsOf: buffer[0..<n]) }
                } else if n < 0, errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            close(fd)
            return bytes
        }
    }
}

/// Runs blocking `body` on a new thread and returns its result.
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        PosixThread.start { continuation.resume(returning: body()) }
    }
}

/// Runs async `body` from a plain thread and blocks that thread for the result.
/// Never call it from Swift concurrency's pool.
func blockingAwait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let semaphore = DispatchSemaphore(value: 0)
    let box = NIOLockedBox<Result<T, any Error>?>(nil)
    Task {
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        box.set(result)
        semaphore.signal()
    }
    semaphore.wait()
    guard let result = box.get() else { throw GuestAgentError(.internal, "lost result") }
    return try result.get()
}

/// A tiny lock-protected box for handing one value between threads.
final class NIOLockedBox<T>: @unchecked Sendable {
    private let lock = NIOLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func set(_ newValue: T) { lock.lock(); value = newValue; lock.unlock() }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
}
