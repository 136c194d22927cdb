#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import SwiftProtobuf

/// Zero-copy adapter so SwiftProtobuf can parse straight out of a `ByteBuffer`.
struct ByteBufferBytes: SwiftProtobufContiguousBytes {
    var buffer: ByteBuffer

    init(_ buffer: ByteBuffer) { self.buffer = buffer }

    init(repeating: UInt8, count: Int) {
        buffer = ByteBuffer(repeating: repeating, count: count)
    }

    init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        buffer = ByteBuffer(bytes: sequence)
    }

    var count: Int { buffer.readableBytes }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }

    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutableReadableBytes(body)
    }
}

extension SwiftProtobuf.Message {
    /// Parses a message from the readable bytes of a buffer.
    init(ttrpcBuffer buffer: ByteBuffer) throws {
        try self.init(serializedBytes: ByteBufferBytes(buffer))
    }

    /// Serializes into a new buffer.
    func ttrpcBuffer() throws -> ByteBuffer {
        let bytes: ByteBufferBytes = try serializedBytes()
        return bytes.buffer
    }
}

extension Ttrpc_Response {
    /// A response carrying `status` (omitted when OK, as Go ttrpc does) and `payload`.
    init(status: TTRPCError?, payload: Data) {
        self.init()
        if let status, status.code != .ok {
            var wire = Google_Rpc_Status()
            wire.code = status.code.rawValue
            wire.message = status.message
            self.status = wire
        }
        self.payload = payload
    }

    /// The call's outcome: nil when OK.
    var error: TTRPCError? {
        guard hasStatus, status.code != 0 else { return nil }
        return TTRPCError(TTRPCError.Code(wireValue: status.code), status.message)
    }
}

extension TTRPCError {
    /// The status Go ttrpc sends for an oversized frame, word for word.
    static func oversized(length: UInt32, limit: Int) -> TTRPCError {
        TTRPCError(.resourceExhausted, "message length \(length) exceed maximum message size of \(limit)")
    }
}

/// A server's response frame: the frame header and the `ttrpc.Response` envelope
/// (field 1 `status`, omitted when OK; field 2 `payload`, omitted when empty) in one
/// buffer. A payload too large for the limit is found from its size alone, so an
/// oversized reply costs no buffer of its size.
///
/// The envelope itself is SwiftProtobuf's: writing it by hand (tried) made a cold
/// guest's `Task/Start` ~50 ms slower under TCG, for reasons not pinned down.
enum TTRPCResponseWire {
    /// The whole frame (header included) answering `streamID`. An envelope longer than
    /// `limit` is not built: the frame answers `ResourceExhausted` instead, as Go ttrpc's
    /// server does for a reply over its maximum message size.
    static func frame(streamID: UInt32, status: TTRPCError?, payload: Data, limit: Int,
                      allocator: ByteBufferAllocator) throws -> ByteBuffer {
        // A reply with a payload carries no status, so the payload field is the envelope.
        let payloadLength = payload.isEmpty ? 0 : 1 + varintSize(payload.count) + payload.count
        if payloadLength > limit {
            return try oversized(streamID: streamID, length: payloadLength, limit: limit, allocator: allocator)
        }
        var envelope = try Ttrpc_Response(status: status, payload: payload).ttrpcBuffer()
        if envelope.readableBytes > limit {
            return try oversized(streamID: streamID, length: envelope.readableBytes, limit: limit, allocator: allocator)
        }
        var buffer = allocator.buffer(capacity: TTRPCFrameHeader.size + envelope.readableBytes)
        buffer.writeTTRPCHeader(TTRPCFrameHeader(length: UInt32(truncatingIfNeeded: envelope.readableBytes),
                                                 streamID: streamID, type: .response))
        buffer.writeBuffer(&envelope)
        return buffer
    }

    static func varintSize(_ value: Int) -> Int {
        var value = UInt64(truncatingIfNeeded: value)
        var size = 1
        while value >= 0x80 {
            value >>= 7
            size += 1
        }
        return size
    }

    private static func oversized(streamID: UInt32, length: Int, limit: Int,
                                  allocator: ByteBufferAllocator) throws -> ByteBuffer {
        try frame(streamID: streamID,
                  status: TTRPCError(.resourceExhausted,
                                     "response of \(length) bytes exceeds maximum message size of \(limit)"),
                  payload: Data(), limit: .max, allocator: allocator)
    }
}
