import Foundation
import VsockTransport

/// A QEMU microvm (TCG) running the static `VsockGuestEcho` program from a tiny
/// initramfs on the Debian cloud kernel, with one virtio-serial port whose host
/// end is a unix socket. Used by the QEMU test and the benchmark.
public final class EchoGuestVM: @unchecked Sendable {
    /// The virtio-serial port name the guest looks for.
    public static let portName = "org.qemubox.test"

    /// The package root (derived from this file's location).
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Where the prerequisites live.
    public static let kernelDir = "/var/cache/qemubox/cloud-kernel/current"
    /// The static guest binary built by scripts/build-vsock-guest.sh.
    public static var guestBinary: String { packageRoot + "/.build-guest/release/VsockGuestEcho" }
    static let busybox = "/bin/busybox"
    static let modules = ["virtio_ring", "virtio", "virtio_mmio", "virtio_console", "virtio-rng"]

    /// What is missing to boot the VM (empty when everything is there).
    public static func missingPrerequisites() -> [String] {
        var missing: [String] = []
        let fm = FileManager.default
        for tool in ["qemu-system-x86_64", "cpio"] where which(tool) == nil { missing.append(tool) }
        if !fm.isExecutableFile(atPath: busybox) { missing.append("\(busybox) (busybox-static)") }
        if (try? kernelImage()) == nil { missing.append("cloud kernel in \(kernelDir)") }
        if !fm.isExecutableFile(atPath: guestBinary) {
            missing.append("\(guestBinary) (scripts/build-vsock-guest.sh)")
        }
        return missing
    }

    /// The serial-port socket the host connects to.
    public let socketPath: String
    /// The guest's console output.
    public let consolePath: String
    let process: Process

    /// Boots the VM with its files in `directory` (which the caller removes).
    public init(directory: String) throws {
        let initrd = directory + "/initrd.cpio"
        try Self.makeInitramfs(at: initrd, work: directory + "/initramfs")
        socketPath = directory + "/serial.sock"
        consolePath = directory + "/console.log"
        let tsc = Self.tscKHz().map { " tsc_early_khz=\($0)" } ?? ""
        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.which("qemu-system-x86_64") ?? "/usr/bin/qemu-system-x86_64")
        process.arguments = [
            "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on",
            "-accel", "tcg", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-smp", "1", "-m", "256",
            "-kernel", try Self.kernelImage(), "-initrd", initrd,
            "-append", "console=ttyS0 panic=-1 quiet\(tsc)",
            "-serial", "file:\(consolePath)",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-device,rng=rng0",
            "-chardev", "socket,path=\(socketPath),server=on,wait=off,id=c0",
            "-device", "virtio-serial-device",
            "-device", "virtserialport,chardev=c0,name=\(Self.portName)",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
    }

    /// The QEMU process id.
    public var pid: Int32 { process.processIdentifier }

    /// Kills QEMU (by pid) and waits for it.
    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }

    /// The guest console so far.
    public func console() -> String {
        (try? String(contentsOfFile: consolePath, encoding: .utf8)) ?? ""
    }

    /// Boots, connects a host yamux session, waits until the guest answers a ping,
    /// runs `body`, and stops the VM whatever happens.
    public static func with<T>(directory: String, _ body: (EchoGuestVM, YamuxSession) async throws -> T) async throws -> T {
        let vm = try EchoGuestVM(directory: directory)
        defer { vm.stop() }
        let session = try await vm.connect()
        do {
            let result = try await body(vm, session)
            await session.close()
            return result
        } catch {
            await session.close()
            throw error
        }
    }

    /// Connects to the serial socket and waits (up to `timeout`) for the guest to
    /// answer a ping: bytes sent before the guest opens its port wait in QEMU.
    public func connect(timeout: Duration = .seconds(90)) async throws -> YamuxSession {
        var configuration = YamuxConfiguration()
        configuration.keepaliveTimeout = .seconds(Int64(timeout.components.seconds))
        let session: YamuxSession
        do {
            session = try await VirtioSerialHost.connect(path: socketPath, configuration: configuration, timeout: timeout)
        } catch {
            throw VsockTransportError(.connectFailed, "\(error)\nconsole:\n\(console())")
        }
        do {
            _ = try await session.ping()
        } catch {
            await session.close()
            throw VsockTransportError(.connectFailed, "guest never answered: \(error)\nconsole:\n\(console())")
        }
        return session
    }

    // MARK: Building the initramfs

    static func kernelImage() throws -> String {
        let boot = kernelDir + "/boot"
        let names = try FileManager.default.contentsOfDirectory(atPath: boot)
        guard let image = names.first(where: { $0.hasPrefix("vmlinuz-") }) else {
            throw VsockTransportError(.deviceNotFound, "no vmlinuz in \(boot)")
        }
        return boot + "/" + image
    }

    static func moduleDir() throws -> String {
        let base = kernelDir + "/lib/modules"
        guard let version = try FileManager.default.contentsOfDirectory(atPath: base).first else {
            throw VsockTransportError(.deviceNotFound, "no modules in \(base)")
        }
        return base + "/" + version + "/kernel"
    }

    static func makeInitramfs(at output: String, work: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: work + "/bin", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: work + "/modules", withIntermediateDirectories: true)
        try fm.copyItem(atPath: busybox, toPath: work + "/bin/busybox")
        try fm.copyItem(atPath: guestBinary, toPath: work + "/guest-echo")
        let moduleRoot = try moduleDir()
        guard let enumerator = fm.enumerator(atPath: moduleRoot) else {
            throw VsockTransportError(.deviceNotFound, "cannot list \(moduleRoot)")
        }
        var found: [String: String] = [:]
        while let rel = enumerator.nextObject() as? String {
            let name = (rel as NSString).lastPathComponent
            for module in modules where name == module + ".ko" { found[module] = moduleRoot + "/" + rel }
        }
        for module in modules {
            guard let path = found[module] else {
                throw VsockTransportError(.deviceNotFound, "module \(module).ko not in \(moduleRoot)")
            }
            try fm.copyItem(atPath: path, toPath: work + "/modules/\(module).ko")
        }
        let insmods = modules.map { "/bin/busybox insmod /modules/\($0).ko" }.joined(separator: "\n")
        let initScript = """
            #!/bin/busybox sh
            /bin/busybox mkdir -p /proc /sys /dev /tmp
            /bin/busybox mount -t proc proc /proc
            /bin/busybox mount -t sysfs sys /sys
            /bin/busybox mount -t devtmpfs dev /dev
            \(insmods)
            echo guest-init: modules loaded
            /guest-echo \(portName)
            /bin/busybox poweroff -f

            """
        try initScript.write(toFile: work + "/init", atomically: true, encoding: .utf8)
        chmod(work + "/init", 0o755)
        let cpio = Process()
        cpio.executableURL = URL(fileURLWithPath: "/bin/sh")
        cpio.arguments = ["-c", "cd \"$1\" && find . | cpio -o -H newc --quiet > \"$2\"", "sh", work, output]
        try cpio.run()
        cpio.waitUntilExit()
        guard cpio.terminationStatus == 0 else {
            throw VsockTransportError(.ioError, "cpio failed with status \(cpio.terminationStatus)")
        }
        try? fm.removeItem(atPath: work)
    }

    static func tscKHz() -> Int? {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in info.split(separator: "\n") where line.hasPrefix("cpu MHz") {
            if let value = line.split(separator: ":").last.flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }) {
                return Int(value * 1000)
            }
        }
        return nil
    }

    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        var dirs = path.split(separator: ":").map(String.init)
        dirs += ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        for dir in dirs {
            let candidate = dir + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
