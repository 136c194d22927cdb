import Foundation
import Testing
import TestSupport
@testable import QemuboxKit

/// The fork/exec helper: descriptor wiring, exec errors, network namespaces, reaping.
@Suite struct ProcessSpawnerTests {
    /// Runs `/bin/sh -c script` with its stdout captured through a pipe mapped to fd 1.
    private func run(_ script: String, extra: [(Int32, Int32)] = [], netns: Int32? = nil) async throws
        -> (output: String, termination: ProcessTermination)
    {
        var p: [Int32] = [-1, -1]
        #expect(pipe(&p) == 0)
        _ = fcntl(p[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(p[1], F_SETFD, FD_CLOEXEC)
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devNull) }
        var descriptors: [(source: Int32, target: Int32)] = [(devNull, 0), (p[1], 1), (p[1], 2)]
        descriptors += extra.map { (source: $0.0, target: $0.1) }
        let pid = try await ProcessSpawner.shared.spawn(.init(
            path: "/bin/sh", arguments: ["-c", script], environment: ["PATH=/usr/bin:/bin:/usr/sbin:/sbin"],
            descriptors: descriptors, networkNamespace: netns))
        close(p[1])
        let child = ChildProcess(pid: pid)
        var data = Data()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(p[0], &buf, buf.count)
            if n <= 0 { break }
            data.append(contentsOf: buf[0..<n])
        }
        close(p[0])
        return (String(decoding: data, as: UTF8.self), await child.wait())
    }

    @Test func onlyMappedDescriptorsAreInherited() async throws {
        var fds: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        // A non-CLOEXEC descriptor of ours must not leak into the child either.
        let leaky = open("/dev/null", O_RDONLY)
        defer { close(leaky) }
        let (out, t) = try await run("ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; readlink /proc/self/fd/7",
                                     extra: [(fds[1], 7)])
        #expect(t == .exited(0))
        let lines = out.split(separator: "\n")
        // 0, 1, 2, 7, plus the descriptor `ls` opens for /proc/self/fd.
        let listed = Set(lines.first?.split(separator: " ").compactMap { Int($0) } ?? [])
        #expect(listed.isSuperset(of: [0, 1, 2, 7]))
        #expect(listed.subtracting([0, 1, 2, 7]).count <= 1, "unexpected descriptors: \(listed)")
        #expect(lines.last?.hasPrefix("socket:") == true)
    }

    @Test func descriptorTargetsMaySwapSources() async throws {
        // Sources 5→6 and 6→5 must not clobber each other (two-phase dup).
        let a = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let b = open("/dev/zero", O_RDONLY | O_CLOEXEC)
        defer { close(a); close(b) }
        let (out, _) = try await run("readlink /proc/self/fd/\(b); readlink /proc/self/fd/\(a)", extra: [(a, b), (b, a)])
        #expect(out == "/dev/null\n/dev/zero\n")
    }

    @Test func execFailureIsReportedNotAZombie() async throws {
        let e = await #expect(throws: QemuboxError.self) {
            try await ProcessSpawner.shared.spawn(.init(path: "/nonexistent/qemu", arguments: [], environment: [],
                                                        descriptors: [], networkNamespace: nil))
        }
        #expect(e?.code == .spawnFailed)
        #expect(e?.message.contains("No such file") == true)
        // A child whose exec failed still has the test binary's name; it must have been reaped.
        #expect(!TestGuest.children().contains { $0.state == "Z" && $0.comm.hasPrefix("qemuboxPackage") })
    }

    @Test func exitStatusAndSignals() async throws {
        #expect(try await run("exit 3").termination == .exited(3))
        #expect(try await run("kill -TERM $$").termination == .signaled(SIGTERM))
    }

    @Test(.enabled(if: Prerequisite.isRoot && Prerequisite.tools("ip")))
    func childJoinsTheNetworkNamespace() async throws {
        let name = "qbxtest\(getpid())"
        func ip(_ args: String...) throws -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Prerequisite.which("ip") ?? "/sbin/ip")
            p.arguments = args
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            return p.terminationStatus
        }
        #expect(try ip("netns", "add", name) == 0)
        defer { _ = try? ip("netns", "delete", name) }
        let fd = open("/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        #expect(fd >= 0)
        defer { close(fd) }
        var st = stat()
        #expect(fstat(fd, &st) == 0)
        let (out, t) = try await run("readlink /proc/self/ns/net", netns: fd)
        #expect(t == .exited(0))
        #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == "net:[\(st.st_ino)]")
    }
}

/// The console drain: rotation at the size limit, bounded tail, waiting, input.
@Suite struct ConsoleLogTests {
    @Test func rotatesAtTheLimitAndKeepsABoundedTail() async throws {
        try await TemporaryDirectory.with { dir in
            var fds: [Int32] = [-1, -1]
            #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
            let log = dir + "/console.log"
            let console = try ConsoleLog(fd: fds[0], logPath: log,
                                         settings: ConsoleSettings(maxLogBytes: 8192, memoryTailBytes: 1024))
            let line = Array(String(repeating: "x", count: 99).utf8) + [10]
            for _ in 0..<300 { _ = line.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) } }
            _ = Array("MARKER-END\n".utf8).withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
            #expect(await console.wait(for: "MARKER-END", timeout: .seconds(10)))
            #expect(console.tail.utf8.count <= 1024)
            // Input goes the other way.
            try console.write("typed\n")
            var buf = [UInt8](repeating: 0, count: 16)
            let n = read(fds[1], &buf, buf.count)
            #expect(String(decoding: buf[0..<max(n, 0)], as: UTF8.self) == "typed\n")
            close(fds[1])
            await console.waitFinished()
            let size = (try FileManager.default.attributesOfItem(atPath: log)[.size] as? Int) ?? -1
            let rotated = (try FileManager.default.attributesOfItem(atPath: log + ".1")[.size] as? Int) ?? -1
            #expect(size > 0 && size <= 8192)
            #expect(rotated > 0 && rotated <= 8192)
            #expect(await console.wait(for: "never", timeout: .seconds(5)) == false, "closed console: no wait")
            #expect(throws: QemuboxError.self) { try console.write("late\n") }
        }
    }

    @Test func waitTimesOut() async throws {
        try await TemporaryDirectory.with { dir in
            var fds: [Int32] = [-1, -1]
            #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
            let console = try ConsoleLog(fd: fds[0], logPath: dir + "/c.log", settings: ConsoleSettings())
            let started = ContinuousClock.now
            #expect(await console.wait(for: "absent", timeout: .milliseconds(200)) == false)
            #expect(ContinuousClock.now - started < .seconds(60))  // it returns; loaded CI machines are slow
            close(fds[1])
            await console.waitFinished()
        }
    }
}
