import Foundation
import NIOCore
import NIOEmbedded
import Testing
@testable import TTRPCCodec

/// The server handler splits the byte stream into frames itself; these feed it bytes in
/// awkward shapes on an `EmbeddedChannel` and read back what it wrote.
@Suite("Server framing: how bytes arrive does not change what is answered")
struct ServerFramingTests {
    static let service = TTRPCService(name: "test.Echo", methods: ["Echo": .unary { payload, _ in payload }])

    /// Request frames for `count` Echo calls on ids 1, 3, 5, … with payload "call N".
    static func requests(_ count: Int) throws -> ByteBuffer {
        var bytes = ByteBuffer()
        for index in 0..<count {
            var request = Ttrpc_Request()
            request.service = service.name
            request.method = "Echo"
            request.payload = Data("call \(index)".utf8)
            bytes.writeTTRPCFrame(TTRPCFrame(streamID: UInt32(2 * index + 1), type: .request,
                                             payload: try request.ttrpcBuffer()))
        }
        return bytes
    }

    /// Every response the handler wrote, as (stream id, payload text), in order.
    static func responses(_ channel: EmbeddedChannel) throws -> [(UInt32, String)] {
        channel.embeddedEventLoop.run()
        var decoder = TTRPCFrameDecoder()
        var answered: [(UInt32, String)] = []
        while var chunk = try channel.readOutbound(as: ByteBuffer.self) {
            while let event = try decoder.decode(buffer: &chunk) {
                guard case .frame(let frame) = event else { continue }
                let response = try Ttrpc_Response(ttrpcBuffer: frame.payload)
                #expect(frame.type == .response && response.error == nil)
                answered.append((frame.streamID, String(decoding: response.payload, as: UTF8.self)))
            }
        }
        return answered
    }

    static func expected(_ count: Int) -> [(UInt32, String)] {
        (0..<count).map { (UInt32(2 * $0 + 1), "call \($0)") }
    }

    @Test("one byte per read, seven bytes per read, and every frame in one read get the same answers",
          arguments: [1, 7, Int.max])
    func chunkSizes(chunkSize: Int) throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            TTRPCServerHandler(services: [Self.service.name: Self.service], configuration: TTRPCServer.Configuration()))
        var bytes = try Self.requests(40)
        while bytes.readableBytes > 0 {
            let chunk = bytes.readSlice(length: min(chunkSize, bytes.readableBytes)) ?? ByteBuffer()
            try channel.writeInbound(chunk)
        }
        let answered = try Self.responses(channel)
        #expect(answered.map(\.0) == Self.expected(40).map(\.0))
        #expect(answered.map(\.1) == Self.expected(40).map(\.1))
        _ = try channel.finish()
    }

    @Test("bytes delivered while earlier requests are handled (a synchronous read) wait their turn")
    func reentrantReads() throws {
        let channel = EmbeddedChannel()
        let feeder = SynchronousReadFeeder()
        let bound = NIOLoopBound(channel, eventLoop: channel.eventLoop)
        // Each call asks the channel for more while it runs: with one call allowed at a time the
        // server holds that read and issues it when the call ends, which is still inside the
        // server's own frame loop — and the feeder answers it at once, re-entering the server.
        let service = TTRPCService(name: Self.service.name, methods: ["Echo": .unary { payload, _ in
            bound.value.read()
            return payload
        }])
        var configuration = TTRPCServer.Configuration()
        configuration.maxConcurrentCallsPerConnection = 1
        try channel.pipeline.syncOperations.addHandlers([
            feeder, TTRPCServerHandler(services: [service.name: service], configuration: configuration),
        ])
        var bytes = try Self.requests(30)
        // Chunks of 11 bytes: frames straddle chunks, and a chunk may end right after a header.
        while bytes.readableBytes > 0 {
            feeder.queue.append(bytes.readSlice(length: min(11, bytes.readableBytes)) ?? ByteBuffer())
        }
        try channel.writeInbound(feeder.queue.removeFirst())
        while !feeder.queue.isEmpty { channel.read() }
        #expect(feeder.nestedDeliveries > 0, "the feeder never re-entered the server: the test proves nothing")
        let answered = try Self.responses(channel)
        #expect(answered.map(\.0) == Self.expected(30).map(\.0))
        #expect(answered.map(\.1) == Self.expected(30).map(\.1))
        _ = try channel.finish()
    }
}

/// Answers each `read` with the next queued chunk (and the read-complete that ends a
/// batch), synchronously, as a channel with buffered data may; counts the chunks it
/// delivered from inside another delivery.
private final class SynchronousReadFeeder: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer

    var queue: [ByteBuffer] = []
    private(set) var nestedDeliveries = 0
    private var delivering = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        deliver(context, data)
    }

    func read(context: ChannelHandlerContext) {
        guard !queue.isEmpty else { return context.read() }
        if delivering { nestedDeliveries += 1 }
        deliver(context, wrapInboundOut(queue.removeFirst()))
        context.fireChannelReadComplete()
    }

    private func deliver(_ context: ChannelHandlerContext, _ data: NIOAny) {
        let outer = delivering
        delivering = true
        defer { delivering = outer }
        context.fireChannelRead(data)
    }
}
