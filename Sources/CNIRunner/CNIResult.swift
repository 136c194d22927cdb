import Foundation

/// A CNI ADD result (specification 0.3.0 – 1.1.0), typed, with the plugin's JSON kept in
/// ``raw`` (passed on as `prevResult` and stored in the cache as received).
public struct CNIResult: Sendable, Hashable {
    /// An interface the plugin created or configured.
    public struct Interface: Sendable, Hashable, Codable {
        /// The interface name (`eth0`, `veth1234`, `cni0`).
        public var name: String
        /// The MAC address, if reported.
        public var mac: String?
        /// The MTU, if reported (1.1.0).
        public var mtu: Int?
        /// The namespace path it lives in; nil for interfaces on the host side.
        public var sandbox: String?

        /// Creates an interface description.
        public init(name: String, mac: String? = nil, mtu: Int? = nil, sandbox: String? = nil) {
            self.name = name
            self.mac = mac
            self.mtu = mtu
            self.sandbox = sandbox
        }
    }

    /// An IP address assigned to an interface.
    public struct IPConfig: Sendable, Hashable, Codable {
        /// The address with its prefix length, e.g. `10.88.0.5/16`.
        public var address: String
        /// The gateway, if any.
        public var gateway: String?
        /// Index into ``CNIResult/interfaces`` of the interface holding the address.
        public var interface: Int?

        /// Creates an IP configuration.
        public init(address: String, gateway: String? = nil, interface: Int? = nil) {
            self.address = address
            self.gateway = gateway
            self.interface = interface
        }

        /// 4 or 6.
        public var family: Int { address.contains(":") ? 6 : 4 }
    }

    /// A route to add in the container.
    public struct Route: Sendable, Hashable, Codable {
        /// The destination as CIDR, e.g. `0.0.0.0/0`.
        public var destination: String
        /// The next hop, or nil for the default gateway of the interface.
        public var gateway: String?
        /// Route MTU (1.1.0).
        public var mtu: Int?
        /// Advertised MSS (1.1.0).
        public var advmss: Int?
        /// Route priority / metric (1.1.0).
        public var priority: Int?

        /// Creates a route.
        public init(destination: String, gateway: String? = nil, mtu: Int? = nil, advmss: Int? = nil, priority: Int? = nil) {
            self.destination = destination
            self.gateway = gateway
            self.mtu = mtu
            self.advmss = advmss
            self.priority = priority
        }
    }

    /// DNS settings for the container's resolver.
    public struct DNS: Sendable, Hashable, Codable {
        /// Name server addresses.
        public var nameservers: [String]
        /// The local domain.
        public var domain: String?
        /// Search domains.
        public var search: [String]
        /// Resolver options.
        public var options: [String]

        /// Creates DNS settings.
        public init(nameservers: [String] = [], domain: String? = nil, search: [String] = [], options: [String] = []) {
            self.nameservers = nameservers
            self.domain = domain
            self.search = search
            self.options = options
        }

        /// Whether nothing is set.
        public var isEmpty: Bool { nameservers.isEmpty && domain == nil && search.isEmpty && options.isEmpty }
    }

    /// The specification version the result is written in.
    public var cniVersion: String
    /// Interfaces, referenced by index from ``ips``.
    public var interfaces: [Interface]
    /// Assigned addresses.
    public var ips: [IPConfig]
    /// Routes.
    public var routes: [Route]
    /// DNS settings (empty when the plugin reported none).
    public var dns: DNS
    /// The plugin's JSON as received.
    public var raw: Data

    /// Results larger than this are rejected.
    public static let maximumSize = 1 << 20

    /// Creates a result from parts; ``raw`` is left empty unless given.
    public init(cniVersion: String, interfaces: [Interface] = [], ips: [IPConfig] = [], routes: [Route] = [],
                dns: DNS = DNS(), raw: Data = Data()) {
        self.cniVersion = cniVersion
        self.interfaces = interfaces
        self.ips = ips
        self.routes = routes
        self.dns = dns
        self.raw = raw
    }

    /// The addresses on the interface living in `sandbox` (or on any sandboxed interface when nil).
    public func containerAddresses(sandbox: String? = nil) -> [IPConfig] {
        ips.filter { ip in
            guard let index = ip.interface, interfaces.indices.contains(index) else { return false }
            guard let box = interfaces[index].sandbox, !box.isEmpty else { return false }
            return sandbox == nil || box == sandbox
        }
    }
}
