import Foundation

/// Reading and changing links inside a network namespace, through iproute2 (`ip -json`,
/// `tc`) run with `nsenter --net=PATH`. Every call runs child processes on a dedicated
/// thread (see ``CNIRunner``), bounded by ``toolTimeout``.
public enum NamespaceNetwork {
    /// A network interface.
    public struct Link: Sendable, Hashable {
        /// Interface name (`eth0`).
        public var name: String
        /// Interface index.
        public var index: Int
        /// MAC address (empty for links without one).
        public var mac: String
        /// MTU.
        public var mtu: Int
        /// The link kind from `linkinfo` (`veth`, `tun`, `bridge`, `dummy`…); nil for physical/loopback.
        public var kind: String?
        /// Whether the link is administratively up (`UP` flag).
        public var up: Bool
        /// Addresses on the link.
        public var addresses: [Address]
    }

    /// An address on a link.
    public struct Address: Sendable, Hashable {
        /// 4 or 6.
        public var family: Int
        /// The address without prefix (`10.88.0.5`).
        public var address: String
        /// The prefix length (16).
        public var prefixLength: Int
        /// `global`, `link` or `host`.
        public var scope: String

        /// `address/prefixLength`.
        public var cidr: String { "\(address)/\(prefixLength)" }
    }

    /// A route of the main table.
    public struct Route: Sendable, Hashable {
        /// 4 or 6.
        public var family: Int
        /// Destination as CIDR; the default route is `0.0.0.0/0` or `::/0`.
        public var destination: String
        /// Next hop, if any.
        public var gateway: String?
        /// Outgoing interface.
        public var device: String
        /// Metric, if set.
        public var metric: Int?
        /// Scope (`link`, `host`; nil means global).
        public var scope: String?
        /// Origin (`kernel`, `boot`, `static`…).
        public var `protocol`: String?
    }

    /// Time limit of one `ip`/`tc` invocation.
    public static let toolTimeout: Duration = .seconds(30)

    /// The links of the namespace at `netns` (a path such as `/run/netns/NAME`).
    public static func links(in netns: String) async throws -> [Link] {
        let output = try await run(netns, "ip", ["-json", "-details", "address", "show"])
        return try parseLinks(output)
    }

    /// The main table's IPv4 and IPv6 routes, without the kernel's `fe80::/64` link-local
    /// and multicast routes (and without local/broadcast routes, which live in other tables).
    public static func routes(in netns: String) async throws -> [Route] {
        let v4 = try await run(netns, "ip", ["-json", "-4", "route", "show", "table", "main"])
        let v6 = try await run(netns, "ip", ["-json", "-6", "route", "show", "table", "main"])
        return try parseRoutes(v4, family: 4) + parseRoutes(v6, family: 6)
    }

    /// Joins two links with tc: an ingress qdisc on each and a u32 match-all filter
    /// `action mirred egress redirect dev <other>` each way, so every frame arriving on one
    /// leaves through the other. Existing ingress qdiscs (and their filters) are replaced.
    public static func redirect(_ a: String, _ b: String, in netns: String) async throws {
        try validate(a)
        try validate(b)
        _ = try? await run(netns, "tc", ["-force", "-batch", "-"],
                           input: "qdisc del dev \(a) ingress\nqdisc del dev \(b) ingress\n")
        var batch = ""
        for (from, to) in [(a, b), (b, a)] {
            batch += "qdisc add dev \(from) ingress\n"
            batch += "filter add dev \(from) parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev \(to)\n"
        }
        _ = try await run(netns, "tc", ["-batch", "-"], input: batch)
    }

    /// Removes the ingress qdisc (and with it the redirect filters) from a link. A missing
    /// link or qdisc is fine.
    public static func removeRedirect(_ link: String, in netns: String) async throws {
        try validate(link)
        do {
            _ = try await run(netns, "tc", ["qdisc", "del", "dev", link, "ingress"])
        } catch let error as CNIError where error.code == .system {
            // Fine when the link or its ingress qdisc is gone; otherwise report the failure.
            guard let links = try? await links(in: netns) else { throw error }
            guard links.contains(where: { $0.name == link }) else { return }
            let qdiscs = try await run(netns, "tc", ["-json", "qdisc", "show", "dev", link])
            let kinds = (try? CNIJSON.parse(qdiscs).arrayValue)??.compactMap { $0.objectValue?["kind"]?.stringValue } ?? []
            if kinds.contains("ingress") { throw error }
        }
    }

    /// Sets a link up or down and/or its MTU (nil leaves that setting alone).
    public static func setLink(_ name: String, up: Bool?, mtu: Int?, in netns: String) async throws {
        try validate(name)
        var arguments = ["link", "set", "dev", name]
        if let up { arguments.append(up ? "up" : "down") }
        if let mtu {
            guard mtu > 0, mtu <= 65535 else { throw CNIError(.invalidConfiguration, "invalid MTU \(mtu) for \(name)") }
            arguments += ["mtu", String(mtu)]
        }
        guard arguments.count > 4 else { return }
        _ = try await run(netns, "ip", arguments)
    }

    /// Moves the link `name` from the namespace at `netns` into the one at `target` (both
    /// paths). A TUN/TAP device keeps its open file descriptors: frames written to them
    /// now leave in `target`. Into the namespace it is in (by another path) it stays, without
    /// an error (the kernel's no-op). A `target` that is not a network namespace is
    /// ``CNIError/Code/namespace``; a name already taken there is ``CNIError/Code/system``.
    public static func moveLink(_ name: String, to target: String, in netns: String) async throws {
        try validate(name)
        // iproute2 takes an argument with a slash as a path, anything else as a name under /run/netns.
        guard target.hasPrefix("/"), NetworkNamespace.exists(path: target) else {
            throw CNIError(.namespace, "\(target) is not a network namespace")
        }
        _ = try await run(netns, "ip", ["link", "set", "dev", name, "netns", target])
    }

    /// Runs `nsenter --net=NETNS -- TOOL ARGUMENTS` and returns stdout; failures are
    /// ``CNIError/Code/system`` with the tool's stderr, a missing namespace ``CNIError/Code/namespace``.
    static func run(_ netns: String, _ tool: String, _ arguments: [String], input: String = "") async throws -> Data {
        guard NetworkNamespace.exists(path: netns) else {
            throw CNIError(.namespace, "\(netns) is not a network namespace")
        }
        let nsenter = try Tools.path("nsenter")
        let toolPath = try Tools.path(tool)
        let output = try await ChildProcess.run(
            executable: nsenter, arguments: ["--net=\(netns)", "--", toolPath] + arguments,
            environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"], input: Data(input.utf8),
            timeout: toolTimeout, stdoutLimit: 16 << 20)
        let command = "\(tool) \(arguments.joined(separator: " ")) in \(netns)"
        switch output.stopReason {
        case .timeout?: throw CNIError(.timeout, "\(command) did not finish within \(toolTimeout)")
        case .cancelled?: throw CancellationError()
        case .outputTooLarge?: throw CNIError(.system, "\(command): output too large")
        case nil: break
        }
        guard output.exitStatus == 0 else {
            throw CNIError(.system, "\(command) failed with \(output.statusText): \(output.stderrText)")
        }
        return output.stdout
    }

    static func validate(_ name: String) throws {
        try CNIRuntimeConfig.validateInterfaceName(name)
    }
}
