import NIOCore

/// Flushes a channel once per event-loop tick, however many frames were
/// written during it: concurrent calls (client) or replies to pipelined
/// requests (server) leave in one write instead of one system call each.
/// Event-loop confined, like the handler that owns it.
final class TTRPCFlushCoalescer {
    private var scheduled = false

    /// Requests a flush of `context` after the current tick.
    func flushSoon(_ context: ChannelHandlerContext) {
        guard !scheduled else { return }
        scheduled = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (coalescer, context) = bound.value
            coalescer.scheduled = false
            context.flush()
        }
    }
}
