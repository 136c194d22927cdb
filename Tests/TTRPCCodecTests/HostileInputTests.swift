import Foundation
import EchoService
import NIOCore
import NIOPosix
import Testing
import TestSupport
@testable import TTRPCCodec

/// A raw byte-level connection to a server, for feeding it malformed input.
struct RawConnection {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>

    static func connect(_ path: String) async throws -> RawConnection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(unixDomainSocketPath: path) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
        return RawConnection(channel: channel)
    }

    /// Writes `bytes`, then reads frames until `count` arrived or the server
    /// closed or `timeout` passed. Returns the frames and whether the server closed.
    func exchange(_ bytes: ByteBuffer, expecting count: Int, timeout: Duration = .seconds(10),
                  closeAfterWrite: Bool = false) async throws -> (frames: [TTRPCFrame], closed: Bool) {
        try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(bytes)
            if closeAfterWrite { outbound.finish() }
            return try await withThrowingTaskGroup(of: ([TTRPCFrame], Bool)?.self) { group in
                group.addTask {
                    var decoder = TTRPCFrameDecoder()
                    var buffer = ByteBuffer()
                    var frames: [TTRPCFrame] = []
                    do {
                        for try await chunk in inbound {
                            var chunk = chunk
                            buffer.writeBuffer(&chunk)
                            while let event = try decoder.decode(buffer: &buffer) {
                                if case .frame(let frame) = event { frames.append(frame) }
                            }
                            if frames.count >= count { return (frames, false) }
                        }
                    } catch {
                        return (frames, true)  // reset by the server counts as closed
                    }
                    return (frames, true)
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                let first = try await group.next() ?? nil
                group.cancelAll()
                guard let first else { throw PeerError("timed out waiting for \(count) frame(s)") }
                return first
            }
        }
    }
}

func requestFrame(id: UInt32, service: String = echoServiceName, method: String = "Echo",
                  payload: Data = Data(), flags: TTRPCFrameFlags = []) throws -> ByteBuffer {
    var request = Ttrpc_Request()
    request.service = service
    request.method = method
    request.payload = payload
    var buffer = ByteBuffer()
    buffer.writeTTRPCFrame(TTRPCFrame(streamID: id, type: .request, flags: flags, payload: try request.ttrpcBuffer()))
    return buffer
}

func status(of frame: TTRPCFrame) throws -> TTRPCError? {
    try Ttrpc_Response(ttrpcBuffer: frame.payload).error
}

@Suite("Hostile input to the server")
struct HostileInputTests {
    @Test("protocol rejections: even id, reused id, data on an unknown stream, undecodable request")
    func rejections() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                var bytes = try requestFrame(id: 2)                       // even
                bytes.writeImmutableBuffer(try requestFrame(id: 5))       // fine
                bytes.writeImmutableBuffer(try requestFrame(id: 3))       // lower than 5: reused
                bytes.writeTTRPCFrame(TTRPCFrame(streamID: 41, type: .data, payload: ByteBuffer(string: "x")))
                bytes.writeTTRPCFrame(TTRPCFrame(streamID: 43, type: .request, payload: ByteBuffer(bytes: [0x0A, 0x7F])))
                let connection = try await RawConnection.connect(path)
                let (frames, _) = try await connection.exchange(bytes, expecting: 5)
                let byID = Dictionary(frames.map { ($0.streamID, $0) }, uniquingKeysWith: { a, _ in a })
                #expect(try status(of: #require(byID[2]))?.code == .invalidArgument)
                #expect(try status(of: #require(byID[5])) == nil)
                #expect(try status(of: #require(byID[3]))?.message == "StreamID 3 reused")
                #expect(try status(of: #require(byID[41]))?.message == "data on unknown stream 41")
                let undecodable = try status(of: #require(byID[43]))
                #expect(undecodable?.code == .invalidArgument)
                #expect(undecodable?.message.hasPrefix("unmarshal request error") == true)
            }
        }
    }

    @Test("random and truncated frames: the server answers or closes, never crashes or leaks")
    func garbage() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { server, path in
                var generator = SystemRandomNumberGenerator()
                for round in 0..<40 {
                    var bytes = ByteBuffer()
                    switch round % 4 {
                    case 0:  // pure noise
                        bytes.writeBytes((0..<Int.random(in: 1...4096, using: &generator)).map { _ in
                            UInt8.random(in: 0...255, using: &generator) })
                    case 1:  // a valid header with a random small length and noise payload
                        let length = UInt32.random(in: 0...2048, using: &generator)
                        bytes.writeTTRPCHeader(TTRPCFrameHeader(length: length, streamID: UInt32(round * 2 + 1),
                                                                type: .request))
                        bytes.writeBytes((0..<Int(length)).map { _ in UInt8.random(in: 0...255, using: &generator) })
                    case 2:  // truncated: header promises more than is sent
                        bytes.writeTTRPCHeader(TTRPCFrameHeader(length: 1000, streamID: 1, type: .request))
                        bytes.writeBytes([1, 2, 3])
                    default:  // a 4 GiB length, then close
                        bytes.writeTTRPCHeader(TTRPCFrameHeader(length: .max, streamID: 1, type: .request))
                        bytes.writeBytes([UInt8](repeating: 0, count: 64 << 10))
                    }
                    let connection = try await RawConnection.connect(path)
                    _ = try await connection.exchange(bytes, expecting: Int.max, timeout: .seconds(30),
                                                      closeAfterWrite: true)
                }
                // The server still works.
                let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
                #expect(try await client.unary(service: echoServiceName, method: "Echo", payload: Data()).isEmpty)
                try await client.close()
                #expect(await eventually { server.connectionCount == 0 })
                #expect(openSocketCount(boundTo: path) == 1)  // just the listener
            }
        }
    }

    @Test("a flood of 20,000 pipelined requests is answered in full with bounded concurrency")
    func flood() async throws {
        var configuration = TTRPCServer.Configuration()
        configuration.maxConcurrentCallsPerConnection = 64
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir, configuration: configuration) { server, path in
                let count = 20_000
                var bytes = ByteBuffer()
                for index in 0..<count {
                    bytes.writeImmutableBuffer(try requestFrame(id: UInt32(index * 2 + 1)))
                }
                let connection = try await RawConnection.connect(path)
                let (frames, closed) = try await connection.exchange(bytes, expecting: count, timeout: .seconds(60))
                #expect(!closed)
                #expect(frames.count == count)
                #expect(Set(frames.map(\.streamID)).count == count)
                #expect(try frames.allSatisfy { try status(of: $0) == nil })
                #expect(await eventually { server.connectionCount == 0 })
                #expect(openSocketCount(boundTo: path) == 1)
            }
        }
    }

    @Test("connections opened and closed 200 times leave no fds behind")
    func noLeaks() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { server, path in
                // Warm up lazily created resources before measuring.
                let warm = try await TTRPCClient.connect(unixDomainSocketPath: path)
                _ = try await warm.unary(service: echoServiceName, method: "Echo", payload: Data())
                try await warm.close()
                for _ in 0..<200 {
                    let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
                    _ = try await client.unary(service: echoServiceName, method: "Echo", payload: Data())
                    try await client.close()
                }
                #expect(await eventually { server.connectionCount == 0 })
                #expect(openSocketCount(boundTo: path) == 1)  // just the listener
            }
        }
    }
}
