import Logging
#if OTLP
import OTel
#endif
import QemuboxKit
import ServiceLifecycle
import Tracing

/// The shim's traces: when `[tracing]` (or the OTel environment) names an OTLP/HTTP endpoint,
/// swift-otel is bootstrapped as swift-distributed-tracing's tracer: the ttrpc server then
/// opens a span per Task API call (parent: the `traceparent` containerd sent, if any), the
/// Pod's phases nest under it, calls to the guest carry `traceparent`, and the spans the guest
/// recorded come back on its event stream and are replayed here (``GuestSpanReplay``), so one
/// trace holds shim and guest. Off, nothing is bootstrapped: no spans, no exporter.
final class ShimTracing: Sendable {
    private let group: ServiceGroup
    private let running: Task<Void, Never>

    private init(group: ServiceGroup, running: Task<Void, Never>) {
        self.group = group
        self.running = running
    }

    /// Bootstraps tracing when `settings` enable it; nil when off (or when the exporter cannot
    /// be made: logged, the shim runs untraced).
    static func bootstrap(_ settings: TracingSettings, logger: Logger) -> ShimTracing? {
        guard settings.enabled() else { return nil }
        #if OTLP
        var configuration = OTel.Configuration.default
        configuration.serviceName = "qemubox-shim"
        configuration.diagnosticLogger = .custom(logger)
        configuration.diagnosticLogLevel = .warning
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        configuration.traces.sampler = .parentBasedAlwaysOn
        // The shim is short-lived: export soon, and all of it at shutdown.
        configuration.traces.batchSpanProcessor.scheduleDelay = .seconds(1)
        if let endpoint = settings.endpoint {
            configuration.traces.otlpExporter.endpoint = endpoint.hasSuffix("/v1/traces") ? endpoint
                : (endpoint.hasSuffix("/") ? endpoint + "v1/traces" : endpoint + "/v1/traces")
        }
        configuration.traces.otlpExporter.protocol = settings.encoding == .json ? .httpJSON : .httpProtobuf
        do {
            let backend = try OTel.makeTracingBackend(configuration: configuration)
            InstrumentationSystem.bootstrap(backend.factory)
            let group = ServiceGroup(services: [backend.service], gracefulShutdownSignals: [],
                                     cancellationSignals: [], logger: logger)
            let running = Task { do { try await group.run() } catch { logger.warning("tracing exporter ended: \(error)") } }
            logger.info("tracing on", metadata: ["endpoint": "\(configuration.traces.otlpExporter.endpoint)",
                                                 "protocol": "\(settings.encoding.rawValue)"])
            return ShimTracing(group: group, running: running)
        } catch {
            logger.warning("tracing off: \(error)")
            return nil
        }
        #else
        logger.warning("tracing off: this shim was built without the OTLP trait")
        return nil
        #endif
    }

    /// Exports what is left and stops, within `timeout`.
    func shutdown(timeout: Duration) async {
        await group.triggerGracefulShutdown()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.running.value }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        running.cancel()
    }
}
