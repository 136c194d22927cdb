#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import NIOPosix

/// A ttrpc client on one connection: many concurrent calls, each on its own
/// stream (odd, strictly increasing ids), unary or streaming.
///
/// The client runs on any connected NIO `Channel` — a unix socket from
/// ``connect(unixDomainSocketPath:configuration:eventLoopGroup:)``, or a
/// channel that carries bytes some other way (a yamux stream, a pipe) through
/// ``init(channel:configuration:)``. When the connection dies every pending
/// call fails at once with `Unavailable`.
///
/// ```swift
/// let client = try await TTRPCClient.connect(unixDomainSocketPath: "/run/shim.sock")
/// let reply = try await client.call(service: "containerd.task.v2.Task", method: "State",
///                                   request: stateRequest, as: StateResponse.self)
/// try await client.close()
/// ```
public final class TTRPCClient: Sendable {
    /// Client settings.
    public struct Configuration: Sendable {
        /// Largest message sent or accepted (default 4 MiB, as Go ttrpc).
        public var maxMessageSize: Int = TTRPCLimits.maxMessageSize
        /// Messages a streaming call buffers for a slow consumer before it fails
        /// with `ResourceExhausted` (ttrpc has no flow control; the connection's
        /// read loop never waits for one stream).
        public var maxBufferedStreamMessages: Int = 4096
        /// Bytes one streaming call buffers for a slow consumer before it fails with
        /// `ResourceExhausted` (a peer sending 4 MiB messages must not make one stream
        /// hold 16 GiB).
        public var maxBufferedStreamBytes: Int = 16 << 20
        /// Bytes all streaming calls of the connection buffer together before the call
        /// that would exceed it fails with `ResourceExhausted`.
        public var maxBufferedBytes: Int = 64 << 20
        /// The deadline of calls whose options name none and are not
        /// ``TTRPCCallOptions/unbounded`` (nil: no deadline): a peer that never answers
        /// then fails the call instead of holding it forever.
        public var defaultTimeout: Duration?

        /// Default settings.
        public init() {}
    }

    /// The underlying channel.
    public let channel: any Channel
    let handler: NIOLoopBound<TTRPCClientHandler>
    let configuration: Configuration

    /// Connects to a ttrpc server on a unix socket.
    public static func connect(
        unixDomainSocketPath path: String,
        configuration: Configuration = Configuration(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> TTRPCClient {
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: eventLoopGroup)
                .connect(unixDomainSocketPath: path).get()
        } catch {
            throw TTRPCError(.unavailable, "connecting to \(path): \(error)")
        }
        return try await TTRPCClient(channel: channel, configuration: configuration)
    }

    /// Runs a client on an already connected channel that carries the raw ttrpc
    /// byte stream. The client handler (which frames the stream itself) is added to its pipeline.
    public init(channel: any Channel, configuration: Configuration = Configuration()) async throws {
        self.channel = channel
        self.configuration = configuration
        let maxMessageSize = configuration.maxMessageSize
        let limits = TTRPCClientHandler.BufferLimits(perStream: configuration.maxBufferedStreamBytes,
                                                     perConnection: configuration.maxBufferedBytes)
        self.handler = try await channel.eventLoop.submit {
            let handler = TTRPCClientHandler(maxMessageSize: maxMessageSize, bufferLimits: limits)
            try channel.pipeline.syncOperations.addHandler(handler)
            return NIOLoopBound(handler, eventLoop: channel.eventLoop)
        }.get()
    }

    /// Closes the connection; pending calls fail with `Unavailable`.
    public func close() async throws {
        do {
            try await channel.close()
        } catch ChannelError.alreadyClosed {
            return
        }
    }

    /// Completes when the connection has closed, for whatever reason.
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    // MARK: Raw calls

    /// A unary call with raw payload bytes.
    public func unary(service: String, method: String, payload: Data,
                      options: TTRPCCallOptions = TTRPCCallOptions()) async throws -> Data {
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: Data.self)
        let box = NIOLoopBoundBox.makeEmptyBox(valueType: TTRPCClientHandler.Call.self, eventLoop: loop)
        let handler = self.handler
        var options = options.resolved(defaultTimeout: configuration.defaultTimeout)
        TTRPCTracing.inject(into: &options.metadata)
        loop.execute {
            box.value = handler.value.start(service: service, method: method, payload: payload, kind: .unary,
                                            options: options, response: promise, messages: nil)
        }
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            loop.execute {
                if let call = box.value {
                    handler.value.cancel(call, with: TTRPCError(.cancelled, "context canceled"))
                }
            }
        }
    }

    /// Opens a streaming call. `kind` decides which sides stream; for
    /// `.serverStreaming` the `payload` is the single request, for the
    /// client-streaming kinds messages are sent with ``TTRPCClientStream/send(_:)``.
    public func stream(service: String, method: String, kind: TTRPCMethodKind, payload: Data = Data(),
                       options: TTRPCCallOptions = TTRPCCallOptions()) async throws -> TTRPCClientStream {
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: Data.self)
        let (messages, continuation) = AsyncThrowingStream<Data, any Error>.makeStream(
            bufferingPolicy: .bufferingOldest(configuration.maxBufferedStreamMessages))
        let box = NIOLoopBoundBox.makeEmptyBox(valueType: TTRPCClientHandler.Call.self, eventLoop: loop)
        let handler = self.handler
        let accounting = TTRPCBufferAccounting()
        var options = options.resolved(defaultTimeout: configuration.defaultTimeout)
        TTRPCTracing.inject(into: &options.metadata)
        let started: Bool = try await loop.submit {
            box.value = handler.value.start(
                service: service, method: method, payload: payload, kind: kind,
                options: options,
                response: promise, messages: kind.serverStreams ? continuation : nil, accounting: accounting)
            return box.value != nil
        }.get()
        if !started {
            // The promise carries the reason.
            _ = try await promise.futureResult.get()
        }
        return TTRPCClientStream(kind: kind, loop: loop, handler: handler, call: box,
                                 response: promise.futureResult,
                                 messages: TTRPCStreamMessages(base: messages, accounting: accounting))
    }
}

/// One open streaming call of a ``TTRPCClient``.
///
/// Send with ``send(_:)`` and finish sending with ``closeSend()`` (client
/// streaming kinds); read the server's messages from ``messages`` (server
/// streaming kinds) or the single reply with ``response()``.
public struct TTRPCClientStream: Sendable {
    /// Which sides stream.
    public let kind: TTRPCMethodKind
    let loop: any EventLoop
    let handler: NIOLoopBound<TTRPCClientHandler>
    let call: NIOLoopBoundBox<TTRPCClientHandler.Call?>
    let responseFuture: EventLoopFuture<Data>

    /// The server's messages; ends when the server ends the stream, throws its
    /// error status if it failed.
    public let messages: TTRPCStreamMessages

    init(kind: TTRPCMethodKind, loop: any EventLoop, handler: NIOLoopBound<TTRPCClientHandler>,
         call: NIOLoopBoundBox<TTRPCClientHandler.Call?>, response: EventLoopFuture<Data>,
         messages: TTRPCStreamMessages) {
        self.kind = kind
        self.loop = loop
        self.handler = handler
        self.call = call
        self.responseFuture = response
        self.messages = messages
    }

    /// Sends one message; returns once it is handed to the connection.
    public func send(_ message: Data) async throws {
        try await write(message, close: false)
    }

    /// Tells the server no more messages follow.
    public func closeSend() async throws {
        try await write(nil, close: true)
    }

    /// Sends a last message and closes the sending side in one frame.
    public func sendLast(_ message: Data) async throws {
        try await write(message, close: true)
    }

    private func write(_ message: Data?, close: Bool) async throws {
        let promise = loop.makePromise(of: Void.self)
        let handler = self.handler
        let call = self.call
        loop.execute {
            guard let active = call.value else {
                promise.fail(TTRPCError(.failedPrecondition, "stream not open"))
                return
            }
            handler.value.send(message, close: close, on: active, promise: promise)
        }
        try await promise.futureResult.get()
    }

    /// The final response payload (unary-response kinds), or an empty payload
    /// once a server stream ended cleanly. Throws the call's error status.
    public func response() async throws -> Data {
        try await withTaskCancellationHandler {
            try await responseFuture.get()
        } onCancel: {
            cancel()
        }
    }

    /// Abandons the call locally: pending reads fail with `Canceled`, later
    /// frames for it are dropped.
    public func cancel() {
        let handler = self.handler
        let call = self.call
        loop.execute {
            if let active = call.value {
                handler.value.cancel(active, with: TTRPCError(.cancelled, "context canceled"))
            }
        }
    }
}
