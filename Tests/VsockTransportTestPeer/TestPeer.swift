import NIOCore
import VsockTransport

/// The Swift side of the command protocol the yamux test peers speak (see
/// Tests/VsockTransportTests/GoPeer/yamuxpeer/main.go): the first line of every
/// stream is a command (`echo`, `sink N DELAYMS`, `discard N`, `source N`,
/// `reset`, `goaway`, `hold`). Used by the tests, the static guest program and the benchmark.
public enum YamuxTestPeer {
    /// A command served outside this module (the guest program's `ttrpc`). It gets
    /// the stream right after its command line; the peer sends nothing more until
    /// the handler answers, so no byte is left in the line reader.
    public typealias ExtraCommand = @Sendable (YamuxStream) async throws -> Void

    /// Serves every stream the peer opens until the session ends.
    public static func serve(_ session: YamuxSession, extra: [String: ExtraCommand] = [:]) async {
        await withTaskGroup(of: Void.self) { group in
            do {
                for try await stream in session.inboundStreams {
                    group.addTask { try? await serve(stream, session: session, extra: extra) }
                }
            } catch {}
            group.cancelAll()
        }
    }

    /// Serves one stream's command.
    public static func serve(_ stream: YamuxStream, session: YamuxSession,
                             extra: [String: ExtraCommand] = [:]) async throws {
        var reader = LineReader(stream: stream)
        guard let line = try await reader.readLine() else { return }
        let words = line.split(separator: " ")
        switch words.first {
        case "echo":
            while let chunk = try await reader.next() { try await stream.write(chunk) }
            try await stream.closeWrite()
        case "sink":
            guard words.count == 3, let n = Int(words[1]), let delay = Int(words[2]) else { return }
            var hash = FNV1a64()
            var got = 0
            while got < n, let chunk = try await reader.next() {
                hash.update(chunk)
                got += chunk.readableBytes
                if delay > 0 { try await Task.sleep(for: .milliseconds(delay)) }
            }
            try await stream.write(ByteBuffer(string: "\(hash.hex) \(got)\n"))
            try await stream.closeWrite()
        case "discard":
            guard words.count == 2, let n = Int(words[1]) else { return }
            var got = 0
            while got < n, let chunk = try await reader.next() { got += chunk.readableBytes }
            try await stream.write(ByteBuffer(string: "\(got)\n"))
            try await stream.closeWrite()
        case "source":
            guard words.count == 2, let n = Int(words[1]) else { return }
            try await writePattern(stream, count: n)
            try await stream.closeWrite()
            // Half-closed: the peer may go on writing; drain until its FIN.
            while try await reader.next() != nil {}
        case "reset":
            stream.reset()
        case "goaway":
            await session.goAway()
            try await stream.write(ByteBuffer(string: "ok\n"))
            try await stream.closeWrite()
        case "hold":
            try? await session.closeFuture.get()
        case let command? where extra[String(command)] != nil:
            try await extra[String(command)]?(stream)
        default:
            stream.reset()
        }
    }

    /// The pattern `source` sends: byte i is `i % 251`.
    public static func pattern(count: Int, offset: Int = 0) -> ByteBuffer {
        let block = (0..<251).map { UInt8(($0 + offset) % 251) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 251)
        while bytes.count < count { bytes += block }
        return ByteBuffer(bytes: bytes[0..<count])
    }

    /// Writes `count` pattern bytes in 62 KiB chunks; returns their checksum.
    @discardableResult
    public static func writePattern(_ stream: YamuxStream, count: Int) async throws -> FNV1a64 {
        let block = pattern(count: 251 * 256)
        var hash = FNV1a64()
        var left = count
        while left > 0 {
            let k = min(left, block.readableBytes)
            let slice = block.getSlice(at: block.readerIndex, length: k) ?? ByteBuffer()
            hash.update(slice)
            try await stream.write(slice)
            left -= k
        }
        return hash
    }

    /// Deterministic pseudo-random bytes (SplitMix64).
    public static func randomBytes(count: Int, seed: UInt64) -> ByteBuffer {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        var buffer = ByteBuffer()
        buffer.reserveCapacity(count + 8)
        while buffer.readableBytes < count {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            buffer.writeInteger(z ^ (z >> 31))
        }
        buffer.moveWriterIndex(to: buffer.readerIndex + count)
        return buffer
    }

    /// Sends `data` through an `echo` stream (writing and reading concurrently)
    /// and returns whether the same bytes came back.
    public static func echoRoundTrip(_ session: YamuxSession, data: ByteBuffer) async throws -> Bool {
        let stream = try await session.openStream()
        try await stream.write(ByteBuffer(string: "echo\n"))
        async let written: Void = {
            try await stream.write(data)
            try await stream.closeWrite()
        }()
        let back = try await stream.readAll(limit: data.readableBytes + 1)
        try await written
        return back == data
    }

    /// Sends `bytes` split over `streams` parallel `discard` streams and waits
    /// for every confirmation; returns the seconds taken.
    public static func discardThroughput(_ session: YamuxSession, bytes: Int, streams: Int) async throws -> Double {
        let per = bytes / streams
        let chunk = ByteBuffer(repeating: 0x5a, count: 64 * 1024)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<streams {
                group.addTask {
                    let stream = try await session.openStream()
                    try await stream.write(ByteBuffer(string: "discard \(per)\n"))
                    var left = per
                    while left > 0 {
                        let k = min(left, chunk.readableBytes)
                        try await stream.write(chunk.getSlice(at: 0, length: k) ?? chunk)
                        left -= k
                    }
                    var reader = LineReader(stream: stream)
                    let reply = try await reader.readLine()
                    try await stream.closeWrite()
                    guard reply == "\(per)" else {
                        throw VsockTransportError(.protocolError, "discard reply \(reply ?? "none"), want \(per)")
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Runs `count` echo round trips at once (sizes 1...maxSize); returns how
    /// many came back intact.
    public static func echoMany(_ session: YamuxSession, count: Int, maxSize: Int) async throws -> Int {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<count {
                group.addTask {
                    var seed = UInt64(i) &* 2_654_435_761
                    seed ^= seed >> 13
                    let size = 1 + Int(seed % UInt64(maxSize))
                    return try await echoRoundTrip(session, data: randomBytes(count: size, seed: UInt64(i)))
                }
            }
            var ok = 0
            for try await intact in group where intact { ok += 1 }
            return ok
        }
    }
}

/// FNV-1a, 64 bit: the checksum the test peers exchange.
public struct FNV1a64: Sendable, Equatable {
    /// The current hash value.
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    /// A fresh hash.
    public init() {}

    /// Hashes `buffer`'s readable bytes.
    public mutating func update(_ buffer: ByteBuffer) {
        var h = value
        buffer.withUnsafeReadableBytes { bytes in
            for b in bytes {
                h ^= UInt64(b)
                h = h &* 0x0000_0100_0000_01b3
            }
        }
        value = h
    }

    /// Sixteen lowercase hex digits.
    public var hex: String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}

/// Reads lines from a stream, then hands out whatever follows them.
public struct LineReader {
    let stream: YamuxStream
    var buffer = ByteBuffer()

    /// Wraps `stream`.
    public init(stream: YamuxStream) { self.stream = stream }

    /// The next line without its newline, or nil at end of stream. Lines are
    /// limited to 4 KiB.
    public mutating func readLine() async throws -> String? {
        while true {
            if let nl = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                let length = nl - buffer.readerIndex
                let line = buffer.readString(length: length) ?? ""
                buffer.moveReaderIndex(forwardBy: 1)
                return line
            }
            guard buffer.readableBytes < 4096, var chunk = try await stream.read() else { return nil }
            buffer.writeBuffer(&chunk)
        }
    }

    /// The next chunk: first what was buffered after the line, then the stream's.
    public mutating func next() async throws -> ByteBuffer? {
        if buffer.readableBytes > 0 {
            defer { buffer = ByteBuffer() }
            return buffer
        }
        return try await stream.read()
    }
}
