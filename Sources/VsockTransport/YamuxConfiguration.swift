import Logging
import NIOCore

/// Tunables and limits of a ``YamuxSession``. The defaults match Go
/// `hashicorp/yamux`'s where it has one.
public struct YamuxConfiguration: Sendable {
    /// Largest receive window per stream. Streams start at the protocol's 256 KiB;
    /// a larger value is granted to the peer with the first window update, and the
    /// window is replenished as the application consumes data. Also the largest
    /// data frame accepted.
    public var maxStreamWindowSize: UInt32 = YamuxFrame.initialWindow
    /// Largest data frame this side sends (payload bytes).
    public var maxOutboundFrameSize: Int = 64 * 1024
    /// Largest buffer one read of the pipe fills. The session gives the pipe's
    /// channel NIO's adaptive receive allocator with this ceiling: reads grow
    /// towards it while they fill their buffers and shrink when traffic is light.
    /// NIO's default ceiling (64 KiB) splits nearly every full-size data frame
    /// across two reads, each of which is then copied to join them. 0 leaves the
    /// channel's allocator as it is.
    public var maxReadSize: Int = 256 * 1024
    /// Inbound streams waiting for ``YamuxSession/acceptStream()``; further SYNs
    /// are answered with RST.
    public var acceptBacklog: Int = 256
    /// Streams open at once (both directions). Beyond it, local opens fail with
    /// ``VsockTransportError/Code/streamLimit`` and remote opens are reset.
    public var maxStreams: Int = 4096
    /// Interval of keepalive pings; nil disables them.
    public var keepaliveInterval: TimeAmount? = .seconds(30)
    /// A ping unanswered for this long kills the session
    /// (``VsockTransportError/Code/keepaliveTimeout``).
    public var keepaliveTimeout: TimeAmount = .seconds(10)
    /// Where protocol anomalies (discarded frames, resets) are logged.
    public var logger: Logger = Logger(label: "qemubox.yamux")

    /// The defaults.
    public init() {}

    /// For a side that only opens streams and never accepts any — the host of a
    /// guest, which must not let an untrusted peer park streams (and their window of
    /// buffered data) in its accept queue: every stream the peer opens is reset.
    public static var refusingPeerStreams: YamuxConfiguration {
        var configuration = YamuxConfiguration()
        configuration.acceptBacklog = 0
        return configuration
    }
}

/// Which side of the session this is: the client opens odd stream ids, the server even.
public enum YamuxRole: Sendable {
    /// Opens odd-numbered streams (1, 3, ...).
    case client
    /// Opens even-numbered streams (2, 4, ...).
    case server

    var firstStreamID: UInt32 { self == .client ? 1 : 2 }
}
