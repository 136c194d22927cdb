import CoreMetrics
import Prometheus
import QemuboxAPI
import QemuboxKit
import TTRPCCodec

/// The shim's metrics. swift-metrics is bootstrapped with a Prometheus registry, so what
/// QemuboxKit reports (``SandboxMetrics``: VM starts) lands there; the Task API's calls are
/// counted and timed by ``instrument(_:)``; and the `qemubox.shim.v1.Metrics` service
/// (``service(pod:)``) renders all of it, with the VM's and its containers' figures of the
/// moment, for `qemubox metrics`, which adds the shim's namespace and id as labels.
///
/// - `qemubox_shim_requests_total{method, code}`: Task API calls by gRPC code;
/// - `qemubox_shim_request_duration_seconds{method}`: their latency (a histogram);
/// - `qemubox_vm_*` and `qemubox_container_*` gauges at scrape time (see ``render(_:)``).
public final class ShimMetrics: Sendable {
    /// Where the process's metrics are kept.
    public let registry: PrometheusCollectorRegistry

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Bootstraps swift-metrics with a Prometheus registry; once per process (the shim daemon).
    public static func bootstrap() -> ShimMetrics {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // From a warm create's tens of milliseconds to a cold boot under TCG's seconds.
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
            .seconds(30), .seconds(60),
        ]
        MetricsSystem.bootstrap(factory)
        return ShimMetrics(registry: registry)
    }

    /// `service` with each unary method counted by outcome and timed.
    public func instrument(_ service: TTRPCService) -> TTRPCService {
        var methods = service.methods
        for (name, method) in service.methods {
            guard case .unary(let handler) = method else { continue }
            methods[name] = .unary { payload, context in
                let started = ContinuousClock.now
                var code = TTRPCError.Code.ok
                defer {
                    // Made on first use (the registry hands back the same one): no series for uncalled methods.
                    CoreMetrics.Timer(label: "qemubox_shim_request_duration_seconds", dimensions: [("method", name)])
                        .recordNanoseconds(SandboxMetrics.nanoseconds(ContinuousClock.now - started))
                    CoreMetrics.Counter(label: "qemubox_shim_requests_total",
                                        dimensions: [("method", name), ("code", code.description)]).increment()
                }
                do {
                    return try await handler(payload, context)
                } catch {
                    code = TTRPCError.from(error).code
                    throw error
                }
            }
        }
        return TTRPCService(name: service.name, methods: methods)
    }

    /// The `qemubox.shim.v1.Metrics` service: the registry plus `pod`'s figures of the moment.
    public func service(pod: @escaping @Sendable () async -> PodMetrics?) -> TTRPCService {
        Scraper(metrics: self, pod: pod).ttrpcService
    }

    struct Scraper: QemuboxShimV1MetricsService {
        let metrics: ShimMetrics
        let pod: @Sendable () async -> PodMetrics?

        func scrape(_: Qemubox_Shim_V1_ScrapeRequest, context _: TTRPCRequestContext) async throws
            -> Qemubox_Shim_V1_ScrapeResponse
        {
            var response = Qemubox_Shim_V1_ScrapeResponse()
            response.text = metrics.registry.emitToString()
            if let pod = await pod() { response.text += ShimMetrics.render(pod) }
            return response
        }
    }

    /// A pod's figures as Prometheus gauges (a registry of their own, made per scrape, so a
    /// deleted container's series go with it).
    static func render(_ pod: PodMetrics) -> String {
        let registry = PrometheusCollectorRegistry()
        func gauge(_ name: String, _ help: String, _ value: Double, _ labels: [(String, String)] = []) {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help),
                               labels: labels).set(value)
        }
        if let vm = pod.vm {
            gauge("qemubox_vm_vcpus", "vCPUs plugged into the VM", Double(vm.vcpus))
            gauge("qemubox_vm_online_vcpus", "vCPUs the guest has online", Double(vm.onlineVcpus))
            gauge("qemubox_vm_max_vcpus", "the VM's vCPU hotplug ceiling", Double(vm.maxVcpus))
            gauge("qemubox_vm_memory_bytes", "the VM's memory: boot memory and what virtio-mem plugged",
                  Double(vm.memoryBytes))
            gauge("qemubox_vm_max_memory_bytes", "the VM's memory hotplug ceiling", Double(vm.maxMemoryBytes))
            gauge("qemubox_qemu_resident_bytes", "QEMU's resident set size (host /proc)", Double(vm.qemuRssBytes))
            gauge("qemubox_qemu_cpu_seconds", "QEMU's user and system CPU time since it started (host /proc)",
                  Double(vm.qemuCpuUsec) / 1e6)
        }
        for container in pod.containers {
            let labels = [("container", container.id)]
            gauge("qemubox_container_cpu_seconds", "CPU time the container's cgroup used in the guest",
                  Double(container.cpuMicroseconds) / 1e6, labels)
            gauge("qemubox_container_memory_bytes", "memory the container's cgroup charges in the guest",
                  Double(container.memoryBytes), labels)
            // cgroup v2 reports no limit as the largest value.
            gauge("qemubox_container_memory_limit_bytes", "the container's memory limit (0: none)",
                  container.memoryLimitBytes >= 1 << 62 ? 0 : Double(container.memoryLimitBytes), labels)
            gauge("qemubox_container_pids", "tasks in the container's cgroup", Double(container.pids), labels)
        }
        return registry.emitToString()
    }
}
