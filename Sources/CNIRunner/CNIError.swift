/// The one error type of CNIRunner, with a stable ``Code``.
///
/// ``message`` names what failed (the plugin, the network, the file) and, when a plugin
/// failed, carries the plugin's own `msg` and `details` (or the tail of its stderr).
public struct CNIError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is.
    public enum Code: String, Sendable {
        /// A network configuration (conflist/conf) or runtime configuration is invalid.
        case invalidConfiguration
        /// No bin directory holds an executable plugin of the requested type.
        case pluginNotFound
        /// A plugin exited non-zero (its CNI error, if any, is in the message).
        case pluginFailed
        /// A plugin's output is not a valid CNI result (or VERSION answer).
        case invalidResult
        /// A plugin did not finish within the runner's timeout and was killed.
        case timeout
        /// Creating, removing or entering a network namespace failed.
        case namespace
        /// A system call or helper tool (ip, tc, nsenter) failed.
        case system
        /// Reading or writing the result cache failed.
        case cache
    }

    /// The failure's kind.
    public let code: Code
    /// A human-readable explanation naming the plugin, network or file involved.
    public let message: String
    /// For ``Code/pluginFailed``: the CNI error code the plugin reported, if it printed one.
    public let pluginErrorCode: Int?

    /// Creates an error.
    public init(_ code: Code, _ message: String, pluginErrorCode: Int? = nil) {
        self.code = code
        self.message = message
        self.pluginErrorCode = pluginErrorCode
    }

    /// `"<code>: <message>"`.
    public var description: String { "\(code.rawValue): \(message)" }
}
