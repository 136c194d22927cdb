/// Per-call options of a ttrpc client call.
public struct TTRPCCallOptions: Sendable {
    /// How long the call may take. Sent to the server as `timeout_nano` and
    /// enforced locally: the call fails with `DeadlineExceeded` when it runs out.
    public var timeout: Duration?
    /// Metadata sent with the request.
    public var metadata: TTRPCMetadata

    /// Creates options.
    public init(timeout: Duration? = nil, metadata: TTRPCMetadata = TTRPCMetadata()) {
        self.timeout = timeout
        self.metadata = metadata
    }

    var timeoutNanoseconds: Int64 {
        guard let timeout else { return 0 }
        let (seconds, attoseconds) = timeout.components
        let nanos = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if nanos.overflow { return .max }
        let total = nanos.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000)
        return total.overflow ? .max : max(1, total.partialValue)
    }
}

/// The shape of a method: which sides stream.
public enum TTRPCMethodKind: Sendable, Hashable {
    /// One request, one response.
    case unary
    /// One request, a stream of responses.
    case serverStreaming
    /// A stream of requests, one response.
    case clientStreaming
    /// Streams both ways.
    case bidirectionalStreaming

    /// Whether the client sends more than the initial request.
    var clientStreams: Bool { self == .clientStreaming || self == .bidirectionalStreaming }
    /// Whether the server answers with data frames before its final response.
    var serverStreams: Bool { self == .serverStreaming || self == .bidirectionalStreaming }

    /// Request flags announcing the kind, per the ttrpc 1.2 protocol.
    var requestFlags: TTRPCFrameFlags {
        switch self {
        case .unary: []
        case .serverStreaming: .remoteClosed
        case .clientStreaming, .bidirectionalStreaming: .remoteOpen
        }
    }
}
