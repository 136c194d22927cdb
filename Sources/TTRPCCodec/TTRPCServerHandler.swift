#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NIOCore
import NIOFoundationEssentialsCompat

/// The server side of one ttrpc connection. Event-loop confined.
///
/// The whole pipeline: it splits the byte stream into frames itself and writes each
/// response as one buffer (header and envelope together), so a call costs no
/// pipeline hop and no type-erased message on either side.
///
/// Every request runs in its own task, so a slow handler never stalls the
/// read loop. Reading pauses (TCP-style backpressure on the peer) while the
/// connection has `maxConcurrentCalls` calls in flight or its socket is not
/// writable, which bounds memory under a request flood.
final class TTRPCServerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    final class Call {
        let id: UInt32
        let kind: TTRPCMethodKind
        var task: Task<Void, Never>?
        var inbound: AsyncThrowingStream<Data, any Error>.Continuation?
        var remoteClosed: Bool
        var timer: Scheduled<Void>?

        init(id: UInt32, kind: TTRPCMethodKind) {
            self.id = id
            self.kind = kind
            self.remoteClosed = !kind.clientStreams
        }
    }

    private let services: [String: TTRPCService]
    private let maxMessageSize: Int
    private let maxConcurrentCalls: Int
    private let maxBufferedStreamMessages: Int
    private let startHandlersInline: Bool
    private let tracesRequests: Bool
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var calls: [UInt32: Call] = [:]
    private var highestStreamID: UInt32 = 0
    private var pendingRead = false
    private var writable = true
    private var draining = false
    private var frames: TTRPCInboundFrames

    init(services: [String: TTRPCService], configuration: TTRPCServer.Configuration,
         logger: Logger = Logger(label: "ttrpc.server")) {
        self.services = services
        self.maxMessageSize = configuration.maxMessageSize
        self.maxConcurrentCalls = configuration.maxConcurrentCallsPerConnection
        self.maxBufferedStreamMessages = configuration.maxBufferedStreamMessages
        self.startHandlersInline = configuration.startsHandlersOnEventLoop
        self.tracesRequests = configuration.tracesRequests
        self.logger = logger
        self.frames = TTRPCInboundFrames(maxMessageSize: configuration.maxMessageSize)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        abortAll()
        self.context = nil
    }

    // MARK: Read control

    func read(context: ChannelHandlerContext) {
        // Writability is tracked from writability events, never read from the channel
        // here: before activation a channel reports unwritable, and holding that first
        // read would leave the connection's first request unread.
        if calls.count >= maxConcurrentCalls || !writable {
            pendingRead = true
        } else {
            context.read()
        }
    }

    private func resumeReadingIfPossible() {
        guard pendingRead, let context, calls.count < maxConcurrentCalls, writable else { return }
        pendingRead = false
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        resumeReadingIfPossible()
        context.fireChannelWritabilityChanged()
    }

    /// Stops taking requests (new ones are answered `Unavailable`); closes the
    /// connection once in-flight calls end and their responses are written.
    func drain() {
        draining = true
        if calls.isEmpty { closeOnceWritten() }
    }

    /// Closes the connection once every response written so far is on the wire.
    /// A response is written before its flush, which may come on a later tick;
    /// closing in between would discard it (a drain that finds no calls left may run
    /// just after the last call finished). Writes complete in order, so an empty
    /// write behind them completes once they are all out.
    private func closeOnceWritten() {
        guard let context else { return }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: written)
        written.futureResult.assumeIsolated().whenComplete { [weak self] _ in
            self?.context?.close(promise: nil)
        }
    }

    /// Closes at once; in-flight handlers are cancelled.
    func forceClose() {
        context?.close(promise: nil)
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard frames.append(unwrapInboundIn(data)) else { return }
        defer { frames.endDecoding() }
        do {
            while let event = try frames.next() { receive(event) }
        } catch {
            // The frame decoder skips what it cannot use instead of throwing.
            logger.debug("ttrpc: undecodable stream", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    private func receive(_ event: TTRPCFrameEvent) {
        switch event {
        case .oversized(let header):
            // Go ttrpc answers on the frame's stream and keeps the connection.
            let error = TTRPCError.oversized(length: header.length, limit: maxMessageSize)
            if let call = calls[header.streamID] {
                finish(call, result: .failure(error))
            } else if header.type == .request {
                respond(streamID: header.streamID, status: error, payload: Data())
            }
        case .frame(let frame):
            switch frame.type {
            case .request: receiveRequest(frame)
            case .data: receiveData(frame)
            default: break  // Responses and unknown types from a client are ignored, as Go does.
            }
        }
    }

    private func receiveRequest(_ frame: TTRPCFrame) {
        let id = frame.streamID
        let request: Ttrpc_Request
        do {
            request = try Ttrpc_Request(ttrpcBuffer: frame.payload)
        } catch {
            respond(streamID: id, status: TTRPCError(.invalidArgument, "unmarshal request error: \(error)"))
            return
        }
        guard id % 2 == 1 else {
            respond(streamID: id, status: TTRPCError(
                .invalidArgument, "StreamID must be odd for client initiated streams"))
            return
        }
        guard id > highestStreamID else {
            // Answering on a live id would confuse its call; a reused id is dropped with a log.
            if calls[id] == nil {
                respond(streamID: id, status: TTRPCError(.invalidArgument, "StreamID \(id) reused"))
            } else {
                logger.warning("ttrpc: request reuses active stream id", metadata: ["stream": "\(id)"])
            }
            return
        }
        highestStreamID = id
        guard !draining else {
            respond(streamID: id, status: TTRPCError(.unavailable, "ttrpc: server shutting down"))
            return
        }
        guard let service = services[request.service] else {
            respond(streamID: id, status: TTRPCError(.unimplemented, "service \(request.service)"))
            return
        }
        guard let method = service.methods[request.method] else {
            respond(streamID: id, status: TTRPCError(.unimplemented, "method \(request.method)"))
            return
        }
        startCall(id: id, request: request, method: method, flags: frame.flags)
    }

    private func startCall(id: UInt32, request: Ttrpc_Request, method: TTRPCMethod, flags: TTRPCFrameFlags) {
        guard let context else { return }
        let call = Call(id: id, kind: method.kind)
        if flags.contains(.remoteClosed) || !flags.contains(.remoteOpen) {
            call.remoteClosed = true
        }
        var deadline: ContinuousClock.Instant?
        if request.timeoutNano > 0 {
            deadline = .now + .nanoseconds(request.timeoutNano)
            call.timer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(request.timeoutNano)) {
                [weak self, weak call] in
                guard let self, let call else { return }
                self.finish(call, result: .failure(TTRPCError(.deadlineExceeded, "context deadline exceeded")))
            }
        }
        let requestContext = TTRPCRequestContext(
            service: request.service, method: request.method, metadata: TTRPCMetadata(wire: request.metadata),
            deadline: deadline, streamID: id)
        // Only streaming methods get a message stream or a writer: a unary call allocates neither.
        let messages: TTRPCServerMessages?
        if !method.kind.clientStreams {
            messages = nil
        } else {
            let (stream, continuation) = TTRPCServerMessages.makeStream(
                bufferingPolicy: .bufferingOldest(maxBufferedStreamMessages))
            messages = stream
            if call.remoteClosed {
                continuation.finish()
            } else {
                call.inbound = continuation
            }
        }
        calls[id] = call
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let writer = method.kind.serverStreams ? TTRPCServerStreamWriter(loop: loop, streamID: id, handler: bound) : nil
        let payload = request.payload
        let traced = tracesRequests
        let work: @Sendable () async -> Void = {
            let result: Result<Data, any Error>
            do {
                if traced {
                    result = .success(try await TTRPCTracing.serve(requestContext) {
                        try await Self.invoke(method, payload, requestContext, messages, writer)
                    })
                } else {
                    result = .success(try await Self.invoke(method, payload, requestContext, messages, writer))
                }
            } catch {
                result = .failure(error)
            }
            if loop.inEventLoop {
                bound.value.finishCall(id: id, result: result)
            } else {
                loop.execute { bound.value.finishCall(id: id, result: result) }
            }
        }
        if startHandlersInline, #available(macOS 26, *) {
            // Runs on this event loop until the handler first suspends: a handler that
            // answers without suspending costs no thread hop at all.
            call.task = Task.immediate(operation: work)
        } else {
            call.task = Task(operation: work)
        }
    }

    /// Runs a method's handler; a streaming one's result is empty (its messages were written).
    private static func invoke(_ method: TTRPCMethod, _ payload: Data, _ requestContext: TTRPCRequestContext,
                               _ messages: TTRPCServerMessages?, _ writer: TTRPCServerStreamWriter?) async throws -> Data {
        // `messages` is set for client-streaming kinds, `writer` for server-streaming ones (startCall).
        switch method {
        case .unary(let body):
            return try await body(payload, requestContext)
        case .serverStreaming(let body):
            guard let writer else { return Data() }
            try await body(payload, requestContext, writer)
            return Data()
        case .clientStreaming(let body):
            return try await body(messages ?? TTRPCServerMessages { $0.finish() }, requestContext)
        case .bidirectionalStreaming(let body):
            guard let writer else { return Data() }
            try await body(messages ?? TTRPCServerMessages { $0.finish() }, requestContext, writer)
            return Data()
        }
    }

    private func receiveData(_ frame: TTRPCFrame) {
        let id = frame.streamID
        guard let call = calls[id] else {
            if id > highestStreamID {
                respond(streamID: id, status: TTRPCError(.invalidArgument, "data on unknown stream \(id)"))
            }
            return  // Late data for a finished call is dropped.
        }
        guard let inbound = call.inbound, !call.remoteClosed else {
            finish(call, result: .failure(TTRPCError(
                .invalidArgument, "data on stream \(id), which is not open for client data")))
            return
        }
        if !frame.flags.contains(.noData) {
            if case .dropped = inbound.yield(Data(buffer: frame.payload)) {
                finish(call, result: .failure(TTRPCError(
                    .resourceExhausted, "stream \(id): receive buffer full, handler too slow")))
                return
            }
        }
        if frame.flags.contains(.remoteClosed) {
            call.remoteClosed = true
            call.inbound = nil
            inbound.finish()
        }
    }

    // MARK: Outbound

    func sendData(_ payload: Data, streamID: UInt32, promise: EventLoopPromise<Void>) {
        guard let context, let call = calls[streamID] else {
            promise.fail(TTRPCError(.cancelled, "stream \(streamID) is finished"))
            return
        }
        guard payload.count <= maxMessageSize else {
            promise.fail(TTRPCError.oversized(length: UInt32(clamping: payload.count), limit: maxMessageSize))
            return
        }
        guard call.kind.serverStreams else {
            promise.fail(TTRPCError(.failedPrecondition, "method does not stream responses"))
            return
        }
        let frame = TTRPCFrame.encoded(streamID: streamID, type: .data, payload: payload,
                                       allocator: context.channel.allocator)
        context.writeAndFlush(wrapOutboundOut(frame), promise: promise)
    }

    func finishCall(id: UInt32, result: Result<Data, any Error>) {
        guard let call = calls[id] else { return }
        finish(call, result: result)
    }

    private func finish(_ call: Call, result: Result<Data, any Error>) {
        guard calls[call.id] === call else { return }
        calls[call.id] = nil
        call.timer?.cancel()
        call.inbound?.finish(throwing: TTRPCError(.cancelled, "call finished"))
        call.task?.cancel()
        switch result {
        case .success(let payload):
            respond(streamID: call.id, status: nil, payload: payload)
        case .failure(let error):
            respond(streamID: call.id, status: TTRPCError.from(error), payload: Data())
        }
        if draining, calls.isEmpty {
            closeOnceWritten()  // once the last response is on the wire, not before
        } else {
            resumeReadingIfPossible()
        }
    }

    /// Writes a response frame; the flush follows on the next event-loop tick, with
    /// every other response written in this one.
    private func respond(streamID: UInt32, status: TTRPCError?, payload: Data = Data()) {
        guard let context else { return }
        let frame: ByteBuffer
        do {
            frame = try TTRPCResponseWire.frame(streamID: streamID, status: status, payload: payload,
                                                limit: maxMessageSize, allocator: context.channel.allocator)
        } catch {
            logger.error("ttrpc: encoding response failed", metadata: ["error": "\(error)"])
            return
        }
        context.write(wrapOutboundOut(frame), promise: nil)
        flusher.flushSoon(context)
    }

    private let flusher = TTRPCFlushCoalescer()

    // MARK: Teardown

    private func abortAll() {
        let pending = calls
        calls.removeAll()
        for call in pending.values {
            call.timer?.cancel()
            call.inbound?.finish(throwing: TTRPCError.connectionClosed())
            call.task?.cancel()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        abortAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("ttrpc: connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
