import Foundation
import Logging
import OCISpec
import QemuboxKit

extension ShimTaskService {
    /// How the VM of a new task gets its network, from the spec's network namespace:
    /// - a path (CRI's pod namespace): QEMU joins it and its interfaces become NICs now;
    /// - no path, with `[network] networks` configured: the shim makes a namespace, runs
    ///   those CNI networks in it (recorded for `delete` after a crash), NICs now;
    /// - no path otherwise: QEMU gets a new namespace of its own with `nic_slots` NICs, and
    ///   whatever containerd's CNI puts there by Start (`ctr run --cni`) is attached then;
    /// - no network namespace (host networking under runc): no NIC, loopback only, and
    ///   QEMU stays in the shim's namespace.
    struct NetworkPlan {
        var network: SandboxNetwork?
        var attachment: CNIAttachment?
        var attachAtStart = false
    }

    func networkPlan(_ spec: RuntimeSpec, id: String, record: inout ShimRecord) async throws -> NetworkPlan {
        guard let entry = spec.linux?.namespaces?.first(where: { $0.type == .network }) else {
            return NetworkPlan()
        }
        if let path = entry.path, !path.isEmpty {
            return NetworkPlan(network: try await SandboxNetwork.existing(path: path))
        }
        let settings = context.configuration.network
        guard !settings.networks.isEmpty else {
            return NetworkPlan(network: SandboxNetwork.new(slots: settings.nicSlots), attachAtStart: true)
        }
        let paths = context.paths
        var current = record
        let attachment = try await CNIAttachment.attach(
            settings, containerID: "\(context.namespace)-\(id)",
            namespaceName: Self.namespaceName(namespace: context.namespace, id: id), logger: logger
        ) { attachment in
            current.network = attachment
            try current.write(to: paths)
        }
        record = current
        return NetworkPlan(network: try await SandboxNetwork.existing(path: attachment.namespacePath),
                           attachment: attachment)
    }

    /// The name of the namespace the shim makes for a task (`/run/netns/qbx-<digest>`).
    static func namespaceName(namespace: String, id: String) -> String {
        "qbx-" + String(EROFSLayerCacheKey.digest(namespace + "/" + id).prefix(16))
    }
}
