import Logging
import NIOCore
import NIOEmbedded
import QMPClient
import TTRPCCodec
import VsockTransport

extension FuzzTargets {
    /// ttrpc frames: the input (after a chunk-size byte, see `FuzzChunks`) is
    /// fed in chunks through `ByteToMessageHandler(TTRPCFrameDecoder())` on an
    /// `EmbeddedChannel`, once with the 4 MiB default limit and once with a 64-byte
    /// limit so that the oversized-frame skipping path runs too.
    public static func ttrpcFrameDecoder(_ data: [UInt8]) {
        let input = FuzzChunks(data)
        for limit in [TTRPCLimits.maxMessageSize, 64] {
            let channel = EmbeddedChannel()
            defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
            do {
                try channel.pipeline.syncOperations.addHandler(
                    ByteToMessageHandler(TTRPCFrameDecoder(maxMessageSize: limit)))
                for chunk in input.chunks {
                    try channel.writeInbound(ByteBuffer(bytes: chunk))
                    while let event = try channel.readInbound(as: TTRPCFrameEvent.self) {
                        if case .frame(let frame) = event {
                            // What the engines check first: the frame's own header.
                            precondition(frame.header.length == UInt32(frame.payload.readableBytes))
                        }
                    }
                }
            } catch {
                // A decoder error ends the connection: expected for garbage.
            }
        }
    }

    /// yamux: the input (after a chunk-size byte) arrives as the peer's bytes on a
    /// `YamuxSession` installed on an `EmbeddedChannel`, as the guest (accepting the
    /// peer's streams) for an even chunk-size byte and as the host (refusing them)
    /// for an odd one. The session's own writes (acks, window updates, resets,
    /// go-away) are drained; at the end the pipe closes.
    public static func yamuxSession(_ data: [UInt8]) {
        let input = FuzzChunks(data)
        var configuration = (data.first ?? 0) % 2 == 0 ? YamuxConfiguration() : .refusingPeerStreams
        configuration.keepaliveInterval = nil
        configuration.logger = Logger(label: "qemubox.fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
        let channel = EmbeddedChannel()
        defer {
            channel.close(promise: nil)
            channel.embeddedEventLoop.run()
            _ = try? channel.finish(acceptAlreadyClosed: true)
        }
        do {
            _ = try YamuxSession.makeSession(on: channel, role: .server, configuration: configuration)
            // Active, as a connected socket is.
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            for chunk in input.chunks {
                guard channel.isActive else { break }
                try channel.writeInbound(ByteBuffer(bytes: chunk))
                channel.embeddedEventLoop.run()
                while try channel.readOutbound(as: ByteBuffer.self) != nil {}
            }
        } catch {
            // Protocol violations end the session: expected for garbage.
        }
    }

    /// QMP: the input (after a chunk-size byte) arrives from "QEMU" through the
    /// client's line framing (`QMPLineDecoder`, with a 4 KiB line limit); each line
    /// is classified by `QMPIncoming.parse` (greeting, response, event, with the
    /// typed event kinds), stopping at the first error as the client does.
    public static func qmpFraming(_ data: [UInt8]) {
        let input = FuzzChunks(data)
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        do {
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(QMPLineDecoder(maxMessageBytes: 4096)))
            for chunk in input.chunks {
                try channel.writeInbound(ByteBuffer(bytes: chunk))
                while let line = try channel.readInbound(as: ByteBuffer.self) {
                    switch try QMPIncoming.parse(line) {
                    case .greeting(let greeting):
                        _ = greeting.versionString
                    case .response(let id, let result):
                        _ = id?.intValue
                        _ = try? result.get()
                    case .event(let event):
                        _ = event.kind
                    }
                }
            }
        } catch {
            // The client closes the connection on the first bad message: expected.
        }
    }
}
