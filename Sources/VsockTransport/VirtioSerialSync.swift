import NIOCore

/// The resynchronisation preamble of a virtio-serial connection.
///
/// A virtio-serial port outlives host connections: bytes the guest wrote for
/// the previous connection (before it noticed the disconnect) wait in QEMU and
/// reach the next one. So on every new connection the guest first writes this
/// 16-byte marker, and the host discards everything up to and including it
/// before the yamux session starts.
enum VirtioSerialSync {
    static let marker: [UInt8] = Array("qemubox-sync-v1\n".utf8)
}

/// Host side: drops inbound bytes until the sync marker, then passes everything
/// through, and completes `synced`. Refuses more than `limit` stale bytes.
final class VirtioSerialSyncHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let synced: EventLoopPromise<Void>
    private var window: [UInt8] = []
    private var done = false
    private var discarded = 0
    private let limit: Int

    init(synced: EventLoopPromise<Void>, limit: Int = 64 * 1024 * 1024) {
        self.synced = synced
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if done {
            context.fireChannelRead(data)
            return
        }
        let marker = VirtioSerialSync.marker
        while let byte = buffer.readInteger(as: UInt8.self) {
            window.append(byte)
            if window.count > marker.count { window.removeFirst(window.count - marker.count) }
            discarded += 1
            if window == marker {
                done = true
                synced.succeed(())
                if buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
                return
            }
        }
        if discarded > limit {
            let error = VsockTransportError(.protocolError, "no sync marker in \(discarded) bytes from the guest")
            synced.fail(error)
            context.fireErrorCaught(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done { synced.fail(VsockTransportError(.sessionClosed, "the pipe closed before the guest's sync marker")) }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if !done { synced.fail(VsockTransportError(.sessionClosed, "sync handler removed")) }
    }
}
