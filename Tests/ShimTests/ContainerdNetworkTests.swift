import ContainerdTestSupport
import Foundation
import NIOConcurrencyHelpers
import TestSupport
import Testing

/// Networking through containerd with the real CNI plugins (bridge + host-local from
/// Debian's containernetworking-plugins), qemubox beside runc. containerd, its shims and
/// ctr run in a network namespace the test makes (the "host" of the test: its bridge
/// and every address live there), so nothing touches this machine's own interfaces.
@Suite(.serialized) struct ContainerdNetworkTests {
    static let qemubox = ContainerdShimTests.qemubox
    static let runc = ContainerdShimTests.runc
    static let image = PrivateContainerd.image
    static let subnet = "10.231.7"

    static var available: Bool {
        PrivateContainerd.vmAvailable && Prerequisite.tools("ip", "nsenter", "unshare")
            && (Prerequisite.isCI || FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/bridge"))
    }

    /// The test's namespace, its CNI configuration (network `qbxtest`, IPAM data in the
    /// test's directory), a containerd inside it; everything removed afterwards.
    static func withNetwork(qemubox extra: @Sendable @escaping (PrivateContainerd) -> String = { _ in "" }, plugins: String? = nil,
                            _ body: @Sendable @escaping (PrivateContainerd, String) async throws -> Void) async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with(prefix: "qbxnet") { dir in
                let name = "qbxt" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
                let netns = "/run/netns/" + name
                try await Shell.check("ip netns add \(name) && ip -n \(name) link set lo up")
                try CNIFixedPaths.acquire()
                defer { CNIFixedPaths.release() }
                let hostBefore = try await hostNetworkSnapshot()
                let containerd = try PrivateContainerd(dir: dir, qemubox: "")
                containerd.networkNamespace = netns
                try FileManager.default.createDirectory(atPath: containerd.cniConfDir, withIntermediateDirectories: true)
                let chain = plugins ?? ""
                try """
                    {"cniVersion": "1.0.0", "name": "qbxtest", "plugins": [
                      {"type": "bridge", "bridge": "qbxbr0", "isGateway": true, "ipMasq": false,
                       "ipam": {"type": "host-local", "ranges": [[{"subnet": "\(subnet).0/24"}]],
                                "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "\(dir)/ipam"},
                       "dns": {"nameservers": ["\(subnet).1"], "search": ["qbx.test"]}}\(chain)
                    ]}
                    """.write(toFile: containerd.cniConfDir + "/10-qbxtest.conflist", atomically: true, encoding: .utf8)
                try (try String(contentsOfFile: dir + "/qemubox.toml", encoding: .utf8) + extra(containerd))
                    .write(toFile: dir + "/qemubox.toml", atomically: true, encoding: .utf8)
                do {
                    try await containerd.start()
                    try await containerd.importImage()
                    try await body(containerd, netns)
                    try await ContainerdShimTests.expectClean(containerd)
                } catch {
                    await containerd.tearDown()
                    _ = try? await Shell.run("ip netns delete \(name)")
                    throw error
                }
                await containerd.tearDown()
                try await Shell.check("ip netns delete \(name)")
                let hostAfter = try await hostNetworkSnapshot()
                #expect(hostAfter == hostBefore, "this machine's own interfaces or routes changed")
            }
        }
    }

    /// This machine's own links and routes (the test never touches them).
    static func hostNetworkSnapshot() async throws -> String {
        try await Shell.check("ip -o link show | sed 's/ state .*//' | sort; ip route show table all | sort")
    }

    /// Runs a shell command in the test's namespace.
    static func inNamespace(_ netns: String, _ command: String, timeout: Duration = .seconds(60)) async throws -> Shell.Result {
        try await Shell.run("nsenter --net=\(netns) sh -c \(Shell.quote(command))", timeout: timeout)
    }

    /// The container's IPv4 address on eth0, read inside it.
    /// Looks again for up to 10 s: once (runc, under load) an exec right after `run -d` saw
    /// eth0 without its address.
    static func containerAddress(_ containerd: PrivateContainerd, _ id: String) async throws -> String {
        var out = ""
        var found: Substring?
        _ = try await eventually(timeout: .seconds(10)) {
            out = try await containerd.ctrCheck("task exec --exec-id ip\(UInt16.random(in: 0...UInt16.max)) \(id) ip -4 -o addr show eth0")
            found = out.split(separator: " ").first { $0.hasPrefix(subnet + ".") }
            return found != nil
        }
        guard let field = found else { throw PeerError("no \(subnet).x address on eth0 in \(id) after 10 s: \(out)") }
        return String(field.split(separator: "/")[0])
    }

    /// The server every test container runs: answers each connection with "pong <id>".
    static func server(_ id: String) -> String {
        "sh -c 'while true; do echo pong-\(id) | nc -l -p 8080; done'"
    }

    /// Checks a running container's network from both sides: host → container by
    /// address, container → host, the interface the container sees is the one in the
    /// task pid's namespace (same MAC and MTU), and DNS-free basics (route via the gateway).
    static func checkConnectivity(_ containerd: PrivateContainerd, _ netns: String, _ id: String) async throws -> String {
        let address = try await containerAddress(containerd, id)
        let reply = await eventually(timeout: .seconds(20)) {
            let r = try? await inNamespace(netns, "echo go | busybox nc -w 3 \(address) 8080", timeout: .seconds(10))
            return r?.stdout.contains("pong-\(id)") ?? false
        }
        #expect(reply, "host → \(id) at \(address)")
        // container → host: a listener on the bridge's address in the test's namespace.
        let received = containerd.dir + "/from-\(id)"
        // A listener loop: busybox nc -l half-closes at once (its stdin is empty), and a client
        // that sees that before it sent exits without sending; the next try finds a new listener.
        let listener = try await inNamespace(
            netns, "while :; do busybox nc -l -p 9191 < /dev/null >> \(received) 2>/dev/null; done > /dev/null 2>&1 & echo $!")
        let listenerPid = Int32(listener.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        let sent = await eventually(timeout: .seconds(20)) {
            _ = try? await containerd.ctr("task exec --exec-id s\(UInt16.random(in: 0...UInt16.max)) \(id) sh -c 'echo hello-from-\(id) | nc -w 2 \(subnet).1 9191'")
            return ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").contains("hello-from-\(id)")
        }
        if listenerPid > 0 {
            _ = try? await Shell.run("pkill -KILL -P \(listenerPid); kill -KILL \(listenerPid)")
        }
        #expect(listenerPid > 0, "listener: \(listener.stderr)")
        #expect(sent, "\(id) → host")
        // The default route goes through the bridge.
        let routes = try await containerd.ctrCheck("task exec --exec-id r\(UInt16.random(in: 0...UInt16.max)) \(id) ip route")
        #expect(routes.contains("default via \(subnet).1"), "\(id) routes: \(routes)")
        // The task pid's network namespace holds the interface the container sees.
        let pid = try await taskPid(containerd, id)
        let inside = try await containerd.ctrCheck("task exec --exec-id m\(UInt16.random(in: 0...UInt16.max)) \(id) sh -c 'cat /sys/class/net/eth0/address /sys/class/net/eth0/mtu'")
        // (/sys shows the namespace it was mounted in: iproute2 reads the entered one.)
        let outside = try await Shell.check("nsenter --net=/proc/\(pid)/ns/net ip -o link show eth0 | sed 's/.* mtu \\([0-9]*\\) .*link.ether \\([^ ]*\\).*/\\2\\n\\1/'")
        #expect(inside == outside, "\(id): eth0 inside \(inside.debugDescription), in the task pid's namespace \(outside.debugDescription)")
        return address
    }

    static func taskPid(_ containerd: PrivateContainerd, _ id: String) async throws -> Int32 {
        let out = try await containerd.ctrCheck("task ls")
        for line in out.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.first.map(String.init) == id, fields.count >= 2, let pid = Int32(fields[1]) { return pid }
        }
        throw PeerError("no task \(id): \(out)")
    }

    static func remove(_ containerd: PrivateContainerd, _ id: String) async throws {
        _ = try await containerd.ctr("task kill -s SIGKILL \(id)")
        #expect(await ContainerdVMTests.waitStatus(containerd, id, "STOPPED"))
        try await containerd.ctrCheck("task delete \(id)")
        try await containerd.ctrCheck("container rm \(id)")
    }

    /// Addresses host-local still holds for network qbxtest.
    static func allocations(_ containerd: PrivateContainerd) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: containerd.dir + "/ipam/qbxtest")) ?? [])
            .filter { $0.hasPrefix(subnet) }
    }

    /// `ctr run --cni`: containerd runs the bridge plugin on `/proc/<task pid>/ns/net` between
    /// Create and Start. With qemubox that is QEMU's own namespace, and what CNI put there is
    /// in the guest when the container starts: the same scenarios pass as with runc, and the
    /// two containers reach each other.
    @Test(.enabled(if: available))
    func ctrRunCNIMatchesRunc() async throws {
        try await Self.withNetwork { containerd, netns in
            var addresses: [String] = []
            for (n, runtime) in [Self.runc, Self.qemubox].enumerated() {
                let id = "cni\(n)"
                try await containerd.ctrCheck("run -d --cni \(runtime) \(Self.image) \(id) \(Self.server(id))")
                addresses.append(try await Self.checkConnectivity(containerd, netns, id))
            }
            // container → container, both ways.
            for (from, to) in [(0, 1), (1, 0)] {
                let command = "task exec --exec-id x\(from) cni\(from) sh -c 'echo go | nc -w 3 \(addresses[to]) 8080'"
                // cni0 is the runc peer's container.
                let r = from == 0
                    ? try await containerd.ctrPeer(command) { $0.stdout.contains("pong-cni\(to)") }
                    : try await containerd.ctr(command)
                #expect(r.stdout.contains("pong-cni\(to)"), "cni\(from) → cni\(to): \(r.stdout) \(r.stderr)")
            }
            // 32 MiB from the host into the qemubox container, intact.
            let payload = containerd.dir + "/payload"
            try await Shell.check("head -c 33554432 /dev/urandom > \(payload)")
            let expected = try await Shell.check("md5sum < \(payload)").prefix(32)
            // The sender gives up after 30 s without progress (TCP's retransmission backoff on
            // a loaded host passes 5 s); a connection that broke off took its one-shot listener
            // with it, so the next attempt gets a new one. Refused (the listener not up yet): again.
            _ = try await containerd.ctr("task exec -d --exec-id sink0 cni1 sh -c 'nc -l -p 9000 > /tmp/in'")
            var sizes: [String] = []
            var delivered = false
            for attempt in 1...8 where !delivered {
                _ = try? await Self.inNamespace(netns, "busybox nc -w 30 \(addresses[1]) 9000 < \(payload)", timeout: .seconds(120))
                let size = (try? await containerd.ctrCheck("task exec --exec-id sz\(attempt) cni1 sh -c 'wc -c < /tmp/in'"))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
                sizes.append(size)
                delivered = size == "33554432"
                if !delivered, size != "0", size != "?" {
                    _ = try await containerd.ctr("task exec -d --exec-id sink\(attempt) cni1 sh -c 'nc -l -p 9000 > /tmp/in'")
                }
            }
            #expect(delivered, "32 MiB host → qemubox container; bytes received per attempt: \(sizes)")
            let sum = try await containerd.ctrCheck("task exec --exec-id md5 cni1 sh -c 'md5sum < /tmp/in'")
            #expect(sum.prefix(32) == expected, "payload corrupted: \(sum) vs \(expected)")
            for n in 0..<2 { try await Self.remove(containerd, "cni\(n)") }
        }
    }

    /// `[network] networks = ["qbxtest"]`: plain `ctr run` (no --cni) and the shim runs the
    /// conflist itself in a namespace it makes; delete runs DEL and removes the namespace.
    @Test(.enabled(if: available))
    func shimRunsConfiguredNetworks() async throws {
        try await Self.withNetwork(qemubox: Self.shimNetworks) { containerd, netns in
            try await containerd.ctrCheck("run -d \(Self.qemubox) \(Self.image) own1 \(Self.server("own1"))")
            #expect(Self.allocations(containerd).count == 1)
            _ = try await Self.checkConnectivity(containerd, netns, "own1")
            // The result's DNS (the conflist's "dns") is the container's resolv.conf.
            let resolv = try await containerd.ctrCheck("task exec --exec-id dns own1 cat /etc/resolv.conf")
            #expect(resolv == "nameserver \(Self.subnet).1\nsearch qbx.test\n", "\(resolv)")
            // ctr sets no hostname: the hosts file names localhost only.
            let hosts = try await containerd.ctrCheck("task exec --exec-id hosts own1 cat /etc/hosts")
            #expect(hosts == "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", "\(hosts)")
            let namespaces = try Self.shimNamespaces()
            #expect(namespaces.count == 1, "\(namespaces)")
            try await Self.remove(containerd, "own1")
            #expect(Self.allocations(containerd).isEmpty, "IP left allocated: \(Self.allocations(containerd))")
            #expect(try Self.shimNamespaces().isEmpty)
        }
    }

    /// A SIGKILLed shim: containerd's `shim delete` runs DEL from the cached result and
    /// removes the namespace.
    @Test(.enabled(if: available))
    func shimKilledThenDeleteReleasesTheNetwork() async throws {
        try await Self.withNetwork(qemubox: Self.shimNetworks) { containerd, _ in
            try await containerd.ctrCheck("run -d \(Self.qemubox) \(Self.image) own2 sleep 1000")
            #expect(Self.allocations(containerd).count == 1)
            let shims = containerd.qemuboxShims(task: "own2")
            try #require(shims.count == 1)
            try await Self.killShimAndDelete(containerd, "own2", shim: shims[0])
            #expect(try Self.shimNamespaces().isEmpty)
        }
    }

    /// SIGKILLs task `id`'s shim `shim`, waits until containerd's cleanup stopped the task,
    /// deletes it, and expects its addresses released.
    static func killShimAndDelete(_ containerd: PrivateContainerd, _ id: String, shim: Int32) async throws {
        kill(shim, SIGKILL)
        #expect(await eventually(timeout: .seconds(60)) {
            let status = try? await ContainerdVMTests.status(containerd, id)
            return status == nil || status == "STOPPED"
        })
        _ = try? await containerd.ctr("task delete \(id)")
        try await containerd.ctrCheck("container rm \(id)")
        #expect(await eventually(timeout: .seconds(20)) { allocations(containerd).isEmpty },
                "IP left allocated: \(allocations(containerd))")
    }

    /// A plugin failing in the middle of the chain: create fails naming it, the bridge's
    /// ADD is undone (no address held), no namespace, no process.
    @Test(.enabled(if: available))
    func failingPluginLeavesNothing() async throws {
        let failing = #",{"type": "qbx-no-such-plugin"}"#
        try await Self.withNetwork(qemubox: Self.shimNetworks, plugins: failing) { containerd, _ in
            let run = try await containerd.ctr("run -d \(Self.qemubox) \(Self.image) bad1 true")
            #expect(run.status != 0)
            #expect(run.stderr.contains("qbx-no-such-plugin"), "\(run.stderr)")
            #expect(Self.allocations(containerd).isEmpty, "IP left allocated: \(Self.allocations(containerd))")
            #expect(try Self.shimNamespaces().isEmpty)
            _ = try? await containerd.ctr("container rm bad1")
        }
    }

    static func shimNetworks(_ containerd: PrivateContainerd) -> String {
        """

        [network]
        networks = ["qbxtest"]
        conf_dir = "\(containerd.cniConfDir)"
        bin_dirs = ["/usr/lib/cni"]
        cache_dir = "\(containerd.dir)/cni-cache"

        """
    }

    /// Namespaces the shim made (`/run/netns/qbx-*`).
    static func shimNamespaces() throws -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []).filter { $0.hasPrefix("qbx-") }
    }

    /// The spec names a namespace (`ctr run --with-ns network:PATH`, as CRI does for a pod):
    /// its interface, set up beforehand (here by hand, as a CNI plugin would), becomes the
    /// VM's NIC during Create; with runc, the same namespace is joined directly.
    @Test(.enabled(if: available))
    func specNamespacePathMatchesRunc() async throws {
        try await Self.withNetwork { containerd, netns in
            let host = URL(fileURLWithPath: netns).lastPathComponent
            try await Shell.check("ip -n \(host) link add name qbxbr1 type bridge && ip -n \(host) addr add \(Self.subnet).1/24 dev qbxbr1 && ip -n \(host) link set qbxbr1 up")
            for (n, runtime) in [Self.runc, Self.qemubox].enumerated() {
                let pod = "\(host)p\(n)"
                try await Shell.check("""
                    set -e
                    ip netns add \(pod)
                    ip -n \(host) link add name qbxv\(n) type veth peer name eth0 netns \(pod)
                    ip -n \(host) link set qbxv\(n) master qbxbr1 up
                    ip -n \(pod) addr add \(Self.subnet).\(20 + n)/24 dev eth0
                    ip -n \(pod) link set eth0 up; ip -n \(pod) link set lo up
                    ip -n \(pod) route add default via \(Self.subnet).1
                    """)
                do {
                    let id = "pod\(n)"
                    try await containerd.ctrCheck("run -d --with-ns network:/run/netns/\(pod) \(runtime) \(Self.image) \(id) \(Self.server(id))")
                    let address = try await Self.checkConnectivity(containerd, netns, id)
                    #expect(address == "\(Self.subnet).\(20 + n)")
                    try await Self.remove(containerd, id)
                    // The namespace is the caller's: it stays, with its interface, and without the VM's TAP.
                    let links = try await Shell.check("ip -n \(pod) -o link show")
                    #expect(links.contains("eth0@") && !links.contains("qbxtap"), "\(links)")
                    let qdiscs = try await Shell.check("tc -n \(pod) qdisc show dev eth0")
                    #expect(!qdiscs.contains("ingress"), "tc redirection left on eth0: \(qdiscs)")
                } catch {
                    _ = try? await Shell.run("ip netns delete \(pod)")
                    throw error
                }
                try await Shell.check("ip netns delete \(pod)")
            }
        }
    }

    /// A namespace path that does not exist (or vanished): Create fails naming it, nothing is left.
    @Test(.enabled(if: available))
    func missingNamespaceIsAClearError() async throws {
        try await Self.withNetwork { containerd, _ in
            let missing = "/run/netns/qbx-no-such-namespace-\(getpid())"
            let run = try await containerd.ctr("run -d --with-ns network:\(missing) \(Self.qemubox) \(Self.image) gone1 true")
            #expect(run.status != 0)
            #expect(run.stderr.contains(missing), "\(run.stderr)")
            _ = try? await containerd.ctr("container rm gone1")
        }
    }
}

/// The two fixed paths `ctr --cni` reads (`/etc/cni/net.d`, `/opt/cni/bin`): bind-mounted over
/// in ctr's own mount namespace, but they must exist. Made only if missing, while any test of
/// this process needs them (suites run side by side), and removed when the last one is done.
enum CNIFixedPaths {
    static let paths = ["/etc/cni/net.d", "/opt/cni/bin"]
    private static let state = NIOLockedValueBox<(users: Int, made: [String])>((0, []))

    static func acquire() throws {
        try state.withLockedValue { state in
            if state.users == 0 {
                for path in paths where !FileManager.default.fileExists(atPath: path) {
                    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                    state.made.append(path)
                }
            }
            state.users += 1
        }
    }

    static func release() {
        state.withLockedValue { state in
            state.users -= 1
            guard state.users == 0 else { return }
            for path in state.made.reversed() {
                rmdir(path)
                rmdir((path as NSString).deletingLastPathComponent)
            }
            state.made = []
        }
    }
}
