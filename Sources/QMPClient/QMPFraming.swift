import Foundation
import NIOCore

/// Splits the byte stream into QMP messages: one JSON object per line (QEMU ends
/// each with CRLF). A line longer than `maxMessageBytes` is an error, so a peer
/// that never sends a newline cannot make the client buffer without bound.
///
/// `package`-visible (not public) so that the fuzz targets (QemuboxFuzzTargets) can
/// drive it on an `EmbeddedChannel`.
package struct QMPLineDecoder: ByteToMessageDecoder {
    package typealias InboundOut = ByteBuffer

    let maxMessageBytes: Int

    /// Creates a decoder refusing lines longer than `maxMessageBytes`.
    package init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    package mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > maxMessageBytes {
                throw QMPError(.messageTooLarge,
                               "message exceeds \(maxMessageBytes) bytes without a line end")
            }
            return .needMoreData
        }
        let length = newline - buffer.readerIndex
        if length > maxMessageBytes {
            throw QMPError(.messageTooLarge, "message of \(length) bytes exceeds \(maxMessageBytes)")
        }
        guard var line = buffer.readSlice(length: length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 1)
        if line.readableBytesView.last == UInt8(ascii: "\r") {
            line = line.getSlice(at: line.readerIndex, length: line.readableBytes - 1) ?? line
        }
        // Blank lines carry nothing; skip them.
        if line.readableBytesView.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return .continue }
        context.fireChannelRead(wrapInboundOut(line))
        return .continue
    }

    package mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            let n = buffer.readableBytes
            buffer.moveReaderIndex(forwardBy: n)
            throw QMPError(.protocolViolation, "connection closed inside a message (\(n) bytes truncated)")
        }
        return .needMoreData
    }
}

/// One incoming QMP message, classified. `package`-visible for the fuzz targets.
package enum QMPIncoming {
    case greeting(QMPGreeting)
    case response(id: JSONValue?, result: Result<JSONValue, QMPError>)
    case event(QMPEvent)

    /// Parses one line (without its line end) into a greeting, response or event.
    package static func parse(_ bytes: ByteBuffer) throws -> QMPIncoming {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes.readableBytesView))
        } catch {
            let preview = String(decoding: bytes.readableBytesView.prefix(80), as: UTF8.self)
            throw QMPError(.protocolViolation, "malformed JSON: \(preview)")
        }
        guard case .object(let o) = value else {
            throw QMPError(.protocolViolation, "message is not a JSON object")
        }
        if let greeting = o["QMP"] {
            return .greeting(try QMPGreeting(greeting))
        }
        if let ret = o["return"] {
            return .response(id: o["id"], result: .success(ret))
        }
        if let err = o["error"] {
            let cls = err["class"]?.stringValue ?? "GenericError"
            let desc = err["desc"]?.stringValue ?? "(no description)"
            return .response(id: o["id"], result: .failure(QMPError(.commandFailed, desc, qmpClass: cls)))
        }
        if let name = o["event"]?.stringValue {
            let ts = o["timestamp"]
            return .event(QMPEvent(name: name, data: o["data"] ?? .object([:]),
                                   seconds: ts?["seconds"]?.intValue ?? 0,
                                   microseconds: ts?["microseconds"]?.intValue ?? 0))
        }
        throw QMPError(.protocolViolation, "message is neither greeting, response nor event")
    }
}
