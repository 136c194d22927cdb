import NIOCore

/// One yamux frame: the 12-byte header and, for data frames, its payload.
///
/// Header layout (big endian): version (1 byte, always 0), type (1), flags (2),
/// stream id (4), length (4). For data frames `length` is the payload size; for
/// window updates the window delta; for pings the opaque value; for go-away the
/// error code.
struct YamuxFrame: Sendable, Equatable {
    static let headerSize = 12
    static let protocolVersion: UInt8 = 0
    /// The window every stream starts with, fixed by the protocol.
    static let initialWindow: UInt32 = 256 * 1024

    enum FrameType: UInt8, Sendable {
        case data = 0
        case windowUpdate = 1
        case ping = 2
        case goAway = 3
    }

    struct Flags: OptionSet, Sendable, Hashable {
        let rawValue: UInt16
        static let syn = Flags(rawValue: 1)
        static let ack = Flags(rawValue: 2)
        static let fin = Flags(rawValue: 4)
        static let rst = Flags(rawValue: 8)
    }

    /// Go-away codes.
    enum GoAwayCode: UInt32 {
        case normal = 0
        case protocolError = 1
        case internalError = 2
    }

    var type: FrameType
    var flags: Flags
    var streamID: UInt32
    var length: UInt32
    var payload: ByteBuffer?

    init(type: FrameType, flags: Flags = [], streamID: UInt32, length: UInt32, payload: ByteBuffer? = nil) {
        self.type = type
        self.flags = flags
        self.streamID = streamID
        self.length = length
        self.payload = payload
    }

    /// Writes the header (not the payload) into `buffer`.
    func encodeHeader(into buffer: inout ByteBuffer) {
        buffer.writeInteger(Self.protocolVersion)
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(flags.rawValue)
        buffer.writeInteger(streamID)
        buffer.writeInteger(length)
    }
}

/// Splits the pipe's bytes into ``YamuxFrame``s, rejecting malformed headers and
/// data frames larger than `maxDataLength` before buffering their payload.
struct YamuxFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = YamuxFrame

    let maxDataLength: UInt32

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.parse(&buffer, maxDataLength: maxDataLength) else {
            return .needMoreData
        }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }

    /// Parses one frame from the front of `buffer`, or returns nil (consuming
    /// nothing) when more bytes are needed.
    static func parse(_ buffer: inout ByteBuffer, maxDataLength: UInt32) throws -> YamuxFrame? {
        guard buffer.readableBytes >= YamuxFrame.headerSize,
              let version = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let rawType = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self),
              let flags = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self),
              let streamID = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt32.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 8, as: UInt32.self)
        else { return nil }
        guard version == YamuxFrame.protocolVersion else {
            throw VsockTransportError(.invalidVersion, "frame header version \(version), expected 0")
        }
        guard let type = YamuxFrame.FrameType(rawValue: rawType) else {
            throw VsockTransportError(.invalidFrameType, "frame type \(rawType) on stream \(streamID)")
        }
        var payload: ByteBuffer?
        if type == .data {
            guard length <= maxDataLength else {
                throw VsockTransportError(.frameTooLarge,
                    "data frame of \(length) bytes on stream \(streamID) exceeds limit \(maxDataLength)")
            }
            guard buffer.readableBytes >= YamuxFrame.headerSize + Int(length) else { return nil }
            buffer.moveReaderIndex(forwardBy: YamuxFrame.headerSize)
            payload = readPayload(&buffer, length: Int(length))
        } else {
            buffer.moveReaderIndex(forwardBy: YamuxFrame.headerSize)
        }
        return YamuxFrame(type: type, flags: .init(rawValue: flags), streamID: streamID,
                          length: length, payload: payload)
    }

    /// A payload slice keeps the whole buffer it arrived in alive until the stream's
    /// reader takes it. A payload smaller than 1/`pinningRatio` of that buffer is
    /// copied instead, so that a peer sending tiny frames on a stream nobody reads
    /// cannot make this side hold more than `pinningRatio` times the window it
    /// granted; large payloads (the bulk of any transfer) stay zero-copy.
    static let pinningRatio = 16

    static func readPayload(_ buffer: inout ByteBuffer, length: Int) -> ByteBuffer? {
        guard let slice = buffer.readSlice(length: length) else { return nil }
        guard length > 0, length * pinningRatio < slice.storageCapacity else { return slice }
        return ByteBuffer(bytes: slice.readableBytesView)
    }
}
