import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension CNIResult {
    /// Parses a plugin's ADD output. `source` names the plugin (and network) in errors.
    ///
    /// Accepts results of specification 0.3.0, 0.3.1, 0.4.0 (`ips[].version`), 1.0.0 and 1.1.0.
    /// Anything else — invalid JSON, wrong types, missing `cniVersion`, a 0.1/0.2-style
    /// result, addresses that are not addresses — is a ``CNIError`` with code
    /// ``CNIError/Code/invalidResult``.
    public static func parse(_ data: Data, source: String) throws -> CNIResult {
        func fail(_ why: String) -> CNIError { CNIError(.invalidResult, "\(source): invalid result: \(why)") }
        guard data.count <= maximumSize else { throw fail("larger than \(maximumSize) bytes") }
        let json: CNIJSON
        do {
            json = try CNIJSON.parse(data)
        } catch {
            throw fail(error.description)
        }
        guard let object = json.objectValue else { throw fail("top level is a JSON \(json.typeName), not an object") }
        let reader = FieldReader(fail: fail)
        guard let version = try reader.string(object, "cniVersion", at: "") else { throw fail("missing \"cniVersion\"") }
        if version.hasPrefix("0.1.") || version.hasPrefix("0.2.") || object["ip4"] != nil || object["ip6"] != nil {
            throw fail("cniVersion \"\(version.prefix(20))\" (0.1/0.2 ip4/ip6 form) is not supported; plugins must speak 0.3.0 or later")
        }
        guard CNINetworkList.supportedVersions.contains(version) else {
            throw fail("unsupported cniVersion \"\(version.prefix(20))\"")
        }
        let legacy = version.hasPrefix("0.")

        var result = CNIResult(cniVersion: version, raw: data)
        for (index, element) in try reader.array(object, "interfaces", at: "").enumerated() {
            let path = "interfaces[\(index)]"
            let item = try reader.object(element, at: path)
            guard let name = try reader.string(item, "name", at: path), !name.isEmpty else {
                throw fail("\(path) has no \"name\"")
            }
            result.interfaces.append(Interface(name: name, mac: try reader.string(item, "mac", at: path),
                                               mtu: try reader.int(item, "mtu", at: path),
                                               sandbox: try reader.string(item, "sandbox", at: path)))
        }
        for (index, element) in try reader.array(object, "ips", at: "").enumerated() {
            let path = "ips[\(index)]"
            let item = try reader.object(element, at: path)
            guard let address = try reader.string(item, "address", at: path) else { throw fail("\(path) has no \"address\"") }
            guard IPText.isCIDR(address) else { throw fail("\(path).address \"\(address.prefix(60))\" is not an address/prefix") }
            let gateway = try reader.string(item, "gateway", at: path)
            if let gateway, !IPText.isAddress(gateway) { throw fail("\(path).gateway \"\(gateway.prefix(60))\" is not an IP address") }
            let interface = try reader.int(item, "interface", at: path)
            if let interface, !result.interfaces.indices.contains(interface) {
                throw fail("\(path).interface \(interface) is not an index into interfaces (\(result.interfaces.count))")
            }
            if legacy, let family = try reader.string(item, "version", at: path) {
                let actual = address.contains(":") ? "6" : "4"
                guard family == actual else { throw fail("\(path).version \"\(family.prefix(8))\" does not match address \(address)") }
            }
            result.ips.append(IPConfig(address: address, gateway: gateway, interface: interface))
        }
        for (index, element) in try reader.array(object, "routes", at: "").enumerated() {
            let path = "routes[\(index)]"
            let item = try reader.object(element, at: path)
            guard let destination = try reader.string(item, "dst", at: path) else { throw fail("\(path) has no \"dst\"") }
            guard IPText.isCIDR(destination) else { throw fail("\(path).dst \"\(destination.prefix(60))\" is not an address/prefix") }
            let gateway = try reader.string(item, "gw", at: path)
            if let gateway, !IPText.isAddress(gateway) { throw fail("\(path).gw \"\(gateway.prefix(60))\" is not an IP address") }
            result.routes.append(Route(destination: destination, gateway: gateway, mtu: try reader.int(item, "mtu", at: path),
                                       advmss: try reader.int(item, "advmss", at: path),
                                       priority: try reader.int(item, "priority", at: path)))
        }
        if let dnsValue = object["dns"], dnsValue != .null {
            let dns = try reader.object(dnsValue, at: "dns")
            result.dns = DNS(nameservers: try reader.strings(dns, "nameservers", at: "dns"),
                             domain: try reader.string(dns, "domain", at: "dns"),
                             search: try reader.strings(dns, "search", at: "dns"),
                             options: try reader.strings(dns, "options", at: "dns"))
        }
        return result
    }

    /// The parsed JSON of ``raw`` (for `prevResult`); nil if it is empty or not an object.
    var rawJSON: CNIJSON? {
        guard !raw.isEmpty, let json = try? CNIJSON.parse(raw), json.objectValue != nil else { return nil }
        return json
    }
}

/// Type-checked field access with error messages naming the JSON path.
private struct FieldReader {
    let fail: (String) -> CNIError

    func object(_ value: CNIJSON, at path: String) throws -> [String: CNIJSON] {
        guard let object = value.objectValue else { throw fail("\(path) is a \(value.typeName), not an object") }
        return object
    }

    func name(_ path: String, _ key: String) -> String { path.isEmpty ? "\"\(key)\"" : "\(path).\(key)" }

    func string(_ object: [String: CNIJSON], _ key: String, at path: String) throws -> String? {
        guard let value = object[key], value != .null else { return nil }
        guard let text = value.stringValue else { throw fail("\(name(path, key)) is a \(value.typeName), not a string") }
        return text
    }

    func int(_ object: [String: CNIJSON], _ key: String, at path: String) throws -> Int? {
        guard let value = object[key], value != .null else { return nil }
        guard let number = value.intValue else { throw fail("\(name(path, key)) is a \(value.typeName), not an integer") }
        return number
    }

    func array(_ object: [String: CNIJSON], _ key: String, at path: String) throws -> [CNIJSON] {
        guard let value = object[key], value != .null else { return [] }
        guard let array = value.arrayValue else { throw fail("\(name(path, key)) is a \(value.typeName), not an array") }
        return array
    }

    func strings(_ object: [String: CNIJSON], _ key: String, at path: String) throws -> [String] {
        try array(object, key, at: path).enumerated().map { index, element in
            guard let text = element.stringValue else { throw fail("\(name(path, key))[\(index)] is a \(element.typeName), not a string") }
            return text
        }
    }
}

/// Textual IP address checks through inet_pton.
enum IPText {
    static func isAddress(_ text: String) -> Bool {
        guard text.utf8.count <= 64 else { return false }
        var buffer = [UInt8](repeating: 0, count: 16)
        return text.withCString { pointer in
            inet_pton(AF_INET, pointer, &buffer) == 1 || inet_pton(AF_INET6, pointer, &buffer) == 1
        }
    }

    static func isCIDR(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let prefix = Int(parts[1]), prefix >= 0 else { return false }
        let address = String(parts[0])
        guard isAddress(address) else { return false }
        return prefix <= (address.contains(":") ? 128 : 32)
    }
}
