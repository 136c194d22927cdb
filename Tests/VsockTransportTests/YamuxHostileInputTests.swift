import Foundation
import NIOCore
import TestSupport
import Testing
import VsockTransport

/// Everything from the guest is untrusted: malformed or abusive input ends the
/// session cleanly (go-away with the protocol-error code, pipe closed, every
/// stream failed, nothing left registered) and never crashes.
@Suite("yamux hostile input")
struct YamuxHostileInputTests {
    typealias F = RawPeer.Frame

    /// Sends `bytes` and expects the session to die with `code`, having sent a
    /// protocol-error go-away and closed the pipe.
    func expectProtocolFailure(_ code: VsockTransportError.Code, after frames: [[UInt8]],
                               prepare: ((RawPeer) async throws -> Void)? = nil) async throws {
        let peer = try await RawPeer.make()
        try await prepare?(peer)
        for bytes in frames { try peer.send(bytes) }
        let seen = try #require(await peer.framesUntilEOF(), "the Swift side did not close the pipe")
        let goAway = seen.last { $0.type == RawPeer.goAway }
        #expect(goAway?.length == 1, "expected a protocol-error go-away, got \(seen)")
        try await peer.session.closeFuture.get()
        #expect(await peer.session.terminationError()?.code == code)
        #expect(await peer.session.openStreamCount() == 0)
        #expect(!peer.session.channel.isActive)
        await #expect(throws: VsockTransportError.self) { _ = try await peer.session.openStream() }
    }

    @Test("garbage bytes")
    func garbage() async throws {
        try await expectProtocolFailure(.invalidVersion, after: [Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)])
    }

    @Test("wrong protocol version")
    func wrongVersion() async throws {
        try await expectProtocolFailure(.invalidVersion, after: [RawPeer.encode(
            F(version: 1, type: RawPeer.ping, flags: RawPeer.syn, streamID: 0, length: 1))])
    }

    @Test("unknown frame type")
    func unknownType() async throws {
        try await expectProtocolFailure(.invalidFrameType, after: [RawPeer.encode(
            F(type: 9, flags: 0, streamID: 0, length: 0))])
    }

    @Test("data frame larger than any window, refused before its payload arrives")
    func oversizedFrame() async throws {
        try await expectProtocolFailure(.frameTooLarge, after: [RawPeer.encode(
            F(type: RawPeer.data, flags: RawPeer.syn, streamID: 1, length: 0xFFFF_FFFF))])
    }

    @Test("window update overflowing the send window")
    func windowOverflow() async throws {
        try await expectProtocolFailure(.windowOverflow, after: [
            RawPeer.encode(F(type: RawPeer.windowUpdate, flags: RawPeer.syn, streamID: 1, length: 0)),
            RawPeer.encode(F(type: RawPeer.windowUpdate, flags: 0, streamID: 1, length: 0xFFFF_FFF0)),
        ])
    }

    @Test("more data than the receive window")
    func windowExceeded() async throws {
        let chunk = [UInt8](repeating: 7, count: 128 * 1024)
        try await expectProtocolFailure(.windowExceeded, after: [
            RawPeer.encode(F(type: RawPeer.data, flags: RawPeer.syn, streamID: 1, length: UInt32(chunk.count), payload: chunk)),
            RawPeer.encode(F(type: RawPeer.data, flags: 0, streamID: 1, length: UInt32(chunk.count), payload: chunk)),
            RawPeer.encode(F(type: RawPeer.data, flags: 0, streamID: 1, length: 1, payload: [1])),
        ])
    }

    @Test("data on a stream that was never opened")
    func unknownStream() async throws {
        try await expectProtocolFailure(.unknownStream, after: [RawPeer.encode(
            F(type: RawPeer.data, flags: 0, streamID: 41, length: 3, payload: [1, 2, 3]))])
    }

    @Test("stream opened twice, or with the wrong parity")
    func duplicateStream() async throws {
        let syn = RawPeer.encode(F(type: RawPeer.windowUpdate, flags: RawPeer.syn, streamID: 3, length: 0))
        try await expectProtocolFailure(.invalidStreamID, after: [syn, syn])
        try await expectProtocolFailure(.invalidStreamID, after: [RawPeer.encode(
            F(type: RawPeer.windowUpdate, flags: RawPeer.syn, streamID: 2, length: 0))])
    }

    @Test("data on a closed stream is discarded; the session lives on")
    func dataOnClosedStream() async throws {
        let peer = try await RawPeer.make()
        try peer.send(F(type: RawPeer.windowUpdate, flags: RawPeer.syn, streamID: 1, length: 0))
        try peer.send(F(type: RawPeer.windowUpdate, flags: RawPeer.rst, streamID: 1, length: 0))
        try peer.send(F(type: RawPeer.data, flags: 0, streamID: 1, length: 4, payload: [1, 2, 3, 4]))
        try peer.send(F(type: RawPeer.ping, flags: RawPeer.syn, streamID: 0, length: 77))
        let pong = try #require(await peer.nextFrame())
        #expect(pong == F(type: RawPeer.ping, flags: RawPeer.ack, streamID: 0, length: 77))
        #expect(await peer.session.terminationError() == nil)
        // The reset stream is still handed out (it was never accepted) and reads fail.
        let stream = try await peer.session.acceptStream()
        await #expect(throws: VsockTransportError.self) { _ = try await stream.read() }
        #expect(await peer.session.openStreamCount() == 0)
        await peer.session.close()
    }

    @Test("streams beyond the limit are reset, the session lives on")
    func streamLimit() async throws {
        var configuration = YamuxConfiguration()
        configuration.maxStreams = 2
        let peer = try await RawPeer.make(configuration: configuration)
        for id in [1, 3, 5, 7] as [UInt32] {
            try peer.send(F(type: RawPeer.windowUpdate, flags: RawPeer.syn, streamID: id, length: 0))
        }
        var resets: [UInt32] = []
        while resets.count < 2, let f = try await peer.nextFrame(timeout: 2) {
            if f.flags & RawPeer.rst != 0 { resets.append(f.streamID) }
        }
        #expect(resets == [5, 7])
        #expect(await peer.session.openStreamCount() == 2)
        #expect(await peer.session.terminationError() == nil)
        await peer.session.close()
    }

    @Test("a peer that never reads: the keepalive ends the session, the writer fails")
    func peerNeverReads() async throws {
        var configuration = YamuxConfiguration()
        configuration.keepaliveInterval = .milliseconds(200)
        configuration.keepaliveTimeout = .milliseconds(500)
        let peer = try await RawPeer.make(role: .client, configuration: configuration)
        // The Swift side writes far more than the pipe and the window can hold.
        let stream = try await peer.session.openStream()
        let start = ContinuousClock.now
        await #expect(throws: VsockTransportError.self) {
            for _ in 0..<1000 { try await stream.write(ByteBuffer(repeating: 1, count: 64 * 1024)) }
        }
        // Keepalive: 200 ms + 500 ms. The bound is loose for loaded CI machines;
        // what matters is that the blocked writer is released at all.
        #expect(ContinuousClock.now - start < .seconds(30))
        try await peer.session.closeFuture.get()
        #expect(await peer.session.terminationError()?.code == .keepaliveTimeout)
        #expect(await peer.session.openStreamCount() == 0)
    }

    @Test("a peer that grants window but never reads the pipe")
    func peerNeverReadsPipe() async throws {
        var configuration = YamuxConfiguration()
        configuration.keepaliveInterval = .milliseconds(200)
        configuration.keepaliveTimeout = .milliseconds(500)
        let peer = try await RawPeer.make(role: .client, configuration: configuration)
        let stream = try await peer.session.openStream()
        // Huge window: only the pipe's own buffers push back.
        try peer.send(F(type: RawPeer.windowUpdate, flags: RawPeer.ack, streamID: 1, length: 0x7FFF_0000))
        await #expect(throws: VsockTransportError.self) {
            for _ in 0..<1000 { try await stream.write(ByteBuffer(repeating: 1, count: 64 * 1024)) }
        }
        try await peer.session.closeFuture.get()
        #expect(await peer.session.terminationError()?.code == .keepaliveTimeout)
    }

    @Test("tiny frames do not keep the buffers they arrived in alive")
    func tinyFramesAreCopied() async throws {
        let peer = try await RawPeer.make()
        let big = (0..<(100 * 1024)).map { UInt8($0 % 251) }
        // One burst: a tiny frame first (in the first read, whose buffer is 2 KiB),
        // a large one, another tiny one behind it (in a buffer of at least 100 KiB).
        try peer.send(RawPeer.encode(F(type: RawPeer.data, flags: RawPeer.syn, streamID: 1, length: 5,
                                       payload: [1, 2, 3, 4, 5]))
            + RawPeer.encode(F(type: RawPeer.data, flags: RawPeer.syn, streamID: 3, length: UInt32(big.count),
                               payload: big))
            + RawPeer.encode(F(type: RawPeer.data, flags: RawPeer.syn | RawPeer.fin, streamID: 5, length: 3,
                               payload: [9, 8, 7])))
        let first = try await peer.session.acceptStream()
        let bulk = try await peer.session.acceptStream()
        let last = try await peer.session.acceptStream()
        let a = try #require(try await first.read())
        #expect(Array(a.readableBytesView) == [1, 2, 3, 4, 5])
        #expect(a.storageCapacity < 1024, "a 5-byte payload holds \(a.storageCapacity) bytes of storage")
        let c = try #require(try await last.read())
        #expect(Array(c.readableBytesView) == [9, 8, 7])
        #expect(c.storageCapacity < 1024, "a 3-byte payload holds \(c.storageCapacity) bytes of storage")
        var got: [UInt8] = []
        while got.count < big.count, let chunk = try await bulk.read() { got += chunk.readableBytesView }
        #expect(got == big)
        await peer.session.close()
    }

    @Test("the session sizes the pipe's reads: up to maxReadSize, or the channel's own with 0")
    func readSize() async throws {
        let peer = try await RawPeer.make()
        let allocator = try await peer.session.channel.getOption(.recvAllocator).get()
        #expect((allocator as? AdaptiveRecvByteBufferAllocator)?.maximum == 256 * 1024)
        await peer.session.close()
        var configuration = YamuxConfiguration()
        configuration.maxReadSize = 0
        let plain = try await RawPeer.make(configuration: configuration)
        let untouched = try await plain.session.channel.getOption(.recvAllocator).get()
        #expect((untouched as? AdaptiveRecvByteBufferAllocator)?.maximum == 64 * 1024)
        await plain.session.close()
    }

    @Test("session death fails every stream promptly")
    func sessionDeath() async throws {
        let peer = try await RawPeer.make(role: .client)
        var streams: [YamuxStream] = []
        for _ in 0..<10 { streams.append(try await peer.session.openStream()) }
        let readers = streams.map { stream in Task { try await stream.read() } }
        try await Task.sleep(for: .milliseconds(50))
        shutdown(peer.fd, CInt(SHUT_RDWR))
        for reader in readers {
            await #expect(throws: VsockTransportError.self) { _ = try await reader.value }
        }
        #expect(await peer.session.terminationError()?.code == .sessionClosed)
        #expect(await peer.session.openStreamCount() == 0)
    }
}
