import Foundation
import Testing
import TestSupport
@testable import QemuboxKit

/// The jail QEMU runs in, exercised with ordinary programs through the same spawner:
/// identity, capabilities, seccomp, no-new-privileges and what its root shows.
@Suite(.enabled(if: Prerequisite.isRoot))
struct QEMUJailTests {
    private static let jail = QEMUJail(lockDirectory: "/run/qemubox/jail-ids")

    /// Runs `argv` jailed (root built on a fresh directory), stdout and stderr to a pipe.
    /// `started` gets the pid once exec succeeded; returns the output and how it ended.
    private func runJailed(_ argv: [String], filter: SeccompProgram, readOnlyFiles: [String] = [], procfs: Bool = false,
                           started: @Sendable (pid_t, UInt32) async throws -> Void = { _, _ in }) async throws
        -> (output: String, termination: ProcessTermination)
    {
        try await TemporaryDirectory.with(prefix: "qemubox-jail") { dir in
            let root = dir + "/root"
            #expect(mkdir(root, 0o755) == 0)
            let identity = try Self.jail.allocateIdentity()
            var files = QEMUJail.RootFiles()
            files.readOnly = readOnlyFiles
            files.procfs = procfs
            let spec = JailSpec(root: root, steps: try QEMUJail.rootSteps(root: root, files: files),
                                               uid: identity.id, gid: identity.id, groups: [], filter: filter)
            var p: [Int32] = [-1, -1]
            #expect(pipe(&p) == 0)
            _ = fcntl(p[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(p[1], F_SETFD, FD_CLOEXEC)
            let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
            defer { close(devNull) }
            let pid: pid_t
            do {
                pid = try await ProcessSpawner.shared.spawn(.init(
                    path: argv[0], arguments: Array(argv.dropFirst()), environment: ["PATH=/usr/bin:/bin"],
                    descriptors: [(source: devNull, target: Int32(0)), (source: p[1], target: Int32(1)), (source: p[1], target: Int32(2))],
                    networkNamespace: nil, jail: spec))
            } catch {
                close(p[0])
                close(p[1])
                throw error
            }
            close(p[1])
            let child = Subprocess(pid: pid)
            do {
                try await started(pid, identity.id)
            } catch {
                child.signal(SIGKILL)
                _ = await child.wait()
                close(p[0])
                throw error
            }
            let output = try await runBlocking { [fd = p[0]] in
                var data = Data()
                var buf = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = read(fd, &buf, buf.count)
                    if n <= 0 { break }
                    data.append(contentsOf: buf[0..<n])
                }
                return String(decoding: data, as: UTF8.self)
            }
            close(p[0])
            // Nothing of the jail is left on the host: its mounts lived in its own namespace.
            let termination = await child.wait()
            #expect((try? FileManager.default.contentsOfDirectory(atPath: root)) == [])
            return (output, termination)
        }
    }

    private static func status(_ pid: pid_t) throws -> [String: String] {
        let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    @Test func jailedProcessHasItsOwnIdentityNoCapabilitiesAndSeccomp() async throws {
        let filter = try QEMUJail.compiledAllowList()
        let (_, termination) = try await runJailed(["/usr/bin/sleep", "600"], filter: filter) { pid, id in
            let s = try Self.status(pid)
            #expect(s["Uid"]?.split(separator: "\t").allSatisfy { $0 == "\(id)" } == true, "\(s["Uid"] ?? "")")
            #expect(s["Gid"]?.split(separator: "\t").allSatisfy { $0 == "\(id)" } == true, "\(s["Gid"] ?? "")")
            #expect(s["Groups"] == "")
            for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
                #expect(s[set] == "0000000000000000", "\(set) = \(s[set] ?? "?")")
            }
            #expect(s["Seccomp"] == "2")
            #expect(s["NoNewPrivs"] == "1")
            // Its root: /usr, the loader's links and /dev; none of the host's /etc, /home, /root, /proc.
            let top = Set(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/root"))
            #expect(top.isSuperset(of: ["usr", "dev", "lib64"]))
            #expect(top.isDisjoint(with: ["etc", "home", "root", "proc", "sys", "run", "tmp", "var"]), "\(top)")
            let dev = Set(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/root/dev"))
            #expect(dev == ["null", "zero", "urandom", "random"])
            #expect(kill(pid, SIGTERM) == 0)
        }
        #expect(termination == .signaled(SIGTERM))
    }

    @Test func rootIsReadOnlyAndHoldsOnlyWhatItWasGiven() async throws {
        try await TemporaryDirectory.with(prefix: "qemubox-jail-file") { dir in
            let given = dir + "/kernel"
            #expect(FileManager.default.createFile(atPath: given, contents: Data("vmlinux".utf8)))
            // Seccomp off: the shell's own system calls are not the point here.
            let script = "cat \(given); echo; touch /x 2>/dev/null && echo wrote-root; (echo data >> \(given)) 2>/dev/null && echo wrote-file;"
                + " test -e /etc/passwd && echo sees-etc; test -e \(dir)/other && echo sees-other; id -u; echo end"
            #expect(FileManager.default.createFile(atPath: dir + "/other", contents: Data()))
            let (out, t) = try await runJailed(["/bin/sh", "-c", script], filter: .empty, readOnlyFiles: [given])
            #expect(t == .exited(0))
            let lines = out.split(separator: "\n").map(String.init)
            #expect(lines.first == "vmlinux")
            #expect(!lines.contains("wrote-root") && !lines.contains("wrote-file"))
            #expect(!lines.contains("sees-etc") && !lines.contains("sees-other"))
            #expect(lines.dropLast().last.flatMap { UInt32($0) }.map { $0 >= QEMUJail.defaultFirstID } == true, "\(lines)")
            #expect(lines.last == "end")
            #expect(try String(contentsOfFile: given, encoding: .utf8) == "vmlinux")
        }
    }

    /// The procfs a clone gets (for `/proc/self/fd/N`, its template RAM): only its own
    /// processes, and of /proc nothing but pid directories.
    @Test func procfsShowsOnlyTheJailsOwnProcesses() async throws {
        let script = "ls /proc | tr '\\n' ' '; echo; test -e /proc/1 && echo sees-init; test -e /proc/sys && echo sees-sys;"
            + " test -e /proc/meminfo && echo sees-meminfo; readlink /proc/self/fd/0; echo end"
        let (out, t) = try await runJailed(["/bin/sh", "-c", script], filter: .empty, procfs: true)
        #expect(t == .exited(0))
        let lines = out.split(separator: "\n").map(String.init)
        // The shell, `ls` and `tr`, and the `self`/`thread-self` links: nothing of the host.
        let entries = lines.first?.split(separator: " ").map(String.init) ?? []
        #expect(entries.allSatisfy { Int($0) != nil || $0 == "self" || $0 == "thread-self" }, "\(entries)")
        #expect(entries.compactMap { Int($0) }.count <= 3, "\(entries)")
        #expect(!lines.contains("sees-init") && !lines.contains("sees-sys") && !lines.contains("sees-meminfo"), "\(lines)")
        #expect(lines.contains("/dev/null"), "\(lines)")
        #expect(lines.last == "end")
    }

    @Test func seccompAllowListKillsAnythingElse() async throws {
        // The shell runs under the allow-list plus what dash itself needs, then makes a
        // system call on neither list: mkdir.
        let extra = ["mkdirat", "mkdir"]
        #expect(QEMUJail.allowedSystemCalls.allSatisfy { !extra.contains($0) })
        let filter = try QEMUJail.compiledAllowList()
        let (out, ok) = try await runJailed(["/bin/sh", "-c", "echo before; exit 7"], filter: filter)
        #expect(ok == .exited(7))
        #expect(out == "before\n")
        let (out2, killed) = try await runJailed(["/bin/sh", "-c", "echo before; mkdir /x; echo after"], filter: filter)
        #expect(killed == .signaled(SIGSYS))
        #expect(out2 == "before\n")
    }

    @Test func identitiesAreExclusiveUntilReleased() async throws {
        try await TemporaryDirectory.with { dir in
            let jail = QEMUJail(firstID: QEMUJail.defaultFirstID, idCount: 2, lockDirectory: dir)
            var a: JailIdentity? = try jail.allocateIdentity()
            let b = try jail.allocateIdentity()
            #expect(a?.id != b.id)
            #expect(throws: QemuboxError.self) { try jail.allocateIdentity() }
            let freed = a?.id
            a = nil
            // A lock is free once every copy of its descriptor is closed: a child another test
            // is forking at this moment holds one until its exec, so the id comes back soon, not
            // necessarily at once.
            var again: JailIdentity?
            #expect(await eventually(timeout: .seconds(10)) {
                again = try? jail.allocateIdentity()
                return again != nil
            })
            #expect(again?.id == freed)
            #expect(throws: QemuboxError.self) { try QEMUJail(firstID: 0).validate() }
        }
    }

    @Test func allowListCompilesToOneCheckPerCall() throws {
        let names = QEMUJail.allowedSystemCalls
        #expect(Set(names).count == names.count, "duplicates in the allow-list")
        let program = try QEMUJail.compiledAllowList()
        // An architecture check, one comparison per call, the two returns: nothing unbounded.
        #expect(program.count > names.count && program.count < names.count * 2 + 16, "\(program.count) instructions")
        #expect(try QEMUJail.compiledAllowList(.off).count == 0)
        #expect(try QEMUJail.compiledAllowList(.log).count == program.count)
    }

    @Test func unknownSystemCallNameIsAClearError() {
        let error = #expect(throws: SpawnError.self) { try SeccompProgram.allowList(["read", "no_such_call"]) }
        #expect(error?.code == .unknownSystemCall && error?.message.contains("no_such_call") == true)
    }
}
