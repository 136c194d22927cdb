import EchoService
import Foundation
import NIOCore
import NIOPosix
import Testing
import TestSupport
import TTRPCCodec
import VsockTransport

/// The host↔guest stack without the VM: ttrpc riding one yamux stream while
/// other streams on the same session carry raw bytes (as stdio will), over a
/// socketpair standing in for the VM pipe.
@Suite("ttrpc over a yamux stream")
struct TTRPCOverYamuxTests {
    static func withSessions<T>(_ body: (_ host: YamuxSession, _ guest: YamuxSession) async throws -> T) async throws -> T {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            throw PeerError("socketpair failed: errno \(errno)")
        }
        let group = MultiThreadedEventLoopGroup.singleton
        let host = try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(inputOutput: fds[0]) { channel in
            channel.eventLoop.makeCompletedFuture { try YamuxSession.makeSession(on: channel, role: .client) }
        }
        let guest = try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(inputOutput: fds[1]) { channel in
            channel.eventLoop.makeCompletedFuture { try YamuxSession.makeSession(on: channel, role: .server) }
        }
        do {
            let result = try await body(host, guest)
            await host.close()
            await guest.close()
            return result
        } catch {
            await host.close()
            await guest.close()
            throw error
        }
    }

    @Test("unary, concurrent and streaming ttrpc calls on one yamux stream beside a bulk stream")
    func ttrpcOnAStream() async throws {
        try await Self.withSessions { host, guest in
            let server = TTRPCServer(services: [EchoService.make()])
            // Guest: serve ttrpc on the first stream the host opens (stream 1 by convention).
            let serving = Task {
                let stream = try await guest.acceptStream()
                let channel = try await stream.makeChannel(startReading: false)
                try await server.serve(channel: channel)
                stream.startReadingChannel()
                return stream.id
            }
            let control = try await host.openStream()
            let client = try await TTRPCClient(channel: try await control.makeChannel())
            #expect(try await serving.value == control.id)

            // A second stream moving bulk bytes at the same time (stdio-like).
            let bulkSize = 8 << 20
            let bulk = Task {
                let stream = try await host.openStream()
                try await stream.write(ByteBuffer(repeating: 0xA5, count: bulkSize))
                try await stream.closeWrite()
            }
            let sink = Task {
                let stream = try await guest.acceptStream()
                var received = 0
                while let chunk = try await stream.read() {
                    #expect(chunk.readableBytesView.allSatisfy { $0 == 0xA5 })
                    received += chunk.readableBytes
                }
                return received
            }

            var request = EchoRequest()
            request.payload = Data("over yamux".utf8)
            let reply = try await client.call(service: echoServiceName, method: "Echo", request: request,
                                              as: EchoResponse.self, options: TTRPCCallOptions(metadata: ["k": "v"]))
            #expect(reply.payload == request.payload)
            #expect(reply.metadata.map(\.key) == ["k"])

            #expect(try await EchoCalls.concurrent(client, count: 200) == 200)
            #expect(try await EchoCalls.countStream(client, count: 100, size: 32 << 10) == 100)

            try await bulk.value
            #expect(try await sink.value == bulkSize)
            try await client.close()
            await server.shutdown(gracePeriod: .seconds(5))
        }
    }

    @Test("the session's death fails pending ttrpc calls promptly")
    func sessionDeath() async throws {
        try await Self.withSessions { host, guest in
            let server = TTRPCServer(services: [EchoService.make()])
            let serving = Task {
                let stream = try await guest.acceptStream()
                let channel = try await stream.makeChannel(startReading: false)
                try await server.serve(channel: channel)
                stream.startReadingChannel()
            }
            let control = try await host.openStream()
            let client = try await TTRPCClient(channel: try await control.makeChannel())
            try await serving.value
            let pending = Task {
                var request = EchoRequest()
                request.sleepMs = 60_000
                return try await client.call(service: echoServiceName, method: "Echo", request: request,
                                             as: EchoResponse.self)
            }
            try await Task.sleep(for: .milliseconds(200))
            await guest.close()  // the guest side goes away (a VM dying)
            let error = await #expect(throws: TTRPCError.self) { _ = try await pending.value }
            #expect(error?.code == .unavailable)
            await server.shutdown(gracePeriod: .seconds(1))
        }
    }
}
