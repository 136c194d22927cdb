import EchoService
import Foundation
import Testing
import TTRPCCodec

/// Calls on the Echo test service shared by the ttrpc integration tests.
enum EchoCalls {
    /// `count` Echo calls at once; returns how many answered with their own payload.
    static func concurrent(_ client: TTRPCClient, count: Int) async throws -> Int {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<count {
                group.addTask {
                    var request = EchoRequest()
                    request.payload = Data("call-\(index)".utf8)
                    return try await client.call(service: echoServiceName, method: "Echo", request: request,
                                                 as: EchoResponse.self).payload == request.payload
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
    }

    /// The server-streaming Count call for `count` messages of `size` bytes; expects
    /// them in order and returns how many arrived.
    static func countStream(_ client: TTRPCClient, count: Int, size: Int) async throws -> Int {
        var request = CountRequest()
        request.count = Int64(count)
        request.size = Int64(size)
        var received = 0
        for try await message in try await client.serverStream(service: echoServiceName, method: "Count",
                                                               request: request, as: CountResponse.self) {
            #expect(message.index == Int64(received) && message.payload.count == size)
            received += 1
        }
        return received
    }
}
