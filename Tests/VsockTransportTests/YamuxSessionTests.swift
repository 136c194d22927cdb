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

    @Test("a stream nobody reads stops at its window; other streams keep flowing")
    func backpressurePerStream() async throws {
        try await Self.withPair { session in
            // "hold": the server never reads this stream.
            let stuck = try await session.openStream()
            try await stuck.write(ByteBuffer(string: "hold\n"))
            let writer = Task {
                var written = 0
                while !Task.isCancelled {
                    do {
                        try await stuck.write(ByteBuffer(repeating: 1, count: 16 * 1024))
                    } catch { break }
                    written += 16 * 1024
                }
                return written
            }
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await YamuxTestPeer.echoMany(session, count: 20, maxSize: 100_000) == 20)
            stuck.reset()
            let written = await writer.value
            // The window (256 KiB) minus the command line bounds what got through.
            #expect(written <= 256 * 1024)
            #expect(written >= 200 * 1024)
        }
    }

    @Test("a larger window is granted and used")
    func largerWindow() async throws {
        var configuration = YamuxConfiguration()
        configuration.maxStreamWindowSize = 2 << 20
        configuration.maxOutboundFrameSize = 256 * 1024
        try await Self.withPair(configuration: configuration) { session in
            let stream = try await session.openStream()
            try await stream.write(ByteBuffer(string: "source \(2 << 20)\n"))
            var sizes: [Int] = []
            var hash = FNV1a64()
            for try await chunk in stream.inbound {
                sizes.append(chunk.readableBytes)
                hash.update(chunk)
            }
            var expected = FNV1a64()
            expected.update(YamuxTestPeer.pattern(count: 2 << 20))
            #expect(sizes.reduce(0, +) == 2 << 20)
            #expect(hash == expected)
        }
    }

    @Test("ping, go-away from this side, reset from this side")
    func pingGoAwayReset() async throws {
        try await Self.withPair { session in
            #expect(try await session.ping() < .seconds(5))
            let stream = try await session.openStream()
            try await stream.write(ByteBuffer(string: "echo\n"))
            stream.reset()
            await #expect(throws: VsockTransportError.self) { _ = try await stream.read() }
            try await Task.sleep(for: .milliseconds(20))
            #expect(await session.openStreamCount() == 0)
            await session.goAway()
            await #expect(throws: VsockTransportError(.localGoAway, "this side sent go-away")) {
                _ = try await session.openStream()
            }
        }
    }

    @Test("dropping an open stream closes it; nothing stays registered")
    func droppedStreamIsReset() async throws {
        try await Self.withPair { session in
            do {
                let stream = try await session.openStream()
                try await stream.write(ByteBuffer(string: "echo\nabc"))
            }
            var open = -1
            for _ in 0..<250 {
                open = await session.openStreamCount()
                if open == 0 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(open == 0)
            #expect(try await YamuxTestPeer.echoMany(session, count: 3, maxSize: 1000) == 3)
        }
    }

    @Test("a side configured to refuse peer streams resets every stream the peer opens")
    func refusingPeerStreams() async throws {
        try await Self.withPair(configuration: .refusingPeerStreams) { session in
            for _ in 0..<3 {
                let stream = try await session.openStream()
                try? await stream.write(ByteBuffer(string: "echo\nx"))
                await #expect(throws: VsockTransportError.self) { _ = try await stream.readAll() }
            }
            #expect(try await session.ping() < .seconds(5))
        }
    }
}
