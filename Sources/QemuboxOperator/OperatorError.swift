/// The one error type of QemuboxOperator: a stable ``code`` for scripts and tests, a
/// message with the context, and the exit status the command ends with.
public struct OperatorError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong. Raw values never change.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The command line is wrong (exit status 2).
        case usage = "usage"
        /// The configuration file is unreadable or invalid.
        case invalidConfiguration = "invalid_configuration"
        /// No such VM, file or entry.
        case notFound = "not_found"
        /// A file could not be read or written.
        case io = "io"
        /// A directory, tar or OCI layout could not be turned into an EROFS image.
        case conversion = "conversion"
        /// An EROFS image could not be read.
        case corruptImage = "corrupt_image"
        /// `check` found at least one line that fails.
        case checkFailed = "check_failed"
        /// A host system call failed.
        case system = "system"
    }

    /// Stable error code.
    public var code: Code
    /// Details, with the context in which the error arose.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The exit status: 2 for usage errors, 1 for everything else.
    public var exitStatus: Int32 { code == .usage ? 2 : 1 }

    public var description: String { "qemubox: \(code.rawValue): \(message)" }
}
