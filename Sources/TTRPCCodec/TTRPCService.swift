#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore

/// What a server handler knows about the call it serves.
public struct TTRPCRequestContext: Sendable {
    /// Fully qualified service name, e.g. `containerd.task.v2.Task`.
    public let service: String
    /// Method name, e.g. `Create`.
    public let method: String
    /// Request metadata.
    public let metadata: TTRPCMetadata
    /// When the caller stops waiting (from `timeout_nano`), if it set a deadline.
    /// The server answers `DeadlineExceeded` at that moment and cancels the handler.
    public let deadline: ContinuousClock.Instant?
    /// The stream the call runs on.
    public let streamID: UInt32
}

/// A server-side handler for one method, by method kind, on raw payload bytes.
/// Typed variants for protobuf messages are in `TTRPCMethod+Protobuf.swift`.
public enum TTRPCMethod: Sendable {
    /// One request, one response.
    case unary(@Sendable (Data, TTRPCRequestContext) async throws -> Data)
    /// One request, a stream of responses written to the writer.
    case serverStreaming(@Sendable (Data, TTRPCRequestContext, TTRPCServerStreamWriter) async throws -> Void)
    /// A stream of requests, one response.
    case clientStreaming(@Sendable (TTRPCServerMessages, TTRPCRequestContext) async throws -> Data)
    /// Streams both ways.
    case bidirectionalStreaming(
        @Sendable (TTRPCServerMessages, TTRPCRequestContext, TTRPCServerStreamWriter) async throws -> Void)

    /// The method's shape.
    public var kind: TTRPCMethodKind {
        switch self {
        case .unary: .unary
        case .serverStreaming: .serverStreaming
        case .clientStreaming: .clientStreaming
        case .bidirectionalStreaming: .bidirectionalStreaming
        }
    }
}

/// A named set of methods served by a ``TTRPCServer``.
public struct TTRPCService: Sendable {
    /// Fully qualified service name as sent in `ttrpc.Request.service`.
    public var name: String
    /// Methods by name.
    public var methods: [String: TTRPCMethod]

    /// Creates a service.
    public init(name: String, methods: [String: TTRPCMethod]) {
        self.name = name
        self.methods = methods
    }
}

/// The messages a client streams to a server handler. Ends when the client
/// closes its side; throws if the connection dies or the call is cancelled.
public typealias TTRPCServerMessages = AsyncThrowingStream<Data, any Error>

/// Writes a server handler's stream messages. Each `send` returns when the
/// message has been handed to the connection (backpressure from the socket).
public struct TTRPCServerStreamWriter: Sendable {
    let loop: any EventLoop
    let streamID: UInt32
    let handler: NIOLoopBound<TTRPCServerHandler>

    /// Sends one message on the stream.
    public func send(_ message: Data) async throws {
        let promise = loop.makePromise(of: Void.self)
        let handler = self.handler
        let id = streamID
        loop.execute {
            handler.value.sendData(message, streamID: id, promise: promise)
        }
        try await promise.futureResult.get()
    }
}
