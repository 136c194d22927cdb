import Logging
import NIOCore

/// The yamux engine: a channel handler behind ``YamuxFrameDecoder`` that routes
/// frames to streams, answers pings, sends keepalives and tears everything down
/// when the pipe dies or the peer breaks the protocol. Confined to the channel's
/// event loop.
final class YamuxSessionHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = YamuxFrame
    typealias OutboundOut = ByteBuffer

    let role: YamuxRole
    let configuration: YamuxConfiguration
    let eventLoop: any EventLoop
    let closedPromise: EventLoopPromise<Void>
    var logger: Logger { configuration.logger }
    var maxOutboundFrameSize: Int { max(1, configuration.maxOutboundFrameSize) }

    private var context: ChannelHandlerContext?
    private(set) var streams: [UInt32: YamuxStreamCore] = [:]
    private var nextLocalID: UInt32
    private var highestRemoteID: UInt32 = 0
    private var acceptQueue = CircularBuffer<YamuxStreamCore>()
    private var acceptWaiters = CircularBuffer<EventLoopPromise<YamuxStreamCore>>()
    private(set) var localGoAway = false
    private(set) var remoteGoAway = false
    private(set) var failure: VsockTransportError?
    private var writabilityWaiters: [YamuxStreamCore] = []
    private var pings: [UInt32: (promise: EventLoopPromise<TimeAmount>, start: NIODeadline, timeout: Scheduled<Void>)] = [:]
    private var nextPingID: UInt32 = 0
    private var keepaliveTask: RepeatedTask?

    init(role: YamuxRole, configuration: YamuxConfiguration, eventLoop: any EventLoop) {
        self.role = role
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.nextLocalID = role.firstStreamID
        self.closedPromise = eventLoop.makePromise()
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { startKeepalive() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail(VsockTransportError(.sessionClosed, "yamux handler removed from the pipeline"))
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        startKeepalive()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(VsockTransportError(.sessionClosed, "the pipe closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let transportError: VsockTransportError
        if let error = error as? VsockTransportError {
            transportError = error
        } else {
            transportError = VsockTransportError(.ioError, "pipe error: \(error)")
        }
        protocolFailure(transportError)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, !writabilityWaiters.isEmpty {
            let waiters = writabilityWaiters
            writabilityWaiters.removeAll()
            for stream in waiters { stream.pump() }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard failure == nil else { return }
        let frame = unwrapInboundIn(data)
        switch frame.type {
        case .ping:
            handlePing(frame)
        case .goAway:
            if frame.length == YamuxFrame.GoAwayCode.normal.rawValue {
                remoteGoAway = true
            } else {
                fail(VsockTransportError(.remoteError, "peer sent go-away with code \(frame.length)"))
            }
        case .data, .windowUpdate:
            handleStreamFrame(frame)
        }
    }

    // MARK: Inbound frames

    private func handlePing(_ frame: YamuxFrame) {
        if frame.flags.contains(.syn) {
            sendControl(.init(type: .ping, flags: .ack, streamID: 0, length: frame.length))
        } else if frame.flags.contains(.ack), let ping = pings.removeValue(forKey: frame.length) {
            ping.timeout.cancel()
            ping.promise.succeed(NIODeadline.now() - ping.start)
        }
    }

    private func handleStreamFrame(_ frame: YamuxFrame) {
        let id = frame.streamID
        guard id != 0 else {
            protocolFailure(VsockTransportError(.invalidStreamID, "\(frame.type) frame on stream 0"))
            return
        }
        if frame.flags.contains(.syn) {
            guard incomingStream(id) else { return }
        }
        guard let stream = streams[id] else {
            if isKnown(id) {
                if frame.length > 0, frame.type == .data {
                    logger.debug("yamux: discarding \(frame.length) bytes for closed stream \(id)")
                }
            } else {
                protocolFailure(VsockTransportError(.unknownStream,
                    "\(frame.type) frame for stream \(id), which was never opened"))
            }
            return
        }
        let error: VsockTransportError?
        if frame.type == .data {
            error = stream.receiveData(frame.payload ?? ByteBuffer(), flags: frame.flags)
        } else {
            error = stream.receiveWindowUpdate(delta: frame.length, flags: frame.flags)
        }
        if let error { protocolFailure(error) }
    }

    /// Whether `id` belongs to a stream that existed (and may since have closed).
    private func isKnown(_ id: UInt32) -> Bool {
        if id % 2 == role.firstStreamID % 2 { return id < nextLocalID }
        return id <= highestRemoteID
    }

    /// Handles a SYN. Returns false if the session failed.
    private func incomingStream(_ id: UInt32) -> Bool {
        guard id % 2 != role.firstStreamID % 2 else {
            protocolFailure(VsockTransportError(.invalidStreamID, "peer opened stream \(id) with this side's parity"))
            return false
        }
        // Go yamux allocates ids in order but may send the SYNs out of order, so
        // only an id that is currently open counts as a duplicate.
        guard streams[id] == nil else {
            protocolFailure(VsockTransportError(.invalidStreamID, "peer opened stream \(id) twice"))
            return false
        }
        highestRemoteID = max(highestRemoteID, id)
        if localGoAway || acceptQueue.count >= configuration.acceptBacklog || streams.count >= configuration.maxStreams {
            logger.debug("yamux: refusing stream \(id) (go-away, backlog or stream limit)")
            sendControl(.init(type: .windowUpdate, flags: .rst, streamID: id, length: 0))
            return true
        }
        let stream = YamuxStreamCore(id: id, session: self, pendingFlags: .ack,
                                     maxWindow: configuration.maxStreamWindowSize)
        streams[id] = stream
        if let waiter = acceptWaiters.popFirst() {
            stream.sendWindowUpdateIfNeeded(force: true)
            waiter.succeed(stream)
        } else {
            acceptQueue.append(stream)
        }
        return true
    }

    // MARK: Operations (on the event loop)

    func open() throws -> YamuxStreamCore {
        if let failure { throw VsockTransportError(.sessionClosed, "session closed: \(failure.message)") }
        if localGoAway { throw VsockTransportError(.localGoAway, "this side sent go-away") }
        if remoteGoAway { throw VsockTransportError(.remoteGoAway, "the peer sent go-away") }
        guard streams.count < configuration.maxStreams, nextLocalID <= UInt32.max - 2 else {
            throw VsockTransportError(.streamLimit, "\(streams.count) streams open (limit \(configuration.maxStreams))")
        }
        let id = nextLocalID
        nextLocalID += 2
        let stream = YamuxStreamCore(id: id, session: self, pendingFlags: .syn,
                                     maxWindow: configuration.maxStreamWindowSize)
        streams[id] = stream
        stream.sendWindowUpdateIfNeeded(force: true)
        return stream
    }

    func accept(promise: EventLoopPromise<YamuxStreamCore>) {
        if let stream = acceptQueue.popFirst() {
            stream.sendWindowUpdateIfNeeded(force: true)
            promise.succeed(stream)
        } else if let failure {
            promise.fail(VsockTransportError(.sessionClosed, "session closed: \(failure.message)"))
        } else {
            acceptWaiters.append(promise)
        }
    }

    func ping(promise: EventLoopPromise<TimeAmount>) {
        if let failure {
            promise.fail(VsockTransportError(.sessionClosed, "session closed: \(failure.message)"))
            return
        }
        nextPingID &+= 1
        let id = nextPingID
        let timeout = eventLoop.scheduleTask(in: configuration.keepaliveTimeout) { [self] in
            if pings[id] != nil {
                fail(VsockTransportError(.keepaliveTimeout,
                    "no answer to ping \(id) within \(configuration.keepaliveTimeout.nanoseconds / 1_000_000) ms"))
            }
        }
        pings[id] = (promise, .now(), timeout)
        sendControl(.init(type: .ping, flags: .syn, streamID: 0, length: id))
    }

    func goAway() {
        guard failure == nil, !localGoAway else { return }
        localGoAway = true
        sendControl(.init(type: .goAway, streamID: 0, length: YamuxFrame.GoAwayCode.normal.rawValue))
    }

    func close() {
        guard failure == nil else { return }
        goAway()
        fail(VsockTransportError(.sessionClosed, "session closed locally"))
    }

    private func startKeepalive() {
        guard keepaliveTask == nil, failure == nil, let interval = configuration.keepaliveInterval else { return }
        keepaliveTask = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
            ping(promise: eventLoop.makePromise())
        }
    }

    // MARK: Output (used by streams)

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func waitForWritability(_ stream: YamuxStreamCore) {
        if !writabilityWaiters.contains(where: { $0 === stream }) { writabilityWaiters.append(stream) }
    }

    func writeFrame(_ frame: YamuxFrame, payload: ByteBuffer?, promise: EventLoopPromise<Void>?) {
        guard failure == nil, let context else {
            promise?.fail(VsockTransportError(.sessionClosed, "session closed: \(failure?.message ?? "not attached")"))
            return
        }
        // Report pipe failures in this module's error type.
        let promise = promise.map { outer in
            let inner = eventLoop.makePromise(of: Void.self)
            inner.futureResult.whenComplete { result in
                switch result {
                case .success: outer.succeed(())
                case .failure(let error as VsockTransportError): outer.fail(error)
                case .failure(let error):
                    outer.fail(VsockTransportError(.sessionClosed, "pipe write failed: \(error)"))
                }
            }
            return inner
        }
        var header = context.channel.allocator.buffer(capacity: YamuxFrame.headerSize)
        frame.encodeHeader(into: &header)
        if let payload {
            context.write(wrapOutboundOut(header), promise: nil)
            context.write(wrapOutboundOut(payload), promise: promise)
        } else {
            context.write(wrapOutboundOut(header), promise: promise)
        }
    }

    func flush() { context?.flush() }

    func sendControl(_ frame: YamuxFrame) {
        writeFrame(frame, payload: nil, promise: nil)
        flush()
    }

    func streamMayBeFinished(_ stream: YamuxStreamCore) {
        if stream.finSent && stream.remoteFin { detach(stream) }
    }

    func detach(_ stream: YamuxStreamCore) {
        stream.detached = true
        if let current = streams[stream.id], current === stream {
            streams.removeValue(forKey: stream.id)
        }
        writabilityWaiters.removeAll { $0 === stream }
    }

    // MARK: Failure

    private func protocolFailure(_ error: VsockTransportError) {
        guard failure == nil else { return }
        if error.isProtocolViolation {
            logger.warning("yamux: protocol violation by the peer: \(error)")
            sendControl(.init(type: .goAway, streamID: 0, length: YamuxFrame.GoAwayCode.protocolError.rawValue))
        }
        fail(error)
    }

    /// Ends the session: every stream, accept and ping fails; the pipe is closed.
    func fail(_ error: VsockTransportError) {
        guard failure == nil else { return }
        failure = error
        keepaliveTask?.cancel()
        keepaliveTask = nil
        let streamError = error.code == .sessionClosed
            ? error : VsockTransportError(.sessionClosed, "session failed: \(error)")
        for stream in Array(streams.values) { stream.fail(streamError) }
        streams.removeAll()
        for stream in acceptQueue { stream.fail(streamError) }
        acceptQueue.removeAll()
        while let waiter = acceptWaiters.popFirst() { waiter.fail(streamError) }
        for (_, ping) in pings {
            ping.timeout.cancel()
            ping.promise.fail(streamError)
        }
        pings.removeAll()
        writabilityWaiters.removeAll()
        if let context {
            context.flush()
            context.close(promise: nil)
        }
        closedPromise.succeed(())
    }
}
