import NIOCore

/// What the frame decoder produces: a frame, or the header of a frame that was
/// larger than the limit and whose payload was discarded unread.
public enum TTRPCFrameEvent: Hashable, Sendable {
    /// A complete frame within the size limit.
    case frame(TTRPCFrame)
    /// A frame over the size limit: its payload was skipped without buffering,
    /// the connection stays usable. The receiver answers with `ResourceExhausted`.
    case oversized(TTRPCFrameHeader)
}

/// Splits a byte stream into ttrpc frames.
///
/// Oversized payloads are skipped as they arrive (never buffered), so a peer
/// announcing a 4 GiB frame costs no memory. Usable in a NIO pipeline through
/// `ByteToMessageHandler(TTRPCFrameDecoder())`, or on any byte stream through
/// `NIOSingleStepByteToMessageProcessor`.
public struct TTRPCFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = TTRPCFrameEvent

    /// The payload size limit.
    public let maxMessageSize: Int
    private var discarding: (header: TTRPCFrameHeader, remaining: Int)?

    /// Creates a decoder with the given payload limit (default: 4 MiB).
    public init(maxMessageSize: Int = TTRPCLimits.maxMessageSize) {
        self.maxMessageSize = maxMessageSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> TTRPCFrameEvent? {
        while true {
            if var skip = discarding {
                let count = min(skip.remaining, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: count)
                skip.remaining -= count
                if skip.remaining > 0 {
                    discarding = skip
                    return nil
                }
                discarding = nil
                return .oversized(skip.header)
            }
            guard let header = buffer.getTTRPCHeader(at: buffer.readerIndex) else { return nil }
            if Int(header.length) > maxMessageSize {
                buffer.moveReaderIndex(forwardBy: TTRPCFrameHeader.size)
                discarding = (header, Int(header.length))
                continue
            }
            guard buffer.readableBytes >= TTRPCFrameHeader.size + Int(header.length) else { return nil }
            buffer.moveReaderIndex(forwardBy: TTRPCFrameHeader.size)
            guard let payload = buffer.readSlice(length: Int(header.length)) else { return nil }
            return .frame(TTRPCFrame(streamID: header.streamID, type: header.type, flags: header.flags,
                                     payload: payload))
        }
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> TTRPCFrameEvent? {
        // A partial frame at EOF is dropped: the connection is going away and every
        // pending call fails with "connection closed".
        try decode(buffer: &buffer)
    }
}

extension ByteBuffer {
    fileprivate func getTTRPCHeader(at index: Int) -> TTRPCFrameHeader? {
        guard let (length, streamID, type, flags) = getMultipleIntegers(
            at: index, endianness: .big, as: (UInt32, UInt32, UInt8, UInt8).self)
        else { return nil }
        return TTRPCFrameHeader(length: length, streamID: streamID,
                                type: TTRPCMessageType(rawValue: type), flags: TTRPCFrameFlags(rawValue: flags))
    }
}

/// Writes ttrpc frames to bytes.
public struct TTRPCFrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = TTRPCFrame

    /// Creates an encoder.
    public init() {}

    public func encode(data: TTRPCFrame, out: inout ByteBuffer) throws {
        out.writeTTRPCFrame(data)
    }
}
