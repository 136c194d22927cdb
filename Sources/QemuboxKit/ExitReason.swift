import Foundation
import ProcessSpawn
import QMPClient

/// Why a machine stopped, as a value.
public struct ExitReason: Sendable, Hashable, CustomStringConvertible {
    /// The classification.
    public enum Kind: String, Sendable, Hashable {
        /// The guest powered itself off.
        case guestPoweroff = "guest_poweroff"
        /// The guest rebooted; with `-no-reboot` that ends QEMU (also how a panic
        /// without a pvpanic driver ends, given `panic=-1`).
        case guestReboot = "guest_reboot"
        /// The guest kernel panicked (GUEST_PANICKED / SHUTDOWN reason `guest-panic`).
        case guestPanic = "guest_panic"
        /// We asked QEMU to `quit`.
        case quit
        /// QEMU got SIGTERM/SIGINT/SIGHUP from someone and shut down.
        case hostSignal = "host_signal"
        /// We killed QEMU (SIGKILL as the last stop step, or ``VirtualMachine/kill()``).
        case killed
        /// QEMU died on its own: a signal we did not send, or an exit without SHUTDOWN
        /// (e.g. a startup error).
        case crashed
        /// The machine never started.
        case neverStarted = "never_started"
        /// QEMU made a system call its jail's seccomp allow-list does not hold and was
        /// killed for it (`SIGSYS`); the kernel's audit log (`dmesg`, `type=1326`) names it.
        case jailViolation = "jail_violation"
    }

    /// Classification.
    public var kind: Kind
    /// How the QEMU process ended (nil if it never ran).
    public var termination: ProcessTermination?
    /// The reason of the last SHUTDOWN event, if any.
    public var shutdownReason: ShutdownReason?
    /// The end of the console output.
    public var consoleTail: String
    /// The end of QEMU's own stderr (error messages).
    public var qemuStderrTail: String

    public var description: String {
        var s = kind.rawValue
        if let termination { s += " (QEMU \(termination))" }
        if let shutdownReason { s += " shutdown=\(shutdownReason)" }
        return s
    }

    /// Classifies observed facts.
    static func classify(termination: ProcessTermination?, shutdownReason: ShutdownReason?,
                         panicked: Bool, killedByUs: Bool) -> Kind {
        guard let termination else { return .neverStarted }
        if panicked || shutdownReason == .guestPanic { return .guestPanic }
        if killedByUs, termination == .signaled(SIGKILL) { return .killed }
        if termination == .signaled(SIGSYS) { return .jailViolation }
        guard let reason = shutdownReason else { return .crashed }
        if reason == .guestShutdown { return .guestPoweroff }
        if reason == .guestReset { return .guestReboot }
        if reason == .hostQMPQuit || reason == .noReason { return .quit }
        if reason == .hostSignal { return .hostSignal }
        return .crashed
    }
}
