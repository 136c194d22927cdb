#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A ttrpc server: a registry of services served on unix sockets and on any
/// connected channel handed to it (for example a yamux stream).
///
/// ```swift
/// let server = TTRPCServer(services: [echoService])
/// try await server.bind(unixDomainSocketPath: "/run/agent.sock")
/// // ...
/// await server.shutdown()   // drains in-flight calls, then closes
/// ```
///
/// Protocol rejections follow Go ttrpc: an even or reused stream id or an
/// undecodable request gets `InvalidArgument`, an unknown service or method
/// `Unimplemented`, an oversized frame `ResourceExhausted` (the connection
/// survives), and a handler error the status it maps to (``TTRPCStatusConvertible``).
public final class TTRPCServer: Sendable {
    /// Server settings.
    public struct Configuration: Sendable {
        /// Largest message accepted or sent (default 4 MiB, as Go ttrpc).
        public var maxMessageSize: Int = TTRPCLimits.maxMessageSize
        /// Calls in flight per connection before the server stops reading from it.
        public var maxConcurrentCallsPerConnection: Int = 1024
        /// Messages a client-streaming handler may leave unread before its call
        /// fails with `ResourceExhausted`.
        public var maxBufferedStreamMessages: Int = 4096
        /// Whether a handler starts running on the connection's event loop (until its
        /// first suspension) instead of being scheduled on the global executor. Saves
        /// a thread hop per call; a handler must then not block before it first awaits.
        /// Set to false for handlers that do heavy synchronous work up front.
        public var startsHandlersOnEventLoop: Bool = true
        /// Whether each call runs in a server span (swift-distributed-tracing's bootstrapped
        /// tracer) named `service/method`, under the trace context the request's metadata
        /// carries (`traceparent` for an OpenTelemetry tracer).
        public var tracesRequests: Bool = false

        /// Default settings.
        public init() {}
    }

    private struct State {
        var listeners: [any Channel] = []
        var connections: [ObjectIdentifier: Connection] = [:]
        var socketPaths: [String] = []
        var shuttingDown = false
    }

    private struct Connection: @unchecked Sendable {
        // Sendable: `handler` is only touched on `channel.eventLoop`.
        let channel: any Channel
        let handler: NIOLoopBound<TTRPCServerHandler>
    }

    private let services: [String: TTRPCService]
    private let configuration: Configuration
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    /// Creates a server for `services`.
    public init(services: [TTRPCService], configuration: Configuration = Configuration(),
                logger: Logger = Logger(label: "ttrpc.server")) {
        var registry: [String: TTRPCService] = [:]
        for service in services {
            registry[service.name, default: TTRPCService(name: service.name, methods: [:])]
                .methods.merge(service.methods) { _, new in new }
        }
        self.services = registry
        self.configuration = configuration
        self.logger = logger
    }

    /// Number of open connections (for health checks and leak tests).
    public var connectionCount: Int { state.withLockedValue { $0.connections.count } }

    /// Listens on a unix socket (replacing a stale socket file). Returns once
    /// listening; connections are served in the background until ``shutdown(gracePeriod:)``.
    public func bind(unixDomainSocketPath path: String,
                     eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws {
        let listener: any Channel
        do {
            listener = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.backlog, value: 256)
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture { try self.install(on: channel) }
                }
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        } catch {
            throw TTRPCError(.unavailable, "listening on \(path): \(error)")
        }
        let rejected = state.withLockedValue { state -> Bool in
            if state.shuttingDown { return true }
            state.listeners.append(listener)
            state.socketPaths.append(path)
            return false
        }
        if rejected {
            try? await listener.close()
            unlink(path)
            throw TTRPCError(.unavailable, "server is shutting down")
        }
    }

    /// Serves one already connected channel carrying the raw ttrpc byte stream.
    /// Returns once the connection is set up; it is served until it closes or
    /// the server shuts down.
    public func serve(channel: any Channel) async throws {
        try await channel.eventLoop.submit { try self.install(on: channel) }.get()
    }

    private func install(on channel: any Channel) throws {
        let key = ObjectIdentifier(channel)
        let handler = TTRPCServerHandler(services: services, configuration: configuration, logger: logger)
        let admitted = state.withLockedValue { state -> Bool in
            if state.shuttingDown { return false }
            state.connections[key] = Connection(
                channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
            return true
        }
        guard admitted else {
            channel.close(promise: nil)
            throw TTRPCError(.unavailable, "server is shutting down")
        }
        // Before the handlers: a connection whose pipeline cannot be set up is closed by
        // NIO, and its entry must go with it.
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.state.withLockedValue { $0.connections.removeValue(forKey: key) }
        }
        do {
            try channel.pipeline.syncOperations.addHandler(handler)
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }

    /// Stops listening, lets in-flight calls finish (new requests are not read),
    /// closes each connection once idle, and force-closes whatever is still open
    /// after `gracePeriod`. Removes the socket files it created.
    public func shutdown(gracePeriod: Duration = .seconds(10)) async {
        let (listeners, connections, paths) = state.withLockedValue { state in
            state.shuttingDown = true
            defer { state.listeners.removeAll(); state.socketPaths.removeAll() }
            return (state.listeners, Array(state.connections.values), state.socketPaths)
        }
        for listener in listeners {
            try? await listener.close()
        }
        for path in paths { unlink(path) }
        for connection in connections {
            let handler = connection.handler
            connection.channel.eventLoop.execute { handler.value.drain() }
        }
        let deadline = ContinuousClock.now + gracePeriod
        for connection in connections {
            let closed = connection.channel.closeFuture
            let loop = connection.channel.eventLoop
            let remaining = deadline - .now
            if remaining > .zero {
                let timeout = loop.scheduleTask(in: .nanoseconds(Int64(remaining.components.seconds * 1_000_000_000
                    + remaining.components.attoseconds / 1_000_000_000))) {
                    let handler = connection.handler
                    handler.value.forceClose()
                }
                try? await closed.get()
                timeout.cancel()
            } else {
                let handler = connection.handler
                loop.execute { handler.value.forceClose() }
                try? await closed.get()
            }
        }
    }
}
