import Foundation
import NIOCore
import NIOPosix
import QemuboxAPI
@testable import QemuboxKit
import SwiftProtobuf
import Testing
import TestSupport
import TTRPCCodec
import VsockTransport

/// The host end of the agent protocol against an in-process guest end, over a
/// real yamux session on a socketpair (the VM pipe's stand-in).
@Suite("guest agent connection")
struct GuestAgentConnectionTests {
    struct PingService: QemuboxGuestV1SystemService {
        func ping(_ request: Qemubox_Guest_V1_PingRequest, context: TTRPCRequestContext) async throws
            -> Qemubox_Guest_V1_PingResponse
        {
            var response = Qemubox_Guest_V1_PingResponse()
            response.payload = request.payload
            return response
        }
    }

    static func withSessions<T>(_ body: (_ host: YamuxSession, _ guest: YamuxSession) async throws -> T) async throws -> T {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { throw PeerError("socketpair") }
        let group = MultiThreadedEventLoopGroup.singleton
        let host = try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(inputOutput: fds[0]) { channel in
            channel.eventLoop.makeCompletedFuture { try YamuxSession.makeSession(on: channel, role: .client) }
        }
        let guest = try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(inputOutput: fds[1]) { channel in
            channel.eventLoop.makeCompletedFuture { try YamuxSession.makeSession(on: channel, role: .server) }
        }
        defer {
            Task {
                await host.close()
                await guest.close()
            }
        }
        return try await body(host, guest)
    }

    /// Reads a stream's header line the way the guest does (byte by byte is fine here).
    static func header(of stream: YamuxStream) async throws -> String {
        var line = ByteBuffer()
        while !line.readableBytesView.contains(UInt8(ascii: "\n")), var chunk = try await stream.read() {
            line.writeBuffer(&chunk)
        }
        return String(buffer: line)
    }

    @Test("ttrpc handshake, typed calls and a named stdio stream")
    func handshake() async throws {
        try await Self.withSessions { host, guest in
            let server = TTRPCServer(services: [PingService().ttrpcService])
            let accepted = Task { () -> String in
                let control = try await guest.acceptStream()
                #expect(try GuestStreamHeader.parse(try await Self.header(of: control)) == .ttrpc)
                try await control.write(Array(GuestAgentProtocol.ttrpcReady.utf8))
                let channel = try await control.makeChannel(startReading: false)
                try await server.serve(channel: channel)
                control.startReadingChannel()
                let stdio = try await guest.acceptStream()
                return try await Self.header(of: stdio)
            }
            let agent = try await GuestAgentConnection.connect(session: host)
            var ping = Qemubox_Guest_V1_PingRequest()
            ping.payload = Data("hi".utf8)
            #expect(try await agent.system.ping(ping).payload == ping.payload)
            await #expect(throws: TTRPCError.self) { _ = try await agent.system.info(.init()) }
            _ = try await agent.openStdio(key: "c1/stdout")
            #expect(try await accepted.value == "qemubox stdio c1/stdout\n")
            await #expect(throws: QemuboxError.self) { _ = try await agent.openStdio(key: "bad key") }
            await server.shutdown(gracePeriod: .seconds(1))
        }
    }

    @Test("a guest answering anything but ok is refused")
    func wrongAnswer() async throws {
        try await Self.withSessions { host, guest in
            Task {
                let control = try await guest.acceptStream()
                _ = try await Self.header(of: control)
                try await control.write(Array("no\n".utf8))
            }
            await #expect { _ = try await GuestAgentConnection.connect(session: host) } throws: { error in
                (error as? QemuboxError)?.code == .agentUnavailable && "\(error)".contains("\"no\"")
            }
        }
    }

    @Test("a silent guest times out instead of hanging")
    func silentGuest() async throws {
        try await Self.withSessions { host, guest in
            let held = Task { try await guest.acceptStream() }
            let started = ContinuousClock.now
            await #expect { _ = try await GuestAgentConnection.connect(session: host, timeout: .milliseconds(300)) } throws: {
                error in (error as? QemuboxError)?.code == .timeout
            }
            #expect(ContinuousClock.now - started < .seconds(10))
            _ = try? await held.value
        }
    }
}
