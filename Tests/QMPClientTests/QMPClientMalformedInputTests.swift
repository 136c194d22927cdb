import Foundation
import Testing
@testable import QMPClient

/// Bad input from the peer gives errors, never a crash or a hang.
@Suite struct QMPClientMalformedInputTests {
    /// Sends `bytes` after the handshake while a command is pending; returns the command's error.
    private func pendingCommandError(after bytes: [UInt8], closeAfter: Bool = false,
                                     configuration: QMPClient.Configuration = .init()) async throws -> QMPError? {
        let (client, peer) = try await connectedPair(configuration)
        let pending = Task { try await client.execute("query-status") }
        _ = try await peer.readCommand()
        peer.sendBytes(bytes)
        if closeAfter { peer.shutdownWrite() }
        let error = await #expect(throws: QMPError.self) { try await pending.value }
        await client.waitClosed()
        #expect(client.isOpen == false)
        return error
    }

    @Test func garbageLine() async throws {
        let e = try await pendingCommandError(after: Array("this is not json\r\n".utf8))
        #expect(e?.code == .protocolViolation)
        #expect(e?.message.contains("malformed JSON") == true)
    }

    @Test func truncatedJSONThenClose() async throws {
        let e = try await pendingCommandError(after: Array(#"{"return": {"status": "runn"#.utf8), closeAfter: true)
        #expect(e?.code == .protocolViolation)
    }

    @Test func truncatedJSONLine() async throws {
        let e = try await pendingCommandError(after: Array("{\"return\": {\"status\": \r\n".utf8))
        #expect(e?.code == .protocolViolation)
    }

    @Test func nonObjectMessage() async throws {
        let e = try await pendingCommandError(after: Array("[1, 2, 3]\r\n".utf8))
        #expect(e?.code == .protocolViolation)
    }

    @Test func objectOfUnknownShape() async throws {
        let e = try await pendingCommandError(after: Array(#"{"hello": "world"}"#.utf8 + [13, 10]))
        #expect(e?.code == .protocolViolation)
    }

    @Test func invalidUTF8() async throws {
        let e = try await pendingCommandError(after: [0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d, 0x0a])
        #expect(e?.code == .protocolViolation)
    }

    @Test func hugeLineWithoutNewline() async throws {
        let limit = 64 << 10
        let huge = [UInt8](repeating: UInt8(ascii: "a"), count: limit * 4)
        let e = try await pendingCommandError(after: huge, configuration: .init(maxMessageBytes: limit))
        #expect(e?.code == .messageTooLarge)
    }

    @Test func hugeCompleteLine() async throws {
        let limit = 64 << 10
        let value = String(repeating: "x", count: limit * 2)
        let line = Array(#"{"return": "\#(value)", "id": 1}"#.utf8) + [13, 10]
        let e = try await pendingCommandError(after: line, configuration: .init(maxMessageBytes: limit))
        #expect(e?.code == .messageTooLarge)
    }

    @Test func secondGreeting() async throws {
        let e = try await pendingCommandError(after: Array((FakeQMPPeer.greeting + "\r\n").utf8))
        #expect(e?.code == .protocolViolation)
    }

    @Test func blankLinesAreHarmless() async throws {
        let (client, peer) = try await connectedPair()
        let s = Task { try await client.queryStatus() }
        let cmd = try await peer.readCommand()
        peer.send("\r\n\n  \r\n")
        peer.reply(id: cmd.id, #"{"status": "running", "running": true}"#)
        #expect(try await s.value.status == "running")
        await client.close()
    }

    @Test func missingGreeting() async throws {
        let (peer, fd) = try FakeQMPPeer.make()
        let pendingClient = Task { try await QMPClient.connect(takingOwnershipOf: fd) }
        peer.sendLine(#"{"return": {}, "id": 1}"#)
        let e = await #expect(throws: QMPError.self) { try await pendingClient.value }
        #expect(e?.code == .protocolViolation)
    }

    @Test func greetingWithoutVersion() async throws {
        let (peer, fd) = try FakeQMPPeer.make()
        let pendingClient = Task { try await QMPClient.connect(takingOwnershipOf: fd) }
        peer.sendLine(#"{"QMP": {"capabilities": []}}"#)
        let e = await #expect(throws: QMPError.self) { try await pendingClient.value }
        #expect(e?.code == .protocolViolation)
    }

    @Test func silentPeerTimesOutTheHandshake() async throws {
        let (peer, fd) = try FakeQMPPeer.make()
        let e = await #expect(throws: QMPError.self) {
            try await QMPClient.connect(takingOwnershipOf: fd, configuration: .init(handshakeTimeout: .milliseconds(300)))
        }
        #expect(e?.code == .timeout)
        _ = peer
    }

    @Test func peerClosesBeforeGreeting() async throws {
        let (peer, fd) = try FakeQMPPeer.make()
        let pendingClient = Task { try await QMPClient.connect(takingOwnershipOf: fd) }
        peer.shutdownWrite()
        let e = await #expect(throws: QMPError.self) { try await pendingClient.value }
        #expect(e?.code == .connectionClosed)
    }

    /// Random bytes, split at random points: every run ends in an error or a clean
    /// close, never a crash; the pending command always completes.
    @Test func randomGarbage() async throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let (client, peer) = try await connectedPair(.init(maxMessageBytes: 4096, commandTimeout: .seconds(5)))
            let pending = Task { try await client.execute("query-status") }
            _ = try await peer.readCommand()
            let count = Int.random(in: 1...3000, using: &rng)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if Bool.random(using: &rng) { bytes.insert(10, at: Int.random(in: 0..<bytes.count, using: &rng)) }
            peer.sendBytes(bytes)
            peer.shutdownWrite()
            do {
                _ = try await pending.value
            } catch let e as QMPError {
                #expect([.protocolViolation, .connectionClosed, .messageTooLarge].contains(e.code))
            }
            await client.close()
        }
    }
}
