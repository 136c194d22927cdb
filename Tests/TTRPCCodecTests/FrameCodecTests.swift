import Foundation
import NIOCore
import SwiftProtobuf
import Testing
@testable import TTRPCCodec

@Suite("Frame and message encoding (golden bytes)")
struct FrameCodecTests {
    @Test("header layout: u32 BE length, u32 BE stream id, type, flags")
    func headerGolden() {
        var buffer = ByteBuffer()
        buffer.writeTTRPCFrame(TTRPCFrame(streamID: 0x0102_0305, type: .data, flags: [.remoteClosed, .noData],
                                          payload: ByteBuffer(bytes: [0xAA, 0xBB])))
        #expect(Array(buffer.readableBytesView) == [0, 0, 0, 2, 1, 2, 3, 5, 3, 5, 0xAA, 0xBB])
    }

    @Test("an OK response with an empty payload is a zero-length frame")
    func zeroLengthOKResponse() throws {
        let response = Ttrpc_Response(status: nil, payload: Data())
        let payload = try response.ttrpcBuffer()
        #expect(payload.readableBytes == 0)
        var frame = ByteBuffer()
        frame.writeTTRPCFrame(TTRPCFrame(streamID: 1, type: .response, payload: payload))
        #expect(Array(frame.readableBytesView) == [0, 0, 0, 0, 0, 0, 0, 1, 2, 0])
        // And a zero-length response decodes as OK with an empty payload.
        let decoded = try Ttrpc_Response(ttrpcBuffer: ByteBuffer())
        #expect(decoded.error == nil && decoded.payload.isEmpty)
    }

    @Test("request message bytes match the protobuf layout Go ttrpc uses")
    func requestGolden() throws {
        var request = Ttrpc_Request()
        request.service = "svc"
        request.method = "m"
        request.payload = Data("p".utf8)
        request.timeoutNano = 5
        request.metadata = TTRPCMetadata(dictionaryLiteral: ("K", "v")).wire
        let bytes = Array(try request.ttrpcBuffer().readableBytesView)
        #expect(bytes == [0x0A, 3, 0x73, 0x76, 0x63,   // 1: service "svc"
                          0x12, 1, 0x6D,               // 2: method "m"
                          0x1A, 1, 0x70,               // 3: payload "p"
                          0x20, 5,                     // 4: timeout_nano 5
                          0x2A, 6, 0x0A, 1, 0x6B, 0x12, 1, 0x76])  // 5: {key "k", value "v"}
    }

    @Test("error response carries google.rpc.Status{code, message}")
    func errorResponseGolden() throws {
        let response = Ttrpc_Response(status: TTRPCError(.notFound, "x"), payload: Data())
        #expect(Array(try response.ttrpcBuffer().readableBytesView) == [0x0A, 5, 0x08, 5, 0x12, 1, 0x78])
        let decoded = try Ttrpc_Response(ttrpcBuffer: ByteBuffer(bytes: [0x0A, 5, 0x08, 5, 0x12, 1, 0x78]))
        #expect(decoded.error == TTRPCError(.notFound, "x"))
    }

    @Test("the server's response frame: its header counts the envelope, which carries the status and payload",
          arguments: [0, 1, 127, 128, 16_383, 16_384, 70_000, 2_097_152])
    func responseFrameRoundTrips(payloadSize: Int) throws {
        let payload = Data((0..<payloadSize).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let statuses: [TTRPCError?] = [nil, TTRPCError(.ok, "ignored"), TTRPCError(.notFound, "x"),
                                       TTRPCError(.unknown, String(repeating: "é", count: 200))]
        for status in statuses {
            var bytes = try TTRPCResponseWire.frame(streamID: 0x0102_0305, status: status, payload: payload,
                                                    limit: TTRPCLimits.maxMessageSize, allocator: ByteBufferAllocator())
            let readHeader = bytes.readTTRPCHeader()
            let header = try #require(readHeader)
            #expect(header.streamID == 0x0102_0305 && header.type == .response && header.flags.isEmpty)
            #expect(Int(header.length) == bytes.readableBytes)
            let response = try Ttrpc_Response(ttrpcBuffer: bytes)
            let expected = status.flatMap { $0.code == .ok ? nil : $0 }
            #expect(response.error == expected, "payload \(payloadSize) B, status \(String(describing: status))")
            #expect(response.payload == payload)
        }
    }

    @Test("a reply exactly at the limit is sent as it is")
    func responseFrameAtTheLimit() throws {
        // 1 tag byte + 2 length bytes + 200 payload bytes = 203.
        var bytes = try TTRPCResponseWire.frame(streamID: 7, status: nil, payload: Data(count: 200), limit: 203,
                                                allocator: ByteBufferAllocator())
        _ = bytes.readTTRPCHeader()
        let response = try Ttrpc_Response(ttrpcBuffer: bytes)
        #expect(response.error == nil && response.payload.count == 200)
    }

    @Test("a reply over the limit is answered ResourceExhausted, with the size Go ttrpc reports")
    func responseFrameOverTheLimit() throws {
        let frame = try TTRPCResponseWire.frame(streamID: 7, status: nil, payload: Data(count: 200), limit: 100,
                                                allocator: ByteBufferAllocator())
        var bytes = frame
        let readHeader = bytes.readTTRPCHeader()
        let header = try #require(readHeader)
        #expect(header.streamID == 7 && header.type == .response && Int(header.length) == bytes.readableBytes)
        let response = try Ttrpc_Response(ttrpcBuffer: bytes)
        // 1 tag byte + 2 length bytes + 200 payload bytes.
        #expect(response.error == TTRPCError(.resourceExhausted,
                                             "response of 203 bytes exceeds maximum message size of 100"))
        #expect(response.payload.isEmpty)
        // An error whose message alone is over the limit is measured once built.
        var long = try TTRPCResponseWire.frame(streamID: 9, status: TTRPCError(.internal, String(repeating: "x", count: 300)),
                                               payload: Data(), limit: 100, allocator: ByteBufferAllocator())
        _ = long.readTTRPCHeader()
        let longError = try Ttrpc_Response(ttrpcBuffer: long).error
        #expect(longError?.code == .resourceExhausted)
        #expect(longError?.message.hasSuffix("exceeds maximum message size of 100") == true)
    }

    @Test("varint sizes at each 7-bit boundary match SwiftProtobuf's encoding")
    func varintBoundaries() throws {
        for (value, size) in [(0, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3), (Int(UInt32.max), 5)] {
            var request = Ttrpc_Request()
            request.timeoutNano = Int64(value)
            // Field 4 (one tag byte) and the varint; a zero is not written at all.
            let encoded = try request.ttrpcBuffer().readableBytes
            #expect(TTRPCResponseWire.varintSize(value) == size && (value == 0 || encoded == 1 + size), "\(value)")
        }
    }

    @Test("unknown wire codes become Unknown; every code round-trips")
    func codes() {
        #expect(TTRPCError.Code(wireValue: 99) == .unknown)
        for code in TTRPCError.Code.allCases {
            #expect(TTRPCError.Code(wireValue: code.rawValue) == code)
        }
    }

    @Test("decoder reassembles frames split at every byte boundary")
    func decoderSplits() throws {
        var wire = ByteBuffer()
        for id in stride(from: UInt32(1), through: 9, by: 2) {
            wire.writeTTRPCFrame(TTRPCFrame(streamID: id, type: .request,
                                            payload: ByteBuffer(string: String(repeating: "x", count: Int(id)))))
        }
        let bytes = Array(wire.readableBytesView)
        for split in 1..<bytes.count {
            var decoder = TTRPCFrameDecoder()
            var frames: [TTRPCFrame] = []
            var buffer = ByteBuffer(bytes: bytes[..<split])
            while let event = try decoder.decode(buffer: &buffer) {
                if case .frame(let frame) = event { frames.append(frame) }
            }
            buffer.writeBytes(bytes[split...])
            while let event = try decoder.decode(buffer: &buffer) {
                if case .frame(let frame) = event { frames.append(frame) }
            }
            #expect(frames.map(\.streamID) == [1, 3, 5, 7, 9])
            #expect(frames.map(\.payload.readableBytes) == [1, 3, 5, 7, 9])
        }
    }

    @Test("an oversized frame is skipped without buffering its payload")
    func oversizedSkipped() throws {
        var decoder = TTRPCFrameDecoder(maxMessageSize: 16)
        var buffer = ByteBuffer()
        buffer.writeTTRPCHeader(TTRPCFrameHeader(length: 100, streamID: 7, type: .request))
        buffer.writeBytes([UInt8](repeating: 1, count: 60))
        #expect(try decoder.decode(buffer: &buffer) == nil)
        #expect(buffer.readableBytes == 0)  // consumed, not held
        buffer.writeBytes([UInt8](repeating: 1, count: 40))
        buffer.writeTTRPCFrame(TTRPCFrame(streamID: 9, type: .request, payload: ByteBuffer(string: "ok")))
        let first = try decoder.decode(buffer: &buffer)
        #expect(first == .oversized(TTRPCFrameHeader(length: 100, streamID: 7, type: .request)))
        guard case .frame(let next) = try decoder.decode(buffer: &buffer) else {
            Issue.record("expected the following frame")
            return
        }
        #expect(next.streamID == 9 && next.payload == ByteBuffer(string: "ok"))
    }

    @Test("a 4 GiB length costs nothing while its bytes are skipped")
    func fourGiBLength() throws {
        var decoder = TTRPCFrameDecoder()
        var buffer = ByteBuffer()
        buffer.writeTTRPCHeader(TTRPCFrameHeader(length: .max, streamID: 1, type: .request))
        for _ in 0..<64 {
            buffer.writeBytes([UInt8](repeating: 0xFF, count: 64 << 10))
            #expect(try decoder.decode(buffer: &buffer) == nil)
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test("metadata keys are case-insensitive and keep order")
    func metadata() {
        var metadata = TTRPCMetadata()
        metadata.append("a", for: "Key")
        metadata.append("b", for: "KEY")
        metadata.append("c", for: "other")
        #expect(metadata.values(for: "key") == ["a", "b"])
        #expect(metadata["OTHER"] == "c")
        metadata.set(["z"], for: "key")
        #expect(metadata.values(for: "Key") == ["z"])
        #expect(Array(metadata.map(\.key)) == ["other", "key"])
    }
}
