import NIOCore
import NIOHTTP1
import NIOPosix

/// `qemubox metrics --listen`: a small HTTP/1.1 server (swift-nio) answering `GET /metrics`
/// with a fresh scrape (`text/plain; version=0.0.4`), `/` with a pointer to it, anything
/// else 404 and other methods 405. Requests carry no body that matters: one above 64 KiB
/// closes the connection.
final class MetricsServer: Sendable {
    let channel: any Channel
    /// The bound address, `host:port`.
    let address: String

    private init(channel: any Channel, address: String) {
        self.channel = channel
        self.address = address
    }

    /// `HOST:PORT` (IPv6 hosts in brackets), or nil.
    static func parse(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    static func start(host: String, port: Int, collector: MetricsCollector) async throws -> MetricsServer {
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 64)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                        channel.pipeline.addHandler(Handler(collector: collector))
                    }
                }
                .bind(host: host, port: port).get()
        } catch {
            throw OperatorError(.system, "cannot listen on \(host):\(port): \(error)")
        }
        let bound = channel.localAddress.flatMap { address in address.port.map { (address.ipAddress ?? host, $0) } }
        let shown = bound.map { $0.0.contains(":") ? "[\($0.0)]:\($0.1)" : "\($0.0):\($0.1)" } ?? "\(host):\(port)"
        return MetricsServer(channel: channel, address: shown)
    }

    func close() async {
        try? await channel.close()
    }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        static let maxBody = 64 << 10

        let collector: MetricsCollector
        var head: HTTPRequestHead?
        var bodyBytes = 0

        init(collector: MetricsCollector) {
            self.collector = collector
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let request):
                head = request
                bodyBytes = 0
            case .body(let chunk):
                bodyBytes += chunk.readableBytes
                if bodyBytes > Self.maxBody { context.close(promise: nil) }
            case .end:
                guard let request = head else { return }
                head = nil
                respond(to: request, context: context)
            }
        }

        func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
            let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
            guard request.method == .GET || request.method == .HEAD else {
                return send(.methodNotAllowed, "only GET\n", request: request, context: context)
            }
            switch path {
            case "/metrics":
                let loop = context.eventLoop
                let bound = NIOLoopBound((self, context), eventLoop: loop)
                let collector = self.collector
                Task {
                    let text = await collector.scrape()
                    loop.execute {
                        let (handler, context) = bound.value
                        handler.send(.ok, text, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                     request: request, context: context)
                    }
                }
            case "/":
                send(.ok, "qemubox metrics: /metrics\n", request: request, context: context)
            default:
                send(.notFound, "not found; try /metrics\n", request: request, context: context)
            }
        }

        func send(_ status: HTTPResponseStatus, _ body: String, contentType: String = "text/plain; charset=utf-8",
                  request: HTTPRequestHead, context: ChannelHandlerContext) {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            let keepAlive = request.isKeepAlive
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status,
                                                                 headers: headers))), promise: nil)
            if request.method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))),
                              promise: nil)
            }
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            let channel = context.channel
            if !keepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
        }
    }
}
