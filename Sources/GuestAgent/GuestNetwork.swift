#if canImport(Glibc)
import Glibc
#endif
import CGuestAgentSupport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import QemuboxAPI

/// The guest's network, set with rtnetlink: loopback at boot, then the NICs the
/// host describes (`System/ConfigureNetwork`) before a container starts. The
/// container shares the VM's network namespace, so what is set here is what it sees.
enum GuestNetwork {
    /// A parsed `address/prefix`.
    struct CIDR: Equatable {
        var family: Int32
        var bytes: [UInt8]
        var prefixLength: Int

        /// Parses "10.0.0.2/24" or "fd00::2/64"; a bare address gets the full prefix.
        init(_ text: String) throws {
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let address = try GuestNetwork.parseAddress(String(parts[0]), what: "address '\(text)'")
            family = address.family
            bytes = address.bytes
            let full = bytes.count * 8
            if parts.count == 2 {
                guard let length = Int(parts[1]), length >= 0, length <= full else {
                    throw GuestAgentError(.invalidArgument, "bad prefix length in '\(text)'")
                }
                prefixLength = length
            } else {
                prefixLength = full
            }
        }
    }

    /// Parses an IPv4 or IPv6 address.
    static func parseAddress(_ text: String, what: String) throws -> (family: Int32, bytes: [UInt8]) {
        guard text.utf8.count <= 64 else { throw GuestAgentError(.invalidArgument, "\(what): too long") }
        var v4 = [UInt8](repeating: 0, count: 4)
        if inet_pton(AF_INET, text, &v4) == 1 { return (AF_INET, v4) }
        var v6 = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET6, text, &v6) == 1 { return (AF_INET6, v6) }
        throw GuestAgentError(.invalidArgument, "\(what): not an IP address")
    }

    /// Parses "52:54:00:12:34:56".
    static func parseMAC(_ text: String) throws -> [UInt8] {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let bytes = parts.compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
        guard parts.count == 6, bytes.count == 6 else {
            throw GuestAgentError(.invalidArgument, "bad MAC address '\(text)'")
        }
        return bytes
    }

    /// Whether `name` is a usable interface name (what the kernel's dev_valid_name admits, minus "lo").
    static func validName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return !bytes.isEmpty && bytes.count < 16 && name != "." && name != ".." && name != "lo"
            && !bytes.contains { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 32 || $0 >= 127 }
    }

    /// The links in `/sys/class/net`: name → (index, MAC).
    static func links(sysfs: String = "/sys/class/net") -> [String: (index: Int32, mac: String)] {
        var result: [String: (index: Int32, mac: String)] = [:]
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: sysfs) else { return result }
        for name in names {
            let read = { (file: String) in
                (try? String(contentsOfFile: "\(sysfs)/\(name)/\(file)", encoding: .utf8))?
                    .split(whereSeparator: { $0 == "\n" || $0 == " " }).first.map(String.init)
            }
            guard let index = read("ifindex").flatMap({ Int32($0) }), let mac = read("address") else { continue }
            result[name] = (index, mac.lowercased())
        }
        return result
    }

    /// Brings the loopback interface up (PID 1, at boot).
    static func bringUpLoopback() {
        guard let lo = links()["lo"] else {
            PID1.log("warning: no loopback interface")
            return
        }
        let err = qb_nl_link_set(lo.index, nil, nil, 0, 1)
        if err != 0 { PID1.log("warning: cannot bring lo up: \(String(cString: strerror(err)))") }
    }

    /// Applies a `ConfigureNetwork` request: every interface is found by its
    /// device MAC, set down, renamed (through a temporary name, so two NICs can
    /// swap names), given its MAC, MTU and addresses, and set up; then the routes
    /// are added. On failure the touched interfaces are set down again.
    static func configure(_ request: Qemubox_Guest_V1_ConfigureNetworkRequest) throws {
        guard request.interfaces.count <= 64, request.routes.count <= 1024 else {
            throw GuestAgentError(.invalidArgument, "too many interfaces or routes")
        }
        struct Plan {
            var index: Int32
            var name: String
            var mac: [UInt8]?
            var mtu: UInt32
            var addresses: [CIDR]
        }
        let present = links()
        var plans: [Plan] = []
        for interface in request.interfaces {
            let device = interface.deviceMac.lowercased()
            _ = try parseMAC(device)
            guard let link = present.values.first(where: { $0.mac == device }) else {
                throw GuestAgentError(.notFound, "no network device with MAC \(device)")
            }
            guard validName(interface.name) else {
                throw GuestAgentError(.invalidArgument, "bad interface name '\(interface.name)'")
            }
            guard !plans.contains(where: { $0.name == interface.name || $0.index == link.index }) else {
                throw GuestAgentError(.invalidArgument, "interface \(interface.name) (\(device)) named twice")
            }
            guard interface.mtu == 0 || (68...65535).contains(interface.mtu) else {
                throw GuestAgentError(.invalidArgument, "\(interface.name): MTU \(interface.mtu) out of range")
            }
            guard interface.addresses.count <= 256 else {
                throw GuestAgentError(.invalidArgument, "\(interface.name): too many addresses")
            }
            plans.append(Plan(index: link.index, name: interface.name,
                              mac: interface.mac.isEmpty ? nil : try parseMAC(interface.mac),
                              mtu: interface.mtu, addresses: try interface.addresses.map(CIDR.init)))
        }
        var touched: [Int32] = []
        do {
            for plan in plans {
                touched.append(plan.index)
                // Down first: the kernel refuses to rename a link that is up.
                try check(qb_nl_link_set(plan.index, nil, nil, 0, 0), "set link \(plan.index) down")
                try check(qb_nl_link_set(plan.index, "qbxtmp\(plan.index)", nil, 0, -1), "rename link \(plan.index)")
            }
            for plan in plans {
                let err: Int32 = if let mac = plan.mac {
                    mac.withUnsafeBufferPointer { qb_nl_link_set(plan.index, plan.name, $0.baseAddress, plan.mtu, -1) }
                } else {
                    qb_nl_link_set(plan.index, plan.name, nil, plan.mtu, -1)
                }
                try check(err, "configure \(plan.name)")
                // Announce the addresses when the link comes up: a restored clone
                // takes over an address another VM may have held.
                writeSysctl("net/ipv4/conf/\(plan.name)/arp_notify", "1")
                writeSysctl("net/ipv6/conf/\(plan.name)/ndisc_notify", "1")
                for address in plan.addresses {
                    let err = address.bytes.withUnsafeBufferPointer {
                        qb_nl_addr_add(plan.index, address.family, $0.baseAddress, Int32(address.prefixLength))
                    }
                    try check(err, "add an address to \(plan.name)")
                }
                try check(qb_nl_link_set(plan.index, nil, nil, 0, 1), "set \(plan.name) up")
            }
            let names = links()
            for route in request.routes {
                try addRoute(route, links: names)
            }
        } catch {
            for index in touched { _ = qb_nl_link_set(index, nil, nil, 0, 0) }
            throw error
        }
    }

    static func addRoute(_ route: Qemubox_Guest_V1_NetworkRoute,
                         links: [String: (index: Int32, mac: String)]) throws {
        let destination = try CIDR(route.destination)
        var index: Int32 = 0
        if !route.device.isEmpty {
            guard let link = links[route.device] else {
                throw GuestAgentError(.notFound, "route to \(route.destination): no interface \(route.device)")
            }
            index = link.index
        }
        var gateway: [UInt8]?
        if !route.gateway.isEmpty {
            let parsed = try parseAddress(route.gateway, what: "gateway of the route to \(route.destination)")
            guard parsed.family == destination.family else {
                throw GuestAgentError(.invalidArgument, "route to \(route.destination): gateway \(route.gateway) of another family")
            }
            gateway = parsed.bytes
        }
        guard gateway != nil || index != 0 else {
            throw GuestAgentError(.invalidArgument, "route to \(route.destination) has neither gateway nor device")
        }
        let err = destination.bytes.withUnsafeBufferPointer { dst in
            if let gateway {
                return gateway.withUnsafeBufferPointer { gw in
                    qb_nl_route_add(destination.family, dst.baseAddress, Int32(destination.prefixLength),
                                    gw.baseAddress, index, route.metric)
                }
            }
            return qb_nl_route_add(destination.family, dst.baseAddress, Int32(destination.prefixLength),
                                   nil, index, route.metric)
        }
        try check(err, "add the route to \(route.destination)")
    }

    static func check(_ err: Int32, _ what: String) throws {
        if err != 0 { throw GuestAgentError.system(what, errno: err) }
    }

    /// Best effort: a missing sysctl (IPv6 off) is not an error.
    static func writeSysctl(_ key: String, _ value: String) {
        let fd = open("/proc/sys/\(key)", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = value.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }
}
