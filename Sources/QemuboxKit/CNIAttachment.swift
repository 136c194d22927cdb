import CNIRunner
import Foundation
import Logging

/// Networks qemubox attaches itself (`[network] networks` in the configuration):
/// a named network namespace made for the container, the CNI chains run in it
/// (one interface each: eth0, eth1, …) and what it takes to undo that later, also
/// from another process after a crash (it is `Codable` for the shim's record).
public struct CNIAttachment: Codable, Sendable, Hashable {
    /// One network: its conflist name and the interface it made.
    public struct Network: Codable, Sendable, Hashable {
        /// The conflist's `name`.
        public var name: String
        /// CNI_IFNAME.
        public var interface: String
    }

    /// The namespace file (`/run/netns/NAME`).
    public var namespacePath: String
    /// CNI_CONTAINERID.
    public var containerID: String
    /// The networks added so far, in order.
    public var networks: [Network]
    /// The CNI result cache (DEL reads the cached result and configuration from there).
    public var cacheDirectory: String
    /// CNI_PATH.
    public var binaryDirectories: [String]
    /// A resolv.conf rendered from the first result that names DNS servers (nil: none did).
    public var resolvConf: String?
    /// The container's addresses from every result (without prefix length), in order.
    public var addresses: [String] = []

    /// Makes the namespace `/run/netns/<namespaceName>` (with `pinning`: names that existing
    /// namespace so, see ``NetworkNamespace/create(name:pinning:)``) and runs every configured
    /// network's ADD in it. `record` is called with what exists so far before each
    /// step that creates something, so a crash leaves enough to clean up. On failure,
    /// everything made so far is undone and the error names the network.
    public static func attach(_ settings: NetworkSettings, containerID: String, namespaceName: String,
                              pinning existing: String? = nil,
                              logger: Logger, record: (CNIAttachment) throws -> Void) async throws -> CNIAttachment {
        var attachment = CNIAttachment(namespacePath: "/run/netns/" + namespaceName, containerID: containerID,
                                       networks: [], cacheDirectory: settings.cacheDirectory,
                                       binaryDirectories: settings.binaryDirectories)
        try record(attachment)
        do {
            do {
                _ = try NetworkNamespace.create(name: namespaceName, pinning: existing)
            } catch where existing != nil {
                // The namespace to name is gone (its process ended meanwhile): a new one then.
                logger.warning("cannot name the network namespace \(existing ?? ""), making a new one: \(error)")
                _ = try NetworkNamespace.create(name: namespaceName)
            }
        } catch {
            throw QemuboxError(.network, "cannot create the network namespace \(namespaceName): \(error)")
        }
        let runner = attachment.runner(logger: logger)
        do {
            for (index, name) in settings.networks.enumerated() {
                let list: CNINetworkList
                do {
                    list = try CNINetworkList.load(directory: settings.configurationDirectory, name: name)
                } catch {
                    throw QemuboxError(.network, "network \(name) in \(settings.configurationDirectory): \(error)")
                }
                let network = Network(name: list.name, interface: "eth\(index)")
                attachment.networks.append(network)
                try record(attachment)
                do {
                    let result = try await runner.add(list, attachment.runtimeConfig(network))
                    if attachment.resolvConf == nil { attachment.resolvConf = Self.resolvConf(result.dns) }
                    attachment.addresses += result.containerAddresses().compactMap {
                        $0.address.split(separator: "/").first.map(String.init)
                    }
                    logger.info("CNI \(list.name) added", metadata: [
                        "interface": "\(network.interface)", "ips": "\(result.ips.map(\.address))"])
                } catch {
                    throw QemuboxError(.network, "CNI ADD of network \(name) failed: \(error)")
                }
            }
        } catch {
            await attachment.detach(logger: logger)
            throw error
        }
        return attachment
    }

    /// Runs DEL for every network (from the cache, in reverse order) and removes the
    /// namespace. Idempotent; failures are logged, and the namespace goes regardless.
    public func detach(logger: Logger) async {
        let runner = runner(logger: logger)
        for network in networks.reversed() {
            do {
                try await runner.deleteCached(containerID: containerID, interfaceName: network.interface)
            } catch {
                logger.warning("CNI DEL of network \(network.name) (\(network.interface)) failed: \(error)")
            }
        }
        do {
            try NetworkNamespace.remove(path: namespacePath)
        } catch {
            logger.warning("cannot remove the network namespace \(namespacePath): \(error)")
        }
    }

    /// resolv.conf text for a CNI result's DNS (nil without nameservers).
    static func resolvConf(_ dns: CNIResult.DNS) -> String? {
        let clean = { (s: String) in !s.isEmpty && !s.contains { $0 == "\n" || $0 == "\r" || $0 == "\0" } }
        let servers = dns.nameservers.filter(clean)
        guard !servers.isEmpty else { return nil }
        var text = servers.map { "nameserver \($0)\n" }.joined()
        let search = (dns.domain.map { [$0] } ?? []) + dns.search
        if !search.filter(clean).isEmpty { text += "search \(search.filter(clean).joined(separator: " "))\n" }
        if !dns.options.filter(clean).isEmpty { text += "options \(dns.options.filter(clean).joined(separator: " "))\n" }
        return text
    }

    func runner(logger: Logger) -> CNIRunner {
        CNIRunner(binDirectories: binaryDirectories, cacheDirectory: cacheDirectory, logger: logger)
    }

    func runtimeConfig(_ network: Network) -> CNIRuntimeConfig {
        CNIRuntimeConfig(containerID: containerID, networkNamespace: namespacePath, interfaceName: network.interface)
    }
}
