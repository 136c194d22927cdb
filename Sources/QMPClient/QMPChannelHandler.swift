import Foundation
import NIOCore

/// A command on its way out: the handler assigns the id, remembers the promise and
/// writes the JSON line.
struct QMPOutboundCommand: Sendable {
    var name: String
    var arguments: JSONValue?
    var promise: EventLoopPromise<JSONValue>
    var timeout: TimeAmount?
}

/// The protocol engine, confined to the channel's event loop: matches responses to
/// pending commands by id, forwards events, and fails everything pending the
/// moment the connection ends or the peer misbehaves.
final class QMPChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = QMPOutboundCommand
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var name: String
        var promise: EventLoopPromise<JSONValue>
        var timer: Scheduled<Void>?
    }

    private let greetingPromise: EventLoopPromise<QMPGreeting>
    private let events: AsyncStream<QMPEvent>.Continuation
    private var pending: [Int64: Pending] = [:]
    private var nextID: Int64 = 1
    private var greeted = false
    private var closedError: QMPError?
    private let encoder = JSONEncoder()

    init(greetingPromise: EventLoopPromise<QMPGreeting>, events: AsyncStream<QMPEvent>.Continuation) {
        self.greetingPromise = greetingPromise
        self.events = events
        encoder.outputFormatting = [.sortedKeys]
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        let message: QMPIncoming
        do {
            message = try QMPIncoming.parse(line)
        } catch let error as QMPError {
            fail(context: context, error)
            return
        } catch {
            fail(context: context, QMPError(.protocolViolation, "\(error)"))
            return
        }
        switch message {
        case .greeting(let g):
            if greeted {
                fail(context: context, QMPError(.protocolViolation, "second greeting"))
                return
            }
            greeted = true
            greetingPromise.succeed(g)
        case .response(let id, let result):
            guard greeted else {
                fail(context: context, QMPError(.protocolViolation, "response before greeting"))
                return
            }
            guard let id = id?.intValue, let p = pending.removeValue(forKey: id) else {
                // An answer we did not ask for (or one whose command timed out): not fatal.
                return
            }
            p.timer?.cancel()
            switch result {
            case .success(let v): p.promise.succeed(v)
            case .failure(var e):
                e.command = p.name
                p.promise.fail(e)
            }
        case .event(let e):
            guard greeted else {
                fail(context: context, QMPError(.protocolViolation, "event before greeting"))
                return
            }
            events.yield(e)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(closedError ?? QMPError(.connectionClosed, "QMP connection closed by peer"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let e = error as? QMPError {
            fail(context: context, e)
        } else if let e = error as? ByteToMessageDecoderError, case .leftoverDataWhenDone = e {
            fail(context: context, QMPError(.protocolViolation, "connection closed inside a message"))
        } else {
            fail(context: context, QMPError(.connectionClosed, "QMP connection failed: \(error)"))
        }
    }

    // MARK: outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let cmd = unwrapOutboundIn(data)
        if let closedError {
            var e = closedError
            e.command = cmd.name
            cmd.promise.fail(e)
            promise?.fail(e)
            return
        }
        let id = nextID
        nextID += 1
        var object: [String: JSONValue] = ["execute": .string(cmd.name), "id": .int(id)]
        if let args = cmd.arguments { object["arguments"] = args }
        var bytes: Data
        do {
            bytes = try encoder.encode(JSONValue.object(object))
        } catch {
            let e = QMPError(.invalidArgument, "cannot encode arguments: \(error)", command: cmd.name)
            cmd.promise.fail(e)
            promise?.fail(e)
            return
        }
        bytes.append(contentsOf: [UInt8(ascii: "\r"), UInt8(ascii: "\n")])
        var timer: Scheduled<Void>?
        if let t = cmd.timeout {
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(in: t) {
                loopBound.value.timeOut(id: id, after: t)
            }
        }
        pending[id] = Pending(name: cmd.name, promise: cmd.promise, timer: timer)
        let buffer = context.channel.allocator.buffer(bytes: bytes)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: promise)
    }

    private func timeOut(id: Int64, after t: TimeAmount) {
        guard let p = pending.removeValue(forKey: id) else { return }
        p.promise.fail(QMPError(.timeout, "no answer within \(Double(t.nanoseconds) / 1e9) s",
                                command: p.name))
    }

    // MARK: failure

    private func fail(context: ChannelHandlerContext, _ error: QMPError) {
        if closedError == nil { closedError = error }
        finish(error)
        context.close(promise: nil)
    }

    private func finish(_ error: QMPError) {
        if closedError == nil { closedError = error }
        if !greeted {
            greeted = true
            greetingPromise.fail(error)
        }
        let all = pending
        pending.removeAll()
        for (_, p) in all.sorted(by: { $0.key < $1.key }) {
            p.timer?.cancel()
            var e = error
            e.command = p.name
            p.promise.fail(e)
        }
        events.finish()
    }
}
