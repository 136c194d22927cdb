import Foundation
import Testing
import TestSupport
@testable import CNIRunner

/// Shared setup of the CNIRunner tests: prerequisites, per-test namespaces and temp dirs,
/// script plugins, and running helper commands inside a namespace.
enum CNIFixture {
    static let pluginDirectory = "/usr/lib/cni"

    /// Real-plugin tests need root, the reference plugins and iproute2/nsenter/busybox.
    /// Skipped (with the reason printed) when absent, except under CI, where they then fail.
    static let available: Bool = {
        var missing: [String] = []
        if !Prerequisite.isRoot { missing.append("root") }
        for plugin in ["bridge", "host-local", "portmap"]
        where !FileManager.default.isExecutableFile(atPath: pluginDirectory + "/" + plugin) {
            missing.append("\(pluginDirectory)/\(plugin) (apt-get install containernetworking-plugins)")
        }
        for tool in ["ip", "ss", "tc", "nsenter", "busybox"] where Prerequisite.which(tool) == nil { missing.append(tool) }
        if missing.isEmpty || Prerequisite.isCI { return true }
        FileHandle.standardError.write(Data("SKIP CNIRunnerTests: missing \(missing.joined(separator: ", ")); run scripts/install-deps.sh as root\n".utf8))
        return false
    }()

    /// Root alone (namespace creation), for tests that need no plugins.
    static let isRoot: Bool = {
        if Prerequisite.isRoot || Prerequisite.isCI { return true }
        FileHandle.standardError.write(Data("SKIP CNIRunnerTests namespace tests: not root\n".utf8))
        return false
    }()

    /// A test's private world: a "host" namespace where plugins run, a container namespace,
    /// and a temporary directory (cache, IPAM data, script plugins).
    struct World {
        let id: String
        let host: NetworkNamespace
        let container: NetworkNamespace
        let directory: String

        var cacheDirectory: String { directory + "/cache" }
        var ipamDirectory: String { directory + "/ipam" }
        var scriptDirectory: String { directory + "/bin" }

        func runner(timeout: Duration = .seconds(30), extraBin: Bool = false) -> CNIRunner {
            CNIRunner(binDirectories: (extraBin ? [scriptDirectory] : []) + [CNIFixture.pluginDirectory],
                      cacheDirectory: cacheDirectory, timeout: timeout, pluginNetworkNamespace: host.path)
        }

        func runtime(_ containerID: String? = nil) -> CNIRuntimeConfig {
            CNIRuntimeConfig(containerID: containerID ?? "ctr-\(id)", networkNamespace: container.path)
        }

        /// The IPs host-local has on record (its data dir holds one file per allocated address).
        func allocatedAddresses(network: String) -> [String] {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: ipamDirectory + "/" + network)) ?? []
            return entries.filter { $0.first?.isNumber == true || $0.contains(":") }.filter { !$0.hasPrefix("last_reserved_ip") }
        }

        /// A bridge + host-local (+ optional extra plugins) conflist at `version`.
        func bridgeList(version: String, name: String = "qbxnet", extra: [CNIJSON] = []) throws -> CNINetworkList {
            let bridge: CNIJSON = [
                "type": "bridge", "bridge": "qbxbr0", "isGateway": true, "ipMasq": false,
                "ipam": [
                    "type": "host-local", "dataDir": .string(ipamDirectory),
                    "ranges": [[["subnet": "10.99.0.0/24"]]],
                    "routes": [["dst": "0.0.0.0/0"]],
                ],
            ]
            let object: CNIJSON = ["cniVersion": .string(version), "name": .string(name), "plugins": .array([bridge] + extra)]
            return try CNINetworkList.parse(object.serialized(), source: "test")
        }

        /// Writes an executable `/bin/sh` script plugin named `name` into ``scriptDirectory``.
        func writePlugin(_ name: String, _ body: String) throws {
            try FileManager.default.createDirectory(atPath: scriptDirectory, withIntermediateDirectories: true)
            try CNIFixture.writeScript(scriptDirectory + "/" + name, body)
        }
    }

    /// Runs `body` in a fresh ``World``; namespaces and the directory are removed afterwards
    /// whatever happens (removing the namespaces also removes every link, bridge and
    /// iptables rule made inside them).
    static func withWorld<T>(_ body: (World) async throws -> T) async throws -> T {
        let id = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let host = try NetworkNamespace.create(name: "qbxcni-\(id)-host")
        defer { try? host.remove() }
        let container = try NetworkNamespace.create(name: "qbxcni-\(id)-ctr")
        defer { try? container.remove() }
        _ = try await sh(host.path, ["ip", "link", "set", "lo", "up"])
        _ = try await sh(container.path, ["ip", "link", "set", "lo", "up"])
        return try await body(World(id: id, host: host, container: container, directory: directory))
    }

    /// Writes an executable `/bin/sh` script at `path`, keeping the time the file is open for
    /// writing, and so the window for ETXTBSY, as short as possible. While a descriptor
    /// writing the file is open, exec of it fails with "Text file busy", and a child another
    /// test is spawning at that moment gets a copy of every descriptor (until its exec).
    /// Foundation's `Data.write` opens without O_CLOEXEC, so a child that does not close
    /// its descriptors keeps the copy for its whole life. Here the descriptor is O_CLOEXEC, the
    /// file is complete and executable before it appears under its name (written under a
    /// temporary name, then renamed), and CNIRunner retries a spawn that still hits ETXTBSY.
    static func writeScript(_ path: String, _ body: String) throws {
        let temporary = path + ".tmp-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o700)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let bytes = Array(("#!/bin/sh\n" + body).utf8)
        var written = 0
        var failure: Int32 = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                failure = errno
                break
            }
            written += count
        }
        if failure == 0, fchmod(fd, 0o755) != 0 { failure = errno }
        close(fd)
        if failure == 0, rename(temporary, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw POSIXError(POSIXErrorCode(rawValue: failure) ?? .EIO)
        }
    }

    /// A temporary directory (removed by the caller).
    static func makeTemporaryDirectory() throws -> String {
        var template = Array("\(FileManager.default.temporaryDirectory.path)/qbxcni.XXXXXX".utf8CString)
        return try template.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress, mkdtemp(base) != nil else { throw POSIXError(.EIO) }
            return String(cString: base)
        }
    }

    struct CommandResult {
        var status: Int32?
        var stdout: String
        var stderr: String
    }

    /// Runs a command (found on PATH) inside the namespace at `netns` (nil: this namespace).
    static func sh(_ netns: String?, _ command: [String], input: String = "", timeout: Duration = .seconds(20),
                   check: Bool = true) async throws -> CommandResult {
        guard let tool = command.first, let path = Prerequisite.which(tool) else { throw PeerError("\(command) not found") }
        let executable = netns == nil ? path : (Prerequisite.which("nsenter") ?? "/usr/bin/nsenter")
        let arguments = netns.map { ["--net=\($0)", "--", path] + command.dropFirst() } ?? Array(command.dropFirst())
        let output = try await ChildProcess.run(executable: executable, arguments: arguments,
                                                environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                                                input: Data(input.utf8), timeout: timeout)
        let result = CommandResult(status: output.exitStatus, stdout: String(decoding: output.stdout, as: UTF8.self),
                                   stderr: String(decoding: output.stderr, as: UTF8.self))
        if check, output.exitStatus != 0 || output.stopReason != nil {
            throw PeerError("\(command.joined(separator: " ")) failed (\(output.statusText)): \(result.stderr)")
        }
        return result
    }

    /// Creates a TAP device `name` in the namespace at `netns` and returns its descriptor
    /// (the device goes when it is closed), as QEMU holds its NICs' TAPs. Made on a thread of
    /// its own that enters the namespace and ends with it.
    static func openTap(_ name: String, in netns: String) throws -> Int32 {
        // Written by the thread before it signals, read after the wait.
        final class Outcome: @unchecked Sendable { var value: Result<Int32, PeerError> = .failure(PeerError("not run")) }
        let result = Outcome()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            let ns = open(netns, O_RDONLY | O_CLOEXEC)
            guard ns >= 0 else { result.value = .failure(PeerError("open \(netns): errno \(errno)")); return }
            defer { close(ns) }
            // setns(2) is not in Glibc's Swift overlay (it needs _GNU_SOURCE): looked up by name.
            typealias SetNS = @convention(c) (Int32, Int32) -> Int32
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setns"),
                  unsafeBitCast(symbol, to: SetNS.self)(ns, 0x4000_0000) == 0 else {  // CLONE_NEWNET
                result.value = .failure(PeerError("setns \(netns): errno \(errno)"))
                return
            }
            let fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { result.value = .failure(PeerError("/dev/net/tun: errno \(errno)")); return }
            // struct ifreq: the name (16 bytes), then the flags: IFF_TAP | IFF_NO_PI.
            var request = [UInt8](repeating: 0, count: 40)
            for (index, byte) in name.utf8.prefix(15).enumerated() { request[index] = byte }
            request[16] = 0x02
            request[17] = 0x10
            let status = request.withUnsafeMutableBytes { ioctl(fd, UInt(0x4004_54ca), $0.baseAddress!) }  // TUNSETIFF
            guard status == 0 else {
                let code = errno
                close(fd)
                result.value = .failure(PeerError("TUNSETIFF \(name): errno \(code)"))
                return
            }
            result.value = .success(fd)
        }
        thread.start()
        done.wait()
        return try result.value.get()
    }

    /// Whether a process exists (and is not a zombie).
    static func processAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        guard let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }
}
