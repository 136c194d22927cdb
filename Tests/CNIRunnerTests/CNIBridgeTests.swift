import Foundation
import Testing
import TestSupport
@testable import CNIRunner

/// The reference `bridge` + `host-local` (+ `portmap`) plugins, really run: plugins inside the
/// test's "host" namespace, the container side in a second test namespace.
@Suite("CNIRunner with the reference plugins", .enabled(if: CNIFixture.available))
struct CNIBridgeTests {
    @Test("ADD, CHECK, DEL with bridge + host-local (+ portmap at 1.0.0)", arguments: ["1.0.0", "0.4.0", "0.3.1"])
    func addCheckDelete(version: String) async throws {
        try await CNIFixture.withWorld { world in
            let portmap: [CNIJSON] = version == "1.0.0" ? [["type": "portmap", "capabilities": ["portMappings": true]]] : []
            let list = try world.bridgeList(version: version, extra: portmap)
            let runner = world.runner()
            var runtime = world.runtime()
            if version == "1.0.0" {
                runtime.capabilityArgs = ["portMappings": [["hostPort": 18080, "containerPort": 80, "protocol": "tcp"]]]
            }

            let result = try await runner.add(list, runtime)
            #expect(result.cniVersion == version)
            let address = try #require(result.containerAddresses(sandbox: world.container.path).first)
            #expect(address.address.hasPrefix("10.99.0."))
            #expect(address.gateway == "10.99.0.1")
            let ip = String(address.address.prefix { $0 != "/" })
            #expect(world.allocatedAddresses(network: "qbxnet") == [ip])

            // The container namespace has eth0 with the result's address and a default route.
            let links = try await NamespaceNetwork.links(in: world.container.path)
            let eth0 = try #require(links.first { $0.name == "eth0" })
            #expect(eth0.kind == "veth")
            #expect(eth0.up)
            #expect(eth0.addresses.contains { $0.cidr == address.address && $0.family == 4 })
            let routes = try await NamespaceNetwork.routes(in: world.container.path)
            #expect(routes.contains { $0.destination == "0.0.0.0/0" && $0.gateway == "10.99.0.1" && $0.device == "eth0" })
            #expect(!routes.contains { $0.destination == "fe80::/64" })
            // The bridge was made in the test's host namespace, not the real host's.
            let hostLinks = try await NamespaceNetwork.links(in: world.host.path)
            #expect(hostLinks.contains { $0.name == "qbxbr0" && $0.kind == "bridge" })

            // Traffic both ways between the namespaces.
            _ = try await CNIFixture.sh(world.host.path, ["busybox", "ping", "-c", "1", "-W", "2", ip])
            _ = try await CNIFixture.sh(world.container.path, ["busybox", "ping", "-c", "1", "-W", "2", "10.99.0.1"])

            if version == "1.0.0" {
                let rules = try await CNIFixture.sh(world.host.path, ["iptables", "-t", "nat", "-S"]).stdout
                #expect(rules.contains("18080") && rules.contains(ip), "portmap DNAT rule for \(ip):18080")
            }

            // CHECK (a no-op before 0.4.0) with the cached result.
            #expect(runner.cachedResult(network: "qbxnet", containerID: runtime.containerID, interfaceName: "eth0") != nil)
            // portmap 1.1.1's CHECK also looks for its IPv6 DNAT chain, which its ADD only
            // makes for IPv6 results ("chain CNI-DN-… not found"): check the chain without it.
            var checked = list
            if version == "1.0.0" { checked.plugins.removeLast() }
            try await runner.check(checked, runtime)

            try await runner.delete(list, runtime)
            let after = try await NamespaceNetwork.links(in: world.container.path)
            #expect(!after.contains { $0.name == "eth0" })
            #expect(world.allocatedAddresses(network: "qbxnet").isEmpty)
            #expect(runner.cachedResult(network: "qbxnet", containerID: runtime.containerID, interfaceName: "eth0") == nil)
            // DEL is idempotent.
            try await runner.delete(list, runtime)

            // A second ADD gets an address again.
            let again = try await runner.add(list, runtime)
            #expect(again.containerAddresses().count == 1)
            try await runner.delete(list, runtime)
            #expect(world.allocatedAddresses(network: "qbxnet").isEmpty)
        }
    }

    @Test("TCP between the host namespace and the container")
    func tcp() async throws {
        try await CNIFixture.withWorld { world in
            let list = try world.bridgeList(version: "1.0.0")
            let runner = world.runner()
            let result = try await runner.add(list, world.runtime())
            let ip = String(try #require(result.ips.first).address.prefix { $0 != "/" })
            // A one-shot server in the container. Its stdin is empty, so right after accept it
            // shuts down its sending side; busybox nc exits on that EOF, so a client whose stdin
            // data had not arrived yet would exit 0 without sending anything (the listener then
            // exits 0 with nothing). The client therefore reads a file, which is readable in the
            // same poll that first sees the socket, and runs once, after the server listens.
            async let server = CNIFixture.sh(world.container.path, ["busybox", "nc", "-l", "-p", "7777"], timeout: .seconds(30))
            let listening = try await eventually(timeout: .seconds(20)) {
                try await !CNIFixture.sh(world.container.path, ["ss", "-ltnH", "sport = :7777"]).stdout
                    .trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            }
            try #require(listening, "nc -l -p 7777 in the container never listened")
            let message = world.directory + "/message"
            try Data("hello from host\n".utf8).write(to: URL(fileURLWithPath: message))
            let client = try await CNIFixture.sh(world.host.path, ["sh", "-c", "exec busybox nc -w 5 \(ip) 7777 < \(message)"],
                                                 check: false)
            #expect(client.status == 0, "nc to \(ip):7777: \(client.stderr)")
            let received = try await server
            #expect(received.stdout.contains("hello from host"), "listener got \(received.stdout.debugDescription)")
            try await runner.delete(list, world.runtime())
        }
    }

    @Test("a plugin failing mid-chain is named, with its message, and the earlier ADD is undone")
    func failureMidChain() async throws {
        try await CNIFixture.withWorld { world in
            try world.writePlugin("qbxfail", """
            cat >/dev/null
            if [ "$CNI_COMMAND" = ADD ]; then
              echo '{"cniVersion":"1.0.0","code":999,"msg":"qbx test failure","details":"requested by the test"}'
              exit 1
            fi
            exit 0
            """)
            let runner = world.runner(extraBin: true)
            for (extra, code, needle) in [
                ("qbxfail", CNIError.Code.pluginFailed, "qbx test failure: requested by the test"),
                ("qbx-no-such-plugin", CNIError.Code.pluginNotFound, "no executable"),
            ] {
                let list = try world.bridgeList(version: "1.0.0", extra: [["type": .string(extra)]])
                let error = await #expect(throws: CNIError.self) { try await runner.add(list, world.runtime()) }
                #expect(error?.code == code)
                #expect(error?.message.contains("plugin \(extra)") == true, "\(error?.message ?? "")")
                #expect(error?.message.contains("network qbxnet") == true)
                #expect(error?.message.contains(needle) == true, "\(error?.message ?? "")")
                if code == .pluginFailed { #expect(error?.pluginErrorCode == 999) }

                let links = try await NamespaceNetwork.links(in: world.container.path)
                #expect(!links.contains { $0.name == "eth0" }, "bridge ADD undone")
                #expect(world.allocatedAddresses(network: "qbxnet").isEmpty, "IP released")
                #expect(runner.cachedResult(network: "qbxnet", containerID: world.runtime().containerID, interfaceName: "eth0") == nil)
            }
        }
    }

    @Test("deleteCached works after the configuration directory is gone")
    func deleteFromCache() async throws {
        try await CNIFixture.withWorld { world in
            let confDirectory = world.directory + "/net.d"
            try FileManager.default.createDirectory(atPath: confDirectory, withIntermediateDirectories: true)
            try world.bridgeList(version: "1.0.0").serialized().write(to: URL(fileURLWithPath: confDirectory + "/10-qbx.conflist"))
            let list = try CNINetworkList.load(directory: confDirectory)
            let runner = world.runner()
            let runtime = CNIRuntimeConfig(containerID: "ctr-\(world.id)", networkNamespace: world.container.path,
                                           args: [("K8S_POD_NAME", "p"), ("IgnoreUnknown", "1")])
            _ = try await runner.add(list, runtime)
            try FileManager.default.removeItem(atPath: confDirectory)

            try await runner.deleteCached(containerID: runtime.containerID, interfaceName: "eth0")
            let links = try await NamespaceNetwork.links(in: world.container.path)
            #expect(!links.contains { $0.name == "eth0" })
            #expect(world.allocatedAddresses(network: "qbxnet").isEmpty)
            #expect(runner.cachedResult(network: "qbxnet", containerID: runtime.containerID, interfaceName: "eth0") == nil)
            // Nothing cached any more: a no-op.
            try await runner.deleteCached(containerID: runtime.containerID, interfaceName: "eth0")
        }
    }

    @Test("DEL after the container namespace is gone")
    func deleteWithoutNamespace() async throws {
        try await CNIFixture.withWorld { world in
            let list = try world.bridgeList(version: "1.0.0")
            let runner = world.runner()
            _ = try await runner.add(list, world.runtime())
            try world.container.remove()
            try await runner.delete(list, world.runtime())
            #expect(world.allocatedAddresses(network: "qbxnet").isEmpty)
        }
    }

    @Test("VERSION of a real plugin")
    func version() async throws {
        let runner = CNIRunner(binDirectories: ["/nonexistent", CNIFixture.pluginDirectory], cacheDirectory: "/nonexistent")
        let versions = try await runner.version(pluginType: "bridge")
        #expect(versions.contains("1.0.0"))
        #expect(versions.contains("0.4.0"))
        let error = await #expect(throws: CNIError.self) { try await runner.version(pluginType: "qbx-missing") }
        #expect(error?.code == .pluginNotFound)
    }
}
