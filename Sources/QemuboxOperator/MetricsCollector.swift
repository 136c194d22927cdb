import Foundation
import Prometheus
import QemuboxAPI
import QemuboxKit
import QemuboxShim
import TTRPCCodec

/// `qemubox metrics`' scrape: every running VM's shim is asked for its metrics over its ttrpc
/// socket (`qemubox.shim.v1.Metrics/Scrape`), as Kata's monitor asks its shims, and the
/// answers are merged into one exposition with the shim's `namespace` and `id` labels, after
/// the host's own figures:
///
/// - `qemubox_vms`: running VMs (from `state_dir`, as `qemubox ps` finds them);
/// - `qemubox_shim_scrape_success{namespace, id}`: 1 when the shim answered in time, else 0;
/// - `qemubox_scrape_duration_seconds`: how long this scrape took;
/// - `qemubox_layer_cache_bytes`, `qemubox_layer_cache_images`: the EROFS layer cache.
///
/// Shims are asked two at a time, each within ``timeout``; an answer above
/// ``maxResponseBytes`` is refused by the ttrpc client.
struct MetricsCollector: Sendable {
    var stateDirectory: String
    var cacheDirectory: String
    var timeout: Duration = .seconds(5)
    static let maxResponseBytes = 4 << 20

    /// One scrape of the host, as Prometheus text.
    func scrape() async -> String {
        let started = ContinuousClock.now
        let vms = VMInventory(stateDirectory: stateDirectory).scan().vms
        var answers: [(RunningVM, String?)] = []
        await withTaskGroup(of: (Int, String?).self) { group in
            var next = 0
            func launch() {
                guard next < vms.count else { return }
                let index = next
                next += 1
                group.addTask { (index, await self.ask(vms[index])) }
            }
            launch()
            launch()
            var byIndex: [Int: String?] = [:]
            for await (index, text) in group {
                byIndex[index] = text
                launch()
            }
            answers = vms.indices.map { (vms[$0], byIndex[$0] ?? nil) }
        }

        let host = PrometheusCollectorRegistry()
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
            host.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
        }
        gauge("qemubox_vms", "running qemubox VMs on this host").set(Double(vms.count))
        for (vm, text) in answers {
            gauge("qemubox_shim_scrape_success", "whether the VM's shim answered the scrape",
                  [("namespace", vm.namespace), ("id", vm.id)]).set(text == nil ? 0.0 : 1.0)
        }
        let images = LayerCacheReport(directory: cacheDirectory).list()
        gauge("qemubox_layer_cache_bytes", "disk the EROFS layer cache takes")
            .set(Double(images.reduce(0) { $0 + $1.allocatedBytes }))
        gauge("qemubox_layer_cache_images", "EROFS images in the layer cache").set(Double(images.count))

        var merged = PrometheusExposition()
        for (vm, text) in answers {
            guard let text else { continue }
            merged.add(text[...], labels: [("namespace", vm.namespace), ("id", vm.id)])
        }
        gauge("qemubox_scrape_duration_seconds", "how long this scrape of the host took")
            .set(Double((ContinuousClock.now - started) / .milliseconds(1)) / 1000)
        return host.emitToString() + merged.text
    }

    /// The shim's metrics text, or nil when it does not answer in time.
    func ask(_ vm: RunningVM) async -> String? {
        guard let socket = vm.shimSocket else { return nil }
        var configuration = TTRPCClient.Configuration()
        configuration.maxMessageSize = Self.maxResponseBytes
        configuration.defaultTimeout = timeout
        guard let client = try? await TTRPCClient.connect(unixDomainSocketPath: socket,
                                                          configuration: configuration) else { return nil }
        let response = try? await QemuboxShimV1MetricsClient(client).scrape(Qemubox_Shim_V1_ScrapeRequest(),
                                                                          options: .init(timeout: timeout))
        try? await client.close()
        return response?.text
    }
}
