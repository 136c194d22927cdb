import Foundation
import OCISpec
import QemuboxKit
import TestSupport
import Testing

/// A namespace holding two veth interfaces (IPv4 and IPv6, a non-default MTU, a default
/// route), as CNI would leave it, carried into the guest by `Sandbox.attachNetwork()`:
/// the container sees the same names, MACs, MTUs, addresses and routes, and the "host"
/// end of each veth (in a second namespace the test made) reaches it.
@Suite(.serialized, .enabled(if: Fixture.available && Prerequisite.isRoot && Prerequisite.tools("ip", "nsenter")))
struct NetworkAttachTests {
    /// Two namespaces (host side H, container side C) joined by two veth pairs.
    static func withNamespaces(_ body: (_ host: String, _ container: String) async throws -> Void) async throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let (h, c) = ("qbxh" + tag, "qbxc" + tag)
        try Fixture.sh("ip netns add \(h) && ip netns add \(c)")
        defer { _ = try? Fixture.sh("ip netns delete \(h); ip netns delete \(c)") }
        try Fixture.sh("""
            set -e
            ip -n \(h) link set lo up
            ip -n \(h) link add vh0 type veth peer name eth0 netns \(c)
            ip -n \(h) link add vh1 type veth peer name eth1 netns \(c)
            ip -n \(h) link set vh0 mtu 1400; ip -n \(c) link set eth0 mtu 1400
            ip -n \(h) addr add 10.232.0.1/24 dev vh0; ip -n \(h) addr add fd00:232::1/64 dev vh0 nodad
            ip -n \(h) addr add 10.233.0.1/24 dev vh1
            ip -n \(h) link set vh0 up; ip -n \(h) link set vh1 up
            ip -n \(c) addr add 10.232.0.2/24 dev eth0; ip -n \(c) addr add fd00:232::2/64 dev eth0 nodad
            ip -n \(c) addr add 10.233.0.2/24 dev eth1
            ip -n \(c) link set eth0 up; ip -n \(c) link set eth1 up
            ip -n \(c) route add default via 10.232.0.1
            ip -n \(c) route add 10.99.0.0/16 via 10.233.0.1 metric 50
            """)
        try await body("/run/netns/" + h, "/run/netns/" + c)
    }

    @Test func interfacesAddressesAndRoutesReachTheGuest() async throws {
        try await ConcurrencyLimit.vms.run {
            try await Self.withNamespaces { host, container in
                // /sys shows the mounting namespace's devices: ask iproute2 inside the namespace instead.
                let macs = try Fixture.sh("for i in eth0 eth1; do nsenter --net=\(container) ip -o link show $i | sed 's/.*link.ether \\([^ ]*\\).*/\\1/'; done")
                try await TemporaryDirectory.with(prefix: "qbxnet") { dir in
                    let network = try await SandboxNetwork.existing(path: container)
                    #expect(network.slots.count == 2)
                    let report = "cat /sys/class/net/eth0/address /sys/class/net/eth1/address /sys/class/net/eth0/mtu; "
                        + "ip -o addr show; ip route show; ip -6 route show; echo go | nc -l -p 8080"
                    let live = try await LiveContainer.start(in: dir, ["sh", "-c", report], network: network,
                                                             configure: { $0.linux?.namespaces?.removeAll { $0.type == .network } },
                                                             beforeStart: { sandbox in
                        let attached = try await sandbox.attachNetwork()
                        #expect(attached.map(\.name) == ["eth0", "eth1"])
                    })
                    // The host side reaches the container by its addresses, IPv4 and IPv6.
                    for address in ["10.232.0.2", "10.233.0.2", "fd00:232::2"] {
                        let reachable = await eventually(timeout: .seconds(20)) {
                            (try? Fixture.sh("nsenter --net=\(host) busybox ping -c1 -W2 \(address)")) != nil
                        }
                        #expect(reachable, "\(address) from the host side")
                    }
                    let reply = await eventually(timeout: .seconds(20)) {
                        (try? Fixture.sh("echo hello | nsenter --net=\(host) busybox nc -w 3 10.232.0.2 8080"))?.contains("go") ?? false
                    }
                    #expect(reply, "TCP host → container")
                    #expect(try await live.wait() == 0)
                    _ = await eventually(timeout: .seconds(10)) { live.stdout.isEnded }
                    let out = live.stdout.text
                    #expect(out.hasPrefix(macs + "1400\n"), "MACs and MTU: \(out)")
                    #expect(out.contains("inet 10.232.0.2/24"), "\(out)")
                    #expect(out.contains("inet 10.233.0.2/24"), "\(out)")
                    #expect(out.contains("inet6 fd00:232::2/64"), "\(out)")
                    #expect(out.contains("default via 10.232.0.1 dev eth0"), "\(out)")
                    #expect(out.contains("10.99.0.0/16 via 10.233.0.1 dev eth1"), "\(out)")
                    await live.finish()
                }
                // The guest is gone: its TAPs went with QEMU, the veths stay for CNI's DEL.
                let links = try Fixture.sh("ip -n \(URL(fileURLWithPath: container).lastPathComponent) -o link show")
                #expect(!links.contains(SandboxNetwork.tapPrefix), "\(links)")
                #expect(links.contains("eth0@") && links.contains("eth1@"), "\(links)")
            }
        }
    }

    /// More interfaces than NICs is a clear error (the namespace was filled after the VM started).
    @Test func moreInterfacesThanNICsIsAnError() async throws {
        try await ConcurrencyLimit.vms.run {
            try await Self.withNamespaces { _, container in
                try await TemporaryDirectory.with(prefix: "qbxnet") { dir in
                    var network = SandboxNetwork.new(slots: 1)
                    network.namespace = .path(container)
                    var failure: (any Error)?
                    do {
                        let live = try await LiveContainer.start(in: dir, ["true"], network: network, beforeStart: { sandbox in
                            try await sandbox.attachNetwork()
                        })
                        await live.finish()
                    } catch {
                        failure = error
                    }
                    let message = "\(failure.map { "\($0)" } ?? "no error")"
                    #expect(message.contains("2 interfaces") && message.contains("1 NICs"), "\(message)")
                }
            }
        }
    }

    /// Warm start with NICs: the template's NICs are placeholders with fixed device MACs;
    /// two clones of it, each in its own namespace, take their own interface's MAC and
    /// address and are reachable, one after the other from the same template.
    @Test func warmClonesTakeTheirOwnNetwork() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with(prefix: "qbxnet") { dir in
                let store = VMTemplateStore(directory: dir + "/templates")
                for n in 0..<2 {
                    try await Self.withNamespaces { host, container in
                        let macs = try Fixture.sh("nsenter --net=\(container) ip -o link show eth0 | sed 's/.*link.ether \\([^ ]*\\).*/\\1/'")
                        let network = try await SandboxNetwork.existing(path: container)
                        let state = dir + "/c\(n)"
                        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
                        let live = try await LiveContainer.start(
                            in: state, ["sh", "-c", "cat /sys/class/net/eth0/address; echo go | nc -l -p 8080"],
                            network: network, templates: store,
                            configure: { $0.linux?.namespaces?.removeAll { $0.type == .network } },
                            beforeStart: { sandbox in try await sandbox.attachNetwork() })
                        let reply = await eventually(timeout: .seconds(20)) {
                            (try? Fixture.sh("echo hi | nsenter --net=\(host) busybox nc -w 3 10.232.0.2 8080"))?.contains("go") ?? false
                        }
                        #expect(reply, "clone \(n): TCP host → container")
                        #expect(try await live.wait() == 0)
                        _ = await eventually(timeout: .seconds(10)) { live.stdout.isEnded }
                        #expect(live.stdout.text.hasPrefix(macs), "clone \(n) MAC: \(live.stdout.text) vs \(macs)")
                        await live.finish()
                    }
                }
                let templates = try FileManager.default.contentsOfDirectory(atPath: store.directory)
                    .filter { !$0.hasSuffix(".lock") }
                #expect(templates.count == 1, "\(templates)")
            }
        }
    }
}
