/// The one error type of ProcessSpawn: a stable ``code``, the step that failed and
/// the errno where there is one.
public struct SpawnError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong. Raw values never change.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The child could not be started: fork, a namespace, a TAP, the descriptors,
        /// the jail or exec failed (``SpawnError/stage`` says which).
        case spawnFailed = "spawn_failed"
        /// A seccomp allow-list names a system call libseccomp does not know.
        case unknownSystemCall = "unknown_system_call"
        /// libseccomp could not compile a filter.
        case seccompFailed = "seccomp_failed"
    }

    /// Stable error code.
    public var code: Code
    /// Human-readable detail, with the path and step.
    public var message: String
    /// The errno, when a system call failed (e.g. `ETXTBSY` for a binary being written).
    public var errno: Int32?

    /// Creates an error.
    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    public var description: String { "spawn: \(code.rawValue): \(message)" }
}
