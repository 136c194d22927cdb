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

/// A server's response frame written in one pass: the frame header, then the
/// `ttrpc.Response` envelope around the payload, the same bytes SwiftProtobuf writes for
/// `Ttrpc_Response(status:payload:)` (field 1 `status`, omitted when OK; field 2
/// `payload`, omitted when empty), without building the message or copying the
/// payload twice.
enum TTRPCResponseWire {
    private static let statusTag: UInt8 = 0x0A  // field 1, length-delimited
    private static let payloadTag: UInt8 = 0x12  // field 2, length-delimited

    /// The whole frame (header included) answering `streamID`. An envelope longer than
    /// `limit` is not built: the frame answers `ResourceExhausted` instead, as Go ttrpc's
    /// server does for a reply over its maximum message size.
    static func frame(streamID: UInt32, status: TTRPCError?, payload: Data, limit: Int,
                      allocator: ByteBufferAllocator) throws -> ByteBuffer {
        // A status is written only when it is not OK, so it is never empty: its code is set.
        var statusBytes: [UInt8] = []
        if let status, status.code != .ok {
            var wire = Google_Rpc_Status()
            wire.code = status.code.rawValue
            wire.message = status.message
            statusBytes = try wire.serializedBytes()
        }
        var length = 0
        if !statusBytes.isEmpty {
            length += 1 + varintSize(statusBytes.count) + statusBytes.count
        }
        if !payload.isEmpty {
            length += 1 + varintSize(payload.count) + payload.count
        }
        if length > limit {
            return try frame(
                streamID: streamID,
                status: TTRPCError(.resourceExhausted,
                                   "response of \(length) bytes exceeds maximum message size of \(limit)"),
                payload: Data(), limit: .max, allocator: allocator)
        }
        var buffer = allocator.buffer(capacity: TTRPCFrameHeader.size + length)
        buffer.writeTTRPCHeader(TTRPCFrameHeader(length: UInt32(truncatingIfNeeded: length),
                                                 streamID: streamID, type: .response))
        if !statusBytes.isEmpty {
            buffer.writeInteger(statusTag)
            writeVarint(statusBytes.count, to: &buffer)
            buffer.writeBytes(statusBytes)
        }
        if !payload.isEmpty {
            buffer.writeInteger(payloadTag)
            writeVarint(payload.count, to: &buffer)
            buffer.writeBytes(payload)
        }
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

    static func writeVarint(_ value: Int, to buffer: inout ByteBuffer) {
        var value = UInt64(truncatingIfNeeded: value)
        while value >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        buffer.writeInteger(UInt8(truncatingIfNeeded: value))
    }
}
