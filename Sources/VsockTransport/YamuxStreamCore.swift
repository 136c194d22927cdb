import NIOCore

/// The state of one stream. Confined to the session's event loop: every method
/// must be called on it (the public ``YamuxStream`` hops there).
final class YamuxStreamCore: @unchecked Sendable {
    enum WriteItem {
        case data(ByteBuffer, EventLoopPromise<Void>?)
        case fin(EventLoopPromise<Void>?)
    }

    let id: UInt32
    // Strong: a stream may outlive the pipeline; the cycle is broken when the
    // session detaches the stream (closed both ways, reset, or session end).
    let session: YamuxSessionHandler
    let maxWindow: UInt32

    /// Flags owed to the peer on the next frame of this stream (SYN for a stream
    /// we open, ACK for one we accept).
    var pendingFlags: YamuxFrame.Flags
    var sendWindow: UInt32 = YamuxFrame.initialWindow
    var recvWindow: UInt32 = YamuxFrame.initialWindow
    var recvBuffer = CircularBuffer<ByteBuffer>()
    var recvBuffered = 0
    var pendingRead: EventLoopPromise<ByteBuffer?>?
    var writeQueue = CircularBuffer<WriteItem>()

    var finQueued = false
    var finSent = false
    var remoteFin = false
    var failure: VsockTransportError?
    /// Removed from the session's stream table (no more frames routed here).
    var detached = false
    /// The application dropped the stream: inbound data is discarded (its
    /// window returned at once) until the peer's FIN.
    var abandoned = false

    init(id: UInt32, session: YamuxSessionHandler, pendingFlags: YamuxFrame.Flags, maxWindow: UInt32) {
        self.id = id
        self.session = session
        self.pendingFlags = pendingFlags
        self.maxWindow = maxWindow
    }

    var isFullyClosed: Bool { failure != nil || (finSent && remoteFin) }

    // MARK: Application side

    func read(promise: EventLoopPromise<ByteBuffer?>) {
        if let failure, failure.code == .streamReset {
            promise.fail(failure)
            return
        }
        if !recvBuffer.isEmpty {
            let chunk = recvBuffer.removeFirst()
            recvBuffered -= chunk.readableBytes
            promise.succeed(chunk)
            sendWindowUpdateIfNeeded()
            return
        }
        if remoteFin {
            promise.succeed(nil)
            return
        }
        if let failure {
            promise.fail(failure)
            return
        }
        if pendingRead != nil {
            promise.fail(VsockTransportError(.concurrentRead, "stream \(id): a read is already pending"))
            return
        }
        pendingRead = promise
    }

    func write(_ buffer: ByteBuffer, promise: EventLoopPromise<Void>?) {
        if let failure {
            promise?.fail(failure)
            return
        }
        if finQueued {
            promise?.fail(VsockTransportError(.streamClosed, "stream \(id): write after close"))
            return
        }
        writeQueue.append(.data(buffer, promise))
        pump()
    }

    func closeWrite(promise: EventLoopPromise<Void>?) {
        if let failure {
            if failure.code == .streamReset { promise?.fail(failure) } else { promise?.succeed(()) }
            return
        }
        if finQueued {
            promise?.succeed(())
            return
        }
        finQueued = true
        writeQueue.append(.fin(promise))
        pump()
    }

    /// The application dropped its last reference: close like a socket — FIN
    /// after queued data, discard whatever still arrives until the peer's FIN.
    func abandon() {
        guard failure == nil, !isFullyClosed else { return }
        abandoned = true
        recvBuffer.removeAll()
        recvBuffered = 0
        if !finQueued { closeWrite(promise: nil) }
        sendWindowUpdateIfNeeded()
    }

    /// Sends RST (unless the stream is already finished) and fails pending operations.
    func reset() {
        guard failure == nil else { return }
        if !isFullyClosed {
            session.sendControl(.init(type: .windowUpdate, flags: pendingFlags.union(.rst), streamID: id, length: 0))
        }
        fail(VsockTransportError(.streamReset, "stream \(id) reset locally"))
    }

    // MARK: Frames from the peer

    /// A data frame arrived. Returns a protocol error if it broke the window.
    func receiveData(_ payload: ByteBuffer, flags: YamuxFrame.Flags) -> VsockTransportError? {
        let length = UInt32(payload.readableBytes)
        if length > 0 {
            guard length <= recvWindow else {
                return VsockTransportError(.windowExceeded,
                    "stream \(id): \(length) bytes received with a window of \(recvWindow)")
            }
            if remoteFin {
                return VsockTransportError(.protocolError, "stream \(id): data after FIN")
            }
            recvWindow -= length
            if failure == nil, !abandoned {
                recvBuffer.append(payload)
                recvBuffered += payload.readableBytes
            }
        }
        processFlags(flags)
        deliver()
        if abandoned { sendWindowUpdateIfNeeded() }
        return nil
    }

    /// A window update (possibly carrying only flags) arrived.
    func receiveWindowUpdate(delta: UInt32, flags: YamuxFrame.Flags) -> VsockTransportError? {
        let (sum, overflow) = sendWindow.addingReportingOverflow(delta)
        if overflow {
            return VsockTransportError(.windowOverflow,
                "stream \(id): window update of \(delta) on a window of \(sendWindow)")
        }
        sendWindow = sum
        processFlags(flags)
        deliver()
        if delta > 0 { pump() }
        return nil
    }

    private func processFlags(_ flags: YamuxFrame.Flags) {
        if flags.contains(.rst) {
            fail(VsockTransportError(.streamReset, "stream \(id) reset by peer"))
            return
        }
        if flags.contains(.fin), !remoteFin {
            remoteFin = true
            session.streamMayBeFinished(self)
        }
    }

    private func deliver() {
        guard let promise = pendingRead else { return }
        if !recvBuffer.isEmpty {
            pendingRead = nil
            let chunk = recvBuffer.removeFirst()
            recvBuffered -= chunk.readableBytes
            promise.succeed(chunk)
            sendWindowUpdateIfNeeded()
        } else if remoteFin {
            pendingRead = nil
            promise.succeed(nil)
        }
    }

    /// Grants the peer more window once the application has consumed at least
    /// half of the maximum (as Go yamux does), or when flags are owed.
    func sendWindowUpdateIfNeeded(force: Bool = false) {
        // After the peer's FIN no more data comes: more window would be useless.
        guard failure == nil, force || !remoteFin else { return }
        let delta = (maxWindow - UInt32(recvBuffered)) - recvWindow
        guard force || delta >= maxWindow / 2 else { return }
        recvWindow += delta
        let flags = pendingFlags
        pendingFlags = []
        session.sendControl(.init(type: .windowUpdate, flags: flags, streamID: id, length: delta))
    }

    // MARK: Writing

    /// Writes queued data as far as the send window and the pipe's writability
    /// allow. A stream out of window waits for a window update without holding up
    /// any other stream.
    func pump() {
        guard failure == nil else { return }
        var wrote = false
        defer { if wrote { session.flush() } }
        while let item = writeQueue.first {
            switch item {
            case .fin(let promise):
                writeQueue.removeFirst()
                let flags = pendingFlags.union(.fin)
                pendingFlags = []
                session.writeFrame(.init(type: .windowUpdate, flags: flags, streamID: id, length: 0),
                                   payload: nil, promise: nil)
                wrote = true
                finSent = true
                promise?.succeed(())
                session.streamMayBeFinished(self)
                return
            case .data(var buffer, let promise):
                if buffer.readableBytes == 0 {
                    writeQueue.removeFirst()
                    promise?.succeed(())
                    continue
                }
                guard sendWindow > 0 else { return }
                guard session.isWritable else {
                    session.waitForWritability(self)
                    return
                }
                let n = min(buffer.readableBytes, Int(sendWindow), session.maxOutboundFrameSize)
                // Non-nil: n <= readableBytes.
                let slice = buffer.readSlice(length: n) ?? ByteBuffer()
                sendWindow -= UInt32(n)
                let flags = pendingFlags
                pendingFlags = []
                let done = buffer.readableBytes == 0
                if done {
                    writeQueue.removeFirst()
                } else {
                    writeQueue[writeQueue.startIndex] = .data(buffer, promise)
                }
                session.writeFrame(.init(type: .data, flags: flags, streamID: id, length: UInt32(n)),
                                   payload: slice, promise: done ? promise : nil)
                wrote = true
            }
        }
    }

    // MARK: Failure

    /// Fails every pending operation with `error` and detaches from the session.
    func fail(_ error: VsockTransportError) {
        guard failure == nil else { return }
        failure = error
        if error.code == .streamReset {
            recvBuffer.removeAll()
            recvBuffered = 0
        }
        if let promise = pendingRead {
            // A pending read means nothing is buffered.
            pendingRead = nil
            if remoteFin, error.code != .streamReset {
                promise.succeed(nil)
            } else {
                promise.fail(error)
            }
        }
        let queue = writeQueue
        writeQueue.removeAll()
        for item in queue {
            switch item {
            case .data(_, let promise), .fin(let promise): promise?.fail(error)
            }
        }
        session.detach(self)
    }
}
