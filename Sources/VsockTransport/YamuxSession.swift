import NIOCore

/// A yamux session over one byte pipe (a NIO `Channel`: unix socket, vsock
/// socket, virtio-serial port): many ordered, flow-controlled streams in both
/// directions, interoperable with Go `hashicorp/yamux`.
///
/// ```swift
/// let session = try await YamuxSession.install(on: channel, role: .client).get()
/// let stream = try await session.openStream()
/// try await stream.write(ByteBuffer(string: "hello"))
/// try await stream.closeWrite()
/// while let chunk = try await stream.read() { print(chunk.readableBytes) }
/// ```
///
/// All state lives on the channel's event loop; every method may be called from
/// any task or thread.
public final class YamuxSession: Sendable {
    let handler: YamuxSessionHandler
    /// The pipe the session runs on.
    public let channel: any Channel
    /// The event loop that owns the session's state.
    public var eventLoop: any EventLoop { channel.eventLoop }

    init(handler: YamuxSessionHandler, channel: any Channel) {
        self.handler = handler
        self.channel = channel
    }

    /// Adds the yamux handlers to `channel`'s pipeline and returns the session.
    /// Must run on the channel's event loop, e.g. inside a bootstrap's
    /// `channelInitializer`, so that no byte arrives before the handlers. Also
    /// sets the channel's receive allocator (``YamuxConfiguration/maxReadSize``).
    public static func makeSession(on channel: any Channel, role: YamuxRole,
                                   configuration: YamuxConfiguration = .init()) throws -> YamuxSession {
        channel.eventLoop.preconditionInEventLoop()
        let handler = YamuxSessionHandler(role: role, configuration: configuration, eventLoop: channel.eventLoop)
        let decoder = ByteToMessageHandler(YamuxFrameDecoder(
            maxDataLength: max(configuration.maxStreamWindowSize, YamuxFrame.initialWindow)))
        try channel.pipeline.syncOperations.addHandlers([decoder, handler])
        if configuration.maxReadSize > 0, let options = channel.syncOptions {
            try options.setOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                minimum: 64, initial: 2048, maximum: max(configuration.maxReadSize, 2048)))
        }
        return YamuxSession(handler: handler, channel: channel)
    }

    /// Adds the yamux handlers to `channel` from any thread. Bytes that arrived
    /// before the handlers were added are lost: prefer ``makeSession(on:role:configuration:)``
    /// in a channel initializer unless the peer cannot have sent anything yet.
    public static func install(on channel: any Channel, role: YamuxRole,
                               configuration: YamuxConfiguration = .init()) -> EventLoopFuture<YamuxSession> {
        channel.eventLoop.submit {
            try makeSession(on: channel, role: role, configuration: configuration)
        }
    }

    /// Opens a new stream. The SYN is sent at once; data may follow immediately.
    public func openStream() async throws -> YamuxStream {
        let handler = self.handler
        let core = try await eventLoop.submit { try handler.open() }.get()
        return YamuxStream(core: core, eventLoop: eventLoop)
    }

    /// Waits for the next stream the peer opens (acknowledging it). Throws
    /// ``VsockTransportError/Code/sessionClosed`` once the session has ended.
    public func acceptStream() async throws -> YamuxStream {
        let promise = eventLoop.makePromise(of: YamuxStreamCore.self)
        let handler = self.handler
        eventLoop.execute { handler.accept(promise: promise) }
        let core = try await promise.futureResult.get()
        return YamuxStream(core: core, eventLoop: eventLoop)
    }

    /// The peer's streams, as they arrive; ends when the session ends.
    public var inboundStreams: InboundStreams { InboundStreams(session: self) }

    /// Sends a ping and returns the round-trip time. A ping unanswered within
    /// ``YamuxConfiguration/keepaliveTimeout`` ends the session.
    public func ping() async throws -> TimeAmount {
        let promise = eventLoop.makePromise(of: TimeAmount.self)
        let handler = self.handler
        eventLoop.execute { handler.ping(promise: promise) }
        return try await promise.futureResult.get()
    }

    /// Sends go-away: the peer may not open new streams (they are reset), nor may
    /// this side; existing streams continue.
    public func goAway() async {
        let handler = self.handler
        try? await eventLoop.submit { handler.goAway() }.get()
    }

    /// Sends go-away, then closes the pipe: every stream still open fails with
    /// ``VsockTransportError/Code/sessionClosed``. Returns once the pipe is closed.
    public func close() async {
        let handler = self.handler
        try? await eventLoop.submit { handler.close() }.get()
        try? await channel.closeFuture.get()
    }

    /// Completes when the session has ended, for whatever reason.
    public var closeFuture: EventLoopFuture<Void> { handler.closedPromise.futureResult }

    /// Why the session ended (nil while it is alive).
    public func terminationError() async -> VsockTransportError? {
        let handler = self.handler
        return try? await eventLoop.submit { handler.failure }.get()
    }

    /// Whether the peer sent go-away.
    public func peerSentGoAway() async -> Bool {
        let handler = self.handler
        return (try? await eventLoop.submit { handler.remoteGoAway }.get()) ?? false
    }

    /// Streams currently routed by the session (open in at least one direction).
    public func openStreamCount() async -> Int {
        let handler = self.handler
        return (try? await eventLoop.submit { handler.streams.count }.get()) ?? 0
    }

    /// An `AsyncSequence` of the peer's streams.
    public struct InboundStreams: AsyncSequence, Sendable {
        public typealias Element = YamuxStream
        let session: YamuxSession

        /// Iterates accepted streams until the session ends.
        public struct AsyncIterator: AsyncIteratorProtocol {
            let session: YamuxSession
            /// The next stream, or nil when the session has ended.
            public mutating func next() async throws -> YamuxStream? {
                do {
                    return try await session.acceptStream()
                } catch let error as VsockTransportError where error.code == .sessionClosed {
                    return nil
                }
            }
        }

        /// Makes an iterator.
        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(session: session) }
    }
}
