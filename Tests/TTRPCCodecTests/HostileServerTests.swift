import EchoService
import Foundation
import NIOCore
import NIOPosix
import Testing
import TestSupport
@testable import TTRPCCodec

/// The host is the ttrpc *client* of the guest agent, so a hostile or broken
/// server (a compromised guest) must not be able to crash or wedge the client.
@Suite("Hostile input to the client")
struct HostileServerTests {
    /// A server that answers every request frame with `reply(streamID)` bytes.
    final class ScriptedServer: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let reply: @Sendable (UInt32) -> ByteBuffer
        var decoder = TTRPCFrameDecoder()
        var buffer = ByteBuffer()

        init(reply: @escaping @Sendable (UInt32) -> ByteBuffer) { self.reply = reply }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var chunk = unwrapInboundIn(data)
            buffer.writeBuffer(&chunk)
            while let event = try? decoder.decode(buffer: &buffer) {
                if case .frame(let frame) = event {
                    context.writeAndFlush(wrapOutboundOut(reply(frame.streamID)), promise: nil)
                }
            }
        }
    }

    static func withScriptedServer<T>(_ reply: @escaping @Sendable (UInt32) -> ByteBuffer,
                                      _ body: (TTRPCClient) async throws -> T) async throws -> T {
        try await TemporaryDirectory.with { dir in
            let path = dir + "/hostile.sock"
            let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ScriptedServer(reply: reply))
                    }
                }
                .bind(unixDomainSocketPath: path).get()
            let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
            do {
                let result = try await body(client)
                try? await client.close()
                try await listener.close()
                return result
            } catch {
                try? await client.close()
                try? await listener.close()
                throw error
            }
        }
    }

    @Test("an undecodable response fails its call, not the process")
    func undecodableResponse() async throws {
        try await Self.withScriptedServer({ id in
            var out = ByteBuffer()
            out.writeTTRPCFrame(TTRPCFrame(streamID: id, type: .response, payload: ByteBuffer(bytes: [0x0A, 0x7F, 1])))
            return out
        }) { client in
            let error = await #expect(throws: TTRPCError.self) {
                _ = try await client.unary(service: "s", method: "m", payload: Data())
            }
            #expect(error?.code == .internal)
        }
    }

    @Test("data frames on a unary call and responses for unknown streams are rejected or dropped")
    func unexpectedFrames() async throws {
        try await Self.withScriptedServer({ id in
            var out = ByteBuffer()
            out.writeTTRPCFrame(TTRPCFrame(streamID: id + 100, type: .response, payload: ByteBuffer()))  // unknown: dropped
            out.writeTTRPCFrame(TTRPCFrame(streamID: id, type: .data, payload: ByteBuffer(string: "x")))  // not streaming
            return out
        }) { client in
            let error = await #expect(throws: TTRPCError.self) {
                _ = try await client.unary(service: "s", method: "m", payload: Data())
            }
            #expect(error?.code == .internal)
        }
    }

    @Test("an oversized response is skipped and fails only its call")
    func oversizedResponse() async throws {
        try await Self.withScriptedServer({ id in
            var out = ByteBuffer()
            if id == 1 {
                out.writeTTRPCHeader(TTRPCFrameHeader(length: UInt32(5 << 20), streamID: id, type: .response))
                out.writeBytes([UInt8](repeating: 0, count: 5 << 20))
            } else {
                out.writeTTRPCFrame(TTRPCFrame(streamID: id, type: .response, payload: ByteBuffer()))
            }
            return out
        }) { client in
            let error = await #expect(throws: TTRPCError.self) {
                _ = try await client.unary(service: "s", method: "m", payload: Data())
            }
            #expect(error?.code == .resourceExhausted)
            let next = try await client.unary(service: "s", method: "m", payload: Data())
            #expect(next.isEmpty)
        }
    }

    @Test("random bytes from the server: every pending call ends with an error or a reply, none hangs")
    func garbageReplies() async throws {
        for seed in 0..<4 {
            try await Self.withScriptedServer({ id in
                var generator = SplitMix64(seed: UInt64(seed) &* 7919 &+ UInt64(id))
                return ByteBuffer(bytes: (0..<Int(generator.next() % 512 + 1)).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
            }) { client in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<5 {
                        group.addTask {
                            _ = try? await client.unary(service: "s", method: "m", payload: Data(),
                                                        options: TTRPCCallOptions(timeout: .seconds(1)))
                        }
                    }
                    try await group.waitForAll()
                }
            }
        }
    }
}

/// A small deterministic generator so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
