import Foundation
import NIOCore
import NIOPosix
import TestSupport
import Testing
import VsockTransport
import VsockTransportTestPeer

/// Swift yamux against Go `hashicorp/yamux` (Debian's package, GOPATH mode), in
/// both directions, over a unix socket.
@Suite("yamux interop with Go hashicorp/yamux")
struct YamuxGoInteropTests {
    // MARK: Swift client → Go server

    @Test("Swift client: 100 concurrent echo streams", .enabled(if: GoYamuxPeer.available))
    func swiftClientConcurrentStreams() async throws {
        try await TemporaryDirectory.with { dir in
            try await GoYamuxPeer.withServer(in: dir) { session in
                let intact = try await YamuxTestPeer.echoMany(session, count: 100, maxSize: 256 * 1024)
                #expect(intact == 100)
                try await Task.sleep(for: .milliseconds(50))
                #expect(await session.openStreamCount() == 0)
            }
        }
    }

    @Test("Swift client: 64 MiB to a slow Go reader while other streams flow", .enabled(if: GoYamuxPeer.available))
    func swiftClientSlowReader() async throws {
        try await TemporaryDirectory.with { dir in
            try await GoYamuxPeer.withServer(in: dir) { session in
                let total = 64 << 20
                let sink = try await session.openStream()
                try await sink.write(ByteBuffer(string: "sink \(total) 2\n"))
                let clock = ContinuousClock()
                let start = clock.now
                async let sinkResult: (String, Duration) = {
                    let hash = try await YamuxTestPeer.writePattern(sink, count: total)
                    try await sink.closeWrite()
                    var reader = LineReader(stream: sink)
                    let reply = try await reader.readLine() ?? ""
                    #expect(reply == "\(hash.hex) \(total)")
                    return (reply, clock.now - start)
                }()
                try await Task.sleep(for: .milliseconds(100))
                let intact = try await YamuxTestPeer.echoMany(session, count: 20, maxSize: 64 * 1024)
                let echoTime = clock.now - start
                #expect(intact == 20)
                let (_, sinkTime) = try await sinkResult
                // The slow reader takes >= 2 s (1024 reads, 2 ms apart); the echo
                // streams must not have waited for it.
                #expect(echoTime < sinkTime)
                #expect(sinkTime > .seconds(2))
            }
        }
    }

    @Test("keepalive pings are answered by Go and keep the session up", .enabled(if: GoYamuxPeer.available))
    func keepaliveWithGo() async throws {
        var configuration = YamuxConfiguration()
        // About 30 pings, each of which must be answered within 1 s, or the
        // session ends with keepalive-timeout.
        configuration.keepaliveInterval = .milliseconds(50)
        configuration.keepaliveTimeout = .seconds(1)
        try await TemporaryDirectory.with { dir in
            try await GoYamuxPeer.withServer(in: dir, configuration: configuration) { session in
                try await Task.sleep(for: .milliseconds(1500))
                #expect(await session.terminationError() == nil)
                #expect(try await YamuxTestPeer.echoMany(session, count: 4, maxSize: 10_000) == 4)
            }
        }
    }

    @Test("Swift client: half-close and source", .enabled(if: GoYamuxPeer.available))
    func swiftClientHalfClose() async throws {
        try await TemporaryDirectory.with { dir in
            try await GoYamuxPeer.withServer(in: dir) { session in
                let stream = try await session.openStream()
                try await stream.write(ByteBuffer(string: "echo\nhalf-closed"))
                try await stream.closeWrite()
                // Writing after the half-close is refused; reading goes on.
                await #expect(throws: VsockTransportError.self) {
                    try await stream.write(ByteBuffer(string: "late"))
                }
                let back = try await stream.readAll()
                #expect(String(buffer: back) == "half-closed")

                let source = try await session.openStream()
                try await source.write(ByteBuffer(string: "source 1000000\n"))
                let data = try await source.readAll()
                #expect(data == YamuxTestPeer.pattern(count: 1_000_000))
            }
        }
    }

    @Test("Swift client: Go resets streams beyond its accept backlog", .enabled(if: GoYamuxPeer.available))
    func swiftClientResetByPeer() async throws {
        try await TemporaryDirectory.with { dir in
            try await GoYamuxPeer.withServer(in: dir, extra: ["-noaccept", "-backlog", "1"]) { session in
                var streams: [YamuxStream] = []
                for _ in 0..<3 { streams.append(try await session.openStream()) }
                // The first waits in Go's backlog; the others are reset.
                for stream in streams.dropFirst() {
                    await #expect(throws: VsockTransportError(.streamReset, "stream \(stream.id) reset by peer")) {
                        _ = try await stream.read()
                    }
                    await #expect(throws: VsockTransportError.self) {
                        try await stream.write(ByteBuffer(string: "x"))
                    }
                }
                #expect(await session.openStreamCount() == 1)
                #expect(try await session.ping() < .seconds(5))
            }
        }
    }

    @Test("Swift client: Go's go-away stops new streams, not open ones", .enabled(if: GoYamuxPeer.available))
    func swiftClientGoAway() async throws {
        try await TemporaryDirectory.with { dir in
            try await GoYamuxPeer.withServer(in: dir) { session in
                let early = try await session.openStream()
                try await early.write(ByteBuffer(string: "echo\n"))
                let trigger = try await session.openStream()
                try await trigger.write(ByteBuffer(string: "goaway\n"))
                #expect(String(buffer: try await trigger.readAll()) == "ok\n")
                #expect(await session.peerSentGoAway())
                await #expect(throws: VsockTransportError(.remoteGoAway, "the peer sent go-away")) {
                    _ = try await session.openStream()
                }
                try await early.write(ByteBuffer(string: "still flowing"))
                try await early.closeWrite()
                #expect(String(buffer: try await early.readAll()) == "still flowing")
            }
        }
    }

    @Test("a stream as a NIO Channel (for TTRPCCodec): echo through Go", .enabled(if: GoYamuxPeer.available))
    func streamAsChannel() async throws {
        try await TemporaryDirectory.with { dir in
            try await GoYamuxPeer.withServer(in: dir) { session in
                let stream = try await session.openStream()
                let collected = Collector()
                let channel = try await stream.makeChannel { channel in
                    channel.pipeline.addHandler(collected)
                }
                let payload = YamuxTestPeer.randomBytes(count: 1_000_000, seed: 7)
                try await channel.writeAndFlush(ByteBuffer(string: "echo\n")).get()
                try await channel.writeAndFlush(payload).get()
                try await channel.close(mode: .output).get()   // → FIN on the stream
                let back = try await collected.done.futureResult.get()
                #expect(back == payload)
                try? await channel.close().get()

                // Handlers added after creation, with reading started only then:
                // bytes that were already waiting are not lost.
                let source = try await session.openStream()
                try await source.write(ByteBuffer(string: "source 100000\n"))
                let late = try await source.makeChannel(startReading: false)
                try await Task.sleep(for: .milliseconds(200))
                let lateCollector = Collector()
                try await late.pipeline.addHandler(lateCollector).get()
                source.startReadingChannel()
                #expect(try await lateCollector.done.futureResult.get() == YamuxTestPeer.pattern(count: 100_000))
                try? await late.close().get()
            }
        }
    }

    // MARK: Go client → Swift server

    @Test("Go client against the Swift server",
          .enabled(if: GoYamuxPeer.available),
          arguments: ["echo100", "slow", "halfclose", "reset", "goaway"])
    func goClient(scenario: String) async throws {
        try await TemporaryDirectory.with { dir in
            let server = try await SwiftYamuxServer(path: dir + "/swift.sock")
            defer { Task { await server.close() } }
            let result = try await GoYamuxPeer.runClient(socketPath: dir + "/swift.sock", scenario: scenario)
            #expect(result.status == 0, "Go peer: \(result.output)")
            #expect(result.output.hasPrefix("OK \(scenario)"), "Go peer: \(result.output)")
            await server.close()
        }
    }
}

/// Collects a channel's inbound bytes until its input closes.
final class Collector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    var bytes = ByteBuffer()
    let done = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: ByteBuffer.self)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        bytes.writeBuffer(&buffer)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(.inputClosed) = event as? ChannelEvent { done.succeed(bytes) }
    }

    func channelInactive(context: ChannelHandlerContext) { done.succeed(bytes) }
}
