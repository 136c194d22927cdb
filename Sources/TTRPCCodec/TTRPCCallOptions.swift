/// Per-call options of a ttrpc client call.
public struct TTRPCCallOptions: Sendable {
    /// How long the call may take. Sent to the server as `timeout_nano` and
    /// enforced locally: the call fails with `DeadlineExceeded` when it runs out.
    /// nil: the client's ``TTRPCClient/Configuration/defaultTimeout`` (none by default),
    /// unless the call is ``unbounded``.
    public var timeout: Duration?
    /// Metadata sent with the request.
    public var metadata: TTRPCMetadata
    /// The call may take as long as it takes, whatever the client's default timeout
    /// (a wait for an exit, an event stream).
    public var unbounded = false

    /// Creates options.
    public init(timeout: Duration? = nil, metadata: TTRPCMetadata = TTRPCMetadata()) {
        self.timeout = timeout
        self.metadata = metadata
    }

    /// Options for a call without a deadline, whatever the client's default.
    public static var unbounded: TTRPCCallOptions {
        var options = TTRPCCallOptions()
        options.unbounded = true
        return options
    }

    /// These options with `defaultTimeout` applied when they name no timeout and are not unbounded.
    func resolved(defaultTimeout: Duration?) -> TTRPCCallOptions {
        guard timeout == nil, !unbounded, let defaultTimeout else { return self }
        var options = self
        options.timeout = defaultTimeout
        return options
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
