/// The one error type of VsockTransport: a stable ``Code`` plus the context in
/// which the failure arose.
///
/// Codes never change meaning; switch on ``code``, show ``description``.
public struct VsockTransportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, as a stable machine-readable code.
    public var code: Code
    /// Human-readable context (stream id, sizes, paths, errno text).
    public var message: String

    /// Creates an error with a code and context.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "vsock-transport: \(code.rawValue): \(message)" }

    /// Stable error codes. The raw values are part of the API.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        // Protocol violations by the peer: the session is torn down.
        /// A frame header carried a protocol version other than 0.
        case invalidVersion = "invalid-version"
        /// A frame header carried an unknown message type.
        case invalidFrameType = "invalid-frame-type"
        /// A data frame longer than the configured limit.
        case frameTooLarge = "frame-too-large"
        /// The peer sent more data than the receive window allowed.
        case windowExceeded = "window-exceeded"
        /// A window update would overflow the send window.
        case windowOverflow = "window-overflow"
        /// A frame named a stream that was never opened.
        case unknownStream = "unknown-stream"
        /// The peer opened a stream id that is already in use or has the wrong parity.
        case invalidStreamID = "invalid-stream-id"
        /// Any other violation (bad flags for a frame type, ...).
        case protocolError = "protocol-error"
        /// The peer sent a go-away with an error code.
        case remoteError = "remote-error"
        /// No answer to a keepalive ping in time.
        case keepaliveTimeout = "keepalive-timeout"

        // Stream and session states.
        /// The stream was reset (by either side).
        case streamReset = "stream-reset"
        /// Writing to a stream whose write side is closed.
        case streamClosed = "stream-closed"
        /// The session is closed or died; every stream fails with this.
        case sessionClosed = "session-closed"
        /// The peer sent go-away: no new streams may be opened.
        case remoteGoAway = "remote-go-away"
        /// This side sent go-away: no new streams may be opened.
        case localGoAway = "local-go-away"
        /// Opening another stream would exceed ``YamuxConfiguration/maxStreams``.
        case streamLimit = "stream-limit"
        /// A second read was started on a stream while one was pending.
        case concurrentRead = "concurrent-read"

        // Pipes.
        /// A virtio-serial port with the requested name does not exist.
        case deviceNotFound = "device-not-found"
        /// AF_VSOCK to guests is unavailable on this host (no /dev/vhost-vsock).
        case vsockUnavailable = "vsock-unavailable"
        /// No free guest CID in the configured range.
        case cidExhausted = "cid-exhausted"
        /// The pipe could not be connected in time.
        case connectFailed = "connect-failed"
        /// A system call failed.
        case ioError = "io-error"
    }

    /// Errors that mean "the peer broke the protocol" (a go-away with the protocol
    /// error code is sent before the session closes).
    var isProtocolViolation: Bool {
        switch code {
        case .invalidVersion, .invalidFrameType, .frameTooLarge, .windowExceeded,
             .windowOverflow, .unknownStream, .invalidStreamID, .protocolError:
            true
        default:
            false
        }
    }
}
