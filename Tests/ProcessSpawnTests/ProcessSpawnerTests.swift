import Foundation
import Testing
import TestSupport
import ProcessSpawn

/// The fork/exec helper: descriptor wiring, exec errors, network namespaces, reaping.
@Suite struct ProcessSpawnerTests {
    /// Runs `/bin/sh -c script` with its stdout captured through a pipe mapped to fd 1.
    private func run(_ script: String, extra: [(Int32, Int32)] = [], netns: Int32? = nil,
                     fixedAddressLayout: Bool = false, nice: Int32? = nil) async throws
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
        var request = ProcessSpawner.Request(
            path: "/bin/sh", arguments: ["-c", script], environment: ["PATH=/usr/bin:/bin:/usr/sbin:/sbin"],
            descriptors: descriptors, networkNamespace: netns)
        request.fixedAddressLayout = fixedAddressLayout
        request.nice = nice
        let pid = try await ProcessSpawner.shared.spawn(request)
        close(p[1])
        let child = Subprocess(pid: pid)
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

    /// The command names of this process's children that are zombies.
    static func zombieChildren() -> [String] {
        let me = getpid()
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> String? in
            guard Int32(entry) != nil, let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, fields[0] == "Z", Int32(fields[1]) == me else { return nil }
            return String(stat[stat.index(after: open)..<close])
        }
    }

    @Test func execFailureIsReportedNotAZombie() async throws {
        let e = await #expect(throws: SpawnError.self) {
            try await ProcessSpawner.shared.spawn(.init(path: "/nonexistent/qemu", arguments: [], environment: [],
                                                        descriptors: [], networkNamespace: nil))
        }
        #expect(e?.code == .spawnFailed)
        #expect(e?.message.contains("No such file") == true)
        // A child whose exec failed still has the test binary's name; it must have been reaped.
        #expect(e?.errno == ENOENT)
        #expect(!Self.zombieChildren().contains { $0.hasPrefix("qemuboxPackage") })
    }

    /// `ADDR_NO_RANDOMIZE` (0x0040000) reaches the child and what it executes; without the
    /// option the child's personality is the default.
    @Test func aFixedAddressLayoutIsInherited() async throws {
        let fixed = try await run("cat /proc/self/personality; cat /proc/self/maps | grep -m1 '\\[stack\\]'",
                                  fixedAddressLayout: true)
        #expect(fixed.termination == .exited(0))
        #expect(fixed.output.split(separator: "\n").first == "00040000")
        let again = try await run("cat /proc/self/maps | grep -m1 '\\[stack\\]'", fixedAddressLayout: true)
        // The same layout every time: the stack sits at the same address.
        #expect(fixed.output.split(separator: "\n").last == again.output.split(separator: "\n").first)
        let plain = try await run("cat /proc/self/personality")
        #expect(plain.output == "00000000\n")
    }

    /// A nice value given is the child's (and what it executes) from the start, whatever the
    /// spawning thread's; none given, the child has the spawning thread's.
    @Test func aNiceValueIsTheChilds() async throws {
        let niced = try await run("nice", nice: 7)
        #expect(niced.termination == .exited(0))
        #expect(niced.output == "7\n")
        // Without one: the spawning thread's (0, or what a dispatch worker's quality of service gave it).
        let plain = try await run("nice")
        #expect(plain.termination == .exited(0))
        #expect(Int(plain.output.trimmingCharacters(in: .whitespacesAndNewlines)).map { $0 <= 0 } == true, "\(plain.output)")
    }

    @Test func aSessionOfItsOwnIsTheCallersChoice() throws {
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devNull) }
        func start(newSession: Bool) throws -> pid_t {
            try ProcessSpawner.shared.spawnBlocking(.init(
                path: "/bin/sleep", arguments: ["30"], environment: [],
                descriptors: [(source: devNull, target: Int32(0)), (source: devNull, target: Int32(1)),
                              (source: devNull, target: Int32(2))],
                newSession: newSession, deathSignal: newSession ? SIGKILL : nil))
        }
        let leader = try start(newSession: true)
        let member = try start(newSession: false)
        defer {
            for pid in [leader, member] {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0, errno == EINTR {}
            }
        }
        #expect(getpgid(leader) == leader && getsid(leader) == leader)
        #expect(getpgid(member) == getpgrp())
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
