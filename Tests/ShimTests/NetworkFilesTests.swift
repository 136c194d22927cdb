import Foundation
import OCISpec
@testable import QemuboxKit
@testable import QemuboxShim
import Testing

/// The files a container gets from the shim's own CNI networks, and the guest's config.json.
@Suite struct NetworkFilesTests {
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
        let files = ShimTaskService.networkFiles(Self.attachment(resolv: "nameserver 10.1.0.1\n", addresses: ["10.1.0.5", "fd00::5"]),
                                                 spec: spec, plan: Self.plan)
        #expect(files.map(\.destination) == ["/etc/resolv.conf", "/etc/hosts"])
        #expect(files[1].content == "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.0.5\tweb\nfd00::5\tweb\n")
        #expect(files.allSatisfy { $0.guestPath.hasPrefix("/run/qemubox/bundles/c1/") })
        spec.mounts = [RuntimeSpec.Mount(destination: "/etc/hosts", type: "bind", source: "/x", options: ["rbind"])]
        #expect(ShimTaskService.networkFiles(Self.attachment(resolv: nil, addresses: []), spec: spec, plan: Self.plan).isEmpty)
        #expect(ShimTaskService.networkFiles(nil, spec: spec, plan: Self.plan).isEmpty)
    }

    @Test func guestConfigDropsTheNetworkNamespaceAndMountsTheFiles() throws {
        var spec = RuntimeSpec()
        spec.root = RuntimeSpec.Root(path: "rootfs")
        spec.linux = RuntimeSpec.Linux(namespaces: [.init(type: .network), .init(type: .pid)])
        let original = try JSONEncoder().encode(spec)
        let data = try ShimTaskService.guestConfig(spec, original: original, terminal: false,
                                                   files: [("/etc/hosts", "/run/qemubox/bundles/c1/hosts")])
        let guest = try JSONDecoder().decode(RuntimeSpec.self, from: data)
        #expect(guest.linux?.namespaces?.map(\.type) == [.pid])
        #expect(guest.mounts?.map(\.destination) == ["/etc/hosts"])
        #expect(guest.mounts?.first?.options == ["rbind", "ro"])
        // Nothing to change: containerd's bytes as they are.
        var plain = RuntimeSpec()
        plain.root = RuntimeSpec.Root(path: "rootfs")
        let bytes = try JSONEncoder().encode(plain)
        #expect(try ShimTaskService.guestConfig(plain, original: bytes, terminal: false) == bytes)
    }
}
