import Foundation
import OCISpec
@testable import QemuboxKit
import TTRPCCodec
import Testing

/// How a spec becomes the VM and the guest config (``PodSpec``), and how qemubox errors reach containerd.
@Suite struct PodSpecTests {
    static let plan = RootfsPlan(disks: [], steps: [], unmountTargets: [], guestBundle: "/run/qemubox/bundles/c1")

    static func attachment(resolv: String?, addresses: [String]) -> CNIAttachment {
        var a = CNIAttachment(namespacePath: "/run/netns/qbx-x", containerID: "ns-c1", networks: [],
                              cacheDirectory: "/var/lib/qemubox/cni", binaryDirectories: ["/usr/lib/cni"])
        a.resolvConf = resolv
        a.addresses = addresses
        return a
    }

    @Test func hostsAndResolvConfUnlessTheSpecMountsThem() throws {
        var spec = RuntimeSpec()
        spec.hostname = "web"
        let files = PodSpec.networkFiles(Self.attachment(resolv: "nameserver 10.1.0.1\n", addresses: ["10.1.0.5", "fd00::5"]),
                                                 spec: spec, plan: Self.plan)
        #expect(files.map(\.destination) == ["/etc/resolv.conf", "/etc/hosts"])
        #expect(files[1].content == "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.0.5\tweb\nfd00::5\tweb\n")
        #expect(files.allSatisfy { $0.guestPath.hasPrefix("/run/qemubox/bundles/c1/") })
        spec.mounts = [RuntimeSpec.Mount(destination: "/etc/hosts", type: "bind", source: "/x", options: ["rbind"])]
        #expect(PodSpec.networkFiles(Self.attachment(resolv: nil, addresses: []), spec: spec, plan: Self.plan).isEmpty)
        #expect(PodSpec.networkFiles(nil, spec: spec, plan: Self.plan).isEmpty)
    }

    @Test func guestConfigDropsTheNetworkNamespaceAndMountsTheFiles() throws {
        var spec = RuntimeSpec()
        spec.root = RuntimeSpec.Root(path: "rootfs")
        spec.linux = RuntimeSpec.Linux(namespaces: [.init(type: .network), .init(type: .pid)])
        let original = try JSONEncoder().encode(spec)
        let data = try PodSpec.guestConfig(spec, original: original, terminal: false,
                                                   files: [("/etc/hosts", "/run/qemubox/bundles/c1/hosts")])
        let guest = try JSONDecoder().decode(RuntimeSpec.self, from: data)
        #expect(guest.linux?.namespaces?.map(\.type) == [.pid])
        #expect(guest.mounts?.map(\.destination) == ["/etc/hosts"])
        #expect(guest.mounts?.first?.options == ["rbind", "ro"])
        #expect(guest.linux?.personality?.domain == "LINUX")
        // Nothing to change: containerd's bytes as they are.
        var plain = RuntimeSpec()
        plain.root = RuntimeSpec.Root(path: "rootfs")
        plain.linux = RuntimeSpec.Linux(namespaces: [.init(type: .pid)])
        plain.linux?.personality = RuntimeSpec.Personality(domain: "LINUX")
        let bytes = try JSONEncoder().encode(plain)
        #expect(try PodSpec.guestConfig(plain, original: bytes, terminal: false) == bytes)
    }

    /// The guest runs crun without address randomisation (a fixed layout lets TCG reuse its
    /// translations); the personality crun sets before executing the container's process
    /// gives the container randomisation back, so every guest config names one.
    @Test func guestConfigNamesAPersonalityUnlessTheSpecHasOne() throws {
        let original = Data("""
        {"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},
         "linux":{"namespaces":[{"type":"pid"}],"x-vendor":{"keep":true}}}
        """.utf8)
        let spec = try JSONDecoder().decode(RuntimeSpec.self, from: original)
        #expect(PodSpec.needsPersonality(spec))
        let data = try PodSpec.guestConfig(spec, original: original, terminal: false)
        let guest = try JSONDecoder().decode(RuntimeSpec.self, from: data)
        #expect(guest.linux?.personality == RuntimeSpec.Personality(domain: "LINUX"))
        #expect(guest.linux?.extensions["x-vendor"] != nil)
        #expect(guest.linux?.namespaces?.map(\.type) == [.pid])
        // A spec without a linux section gets one holding just the personality.
        var bare = RuntimeSpec()
        bare.root = RuntimeSpec.Root(path: "rootfs")
        let bareGuest = try JSONDecoder().decode(RuntimeSpec.self, from: try PodSpec.guestConfig(
            bare, original: try JSONEncoder().encode(bare), terminal: false))
        #expect(bareGuest.linux?.personality?.domain == "LINUX")
        // The spec's own personality (here a 32-bit one) is kept as it is.
        var own = spec
        own.linux?.personality = RuntimeSpec.Personality(domain: "LINUX32", flags: [])
        let ownBytes = try JSONEncoder().encode(own)
        #expect(!PodSpec.needsPersonality(own))
        #expect(try PodSpec.guestConfig(own, original: ownBytes, terminal: false) == ownBytes)
    }

    /// crun shows the guest's whole cgroup hierarchy at /sys/fs/cgroup unless the container
    /// has a cgroup namespace: the guest config gets one when the spec mounts cgroupfs there
    /// and names none (the agent runs the spec as written), losing nothing else.
    @Test func guestConfigAddsACgroupNamespaceWhenTheSpecMountsCgroupfs() throws {
        let original = Data("""
        {"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},
         "mounts":[{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["ro"]}],
         "linux":{"namespaces":[{"type":"pid"},{"type":"mount"}],"resources":{"memory":{"limit":9223372036854775807}},
                  "x-vendor":{"keep":true}}}
        """.utf8)
        let spec = try JSONDecoder().decode(RuntimeSpec.self, from: original)
        let data = try PodSpec.guestConfig(spec, original: original, terminal: false)
        let guest = try JSONDecoder().decode(RuntimeSpec.self, from: data)
        #expect(guest.linux?.namespaces?.map(\.type.rawValue) == ["pid", "mount", "cgroup"])
        #expect(guest.linux?.extensions["x-vendor"] != nil)
        #expect(guest.linux?.resources?.memory?.limit == 9_223_372_036_854_775_807)
        // Already there (made or joined), or no cgroupfs at /sys/fs/cgroup: the bytes as given.
        #expect(try PodSpec.guestConfig(guest, original: data, terminal: false) == data)
        var joined = spec
        joined.linux?.namespaces?.append(.init(type: .cgroup, path: "/proc/1/ns/cgroup"))
        #expect(!PodSpec.needsCgroupNamespace(joined))
        var unmounted = spec
        unmounted.mounts = []
        unmounted.linux?.personality = RuntimeSpec.Personality(domain: "LINUX")
        let bytes = try JSONEncoder().encode(unmounted)
        #expect(try PodSpec.guestConfig(unmounted, original: bytes, terminal: false) == bytes)
    }

    @Test func ownPIDNamespace() {
        var spec = RuntimeSpec()
        #expect(!PodSpec.hasOwnPIDNamespace(spec))
        spec.linux = RuntimeSpec.Linux(namespaces: [.init(type: .pid)])
        #expect(PodSpec.hasOwnPIDNamespace(spec))
        spec.linux = RuntimeSpec.Linux(namespaces: [.init(type: .pid, path: "/proc/7/ns/pid")])
        #expect(!PodSpec.hasOwnPIDNamespace(spec))
    }

    @Test func sizingFollowsTheLimits() {
        var spec = RuntimeSpec()
        #expect(PodSpec.memoryMiB(spec, defaultMiB: 256, overheadMiB: 64) == 256)
        #expect(PodSpec.vcpus(spec, defaultCount: 1, hostCPUs: 2) == 1)
        spec.linux = RuntimeSpec.Linux()
        spec.linux?.resources = RuntimeSpec.Resources()
        spec.linux?.resources?.memory = RuntimeSpec.Memory(limit: 512 << 20)
        var cpu = RuntimeSpec.CPU()
        cpu.quota = 250_000
        cpu.period = 100_000
        spec.linux?.resources?.cpu = cpu
        #expect(PodSpec.memoryMiB(spec, defaultMiB: 256, overheadMiB: 64) == 576)
        #expect(PodSpec.vcpus(spec, defaultCount: 1, hostCPUs: 8) == 3)
        #expect(PodSpec.vcpus(spec, defaultCount: 1, hostCPUs: 2) == 2)
    }

    @Test func vmNamesAndDigestsAreStableAndSafe() {
        #expect(PodSpec.vmName("web/1 ä") == "qbx-web-1--")
        #expect(PodSpec.vmName(String(repeating: "x", count: 100)).count == 52)
        #expect(PodSpec.digest("default/c1") == PodSpec.digest("default/c1"))
        #expect(PodSpec.digest("default/c1") != PodSpec.digest("default/c2"))
        #expect(PodSpec.digest("a").count == 32)
        #expect(PodSpec.namespaceName(namespace: "default", id: "c1").count == 20)
    }

    /// containerd's errdefs reads the gRPC code: each qemubox code maps to the one it expects.
    @Test func errorsCarryErrdefsStatuses() {
        let expected: [QemuboxError.Code: TTRPCError.Code] = [
            .notFound: .notFound, .alreadyExists: .alreadyExists, .failedPrecondition: .failedPrecondition,
            .invalidArgument: .invalidArgument, .invalidBundle: .invalidArgument, .unimplemented: .unimplemented,
            .agentUnavailable: .unavailable, .timeout: .deadlineExceeded, .resourceExhausted: .resourceExhausted,
            .invalidConfiguration: .failedPrecondition, .guestAssetsMissing: .failedPrecondition,
            .rootfs: .internal, .system: .internal,
        ]
        for (code, status) in expected {
            let error = QemuboxError(code, "context")
            #expect(error.ttrpcStatus.code == status, "\(code)")
            #expect(error.ttrpcStatus.message == "context")
        }
        // Every code maps to something other than OK/unknown.
        for code in QemuboxError.Code.allCases {
            #expect(![.ok, .unknown].contains(QemuboxError(code, "").ttrpcStatus.code), "\(code)")
        }
    }
}
