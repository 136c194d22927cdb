/// An asynchronous QMP event, as QEMU sent it, with a typed view in ``kind``.
public struct QMPEvent: Sendable, Hashable {
    /// The event name, e.g. `SHUTDOWN`.
    public var name: String
    /// The event's `data` member (`.object([:])` when absent).
    public var data: JSONValue
    /// QEMU's timestamp: seconds and microseconds since the Unix epoch.
    public var seconds: Int64
    /// Microseconds part of the timestamp.
    public var microseconds: Int64

    /// Creates an event.
    public init(name: String, data: JSONValue = .object([:]), seconds: Int64 = 0, microseconds: Int64 = 0) {
        self.name = name
        self.data = data
        self.seconds = seconds
        self.microseconds = microseconds
    }

    /// The typed interpretation of the events qemubox reacts to.
    public var kind: Kind {
        switch name {
        case "SHUTDOWN":
            return .shutdown(guest: data["guest"]?.boolValue ?? false,
                             reason: ShutdownReason(rawValue: data["reason"]?.stringValue ?? "unknown"))
        case "POWERDOWN": return .powerdown
        case "RESET":
            return .reset(guest: data["guest"]?.boolValue ?? false,
                          reason: ShutdownReason(rawValue: data["reason"]?.stringValue ?? "unknown"))
        case "STOP": return .stop
        case "RESUME": return .resume
        case "DEVICE_DELETED":
            return .deviceDeleted(device: data["device"]?.stringValue, path: data["path"]?.stringValue ?? "")
        case "GUEST_PANICKED":
            return .guestPanicked(action: data["action"]?.stringValue ?? "unknown")
        case "BLOCK_IO_ERROR":
            return .blockIOError(device: data["device"]?.stringValue ?? "",
                                 nodeName: data["node-name"]?.stringValue,
                                 operation: data["operation"]?.stringValue ?? "",
                                 action: data["action"]?.stringValue ?? "",
                                 noSpace: data["nospace"]?.boolValue ?? false,
                                 reason: data["reason"]?.stringValue ?? "")
        default: return .other
        }
    }

    /// Typed event payloads. Unknown events are ``other``; read ``QMPEvent/data``.
    public enum Kind: Sendable, Hashable {
        /// QEMU is shutting down (and, without `-action shutdown=pause`, exiting).
        case shutdown(guest: Bool, reason: ShutdownReason)
        /// A `system_powerdown` was delivered to the guest (ACPI power button).
        case powerdown
        /// The machine was reset.
        case reset(guest: Bool, reason: ShutdownReason)
        /// The vCPUs stopped.
        case stop
        /// The vCPUs resumed.
        case resume
        /// A device finished unplugging (the moment `device_del` really completes).
        case deviceDeleted(device: String?, path: String)
        /// The guest reported a panic (pvpanic, Hyper-V crash MSRs); `action` is what QEMU did.
        case guestPanicked(action: String)
        /// A block device hit an I/O error.
        case blockIOError(device: String, nodeName: String?, operation: String, action: String,
                          noSpace: Bool, reason: String)
        /// Any other event.
        case other
    }
}

/// QEMU's `ShutdownCause` as a string-backed value that tolerates future causes.
public struct ShutdownReason: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// No reason (a plain `quit` on older QEMU).
    public static let noReason = ShutdownReason(rawValue: "none")
    /// `quit` over QMP.
    public static let hostQMPQuit = ShutdownReason(rawValue: "host-qmp-quit")
    /// `system_reset` over QMP.
    public static let hostQMPSystemReset = ShutdownReason(rawValue: "host-qmp-system-reset")
    /// QEMU got SIGTERM/SIGINT/SIGHUP.
    public static let hostSignal = ShutdownReason(rawValue: "host-signal")
    /// The host UI closed the window.
    public static let hostUI = ShutdownReason(rawValue: "host-ui")
    /// The guest powered off.
    public static let guestShutdown = ShutdownReason(rawValue: "guest-shutdown")
    /// The guest rebooted (with `-no-reboot` QEMU exits instead).
    public static let guestReset = ShutdownReason(rawValue: "guest-reset")
    /// The guest panicked and the panic action was `shutdown`.
    public static let guestPanic = ShutdownReason(rawValue: "guest-panic")
    /// A reset requested by a device or firmware.
    public static let subsystemReset = ShutdownReason(rawValue: "subsystem-reset")
}
