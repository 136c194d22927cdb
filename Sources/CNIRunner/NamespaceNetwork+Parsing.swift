import Foundation

extension NamespaceNetwork {
    /// Parses `ip -json -details address show`.
    static func parseLinks(_ data: Data) throws -> [Link] {
        let items = try topLevelArray(data, "ip address")
        return try items.map { item in
            guard let object = item.objectValue, let name = object["ifname"]?.stringValue,
                  let index = object["ifindex"]?.intValue else {
                throw CNIError(.system, "ip address: entry without ifname/ifindex")
            }
            let flags = object["flags"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let addresses: [Address] = (object["addr_info"]?.arrayValue ?? []).compactMap { entry in
                guard let info = entry.objectValue, let family = info["family"]?.stringValue,
                      let local = info["local"]?.stringValue, let prefix = info["prefixlen"]?.intValue else { return nil }
                return Address(family: family == "inet6" ? 6 : 4, address: local, prefixLength: prefix,
                               scope: info["scope"]?.stringValue ?? "global")
            }
            return Link(name: name, index: index, mac: object["address"]?.stringValue ?? "",
                        mtu: object["mtu"]?.intValue ?? 0,
                        kind: object["linkinfo"]?.objectValue?["info_kind"]?.stringValue,
                        up: flags.contains("UP"), addresses: addresses)
        }
    }

    /// Parses `ip -json -4|-6 route show table main`, dropping non-unicast routes, IPv6
    /// multicast and the kernel's `fe80::/64`.
    static func parseRoutes(_ data: Data, family: Int) throws -> [Route] {
        let items = try topLevelArray(data, "ip route")
        var routes: [Route] = []
        for item in items {
            guard let object = item.objectValue, let destination = object["dst"]?.stringValue else {
                throw CNIError(.system, "ip route: entry without dst")
            }
            if let type = object["type"]?.stringValue, type != "unicast" { continue }
            var cidr: String
            if destination == "default" {
                cidr = family == 6 ? "::/0" : "0.0.0.0/0"
            } else if destination.contains("/") {
                cidr = destination
            } else {
                cidr = destination + (family == 6 ? "/128" : "/32")
            }
            if family == 6, cidr == "fe80::/64" || cidr.lowercased().hasPrefix("ff") { continue }
            if family == 4, cidr.hasPrefix("224.") { continue }
            cidr = cidr.lowercased()
            routes.append(Route(family: family, destination: cidr, gateway: object["gateway"]?.stringValue,
                                device: object["dev"]?.stringValue ?? "", metric: object["metric"]?.intValue,
                                scope: object["scope"]?.stringValue, protocol: object["protocol"]?.stringValue))
        }
        return routes
    }

    private static func topLevelArray(_ data: Data, _ what: String) throws -> [CNIJSON] {
        // `ip -json` prints nothing (not "[]") for an empty list on some versions.
        if data.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\n") }) { return [] }
        do {
            guard let array = try CNIJSON.parse(data).arrayValue else { throw CNIError(.system, "\(what): output is not a JSON array") }
            return array
        } catch let error as CNIJSONError {
            throw CNIError(.system, "\(what): \(error.description)")
        }
    }
}
