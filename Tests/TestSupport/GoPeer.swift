import Foundation

/// Builds and runs the Go peers under `Tests/Peers/go/` (real Go libraries from
/// Debian's packages, GOPATH mode), for interop tests and benchmarks.
public enum GoPeer {
    /// The repository root (derived from this file's location).
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    private static let lock = NSLock()
    nonisolated(unsafe) private static var built: [String: String] = [:]

    /// Builds `Tests/Peers/go/<name>` once per process (into `.build/peers/`) and
    /// returns the binary's path. Blocks a dedicated thread, never the
    /// cooperative pool (which the servers under test need).
    public static func build(_ name: String) async throws -> String {
        try await TestSupport.runBlocking { try buildBlocking(name) }
    }

    /// Runs a peer to completion and returns its standard output.
    public static func run(_ binary: String, _ arguments: [String]) async throws -> Data {
        try await TestSupport.runBlocking { try runProcess(binary, arguments) }
    }

    private static func buildBlocking(_ name: String) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let path = built[name] { return path }
        guard let go = Prerequisite.which("go") else {
            throw PeerError("go is not installed (apt-get install golang-go; scripts/install-deps.sh)")
        }
        let outDir = repositoryRoot + "/.build/peers"
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        let output = outDir + "/" + name
        let process = Process()
        process.executableURL = URL(fileURLWithPath: go)
        process.arguments = ["build", "-o", output, "."]
        process.currentDirectoryURL = URL(fileURLWithPath: repositoryRoot + "/Tests/Peers/go/" + name)
        var env = ProcessInfo.processInfo.environment
        env["GO111MODULE"] = "off"
        env["GOPATH"] = "/usr/share/gocode"
        env["GOCACHE"] = outDir + "/gocache"
        process.environment = env
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PeerError("go build \(name) failed: \(String(decoding: message, as: UTF8.self))")
        }
        built[name] = output
        return output
    }

    private static func runProcess(_ binary: String, _ arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Drain stderr concurrently so a chatty peer cannot block on a full pipe.
        let errData = LockedData()
        let errThread = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        errThread.start()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PeerError("\(binary) \(arguments.joined(separator: " ")) exited \(process.terminationStatus): "
                + String(decoding: errData.waitForValue(), as: UTF8.self))
        }
        return data
    }
}

/// Runs blocking work (process waits, pipe reads) on a thread of its own so
/// that it never starves Swift's cooperative thread pool (2 threads on a
/// 2-core machine), which the code under test needs to make progress.
public func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.start()
    }
}

/// A long-running peer (a server) that lives until ``stop()``: it is started
/// with a stdin pipe and exits when stdin closes, so it also dies with the
/// test process.
public final class PeerProcess: @unchecked Sendable {
    private let process = Process()
    private let stdin = Pipe()
    private let stdout = Pipe()

    /// Starts `binary` and waits (on a dedicated thread) for it to print `readyLine`.
    public static func start(_ binary: String, _ arguments: [String],
                             readyLine: String = "ready") async throws -> PeerProcess {
        try await runBlocking { try PeerProcess(binary, arguments, readyLine: readyLine) }
    }

    /// Starts `binary` and waits for it to print `readyLine` on stdout.
    public init(_ binary: String, _ arguments: [String], readyLine: String = "ready") throws {
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        var line = Data()
        while true {
            let byte = stdout.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty {
                stop()
                throw PeerError("\(binary) exited before it was ready")
            }
            if byte == Data("\n".utf8) { break }
            line.append(byte)
        }
        guard String(decoding: line, as: UTF8.self) == readyLine else {
            stop()
            throw PeerError("\(binary) said \(String(decoding: line, as: UTF8.self)) instead of \(readyLine)")
        }
    }

    /// The peer's pid.
    public var pid: Int32 { process.processIdentifier }

    /// Everything the peer printed after its ready line, split into lines.
    /// Call after ``stop()``: reads to EOF.
    public func outputLines() -> [String] {
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Closes the peer's stdin, waits for it to exit (SIGKILL after 5 s).
    public func stop() {
        try? stdin.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning { stop() }
    }
}

/// A test-infrastructure failure (not an assertion).
public struct PeerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

final class LockedData: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Data?

    func set(_ data: Data) {
        condition.lock()
        value = data
        condition.signal()
        condition.unlock()
    }

    func waitForValue() -> Data {
        condition.lock()
        defer { condition.unlock() }
        while value == nil { condition.wait() }
        return value ?? Data()
    }
}

/// Counts this process's open file descriptors (Linux), for leak checks.
public func openFileDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// Counts this process's open unix sockets bound to `path` — the listener and
/// every connection it accepted (accepted sockets carry the listener's path in
/// /proc/net/unix). Unaffected by other tests running in parallel.
public func openSocketCount(boundTo path: String) -> Int {
    // Read to EOF: /proc files report size 0, and the table can span many pages.
    guard let handle = FileHandle(forReadingAtPath: "/proc/net/unix") else { return -1 }
    defer { try? handle.close() }
    let table = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    var inodes = Set<String>()
    for line in table.split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if fields.count >= 8, fields[7] == path { inodes.insert(String(fields[6])) }
    }
    guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return -1 }
    return fds.filter { fd in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd),
              target.hasPrefix("socket:[") else { return false }
        return inodes.contains(String(target.dropFirst(8).dropLast()))
    }.count
}
