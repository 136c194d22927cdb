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
