#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore

/// The type byte of a ttrpc frame.
public struct TTRPCMessageType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Initiates a stream (client → server).
    public static let request = TTRPCMessageType(rawValue: 0x1)
    /// Final message of a stream, carrying the status (server → client).
    public static let response = TTRPCMessageType(rawValue: 0x2)
    /// Stream data, either direction (protocol 1.2).
    public static let data = TTRPCMessageType(rawValue: 0x3)

    public var description: String {
        switch self {
        case .request: "request"
        case .response: "response"
        case .data: "data"
        default: "type(\(rawValue))"
        }
    }
}

/// The flags byte of a ttrpc frame; meaning depends on the message type.
public struct TTRPCFrameFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The sender will send no more data on this stream.
    public static let remoteClosed = TTRPCFrameFlags(rawValue: 0x1)
    /// On a request: the sender will stream more data (client streaming).
    public static let remoteOpen = TTRPCFrameFlags(rawValue: 0x2)
    /// On a data frame: the frame carries no message (a bare close).
    public static let noData = TTRPCFrameFlags(rawValue: 0x4)
}

/// The 10-byte header that precedes every ttrpc message:
/// `u32 BE length | u32 BE stream id | u8 type | u8 flags`.
public struct TTRPCFrameHeader: Hashable, Sendable {
    /// Size of the encoded header in bytes.
    public static let size = 10

    /// Length of the payload that follows the header.
    public var length: UInt32
    /// Stream the frame belongs to: odd for client-initiated streams.
    public var streamID: UInt32
    /// Message type.
    public var type: TTRPCMessageType
    /// Message flags.
    public var flags: TTRPCFrameFlags

    /// Creates a header.
    public init(length: UInt32, streamID: UInt32, type: TTRPCMessageType, flags: TTRPCFrameFlags = []) {
        self.length = length
        self.streamID = streamID
        self.type = type
        self.flags = flags
    }
}

/// One ttrpc frame: a header's stream id, type and flags plus its payload.
public struct TTRPCFrame: Hashable, Sendable {
    /// Stream the frame belongs to.
    public var streamID: UInt32
    /// Message type.
    public var type: TTRPCMessageType
    /// Message flags.
    public var flags: TTRPCFrameFlags
    /// The message bytes (a protobuf `ttrpc.Request`, `ttrpc.Response` or stream data).
    public var payload: ByteBuffer

    /// Creates a frame.
    public init(streamID: UInt32, type: TTRPCMessageType, flags: TTRPCFrameFlags = [], payload: ByteBuffer) {
        self.streamID = streamID
        self.type = type
        self.flags = flags
        self.payload = payload
    }

    /// The whole frame, header and payload, in one new buffer.
    func encoded(allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: TTRPCFrameHeader.size + payload.readableBytes)
        buffer.writeTTRPCFrame(self)
        return buffer
    }

    /// A frame carrying `payload` (none: an empty frame), header and bytes in one new
    /// buffer, without first copying the payload into a buffer of its own.
    static func encoded(streamID: UInt32, type: TTRPCMessageType, flags: TTRPCFrameFlags = [],
                        payload: Data?, allocator: ByteBufferAllocator) -> ByteBuffer {
        let length = payload?.count ?? 0
        var buffer = allocator.buffer(capacity: TTRPCFrameHeader.size + length)
        buffer.writeTTRPCHeader(TTRPCFrameHeader(length: UInt32(truncatingIfNeeded: length), streamID: streamID,
                                                 type: type, flags: flags))
        if let payload { buffer.writeBytes(payload) }
        return buffer
    }

    /// The header this frame is written with.
    public var header: TTRPCFrameHeader {
        TTRPCFrameHeader(length: UInt32(truncatingIfNeeded: payload.readableBytes),
                         streamID: streamID, type: type, flags: flags)
    }
}

/// Protocol limits shared by client and server.
public enum TTRPCLimits {
    /// Largest payload either side accepts: 4 MiB, as in Go ttrpc.
    public static let maxMessageSize = 4 << 20
}

extension ByteBuffer {
    /// Writes a ttrpc frame header. Returns the number of bytes written (10).
    @discardableResult
    public mutating func writeTTRPCHeader(_ header: TTRPCFrameHeader) -> Int {
        writeMultipleIntegers(header.length, header.streamID, header.type.rawValue, header.flags.rawValue,
                              endianness: .big)
    }

    /// Reads a ttrpc frame header if 10 bytes are readable.
    public mutating func readTTRPCHeader() -> TTRPCFrameHeader? {
        guard let (length, streamID, type, flags) = readMultipleIntegers(
            endianness: .big, as: (UInt32, UInt32, UInt8, UInt8).self)
        else { return nil }
        return TTRPCFrameHeader(length: length, streamID: streamID,
                                type: TTRPCMessageType(rawValue: type), flags: TTRPCFrameFlags(rawValue: flags))
    }

    /// Writes a complete frame (header and payload).
    @discardableResult
    public mutating func writeTTRPCFrame(_ frame: TTRPCFrame) -> Int {
        var payload = frame.payload
        return writeTTRPCHeader(frame.header) + writeBuffer(&payload)
    }
}
