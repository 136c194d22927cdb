/// The one error type of TTRPCCodec: a ttrpc status (a `google.rpc.Status` code
/// and message) plus the local context in which it arose.
///
/// Remote failures arrive as the status the peer sent; local failures (a closed
/// connection, a malformed frame, a deadline) are expressed with the code that
/// containerd's `errdefs` and Go ttrpc use for the same situation, so a caller
/// can switch on ``code`` whichever side failed.
public struct TTRPCError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The status code, as in `google.rpc.Code` (and gRPC's `codes`).
    public var code: Code
    /// Human-readable message; travels in `google.rpc.Status.message`.
    public var message: String

    /// Creates an error with a code and message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String {
        "ttrpc: \(code) (\(code.rawValue)): \(message)"
    }

    /// The `google.rpc.Code` values. Raw values are the wire values and never change.
    public enum Code: Int32, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        case ok = 0
        case cancelled = 1
        case unknown = 2
        case invalidArgument = 3
        case deadlineExceeded = 4
        case notFound = 5
        case alreadyExists = 6
        case permissionDenied = 7
        case resourceExhausted = 8
        case failedPrecondition = 9
        case aborted = 10
        case outOfRange = 11
        case unimplemented = 12
        case `internal` = 13
        case unavailable = 14
        case dataLoss = 15
        case unauthenticated = 16

        /// Maps any wire value to a code; values outside the known range become `.unknown`,
        /// as gRPC does.
        public init(wireValue: Int32) {
            self = Code(rawValue: wireValue) ?? .unknown
        }

        public var description: String {
            switch self {
            case .ok: "OK"
            case .cancelled: "Canceled"
            case .unknown: "Unknown"
            case .invalidArgument: "InvalidArgument"
            case .deadlineExceeded: "DeadlineExceeded"
            case .notFound: "NotFound"
            case .alreadyExists: "AlreadyExists"
            case .permissionDenied: "PermissionDenied"
            case .resourceExhausted: "ResourceExhausted"
            case .failedPrecondition: "FailedPrecondition"
            case .aborted: "Aborted"
            case .outOfRange: "OutOfRange"
            case .unimplemented: "Unimplemented"
            case .internal: "Internal"
            case .unavailable: "Unavailable"
            case .dataLoss: "DataLoss"
            case .unauthenticated: "Unauthenticated"
            }
        }
    }
}

extension TTRPCError {
    /// The connection closed (or was closed) before the call completed.
    /// Go ttrpc reports `ErrClosed`; containerd treats it as unavailable.
    public static func connectionClosed(_ context: String = "connection closed") -> TTRPCError {
        TTRPCError(.unavailable, context)
    }

    /// A frame or message violated the protocol.
    public static func protocolViolation(_ context: String) -> TTRPCError {
        TTRPCError(.internal, "protocol violation: \(context)")
    }
}

/// Errors of other modules conform to this to choose the status a ttrpc server
/// sends for them, the way containerd's `errdefs.ToGRPC` does (not found →
/// `NotFound`, already exists → `AlreadyExists`, and so on).
///
/// A handler error that neither is a ``TTRPCError`` nor conforms is sent as
/// `Unknown` with its description, as Go ttrpc does for plain errors.
public protocol TTRPCStatusConvertible: Error {
    /// The status to send to the peer for this error.
    var ttrpcStatus: TTRPCError { get }
}

extension TTRPCError: TTRPCStatusConvertible {
    public var ttrpcStatus: TTRPCError { self }
}

extension TTRPCError {
    /// The status a server sends for an arbitrary handler error.
    public static func from(_ error: any Error) -> TTRPCError {
        if let convertible = error as? any TTRPCStatusConvertible {
            return convertible.ttrpcStatus
        }
        if error is CancellationError {
            return TTRPCError(.cancelled, "context canceled")
        }
        return TTRPCError(.unknown, String(describing: error))
    }
}
