#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf

extension TTRPCClient {
    /// A unary call with protobuf messages.
    public func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        service: String, method: String, request: Request, as: Response.Type = Response.self,
        options: TTRPCCallOptions = TTRPCCallOptions()
    ) async throws -> Response {
        let payload = try encode(request)
        let reply = try await unary(service: service, method: method, payload: payload, options: options)
        return try decode(Response.self, from: reply)
    }

    /// A server-streaming call with protobuf messages: the responses as an async sequence.
    public func serverStream<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        service: String, method: String, request: Request, as: Response.Type = Response.self,
        options: TTRPCCallOptions = TTRPCCallOptions()
    ) async throws -> AsyncThrowingMapSequence<TTRPCStreamMessages, Response> {
        let stream = try await self.stream(service: service, method: method, kind: .serverStreaming,
                                           payload: try encode(request), options: options)
        return stream.messages.map { try decode(Response.self, from: $0) }
    }

    /// A client-streaming call: `send` is given a function that sends one message;
    /// when it returns, the sending side is closed and the reply awaited.
    public func clientStream<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        service: String, method: String, requestType: Request.Type = Request.self,
        as: Response.Type = Response.self, options: TTRPCCallOptions = TTRPCCallOptions(),
        send: (_ send: (Request) async throws -> Void) async throws -> Void
    ) async throws -> Response {
        let stream = try await self.stream(service: service, method: method, kind: .clientStreaming,
                                           options: options)
        do {
            try await send { try await stream.send(try encode($0)) }
            try await stream.closeSend()
        } catch {
            stream.cancel()
            throw error
        }
        return try decode(Response.self, from: try await stream.response())
    }
}

func encode(_ message: some SwiftProtobuf.Message) throws -> Data {
    do {
        return try message.serializedData()
    } catch {
        throw TTRPCError(.internal, "ttrpc: error marshaling payload: \(error)")
    }
}

func decode<M: SwiftProtobuf.Message>(_ type: M.Type, from data: Data) throws -> M {
    do {
        return try M(serializedBytes: data)
    } catch {
        throw TTRPCError(.internal, "ttrpc: error unmarshalling payload: \(error)")
    }
}
