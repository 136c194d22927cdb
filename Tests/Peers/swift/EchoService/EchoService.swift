import Foundation
import TTRPCCodec

public typealias EchoRequest = Qemubox_Test_V1_EchoRequest
public typealias EchoResponse = Qemubox_Test_V1_EchoResponse
public typealias CountRequest = Qemubox_Test_V1_CountRequest
public typealias CountResponse = Qemubox_Test_V1_CountResponse
public typealias SumRequest = Qemubox_Test_V1_SumRequest
public typealias SumResponse = Qemubox_Test_V1_SumResponse

public let echoServiceName = "qemubox.test.v1.Echo"

/// The Swift implementation of `qemubox.test.v1.Echo`, behaving exactly like
/// the Go peer's (Tests/Peers/go/ttrpc-peer).
public enum EchoService {
    /// The service, ready for a `TTRPCServer`.
    public static func make() -> TTRPCService {
        TTRPCService(name: echoServiceName, methods: [
            "Echo": .unary(EchoRequest.self, EchoResponse.self) { request, context in
                try await echo(request, context)
            },
            "Count": .serverStreaming(CountRequest.self, CountResponse.self) { request, _, writer in
                let payload = Data(repeating: 0x5a, count: Int(request.size))
                for index in 0..<request.count {
                    var response = CountResponse()
                    response.index = index
                    response.payload = payload
                    try await writer.send(response)
                }
            },
            "Sum": .clientStreaming(SumRequest.self, SumResponse.self) { requests, _ in
                var response = SumResponse()
                for try await request in requests {
                    response.total += request.value
                    response.messages += 1
                }
                return response
            },
            "Chat": .bidirectionalStreaming(EchoRequest.self, EchoResponse.self) { requests, context, writer in
                for try await request in requests {
                    try await writer.send(try await echo(request, context))
                }
            },
        ])
    }

    /// The Echo method's behaviour.
    public static func echo(_ request: EchoRequest, _ context: TTRPCRequestContext) async throws -> EchoResponse {
        var response = EchoResponse()
        response.payload = request.payload
        if let deadline = context.deadline {
            let remaining = deadline - .now
            response.timeoutNano = remaining.components.seconds * 1_000_000_000
                + remaining.components.attoseconds / 1_000_000_000
        }
        response.metadata = context.metadata.entries
            .sorted { ($0.key, $0.value) < ($1.key, $1.value) }
            .map { entry in
                var pair = Qemubox_Test_V1_Pair()
                pair.key = entry.key
                pair.value = entry.value
                return pair
            }
        if request.sleepMs > 0 {
            try await Task.sleep(for: .milliseconds(request.sleepMs))
        }
        if request.failCode != 0 {
            throw TTRPCError(TTRPCError.Code(wireValue: request.failCode), request.failMessage)
        }
        if request.responseSize > 0 {
            response.payload = Data((0..<Int(request.responseSize)).map { UInt8(truncatingIfNeeded: $0) })
        }
        return response
    }
}

/// A Swift server with the echo service on a fresh socket in `dir`.
public func withEchoServer<T>(in dir: String, configuration: TTRPCServer.Configuration = .init(),
                       _ body: (TTRPCServer, String) async throws -> T) async throws -> T {
    let server = TTRPCServer(services: [EchoService.make()], configuration: configuration)
    let path = dir + "/swift.sock"
    try await server.bind(unixDomainSocketPath: path)
    do {
        let result = try await body(server, path)
        await server.shutdown(gracePeriod: .seconds(2))
        return result
    } catch {
        await server.shutdown(gracePeriod: .seconds(2))
        throw error
    }
}
