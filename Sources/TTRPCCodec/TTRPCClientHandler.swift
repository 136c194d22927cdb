#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import NIOFoundationEssentialsCompat

/// The client side of one ttrpc connection. Event-loop confined: every method
/// runs on the channel's event loop.
final class TTRPCClientHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// One outstanding call.
    final class Call {
        let id: UInt32
        let kind: TTRPCMethodKind
        /// Completed with the final response payload (unary, client streaming),
        /// or with an empty payload when a streaming response ends cleanly.
        let response: EventLoopPromise<Data>
        /// Receives data frames (server and bidirectional streaming).
        let messages: AsyncThrowingStream<Data, any Error>.Continuation?
        /// Bytes buffered for the consumer of ``messages``.
        let accounting: TTRPCBufferAccounting?
        var timer: Scheduled<Void>?
        var localClosed: Bool

        init(id: UInt32, kind: TTRPCMethodKind, response: EventLoopPromise<Data>,
             messages: AsyncThrowingStream<Data, any Error>.Continuation?, accounting: TTRPCBufferAccounting?) {
            self.id = id
            self.kind = kind
            self.response = response
            self.messages = messages
            self.accounting = accounting
            self.localClosed = !kind.clientStreams
        }

        func fail(_ error: TTRPCError) {
            timer?.cancel()
            messages?.finish(throwing: error)
            response.fail(error)
        }
    }

    /// Caps on bytes buffered for slow stream consumers.
    struct BufferLimits: Sendable {
        var perStream: Int
        var perConnection: Int
    }

    private let maxMessageSize: Int
    private let bufferLimits: BufferLimits
    /// Bytes buffered across every stream of the connection (shared with the consumers).
    private let connectionBuffered = TTRPCBufferAccounting.Counter()
    private var context: ChannelHandlerContext?
    private var nextStreamID: UInt32 = 1
    private var calls: [UInt32: Call] = [:]
    private var closedError: TTRPCError?
    private var frames: TTRPCInboundFrames

    init(maxMessageSize: Int, bufferLimits: BufferLimits = BufferLimits(perStream: 16 << 20, perConnection: 64 << 20)) {
        self.maxMessageSize = maxMessageSize
        self.bufferLimits = bufferLimits
        self.frames = TTRPCInboundFrames(maxMessageSize: maxMessageSize)
    }

    var activeCalls: Int { calls.count }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if !context.channel.isActive {
            closedError = .connectionClosed()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(.connectionClosed("ttrpc client handler removed"))
        self.context = nil
    }

    // MARK: Calls

    /// Starts a call: allocates the stream id, sends the request, arms the deadline.
    func start(service: String, method: String, payload: Data, kind: TTRPCMethodKind,
               options: TTRPCCallOptions, response: EventLoopPromise<Data>,
               messages: AsyncThrowingStream<Data, any Error>.Continuation?,
               accounting: TTRPCBufferAccounting? = nil) -> Call? {
        let fail = { (error: TTRPCError) -> Call? in
            messages?.finish(throwing: error)
            response.fail(error)
            return nil
        }
        guard let context, closedError == nil else {
            return fail(closedError ?? .connectionClosed())
        }
        guard nextStreamID < UInt32.max - 1 else {
            return fail(TTRPCError(.resourceExhausted, "stream ids exhausted on this connection"))
        }
        var request = Ttrpc_Request()
        request.service = service
        request.method = method
        request.payload = payload
        request.timeoutNano = options.timeoutNanoseconds
        request.metadata = options.metadata.wire
        let buffer: ByteBuffer
        do {
            buffer = try request.ttrpcBuffer()
        } catch {
            return fail(TTRPCError(.internal, "encoding request: \(error)"))
        }
        guard buffer.readableBytes <= maxMessageSize else {
            return fail(.oversized(length: UInt32(clamping: buffer.readableBytes), limit: maxMessageSize))
        }
        let id = nextStreamID
        nextStreamID += 2
        accounting?.connection = connectionBuffered
        let call = Call(id: id, kind: kind, response: response, messages: messages, accounting: accounting)
        calls[id] = call
        if options.timeout != nil {
            let nanos = options.timeoutNanoseconds
            call.timer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(nanos)) { [weak self, weak call] in
                guard let self, let call else { return }
                self.finish(call, with: TTRPCError(.deadlineExceeded, "context deadline exceeded"))
            }
        }
        let frame = TTRPCFrame(streamID: id, type: .request, flags: kind.requestFlags, payload: buffer)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.write(wrapOutboundOut(frame.encoded(allocator: context.channel.allocator)), promise: written)
        flusher.flushSoon(context)
        written.futureResult.assumeIsolated().whenFailure { [weak self, weak call] error in
            guard let self, let call else { return }
            self.finish(call, with: .connectionClosed("sending request: \(error)"))
        }
        return call
    }

    private let flusher = TTRPCFlushCoalescer()

    /// Sends one message (or a bare close) on a client-streaming call.
    func send(_ payload: Data?, close: Bool, on call: Call, promise: EventLoopPromise<Void>) {
        guard let context, calls[call.id] === call else {
            promise.fail(closedError ?? TTRPCError(.failedPrecondition, "stream \(call.id) is finished"))
            return
        }
        guard !call.localClosed else {
            promise.fail(TTRPCError(.failedPrecondition, "stream \(call.id) is closed for sending"))
            return
        }
        var flags: TTRPCFrameFlags = []
        if let payload {
            guard payload.count <= maxMessageSize else {
                promise.fail(TTRPCError.oversized(length: UInt32(clamping: payload.count), limit: maxMessageSize))
                return
            }
        } else {
            flags.insert(.noData)
        }
        if close {
            flags.insert(.remoteClosed)
            call.localClosed = true
        }
        let frame = TTRPCFrame.encoded(streamID: call.id, type: .data, flags: flags, payload: payload,
                                       allocator: context.channel.allocator)
        context.writeAndFlush(wrapOutboundOut(frame), promise: promise)
    }

    /// Ends a call locally (task cancellation): later frames for it are dropped.
    func cancel(_ call: Call, with error: TTRPCError) {
        finish(call, with: error)
    }

    private func finish(_ call: Call, with error: TTRPCError) {
        guard calls[call.id] === call else { return }
        calls[call.id] = nil
        call.fail(error)
    }

    private func failAll(_ error: TTRPCError) {
        if closedError == nil { closedError = error }
        let pending = calls
        calls.removeAll()
        for call in pending.values { call.fail(error) }
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard frames.append(unwrapInboundIn(data)) else { return }
        defer { frames.endDecoding() }
        do {
            while let event = try frames.next() { receive(event) }
        } catch {
            // The frame decoder skips what it cannot use instead of throwing.
            failAll(.protocolViolation("undecodable stream: \(error)"))
            context.close(promise: nil)
        }
    }

    private func receive(_ event: TTRPCFrameEvent) {
        switch event {
        case .oversized(let header):
            if let call = calls[header.streamID] {
                finish(call, with: .oversized(length: header.length, limit: maxMessageSize))
            }
        case .frame(let frame):
            switch frame.type {
            case .response:
                receiveResponse(frame)
            case .data:
                receiveData(frame)
            default:
                break  // Unknown types are ignored, as Go ttrpc does.
            }
        }
    }

    private func receiveResponse(_ frame: TTRPCFrame) {
        guard let call = calls.removeValue(forKey: frame.streamID) else { return }
        call.timer?.cancel()
        let response: Ttrpc_Response
        do {
            response = try Ttrpc_Response(ttrpcBuffer: frame.payload)
        } catch {
            call.fail(.protocolViolation("undecodable response on stream \(frame.streamID): \(error)"))
            return
        }
        if let error = response.error {
            call.fail(error)
            return
        }
        if let messages = call.messages {
            if call.kind.serverStreams, !response.payload.isEmpty {
                messages.yield(response.payload)
            }
            messages.finish()
        }
        call.response.succeed(response.payload)
    }

    private func receiveData(_ frame: TTRPCFrame) {
        guard let call = calls[frame.streamID] else { return }
        guard let messages = call.messages else {
            finish(call, with: .protocolViolation("data frame on non-streaming stream \(frame.streamID)"))
            return
        }
        if !frame.flags.contains(.noData) {
            let payload = Data(buffer: frame.payload)
            if let accounting = call.accounting,
               let exceeded = accounting.add(payload.count, streamLimit: bufferLimits.perStream,
                                             connectionLimit: bufferLimits.perConnection) {
                finish(call, with: TTRPCError(
                    .resourceExhausted, "stream \(frame.streamID): \(exceeded), consumer too slow"))
                return
            }
            if case .dropped = messages.yield(payload) {
                finish(call, with: TTRPCError(
                    .resourceExhausted, "stream \(frame.streamID): receive buffer full, consumer too slow"))
                return
            }
        }
        if frame.flags.contains(.remoteClosed) {
            calls[frame.streamID] = nil
            call.timer?.cancel()
            messages.finish()
            call.response.succeed(Data())
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.connectionClosed())
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(.connectionClosed("connection failed: \(error)"))
        context.close(promise: nil)
    }
}
