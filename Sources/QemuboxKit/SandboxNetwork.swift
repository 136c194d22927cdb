import CNIRunner
import Foundation

/// Where a VM's network comes from and the NICs it is booted with.
///
/// QEMU runs in the container's network namespace (so `/proc/<QEMU pid>/ns/net`
/// is that namespace, for containerd and CNI alike) and creates one TAP per NIC
/// there — except in a spare VM taken by a container whose namespace exists by path:
/// its TAPs move there and QEMU stays in its own (``Sandbox/movingNetwork(into:nics:)``).
/// ``Sandbox/attachNetwork()`` later joins each TAP to one interface CNI
/// put into the namespace (tc mirred, both directions) and hands that interface's
/// name, MAC, MTU, addresses and routes to the guest, so the container sees what
/// it would see under runc. No CNI plugin knows about qemubox.
public struct SandboxNetwork: Sendable, Hashable {
    /// The namespace QEMU runs in.
    public enum Namespace: Sendable, Hashable {
        /// An existing namespace file: CRI's pod namespace, or one the shim made and ran CNI in.
        case path(String)
        /// A new, empty namespace of QEMU's own, filled after the VM started
        /// (containerd runs CNI on `/proc/<pid>/ns/net` between Create and Start).
        case new
    }

    /// One NIC of the VM.
    public struct Slot: Sendable, Hashable {
        /// Netdev id (`net0`, …).
        public var id: String
        /// The TAP QEMU creates in the namespace.
        public var tap: String
        /// The MAC the virtio-net device is created with.
        public var mac: String
    }

    /// The namespace.
    public var namespace: Namespace
    /// The NICs, in order.
    public var slots: [Slot]

    /// TAP names start with this; interfaces so named are never taken for CNI's.
    public static let tapPrefix = "qbxtap"

    /// NIC `index`: netdev `net<index>`, TAP `qbxtap<index>`, and a fixed, locally
    /// administered device MAC (`02:51:42:00:00:<index>`). Every VM's NIC `index` has the same
    /// device MAC, so a warm-start template's NICs are every clone's; the guest takes the
    /// namespace interface's own MAC over when the network is attached.
    public static func slot(_ index: Int) -> Slot {
        Slot(id: "net\(index)", tap: "\(tapPrefix)\(index)", mac: String(format: "02:51:42:00:00:%02x", index))
    }

    /// A VM for a namespace that already holds its interfaces (CNI ran before the VM
    /// started, or CRI made the pod's namespace): one NIC per interface other than loopback.
    public static func existing(path: String) async throws -> SandboxNetwork {
        let links: [NamespaceNetwork.Link]
        do {
            links = try await NamespaceNetwork.links(in: path)
        } catch {
            throw QemuboxError(.network, "cannot read the interfaces of the network namespace \(path): \(error)")
        }
        let count = Self.candidates(links).count
        guard count <= maximumSlots else {
            throw QemuboxError(.network, "the network namespace \(path) has \(count) interfaces; at most \(maximumSlots) are supported")
        }
        return SandboxNetwork(namespace: .path(path), slots: (0..<count).map(slot))
    }

    /// A VM in a new, empty namespace of its own with `count` NICs for the interfaces
    /// containerd's CNI adds after Create.
    public static func new(slots count: Int) -> SandboxNetwork {
        SandboxNetwork(namespace: .new, slots: (0..<min(count, maximumSlots)).map(slot))
    }

    /// At most this many NICs per VM.
    public static let maximumSlots = 8

    /// The interfaces CNI made: everything but loopback, TUN/TAP devices and qemubox's own TAPs, by name.
    static func candidates(_ links: [NamespaceNetwork.Link]) -> [NamespaceNetwork.Link] {
        links.filter { link in
            link.name != "lo" && !link.name.hasPrefix(tapPrefix) && link.kind != "tun"
        }.sorted { $0.name < $1.name }
    }

    /// The NICs as QEMU devices (`vhost` where the host has a usable `/dev/vhost-net`).
    func nics(vhost: Bool) -> [NIC] {
        slots.map { NIC(id: $0.id, mac: $0.mac, backend: .tapName($0.tap), vhost: vhost) }
    }

    /// `count` NICs connected to nothing, for a warm-start template (its clones attach TAPs in their place).
    static func placeholderNICs(_ count: Int) -> [NIC] {
        (0..<count).map { index in
            let slot = slot(index)
            return NIC(id: slot.id, mac: slot.mac, backend: .disconnected)
        }
    }

    /// Whether `/dev/vhost-net` can be opened read-write here.
    public static var vhostNetUsable: Bool {
        let fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }
}
