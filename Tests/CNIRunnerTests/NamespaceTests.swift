import Foundation
import Testing
import TestSupport
@testable import CNIRunner

@Suite("NetworkNamespace and NamespaceNetwork", .enabled(if: CNIFixture.isRoot))
struct NamespaceTests {
    @Test func createAndRemove() async throws {
        let name = "qbxcni-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))-ns"
        let namespace = try NetworkNamespace.create(name: name)
        defer { try? namespace.remove() }
        #expect(namespace.path == "/run/netns/\(name)")
        #expect(NetworkNamespace.exists(path: namespace.path))
        #expect(NetworkNamespace.exists(path: "/proc/self/ns/net"))
        #expect(!NetworkNamespace.exists(path: "/run/netns"))
        #expect(!NetworkNamespace.exists(path: "/run/netns/\(name)-missing"))
        let listed = try await CNIFixture.sh(nil, ["ip", "netns", "list"]).stdout
        #expect(listed.split(separator: "\n").contains { $0.split(separator: " ").first.map(String.init) == name })
        // It is a separate namespace: only a (down) loopback inside.
        let links = try await NamespaceNetwork.links(in: namespace.path)
        #expect(links.map(\.name) == ["lo"])
        #expect(links.first?.up == false)

        let duplicate = #expect(throws: CNIError.self) { try NetworkNamespace.create(name: name) }
        #expect(duplicate?.code == .namespace)
        #expect(duplicate?.message.contains("already exists") == true)
        #expect(NetworkNamespace.exists(path: namespace.path), "a failed duplicate create leaves the original alone")
        #expect(throws: CNIError.self) { try NetworkNamespace.create(name: "../etc") }

        try namespace.remove()
        #expect(!NetworkNamespace.exists(path: namespace.path))
        #expect(!FileManager.default.fileExists(atPath: namespace.path))
        try namespace.remove()
        try NetworkNamespace.remove(path: "/run/netns/\(name)-never-existed")

        let error = await #expect(throws: CNIError.self) { try await NamespaceNetwork.links(in: namespace.path) }
        #expect(error?.code == .namespace)
    }

    @Test func redirectAndRemove() async throws {
        try await CNIFixture.withWorld { world in
            let netns = world.container.path
            _ = try await CNIFixture.sh(netns, ["ip", "tuntap", "add", "dev", "qtap0", "mode", "tap"])
            _ = try await CNIFixture.sh(netns, ["ip", "link", "add", "qv0", "type", "veth", "peer", "name", "qv1"])
            try await NamespaceNetwork.setLink("qv0", up: true, mtu: 1400, in: netns)
            try await NamespaceNetwork.setLink("qtap0", up: true, mtu: nil, in: netns)

            let links = try await NamespaceNetwork.links(in: netns)
            let veth = try #require(links.first { $0.name == "qv0" })
            #expect(veth.kind == "veth" && veth.mtu == 1400 && veth.up)
            #expect(links.first { $0.name == "qtap0" }?.kind == "tun")

            func filters(_ device: String) async throws -> String {
                try await CNIFixture.sh(netns, ["tc", "-j", "filter", "show", "dev", device, "ingress"]).stdout
            }
            try await NamespaceNetwork.redirect("qv0", "qtap0", in: netns)
            // Twice: the second replaces the first instead of stacking filters.
            try await NamespaceNetwork.redirect("qv0", "qtap0", in: netns)
            for (device, other) in [("qv0", "qtap0"), ("qtap0", "qv0")] {
                let shown = try await filters(device)
                #expect(shown.contains("mirred") && shown.contains("\"to_dev\":\"\(other)\""), "\(device): \(shown)")
                #expect(shown.components(separatedBy: "\"to_dev\"").count - 1 == 1, "one redirect on \(device): \(shown)")
            }

            try await NamespaceNetwork.removeRedirect("qv0", in: netns)
            try await NamespaceNetwork.removeRedirect("qtap0", in: netns)
            #expect(try await !filters("qv0").contains("mirred"))
            #expect(try await !filters("qtap0").contains("mirred"))
            let qdiscs = try await CNIFixture.sh(netns, ["tc", "qdisc", "show", "dev", "qv0"]).stdout
            #expect(!qdiscs.contains("ingress"))
            // Idempotent: no qdisc, no link.
            try await NamespaceNetwork.removeRedirect("qv0", in: netns)
            try await NamespaceNetwork.removeRedirect("qbx-missing", in: netns)
            // Redirecting to a missing link fails clearly.
            let error = await #expect(throws: CNIError.self) { try await NamespaceNetwork.redirect("qv0", "qbx-missing", in: netns) }
            #expect(error?.code == .system)
        }
    }

    /// Naming an existing namespace (a spare VM's QEMU's own, by `/proc/PID/ns/net`): the
    /// name is that namespace and keeps it after the other reference is gone; a path that is no
    /// namespace is refused and leaves no file.
    @Test func pinningNamesAnExistingNamespace() async throws {
        let id = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let original = try NetworkNamespace.create(name: "qbxcni-\(id)-orig")
        defer { try? original.remove() }
        _ = try await CNIFixture.sh(original.path, ["ip", "link", "add", "qpin0", "type", "veth", "peer", "name", "qpin1"])
        let named = try NetworkNamespace.create(name: "qbxcni-\(id)-pin", pinning: original.path)
        defer { try? named.remove() }
        var a = stat(), b = stat()
        #expect(stat(original.path, &a) == 0 && stat(named.path, &b) == 0 && a.st_ino == b.st_ino, "not the same namespace")
        try original.remove()
        #expect(NetworkNamespace.exists(path: named.path))
        #expect(try await NamespaceNetwork.links(in: named.path).map(\.name).sorted() == ["lo", "qpin0", "qpin1"])

        let file = try CNIFixture.makeTemporaryDirectory() + "/not-a-namespace"
        defer { try? FileManager.default.removeItem(atPath: (file as NSString).deletingLastPathComponent) }
        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        let refused = #expect(throws: CNIError.self) { try NetworkNamespace.create(name: "qbxcni-\(id)-bad", pinning: file) }
        #expect(refused?.code == .namespace)
        #expect(!FileManager.default.fileExists(atPath: "/run/netns/qbxcni-\(id)-bad"))
    }

    /// A TAP whose descriptor is held moves with it: frames written after the move leave in
    /// the other namespace (a spare VM's NICs join a pod's namespace this way).
    @Test func moveLinkKeepsATapsDescriptor() async throws {
        try await CNIFixture.withWorld { world in
            let from = world.host.path, to = world.container.path
            let tap = try CNIFixture.openTap("qmove0", in: from)
            defer { close(tap) }
            try await NamespaceNetwork.moveLink("qmove0", to: to, in: from)
            #expect(try await NamespaceNetwork.links(in: from).map(\.name) == ["lo"])
            #expect(try await NamespaceNetwork.links(in: to).contains { $0.name == "qmove0" && $0.kind == "tun" })
            // The held descriptor is the moved device's: its packet counter in `to` counts what we write.
            try await NamespaceNetwork.setLink("qmove0", up: true, mtu: nil, in: to)
            var frame = [UInt8](repeating: 0xff, count: 6) + [0x02, 0, 0, 0, 0, 1] + [0x88, 0xb5] + [UInt8](repeating: 0, count: 46)
            #expect(write(tap, &frame, frame.count) == frame.count)
            let counted = await eventually(timeout: .seconds(10)) {
                // /proc/net/dev is the reader's namespace's (sysfs would be the mount's): "qmove0: bytes packets …".
                let table = (try? await CNIFixture.sh(to, ["cat", "/proc/net/dev"]))?.stdout ?? ""
                let line = table.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("qmove0:") }
                let fields = line?.split(separator: ":").last?.split(separator: " ") ?? []
                return fields.count > 1 && (Int(fields[1]) ?? 0) >= 1
            }
            #expect(counted, "the frame written to the held descriptor did not arrive in the target namespace")

            // Into the namespace it is in, by another name: it stays, nothing fails.
            let alias = try NetworkNamespace.create(name: world.container.name + "-alias", pinning: to)
            defer { try? alias.remove() }
            try await NamespaceNetwork.moveLink("qmove0", to: alias.path, in: to)
            #expect(try await NamespaceNetwork.links(in: to).contains { $0.name == "qmove0" && $0.kind == "tun" })

            let notNamespace = await #expect(throws: CNIError.self) {
                try await NamespaceNetwork.moveLink("qmove0", to: world.directory, in: to)
            }
            #expect(notNamespace?.code == .namespace)
            let missing = await #expect(throws: CNIError.self) {
                try await NamespaceNetwork.moveLink("qmissing0", to: from, in: to)
            }
            #expect(missing?.code == .system)
            #expect(try await NamespaceNetwork.links(in: to).contains { $0.name == "qmove0" }, "a failed move leaves the link")
        }
    }

    @Test func routesAreNormalised() async throws {
        try await CNIFixture.withWorld { world in
            let netns = world.container.path
            // (No dummy module on every kernel: a veth pair serves.)
            _ = try await CNIFixture.sh(netns, ["ip", "link", "add", "qd0", "type", "veth", "peer", "name", "qd1"])
            try await NamespaceNetwork.setLink("qd1", up: true, mtu: nil, in: netns)
            _ = try await CNIFixture.sh(netns, ["ip", "addr", "add", "192.168.77.2/24", "dev", "qd0"])
            _ = try await CNIFixture.sh(netns, ["ip", "addr", "add", "fd77::2/64", "dev", "qd0", "nodad"])
            try await NamespaceNetwork.setLink("qd0", up: true, mtu: nil, in: netns)
            _ = try await CNIFixture.sh(netns, ["ip", "route", "add", "default", "via", "192.168.77.1", "metric", "5"])
            _ = try await CNIFixture.sh(netns, ["ip", "route", "add", "10.5.5.5", "dev", "qd0"])
            _ = try await CNIFixture.sh(netns, ["ip", "-6", "route", "add", "default", "via", "fd77::1"])

            let routes = try await NamespaceNetwork.routes(in: netns)
            #expect(routes.contains { $0.destination == "0.0.0.0/0" && $0.gateway == "192.168.77.1" && $0.metric == 5 && $0.device == "qd0" })
            #expect(routes.contains { $0.destination == "192.168.77.0/24" && $0.scope == "link" && $0.protocol == "kernel" })
            #expect(routes.contains { $0.destination == "10.5.5.5/32" })
            #expect(routes.contains { $0.destination == "::/0" && $0.gateway == "fd77::1" && $0.family == 6 })
            #expect(routes.contains { $0.destination == "fd77::/64" })
            #expect(!routes.contains { $0.destination.hasPrefix("fe80") || $0.destination.hasPrefix("ff") })
            let link = try #require(try await NamespaceNetwork.links(in: netns).first { $0.name == "qd0" })
            #expect(link.addresses.contains { $0.cidr == "192.168.77.2/24" && $0.family == 4 && $0.scope == "global" })
            #expect(link.addresses.contains { $0.cidr == "fd77::2/64" && $0.family == 6 })
        }
    }
}
