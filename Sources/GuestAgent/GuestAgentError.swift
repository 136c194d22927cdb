#if canImport(Glibc)
import Glibc
#endif
import TTRPCCodec

/// The one error type of GuestAgent: a stable code, a message with context, and
/// the ttrpc status the host receives for it (containerd's `errdefs` mapping).
public struct GuestAgentError: Error, Sendable, Hashable, CustomStringConvertible, TTRPCStatusConvertible {
    /// What went wrong, stable across versions.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// No such container, process, stream or file.
        case notFound = "not-found"
        /// A container or exec id that is already in use.
        case alreadyExists = "already-exists"
        /// The call is valid but the object is in the wrong state (e.g. delete a running task).
        case failedPrecondition = "failed-precondition"
        /// The request itself is malformed.
        case invalidArgument = "invalid-argument"
        /// The guest cannot serve it now (shutting down).
        case unavailable = "unavailable"
        /// The runtime (crun) or a system call failed.
        case `internal` = "internal"
        /// Not supported by this agent.
        case unimplemented = "unimplemented"
        /// Waited too long for something (a stdio stream, a process).
        case deadlineExceeded = "deadline-exceeded"
    }

    /// The stable code.
    public var code: Code
    /// Human-readable message with context.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// An error for a failed system call, with `errno`'s text.
    static func system(_ what: String, errno err: Int32 = errno) -> GuestAgentError {
        let code: Code = switch err {
        case ENOENT: .notFound
        case EEXIST: .alreadyExists
        case EINVAL: .invalidArgument
        case EBUSY: .failedPrecondition
        default: .internal
        }
        return GuestAgentError(code, "\(what): \(String(cString: strerror(err))) (errno \(err))")
    }

    public var description: String { "guest-agent: \(code.rawValue): \(message)" }

    /// The status sent to the host, following containerd's `errdefs.ToGRPC`.
    public var ttrpcStatus: TTRPCError {
        let status: TTRPCError.Code = switch code {
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .failedPrecondition: .failedPrecondition
        case .invalidArgument: .invalidArgument
        case .unavailable: .unavailable
        case .internal: .internal
        case .unimplemented: .unimplemented
        case .deadlineExceeded: .deadlineExceeded
        }
        return TTRPCError(status, message)
    }
}
