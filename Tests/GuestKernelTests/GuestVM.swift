import Foundation
import TestSupport

/// One QEMU microvm run: starts `qemu-system-x86_64` with the serial console on
/// its stdout, records each console line with the time since exec, and waits
/// for the guest to power off. QEMU is killed (SIGKILL, by pid) on timeout and
/// whenever the run is abandoned, so no VM outlives a test.
final class GuestVM: @unchecked Sendable {
    /// A console line and when it arrived, in seconds since QEMU's exec.
    struct Line: Sendable {
        let seconds: Double
        let text: String
    }

    /// What a finished run produced.
    struct Result: Sendable {
        let exitStatus: Int32
        let timedOut: Bool
        let lines: [Line]
        /// Seconds from exec to QEMU's exit.
        let seconds: Double

        /// The whole console, for failure messages.
        var console: String { lines.map(\.text).joined(separator: "\n") }

        /// The first line starting with `prefix`, without the prefix.
        func value(_ prefix: String) -> String? {
            lines.first { $0.text.hasPrefix(prefix) }.map { String($0.text.dropFirst(prefix.count)) }
        }

        /// When the first line starting with `prefix` arrived.
        func time(_ prefix: String) -> Double? {
            lines.first { $0.text.hasPrefix(prefix) }?.seconds
        }
    }

    private let process = Process()
    private let lock = NSLock()
    private var lines: [Line] = []
    private var partial = Data()
    private var started = Date()

    /// The arguments of a microvm per HOST-NOTES: TCG, no default devices, ISA
    /// serial console, RTC, no reboot (a guest reboot or panic ends QEMU), a
    /// virtio-rng so the guest never waits for entropy.
    static func microvmArguments(kernel: String, initrd: String, append extra: String = "") -> [String] {
        var cmdline = "console=ttyS0 panic=-1 quiet"
        if let khz = GuestKernel.tscEarlyKHz { cmdline += " tsc_early_khz=\(khz)" }
        if !extra.isEmpty { cmdline += " " + extra }
        return [
            "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on",
            "-accel", "tcg",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-smp", "1", "-m", "256",
            "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
            "-serial", "stdio",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-device,rng=rng0",
        ]
    }

    /// Starts QEMU with `arguments`.
    init(arguments: [String]) throws {
        guard let qemu = Prerequisite.which("qemu-system-x86_64") else {
            throw PeerError("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
        }
        process.executableURL = URL(fileURLWithPath: qemu)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        started = Date()
        try process.run()
        let reader = output.fileHandleForReading
        let thread = Thread { [self] in
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                append(chunk)
            }
            append(Data("\n".utf8))
        }
        thread.start()
    }

    /// QEMU's pid.
    var pid: Int32 { process.processIdentifier }

    /// Whether QEMU still runs.
    var isRunning: Bool { process.isRunning }

    private func append(_ chunk: Data) {
        let now = Date().timeIntervalSince(started)
        lock.lock()
        defer { lock.unlock() }
        partial.append(chunk)
        while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
            var text = String(decoding: partial[partial.startIndex..<newline], as: UTF8.self)
            if text.hasSuffix("\r") { text.removeLast() }
            partial.removeSubrange(partial.startIndex...newline)
            if !text.isEmpty { lines.append(Line(seconds: now, text: text)) }
        }
    }

    /// Waits (on a thread of its own) for QEMU to exit, killing it after `timeout` seconds.
    func wait(timeout: Double) async throws -> Result {
        try await runBlocking { [self] in
            let deadline = started.addingTimeInterval(timeout)
            var timedOut = false
            while process.isRunning {
                if Date() > deadline {
                    timedOut = true
                    kill()
                    break
                }
                usleep(5_000)
            }
            process.waitUntilExit()
            let seconds = Date().timeIntervalSince(started)
            // Let the reader thread drain what QEMU wrote last.
            usleep(100_000)
            lock.lock()
            defer { lock.unlock() }
            return Result(exitStatus: process.terminationStatus, timedOut: timedOut, lines: lines, seconds: seconds)
        }
    }

    /// Kills QEMU (SIGKILL, by pid) if it still runs.
    func kill() {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { kill() }
}
