import Glibc

/// The one error type of `EROFSImage`.
///
/// `code` is stable and meant for programs; `message` is for people and names the
/// offending path, tar entry or image offset.
public struct EROFSError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Stable error codes.
    public enum Code: String, Sendable, Equatable {
        /// A system call failed (`errno` is in the message).
        case io
        /// Input that cannot be represented in EROFS (name too long, xattr too big, ...).
        case unsupported
        /// A tar stream that is truncated, corrupt or malformed.
        case corruptTar
        /// A tar entry that would escape the image root or abuse links.
        case unsafePath
        /// The same path appears twice in one layer.
        case duplicateEntry
        /// A size, count or length beyond the configured limits.
        case limitExceeded
        /// A gzip stream that zlib rejects.
        case corruptGzip
        /// An EROFS image that the reader finds inconsistent.
        case corruptImage
        /// An argument that makes no sense (e.g. an invalid option value).
        case invalidArgument
        /// The writer was used after `finish()` or after a failure.
        case invalidState
    }

    /// The stable code.
    public var code: Code
    /// A human-readable explanation with context.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `"<code>: <message>"`.
    public var description: String { "EROFSError.\(code.rawValue): \(message)" }

    static func errno(_ what: String, _ err: Int32 = Glibc.errno) -> EROFSError {
        EROFSError(.io, "\(what): \(String(cString: strerror(err))) (errno \(err))")
    }
}

