import Foundation
import NIOCore
import NIOPosix

/// An asynchronous client of the QEMU Machine Protocol.
///
/// `connect` reads QEMU's greeting and negotiates capabilities; afterwards any
/// number of tasks may run commands concurrently (each carries an id, answers are
/// matched by it). Events arrive on ``events``. When the connection ends — QEMU
/// exited, the peer sent garbage, or ``close()`` was called — every pending command
/// fails at once with the reason and ``events`` finishes.
public final class QMPClient: Sendable {
    /// Limits and timeouts of a connection.
    public struct Configuration: Sendable {
        /// Largest accepted message (one line). Default 16 MiB (`query-qmp-schema` is ~200 KiB).
        public var maxMessageBytes: Int
        /// How long to wait for the greeting and the capabilities handshake.
        public var handshakeTimeout: Duration
        /// Default time limit of a command; nil waits for ever.
        public var commandTimeout: Duration?

        /// Creates a configuration.
        public init(maxMessageBytes: Int = 16 << 20, handshakeTimeout: Duration = .seconds(10),
                    commandTimeout: Duration? = .seconds(60)) {
            self.maxMessageBytes = maxMessageBytes
            self.handshakeTimeout = handshakeTimeout
            self.commandTimeout = commandTimeout
        }
    }

    /// QEMU's greeting (version, offered capabilities).
    public let greeting: QMPGreeting
    /// Asynchronous events, in arrival order. Single consumer; unbounded buffer; finishes
    /// when the connection closes.
    public let events: AsyncStream<QMPEvent>
    private let channel: any Channel
    private let configuration: Configuration

    private init(channel: any Channel, greeting: QMPGreeting, events: AsyncStream<QMPEvent>,
                 configuration: Configuration) {
        self.channel = channel
        self.greeting = greeting
        self.events = events
        self.configuration = configuration
    }

    /// Connects to a QMP unix socket (`-qmp unix:PATH,server=on,wait=off`).
    public static func connect(
        unixSocketPath path: String,
        configuration: Configuration = Configuration(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> QMPClient {
        try await open(configuration: configuration, eventLoopGroup: eventLoopGroup) { bootstrap in
            do {
                return try await bootstrap.connect(unixDomainSocketPath: path).get()
            } catch {
                throw QMPError(.connectFailed, "connect \(path): \(error)")
            }
        }
    }

    /// Takes over an already connected stream socket (e.g. one end of a `socketpair`
    /// whose other end QEMU got via `-chardev socket,fd=N`). The descriptor is owned
    /// by the client from now on; if this throws after adoption (handshake failed) it
    /// is closed, if adoption itself failed (not a socket) the caller still owns it.
    public static func connect(
        takingOwnershipOf descriptor: CInt,
        configuration: Configuration = Configuration(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> QMPClient {
        try await open(configuration: configuration, eventLoopGroup: eventLoopGroup) { bootstrap in
            do {
                return try await bootstrap.withConnectedSocket(descriptor).get()
            } catch {
                throw QMPError(.connectFailed, "adopt fd \(descriptor): \(error)")
            }
        }
    }

    private static func open(
        configuration: Configuration,
        eventLoopGroup: any EventLoopGroup,
        connect: (ClientBootstrap) async throws -> any Channel
    ) async throws -> QMPClient {
        let loop = eventLoopGroup.next()
        let greetingPromise = loop.makePromise(of: QMPGreeting.self)
        let (events, continuation) = AsyncStream<QMPEvent>.makeStream(bufferingPolicy: .unbounded)
        let maxBytes = configuration.maxMessageBytes
        let bootstrap = ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(QMPLineDecoder(maxMessageBytes: maxBytes)),
                        QMPChannelHandler(greetingPromise: greetingPromise, events: continuation),
                    ])
                }
            }
        let channel: any Channel
        do {
            channel = try await connect(bootstrap)
        } catch {
            greetingPromise.fail(error)
            continuation.finish()
            throw error
        }
        let handshake = TimeAmount(configuration.handshakeTimeout)
        let timer = loop.scheduleTask(in: handshake) {
            greetingPromise.fail(QMPError(.timeout, "no QMP greeting within \(configuration.handshakeTimeout)"))
        }
        do {
            let greeting = try await greetingPromise.futureResult.get()
            timer.cancel()
            let client = QMPClient(channel: channel, greeting: greeting, events: events,
                                   configuration: configuration)
            _ = try await client.execute("qmp_capabilities", timeout: configuration.handshakeTimeout)
            return client
        } catch {
            timer.cancel()
            try? await channel.close()
            throw error
        }
    }

    /// Runs a command and returns its raw `return` value: the untyped escape hatch.
    ///
    /// - Parameters:
    ///   - command: the QMP command name, e.g. `query-status`.
    ///   - arguments: an object, or nil for none.
    ///   - timeout: overrides ``Configuration/commandTimeout``.
    public func execute(_ command: String, arguments: JSONValue? = nil,
                        timeout: Duration? = nil) async throws -> JSONValue {
        if let arguments, arguments.objectValue == nil {
            throw QMPError(.invalidArgument, "arguments must be a JSON object", command: command)
        }
        let promise = channel.eventLoop.makePromise(of: JSONValue.self)
        let limit = (timeout ?? configuration.commandTimeout).map { TimeAmount($0) }
        let cmd = QMPOutboundCommand(name: command, arguments: arguments, promise: promise, timeout: limit)
        let channel = self.channel
        channel.eventLoop.execute {
            if channel.isActive {
                channel.writeAndFlush(cmd, promise: nil)
            } else {
                promise.fail(QMPError(.connectionClosed, "QMP connection is closed", command: command))
            }
        }
        return try await promise.futureResult.get()
    }

    /// Runs a command and decodes its result as `T`.
    public func execute<T: Decodable>(_ command: String, arguments: JSONValue? = nil,
                                      as type: T.Type, timeout: Duration? = nil) async throws -> T {
        let value = try await execute(command, arguments: arguments, timeout: timeout)
        return try value.decode(T.self, command: command)
    }

    /// Closes the connection; pending commands fail with ``QMPError/Code/connectionClosed``.
    public func close() async {
        try? await channel.close()
    }

    /// Whether the connection is still open.
    public var isOpen: Bool { channel.isActive }

    /// Waits until the connection is closed (by either side).
    public func waitClosed() async {
        try? await channel.closeFuture.get()
    }
}

extension TimeAmount {
    init(_ d: Duration) {
        let (s, atto) = d.components
        self = .nanoseconds(s * 1_000_000_000 + atto / 1_000_000_000)
    }
}

extension JSONValue {
    /// Decodes this value as `T` (via its JSON encoding).
    public func decode<T: Decodable>(_ type: T.Type, command: String? = nil) throws -> T {
        do {
            let data = try JSONEncoder().encode(self)
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw QMPError(.unexpectedResult, "cannot decode \(T.self): \(error)", command: command)
        }
    }
}
