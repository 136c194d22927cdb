import QemuboxKit
import TTRPCCodec

/// The one error type of QemuboxShim: a stable ``code`` and a message with
/// context. Each code maps to the status containerd's `errdefs` expects
/// (``ttrpcStatus``), so `errdefs.IsNotFound` and friends work on its side.
public struct ShimError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong. Raw values never change.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// Bad command line or request fields (`InvalidArgument`).
        case invalidArgument = "invalid_argument"
        /// No such task or process (`NotFound`).
        case notFound = "not_found"
        /// The task or process exists already (`AlreadyExists`).
        case alreadyExists = "already_exists"
        /// The call is not valid in the task's state (`FailedPrecondition`).
        case failedPrecondition = "failed_precondition"
        /// The shim does not do this (`Unimplemented`).
        case unimplemented = "unimplemented"
        /// The VM or its agent is gone (`Unavailable`).
        case unavailable = "unavailable"
        /// Anything else: I/O, the VM, the rootfs (`Internal`).
        case `internal` = "internal"
    }

    /// Stable error code.
    public var code: Code
    /// Details.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "qemubox shim: \(code.rawValue): \(message)" }
}

extension ShimError: TTRPCStatusConvertible {
    public var ttrpcStatus: TTRPCError {
        let status: TTRPCError.Code = switch code {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .failedPrecondition: .failedPrecondition
        case .unimplemented: .unimplemented
        case .unavailable: .unavailable
        case .internal: .internal
        }
        return TTRPCError(status, message)
    }
}
