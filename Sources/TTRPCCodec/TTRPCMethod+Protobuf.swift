#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf

extension TTRPCMethod {
    /// A unary method on protobuf messages. An undecodable request is answered
    /// with `Internal`, as Go ttrpc does.
    public static func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ request: Request.Type, _ response: Response.Type = Response.self,
        _ body: @escaping @Sendable (Request, TTRPCRequestContext) async throws -> Response
    ) -> TTRPCMethod {
        .unary { payload, context in
            try encode(try await body(try decode(Request.self, from: payload), context))
        }
    }

    /// A server-streaming method on protobuf messages.
    public static func serverStreaming<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ request: Request.Type, _ response: Response.Type = Response.self,
        _ body: @escaping @Sendable (Request, TTRPCRequestContext, TTRPCMessageWriter<Response>) async throws -> Void
    ) -> TTRPCMethod {
        .serverStreaming { payload, context, writer in
            try await body(try decode(Request.self, from: payload), context, TTRPCMessageWriter(raw: writer))
        }
    }

    /// A client-streaming method on protobuf messages.
    public static func clientStreaming<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ request: Request.Type, _ response: Response.Type = Response.self,
        _ body: @escaping @Sendable (
            AsyncThrowingMapSequence<TTRPCServerMessages, Request>, TTRPCRequestContext) async throws -> Response
    ) -> TTRPCMethod {
        .clientStreaming { messages, context in
            try encode(try await body(messages.map { try decode(Request.self, from: $0) }, context))
        }
    }

    /// A bidirectional-streaming method on protobuf messages.
    public static func bidirectionalStreaming<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ request: Request.Type, _ response: Response.Type = Response.self,
        _ body: @escaping @Sendable (
            AsyncThrowingMapSequence<TTRPCServerMessages, Request>, TTRPCRequestContext,
            TTRPCMessageWriter<Response>) async throws -> Void
    ) -> TTRPCMethod {
        .bidirectionalStreaming { messages, context, writer in
            try await body(messages.map { try decode(Request.self, from: $0) }, context,
                           TTRPCMessageWriter(raw: writer))
        }
    }
}

/// Writes typed messages on a server stream.
public struct TTRPCMessageWriter<Message: SwiftProtobuf.Message>: Sendable {
    /// The underlying raw writer.
    public let raw: TTRPCServerStreamWriter

    /// Sends one message.
    public func send(_ message: Message) async throws {
        try await raw.send(try encode(message))
    }
}
