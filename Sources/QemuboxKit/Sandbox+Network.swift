import CNIRunner
import Foundation
import QemuboxAPI

/// One namespace interface carried into the guest by ``Sandbox/attachNetwork()``.
public struct AttachedInterface: Sendable, Hashable {
    /// The interface's name (the container sees the same).
    public var name: String
    /// Its MAC (the guest's NIC takes it over).
    public var mac: String
    /// Its MTU.
    public var mtu: Int
    /// Its global addresses, CIDR.
    public var addresses: [String]
    /// The TAP joined to it.
    public var tap: String
}

extension Sandbox {
    /// The network namespace QEMU runs in (nil: the host's), as a path any process can open.
    public var networkNamespacePath: String? {
        get async {
            switch configuration.network?.namespace {
            case .path(let path): return path
            case .new:
                guard let pid = await vm.pid else { return nil }
                return "/proc/\(pid)/ns/net"
            case nil: return nil
            }
        }
    }

    /// Carries the interfaces of the VM's network namespace into the guest: each
    /// interface CNI made (everything but loopback and TAPs, by name) is joined to one
    /// NIC's TAP with tc mirred redirection both ways, and the guest gives that NIC the
    /// interface's name, MAC, MTU and global addresses, then adds the namespace's
    /// routes through those interfaces. The interfaces keep their addresses on the host
    /// side (CNI CHECK finds them), but every frame they receive goes to the guest.
    ///
    /// Returns what was attached: empty when the namespace holds no interface yet (the
    /// container then has loopback only, as under runc with an empty namespace). More
    /// interfaces than NICs is an error that names both counts.
    @discardableResult
    public func attachNetwork() async throws -> [AttachedInterface] {
        guard let network = configuration.network, let path = await networkNamespacePath else { return [] }
        let interfaces: [NamespaceNetwork.Link]
        let routes: [NamespaceNetwork.Route]
        do {
            interfaces = SandboxNetwork.candidates(try await NamespaceNetwork.links(in: path))
            // An empty namespace (`ctr run` without --cni): nothing more to read or do.
            guard !interfaces.isEmpty else { return [] }
            routes = try await NamespaceNetwork.routes(in: path)
        } catch {
            throw QemuboxError(.network, "cannot read the network namespace \(path): \(error)")
        }
        guard interfaces.count <= network.slots.count else {
            throw QemuboxError(.network, "the network namespace \(path) has \(interfaces.count) interfaces "
                + "(\(interfaces.map(\.name).joined(separator: ", "))) but the VM has \(network.slots.count) NICs "
                + "(raise [network] nic_slots in the qemubox configuration)")
        }
        var attached: [AttachedInterface] = []
        var request = Qemubox_Guest_V1_ConfigureNetworkRequest()
        var step = "cannot join the namespace's interfaces to the VM's NICs in \(path)"
        do {
            for (interface, slot) in zip(interfaces, network.slots) {
                try await NamespaceNetwork.setLink(slot.tap, up: true, mtu: interface.mtu, in: path)
                try await NamespaceNetwork.redirect(interface.name, slot.tap, in: path)
                let addresses = interface.addresses
                    .filter { $0.scope == "global" }
                    .map { "\($0.address)/\($0.prefixLength)" }
                attached.append(AttachedInterface(name: interface.name, mac: interface.mac.lowercased(),
                                                  mtu: interface.mtu, addresses: addresses, tap: slot.tap))
                var nic = Qemubox_Guest_V1_NetworkInterface()
                nic.deviceMac = slot.mac
                nic.name = interface.name
                nic.mac = interface.mac.lowercased()
                nic.mtu = UInt32(clamping: interface.mtu)
                nic.addresses = addresses
                request.interfaces.append(nic)
            }
            let names = Set(attached.map(\.name))
            request.routes = routes.filter { names.contains($0.device) && $0.protocol != "kernel" }.map { route in
                var r = Qemubox_Guest_V1_NetworkRoute()
                r.destination = route.destination
                r.gateway = route.gateway ?? ""
                r.device = route.device
                r.metric = UInt32(clamping: route.metric ?? 0)
                return r
            }
            step = "the guest refused its network configuration"
            _ = try await agent.system.configureNetwork(request)
        } catch {
            await detachNetwork(attached)
            throw QemuboxError(.network, "\(step): \(error)")
        }
        return attached
    }

    /// This VM with its first `count` NICs in the namespace at `path` instead of its own:
    /// their TAPs move there (QEMU keeps its descriptors, so the NICs stay connected) and
    /// the returned sandbox's ``SandboxConfiguration/network`` names `path` with those NICs
    /// (when `path` is the VM's own namespace under a name, the TAPs stay where they are),
    /// for ``attachNetwork()``. Only a VM started in a new namespace of its own with at least
    /// `count` NICs can move (a spare taken by a container whose namespace exists: CRI's
    /// pod namespace, or one the pod made for its CNI networks). The rest of its NICs stay
    /// behind, unconnected. Use the returned sandbox from then on.
    func movingNetwork(into path: String, nics count: Int) async throws -> Sandbox {
        guard let network = configuration.network, network.namespace == .new, count <= network.slots.count,
              let own = await networkNamespacePath else {
            throw QemuboxError(.failedPrecondition,
                "the VM \(configuration.name) cannot move \(count) NICs into \(path): it has no namespace of its own with as many")
        }
        let moving = Array(network.slots.prefix(count))
        do {
            // Into its own namespace under another name (the pod named it for its CNI networks) the kernel moves nothing.
            for slot in moving { try await NamespaceNetwork.moveLink(slot.tap, to: path, in: own) }
        } catch {
            throw QemuboxError(.network, "cannot move the VM \(configuration.name)'s NICs into \(path): \(error)")
        }
        var moved = configuration
        moved.network = SandboxNetwork(namespace: .path(path), slots: moving)
        return Sandbox(vm: vm, agent: agent, configuration: moved)
    }

    /// Takes the tc redirection off interfaces ``attachNetwork()`` joined to this VM's NICs,
    /// for a namespace that outlives the VM (CRI's pod namespace); best effort.
    public func detachNetwork(_ attached: [AttachedInterface]) async {
        guard let path = await networkNamespacePath else { return }
        for each in attached { try? await NamespaceNetwork.removeRedirect(each.name, in: path) }
    }
}
