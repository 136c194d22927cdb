import NIOConcurrencyHelpers
import NIOCore

/// One yamux stream: an ordered, flow-controlled, bidirectional byte stream with
/// half-close and reset.
///
/// Backpressure reaches the writer: ``write(_:)`` returns once the bytes were
/// handed to the pipe, and waits while the peer's window is exhausted, without
/// holding up any other stream. Reading grants the peer more window as data is
/// consumed. One read may be pending at a time.
///
/// Dropping the last reference to a stream closes it like a socket: FIN after
/// queued data, and whatever still arrives is discarded (its window returned)
/// until the peer's FIN, so abandoned streams never stall the peer.
public final class YamuxStream: Sendable {
    let core: YamuxStreamCore
    let eventLoop: any EventLoop
    /// Opened when a channel made by `makeChannel` may receive the stream's bytes.
    let bridgeGate = NIOLockedValueBox<EventLoopPromise<Void>?>(nil)

    /// The yamux stream id (odd: opened by the client side, even: by the server side).
    public var id: UInt32 { core.id }

    init(core: YamuxStreamCore, eventLoop: any EventLoop) {
        self.core = core
        self.eventLoop = eventLoop
    }

    deinit {
        bridgeGate.withLockedValue { $0 }?.succeed(())
        let core = self.core
        eventLoop.execute {
            core.abandon()
        }
    }

    /// The next chunk of data, or nil at end of stream (the peer half-closed).
    /// Throws ``VsockTransportError/Code/streamReset`` after a reset and
    /// ``VsockTransportError/Code/sessionClosed`` when the session died.
    public func read() async throws -> ByteBuffer? {
        let promise = eventLoop.makePromise(of: ByteBuffer?.self)
        let core = self.core
        eventLoop.execute { core.read(promise: promise) }
        return try await promise.futureResult.get()
    }

    /// Writes `buffer`, returning once all of it has been handed to the pipe.
    public func write(_ buffer: ByteBuffer) async throws {
        try await writeFuture(buffer).get()
    }

    /// Writes `bytes` (a convenience for ``write(_:)``).
    public func write(_ bytes: some Sequence<UInt8>) async throws {
        try await write(ByteBuffer(bytes: Array(bytes)))
    }

    /// Queues `buffer` for writing; the future completes as ``write(_:)`` returns.
    /// Useful for bridging to NIO handlers.
    public func writeFuture(_ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        let core = self.core
        eventLoop.execute { core.write(buffer, promise: promise) }
        return promise.futureResult
    }

    /// Half-closes: sends FIN after all queued data. Reading continues until the
    /// peer closes its side.
    public func closeWrite() async throws {
        let promise = eventLoop.makePromise(of: Void.self)
        let core = self.core
        eventLoop.execute { core.closeWrite(promise: promise) }
        try await promise.futureResult.get()
    }

    /// Aborts the stream in both directions (RST): pending reads and writes fail
    /// with ``VsockTransportError/Code/streamReset`` on both sides.
    public func reset() {
        let core = self.core
        eventLoop.execute { core.reset() }
    }

    /// The inbound bytes as an `AsyncSequence` of chunks, ending at end of stream.
    public var inbound: Inbound { Inbound(stream: self) }

    /// Reads everything until end of stream, refusing more than `limit` bytes.
    public func readAll(limit: Int = 16 * 1024 * 1024) async throws -> ByteBuffer {
        var all = ByteBuffer()
        while var chunk = try await read() {
            guard all.readableBytes + chunk.readableBytes <= limit else {
                reset()
                throw VsockTransportError(.frameTooLarge, "stream \(id): more than \(limit) bytes")
            }
            all.writeBuffer(&chunk)
        }
        return all
    }

    /// An `AsyncSequence` of the stream's inbound chunks.
    public struct Inbound: AsyncSequence, Sendable {
        public typealias Element = ByteBuffer
        let stream: YamuxStream

        /// Iterates chunks until end of stream.
        public struct AsyncIterator: AsyncIteratorProtocol {
            let stream: YamuxStream
            /// The next chunk, or nil at end of stream.
            public mutating func next() async throws -> ByteBuffer? { try await stream.read() }
        }

        /// Makes an iterator.
        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: stream) }
    }
}
