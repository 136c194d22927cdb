import NIOCore

/// The frames of one connection's inbound byte stream, for a handler that frames the
/// stream itself instead of behind a `ByteToMessageHandler`: no pipeline hop and no
/// type-erased message per frame. Event-loop confined, like its handler.
///
/// A handler appends each read and, if no loop is already running further up its
/// stack, takes frames until none is complete:
///
/// ```swift
/// guard frames.append(unwrapInboundIn(data)) else { return }
/// defer { frames.endDecoding() }
/// while let event = try frames.next() { handle(event) }
/// ```
///
/// Bytes that arrive while a frame is handled (a channel that delivers a read
/// synchronously when the handler asks for more) are only appended, so frames are
/// handled one at a time and in order.
struct TTRPCInboundFrames {
    private var decoder: TTRPCFrameDecoder
    /// Bytes received and not yet decoded: a partial frame, or frames behind the one
    /// being handled.
    private var cumulation: ByteBuffer?
    private var decoding = false

    init(maxMessageSize: Int) {
        decoder = TTRPCFrameDecoder(maxMessageSize: maxMessageSize)
    }

    /// Appends a read. Returns whether the caller is to run the decode loop (false
    /// when one is already running further up the stack: it takes these bytes too).
    mutating func append(_ bytes: ByteBuffer) -> Bool {
        if var pending = cumulation, pending.readableBytes > 0 {
            cumulation = nil  // one owner while appending: no copy on write
            pending.writeImmutableBuffer(bytes)
            cumulation = pending
        } else {
            cumulation = bytes
        }
        guard !decoding else { return false }
        decoding = true
        return true
    }

    /// The next complete frame (or oversized frame's header), or nil until more bytes come.
    mutating func next() throws -> TTRPCFrameEvent? {
        guard var buffer = cumulation else { return nil }
        cumulation = nil
        let event = try decoder.decode(buffer: &buffer)
        cumulation = buffer.readableBytes > 0 ? buffer : nil
        return event
    }

    /// Ends the decode loop. A partial frame left over is moved to the front of its
    /// buffer now, when the frames handled (slices of that buffer) are gone, so only
    /// its own bytes are copied. Room for the rest of a frame grows as its bytes
    /// arrive, never on the word of its header.
    mutating func endDecoding() {
        decoding = false
        guard var pending = cumulation, pending.readerIndex > 0 else { return }
        cumulation = nil
        pending.discardReadBytes()
        cumulation = pending
    }
}
