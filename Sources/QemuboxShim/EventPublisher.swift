import Foundation
import Logging
import NIOConcurrencyHelpers
import QemuboxAPI
import SwiftProtobuf
import TTRPCCodec

/// Publishes task events to containerd's events service (`TTRPC_ADDRESS`,
/// `containerd.services.events.ttrpc.v1.Events/Forward`), in order, one at a
/// time. A failed forward reconnects and retries with backoff for up to
/// `retryWindow` (containerd may be restarting), then the event is dropped
/// with an error in the log.
public final class EventPublisher: Sendable {
    private let address: String
    private let namespace: String
    private let logger: Logger
    private let retryWindow: Duration
    private let queue: AsyncStream<Containerd_Services_Events_Ttrpc_V1_ForwardRequest>.Continuation
    private let worker: NIOLockedValueBox<Task<Void, Never>?> = NIOLockedValueBox(nil)
    private let pending = NIOLockedValueBox(0)

    /// Creates a publisher; `address` is containerd's ttrpc socket (`unix://` prefix optional).
    public init(address: String, namespace: String, retryWindow: Duration = .seconds(30),
                logger: Logger = Logger(label: "qemubox.shim.events")) {
        self.address = address.hasPrefix("unix://") ? String(address.dropFirst("unix://".count)) : address
        self.namespace = namespace
        self.logger = logger
        self.retryWindow = retryWindow
        let (stream, continuation) = AsyncStream<Containerd_Services_Events_Ttrpc_V1_ForwardRequest>.makeStream()
        self.queue = continuation
        let task = Task { [address = self.address, logger, retryWindow, pending] in
            var client: TTRPCClient?
            for await request in stream {
                let deadline = ContinuousClock.now + retryWindow
                var delay = Duration.milliseconds(50)
                while true {
                    do {
                        if client == nil { client = try await TTRPCClient.connect(unixDomainSocketPath: address) }
                        guard let connected = client else { break }
                        _ = try await ContainerdServicesEventsTtrpcV1EventsClient(connected)
                            .forward(request, options: .init(timeout: .seconds(10)))
                        logger.debug("published \(request.envelope.topic)")
                        break
                    } catch {
                        try? await client?.close()
                        client = nil
                        if ContinuousClock.now > deadline || address.isEmpty {
                            logger.error("dropping event \(request.envelope.topic): \(error)")
                            break
                        }
                        try? await Task.sleep(for: delay)
                        delay = min(delay * 2, .seconds(2))
                    }
                }
                pending.withLockedValue { $0 -= 1 }
            }
            try? await client?.close()
        }
        worker.withLockedValue { $0 = task }
    }

    /// Queues an event (containerd's `TaskExit`, `TaskCreate`, …).
    public func publish(_ event: some SwiftProtobuf.Message) {
        do {
            let request = try ContainerdEvent.forwardRequest(namespace: namespace, event: event)
            pending.withLockedValue { $0 += 1 }
            queue.yield(request)
        } catch {
            logger.error("cannot encode event \(type(of: event)): \(error)")
        }
    }

    /// Waits until every queued event was forwarded or dropped (at most `timeout`).
    public func flush(timeout: Duration = .seconds(10)) async {
        let deadline = ContinuousClock.now + timeout
        while pending.withLockedValue({ $0 }) > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Stops the publisher after the queue drained (bounded by `timeout`).
    public func close(timeout: Duration = .seconds(10)) async {
        await flush(timeout: timeout)
        queue.finish()
        worker.withLockedValue { $0 }?.cancel()
    }
}
