import Foundation
import NIOCore
import NIOPosix
import TestSupport
import Testing
import VsockTransport
import VsockTransportTestPeer

/// Swift against Swift over a unix socket: the session's own semantics.
@Suite("yamux session (Swift ↔ Swift)")
struct YamuxSessionTests {
    static func withPair<T: Sendable>(
        configuration: YamuxConfiguration = .init(),
        _ body: (YamuxSession) async throws -> T
    ) async throws -> T {
        try await TemporaryDirectory.with { dir in
            let server = try await SwiftYamuxServer(path: dir + "/s.sock", configuration: configuration)
            let session = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(unixDomainSocketPath: dir + "/s.sock") { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try YamuxSession.makeSession(on: channel, role: .client, configuration: configuration)
                    }
                }
            do {
                let result = try await body(session)
                await session.close()
                await server.close()
                return result
            } catch {
                await session.close()
                await server.close()
                throw error
            }
        }
    }

    @Test("echo, half-close, source")
    func echo() async throws {
        try await Self.withPair { session in
            let stream = try await session.openStream()
            try await stream.write(ByteBuffer(string: "echo\nhello"))
            try await stream.closeWrite()
            #expect(String(buffer: try await stream.readAll()) == "hello")
            #expect(try await YamuxTestPeer.echoMany(session, count: 50, maxSize: 300_000) == 50)
        }
    }
}
