/// The one error type of QMPClient.
///
/// ``code`` is stable and meant for `switch`; ``message`` is for humans. A command
/// that QEMU rejected carries the QMP error class (e.g. `GenericError`,
/// `DeviceNotFound`) in ``qmpClass`` and QEMU's description in ``message``.
public struct QMPError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong. Raw values never change.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// QEMU answered the command with an `error` object.
        case commandFailed = "command_failed"
        /// The connection is closed (by either side); pending commands fail with it at once.
        case connectionClosed = "connection_closed"
        /// Connecting to the socket failed.
        case connectFailed = "connect_failed"
        /// The peer sent something that is not QMP: bad JSON, a non-object, a missing greeting.
        case protocolViolation = "protocol_violation"
        /// A single message exceeded the configured size limit.
        case messageTooLarge = "message_too_large"
        /// A result did not have the shape the typed command expects.
        case unexpectedResult = "unexpected_result"
        /// No answer within the configured time.
        case timeout = "timeout"
        /// The caller passed something that cannot be sent (e.g. arguments that are not an object).
        case invalidArgument = "invalid_argument"
    }

    /// Stable error code.
    public var code: Code
    /// Human-readable detail (QEMU's `desc` for ``Code/commandFailed``).
    public var message: String
    /// The QMP error class for ``Code/commandFailed`` (`GenericError`, `CommandNotFound`,
    /// `DeviceNotActive`, `DeviceNotFound`, `KVMMissingCap`), nil otherwise.
    public var qmpClass: String?
    /// The command that failed, when the error belongs to one.
    public var command: String?

    /// Creates an error.
    public init(_ code: Code, _ message: String, qmpClass: String? = nil, command: String? = nil) {
        self.code = code
        self.message = message
        self.qmpClass = qmpClass
        self.command = command
    }

    public var description: String {
        var s = "qmp: \(code.rawValue)"
        if let command { s += " [\(command)]" }
        if let qmpClass { s += " \(qmpClass)" }
        return s + ": \(message)"
    }
}
