import Foundation
import NIOCore
import QemuboxAPI
import TestSupport
import TTRPCCodec
import VsockTransport

/// Locates the guest kernel and system image the VM tests boot.
enum GuestArtifacts {
    static let kernelPath = ProcessInfo.processInfo.environment["QEMUBOX_GUEST_KERNEL"]
        ?? "/var/cache/qemubox/kernel/current/vmlinux"
    static let imagePath = ProcessInfo.processInfo.environment["QEMUBOX_GUEST_IMAGE"]
        ?? "\(GoPeer.repositoryRoot)/.build-guest/qemubox-guest.erofs"

    /// Whether the VM tests can run (under CI they run and fail loudly).
    static var available: Bool {
        let present = FileManager.default.fileExists(atPath: kernelPath)
            && FileManager.default.fileExists(atPath: imagePath)
            && Prerequisite.which("qemu-system-x86_64") != nil
            && Prerequisite.which("mkfs.erofs") != nil
        if present || Prerequisite.isCI { return true }
        FileHandle.standardError.write(Data(
            "SKIP: guest VM tests need \(kernelPath) (kernel-config/build.sh), \(imagePath) (packaging/build-guest-image.sh), qemu and mkfs.erofs\n".utf8))
        return false
    }

    static var tscEarlyKHz: Int? {
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("cpu MHz") {
            if let value = line.split(separator: ":").last, let mhz = Double(value.trimmingCharacters(in: .whitespaces)) {
                return Int(mhz * 1000)
            }
        }
        return nil
    }
}

/// A microvm booted from the guest system image with vminitd as PID 1, the
/// agent's virtio-serial port on a unix socket, and extra read-only disks.
/// QEMU is killed (by pid) when the VM is stopped or released.
final class AgentVM: @unchecked Sendable {
    let process = Process()
    let socketPath: String
    private let lock = NSLock()
    private var output = Data()

    init(directory: String, disks: [(serial: String, path: String)] = []) throws {
        socketPath = "\(directory)/agent.sock"
        var cmdline = "console=ttyS0 panic=-1 quiet"
        if let khz = GuestArtifacts.tscEarlyKHz { cmdline += " tsc_early_khz=\(khz)" }
        cmdline += " root=/dev/vda rootfstype=erofs ro init=/sbin/vminitd"
        var arguments = [
            "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on",
            "-accel", "tcg",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-smp", "1", "-m", "512",
            "-kernel", GuestArtifacts.kernelPath, "-append", cmdline,
            "-serial", "stdio",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-device,rng=rng0",
        ]
        let all = [(serial: "qemubox-system", path: GuestArtifacts.imagePath)] + disks
        for (index, disk) in all.enumerated() {
            arguments += ["-drive", "if=none,id=d\(index),file=\(disk.path),format=raw,readonly=on",
                          "-device", "virtio-blk-device,drive=d\(index),serial=\(disk.serial)"]
        }
        arguments += [
            "-chardev", "socket,path=\(socketPath),server=on,wait=off,id=agent",
            "-device", "virtio-serial-device",
            "-device", "virtserialport,chardev=agent,name=\(GuestAgentProtocol.portName)",
        ]
        guard let qemu = Prerequisite.which("qemu-system-x86_64") else { throw PeerError("qemu-system-x86_64 not found") }
        process.executableURL = URL(fileURLWithPath: qemu)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let reader = pipe.fileHandleForReading
        Thread { [self] in
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                lock.lock()
                output.append(chunk)
                lock.unlock()
            }
        }.start()
    }

    /// The console so far.
    var console: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: output, as: UTF8.self)
    }

    /// Connects to the agent and opens its ttrpc stream.
    func connect(timeout: Duration = .seconds(60)) async throws -> AgentClient {
        let session = try await VirtioSerialHost.connect(path: socketPath, timeout: timeout)
        let stream = try await session.openStream()
        try await stream.write(GuestStreamHeader.ttrpc.bytes)
        var reply = ByteBuffer()
        while reply.readableBytes < GuestAgentProtocol.ttrpcReady.utf8.count {
            guard var chunk = try await stream.read() else { throw PeerError("agent closed the ttrpc stream") }
            reply.writeBuffer(&chunk)
        }
        guard reply.readString(length: reply.readableBytes) == GuestAgentProtocol.ttrpcReady else {
            throw PeerError("unexpected ttrpc reply")
        }
        let channel = try await stream.makeChannel(startReading: false)
        let client = try await TTRPCClient(channel: channel)
        stream.startReadingChannel()
        return AgentClient(session: session, client: client)
    }

    /// Waits for QEMU to exit (true) within `seconds`.
    func waitForExit(seconds: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        return !process.isRunning
    }

    /// Kills QEMU (SIGKILL, by pid) if it still runs.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// A connected host end: typed clients and stdio streams.
struct AgentClient: Sendable {
    let session: YamuxSession
    let client: TTRPCClient
    var system: QemuboxGuestV1SystemClient { QemuboxGuestV1SystemClient(client) }
    var task: ContainerdTaskV2TaskClient { ContainerdTaskV2TaskClient(client) }

    /// Opens a stdio stream named `key`.
    func openStdio(_ key: String) async throws -> YamuxStream {
        let stream = try await session.openStream()
        try await stream.write(GuestStreamHeader.stdio(key: key).bytes)
        return stream
    }

    func close() async {
        try? await client.close()
        await session.close()
    }
}

/// Runs `body` with a booted agent VM, stopping it afterwards (also on failure).
func withAgentVM<T: Sendable>(disks: [(serial: String, path: String)] = [], directory: String,
                              _ body: @Sendable (AgentVM, AgentClient) async throws -> T) async throws -> T {
    try await ConcurrencyLimit.vms.run {
        let vm = try AgentVM(directory: directory, disks: disks)
        defer { vm.stop() }
        let agent: AgentClient
        do {
            agent = try await vm.connect()
        } catch {
            throw PeerError("cannot reach the agent: \(error)\nconsole:\n\(vm.console)")
        }
        do {
            let result = try await body(vm, agent)
            await agent.close()
            return result
        } catch {
            await agent.close()
            throw PeerError("\(error)\nconsole:\n\(vm.console)")
        }
    }
}
