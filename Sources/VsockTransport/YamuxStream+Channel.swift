#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

extension YamuxStream {
    /// Lets the stream's bytes flow into the channel made by
    /// ``makeChannel(startReading:group:initializer:)`` with `startReading: false`.
    public func startReadingChannel() {
        bridgeGate.withLockedValue { $0 }?.succeed(())
    }

    /// Exposes the stream as an ordinary connected NIO `Channel`, so that
    /// protocol handlers written for sockets (TTRPCCodec's client and server)
    /// run on it unchanged: `TTRPCClient(channel: try await stream.makeChannel())`.
    ///
    /// The channel is one end of a socketpair whose other end is pumped to and
    /// from the stream, with backpressure both ways (nothing more is read from
    /// the channel until the stream accepted the previous bytes; nothing more
    /// is read from the stream until the channel took the previous chunk).
    /// Closing the channel half-closes the stream (FIN); the stream's end of
    /// data half-closes the channel's input; a reset or session failure closes
    /// the channel.
    ///
    /// - Parameters:
    ///   - startReading: whether the stream's bytes flow into the channel at
    ///     once. Bytes delivered before the protocol handlers are in the
    ///     pipeline would be lost, so either add them in `initializer`, or pass
    ///     `false`, add them (e.g. `TTRPCServer.serve(channel:)`), then call
    ///     ``startReadingChannel()``.
    ///   - initializer: run on the new channel before it is returned.
    public func makeChannel(
        startReading: Bool = true,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void> = { $0.eventLoop.makeSucceededVoidFuture() }
    ) async throws -> any Channel {
        let gate = group.next().makePromise(of: Void.self)
        let previous = bridgeGate.withLockedValue { current -> EventLoopPromise<Void>? in
            defer { current = gate }
            return current
        }
        guard previous == nil else {
            gate.succeed(())
            throw VsockTransportError(.concurrentRead, "stream \(id) is already bridged to a channel")
        }
        if startReading { gate.succeed(()) }
        var fds: [CInt] = [-1, -1]
        guard socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw VsockTransportError(.ioError, "socketpair: \(String(cString: strerror(errno)))")
        }
        let pump: any Channel
        do {
            pump = try await ClientBootstrap(group: group)
                .channelOption(.autoRead, value: false)
                .channelOption(.maxMessagesPerRead, value: 1)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 64 * 1024))
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            StreamPumpHandler(stream: self, gate: gate.futureResult))
                    }
                }
                .withConnectedSocket(fds[1])
                .get()
        } catch {
            close(fds[0])
            close(fds[1])
            throw VsockTransportError(.ioError, "cannot bridge stream \(id): \(error)")
        }
        do {
            return try await ClientBootstrap(group: group)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelInitializer(initializer)
                .withConnectedSocket(fds[0])
                .get()
        } catch {
            close(fds[0])
            pump.close(promise: nil)
            throw VsockTransportError(.ioError, "cannot bridge stream \(id): \(error)")
        }
    }
}

/// The socketpair end that copies between a NIO channel and a yamux stream.
private final class StreamPumpHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let stream: YamuxStream
    let gate: EventLoopFuture<Void>

    init(stream: YamuxStream, gate: EventLoopFuture<Void>) {
        self.stream = stream
        self.gate = gate
    }

    func channelActive(context: ChannelHandlerContext) {
        context.read()
        let channel = context.channel
        let stream = self.stream
        let gate = self.gate
        // Stream → channel, once the application has opened the gate.
        Task {
            do {
                try await gate.get()
                while let chunk = try await stream.read() {
                    try await channel.writeAndFlush(chunk).get()
                }
                try? await channel.close(mode: .output).get()
            } catch {
                try? await channel.close().get()
            }
        }
        context.fireChannelActive()
    }

    // Channel → stream: one write at a time, then read more.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let channel = context.channel
        stream.writeFuture(buffer).hop(to: context.eventLoop).whenComplete { result in
            switch result {
            case .success: channel.read()
            case .failure: channel.close(promise: nil)
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(.inputClosed) = event as? ChannelEvent {
            let stream = self.stream
            Task { try? await stream.closeWrite() }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let stream = self.stream
        Task { try? await stream.closeWrite() }
        context.fireChannelInactive()
    }
}
