import ContainerdTestSupport
import Foundation
import TestSupport
import Testing

/// One CRI test's world: a private containerd with the CRI plugin on, running in a network
/// namespace the test made (its CNI bridge, addresses and traffic stay there), the pause and
/// busybox images in `k8s.io`, and a CRI client. Pods get a cgroup parent of the test's own.
struct CRIEnvironment: Sendable {
    static let subnet = "10.231.11"
    static let network = "qbxcri"
    static let bridge = "qbxcri0"
    static let image = PrivateContainerd.image

    let containerd: PrivateContainerd
    let client: CRIClient
    /// The runtime handler under test ("runc" or "qemubox").
    let runtime: String
    let dir: String
    /// The test's network namespace (`/run/netns/NAME`), where containerd runs.
    let netns: String
    let cgroupParent: String

    var netnsName: String { URL(fileURLWithPath: netns).lastPathComponent }

    /// A pod `name` with its log directory under the test's directory, a hostname, DNS settings
    /// and the test's cgroup parent.
    func podConfig(_ name: String) -> CRIPodConfig {
        CRIPodConfig(name: name, hostname: "qbx-\(name)", logDirectory: dir + "/logs/" + name,
                     cgroupParent: "/" + cgroupParent,
                     dns: .init(servers: ["\(Self.subnet).1"], searches: ["qbx.test"], options: ["ndots:2"]))
    }

    /// A shell command in the test's network namespace (the pods' "host").
    func inNamespace(_ command: String) async throws -> Shell.Result {
        try await Shell.run("nsenter --net=\(netns) sh -c \(Shell.quote(command))", timeout: .seconds(60))
    }

    /// Polls ContainerStatus until the container is in `state`; returns the last status.
    func waitState(_ id: String, _ state: String, timeout: Duration = .seconds(120)) async throws -> CRIContainerStatus {
        var last: CRIContainerStatus?
        _ = await eventually(timeout: timeout) {
            last = try? await client.containerStatus(id)
            return last?.state == state
        }
        guard let status = last else { throw PeerError("no status of \(id)") }
        return status
    }

    /// Polls ExecSync `sh -c SCRIPT` until its output is `expected`; returns the last output.
    func waitOutput(_ id: String, _ script: String, _ expected: String, timeout: Duration = .seconds(60)) async -> String {
        var last = ""
        _ = await eventually(timeout: timeout) {
            let result = try? await client.sh(id, script)
            last = (result?.stdout ?? "") + (result?.stderr ?? "")
            return result?.status == 0 && result?.stdout == expected
        }
        return last
    }

    /// The lines of a CRI log file (`TIMESTAMP STREAM TAG TEXT`) as `STREAM TAG TEXT`.
    static func logLines(_ path: String) -> [String] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { line in
            line.split(separator: " ", maxSplits: 1).dropFirst().joined()
        }
    }

    /// Polls the CRI log at `path` until it has the line `stdout F TEXT`.
    static func waitLog(_ path: String, _ text: String, timeout: Duration = .seconds(30)) async -> Bool {
        await eventually(timeout: timeout) { logLines(path).contains("stdout F " + text) }
    }

    /// Pod network namespaces CRI made (`/var/run/netns/cni-*`).
    static func cniNamespaces() -> Set<String> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: "/var/run/netns")) ?? []).filter { $0.hasPrefix("cni-") })
    }

    /// Addresses host-local still holds in the pod network.
    func allocations() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/ipam/" + Self.network)) ?? [])
            .filter { $0.hasPrefix(Self.subnet) }
    }
}

extension CRITests {
    /// Whether the CRI tests of `runtime` can run here; prints why not.
    static func runnable(_ runtime: String) -> Bool {
        guard PrivateContainerd.available, Prerequisite.tools("ip", "nsenter", "gcc", "go", "python3") else { return false }
        if !Prerequisite.isCI && !FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/bridge") {
            FileHandle.standardError.write(Data("SKIP: no CNI plugins in /usr/lib/cni; run scripts/install-deps.sh\n".utf8))
            return false
        }
        return runtime == "qemubox" ? PrivateContainerd.vmAvailable : true
    }

    /// Runs `body` in a fresh ``CRIEnvironment`` for `runtime` (`extra`: lines for qemubox's
    /// config.toml); afterwards removes every
    /// sandbox (with its containers), containerd and what it ran, the pod namespaces CRI
    /// made, the cgroup parent and the test's namespace, whether `body` failed or not.
    /// The directory's name is short: qemubox's per-VM sockets live under `<dir>/qb/k8s.io/<id>/`
    /// and CRI's ids have 64 characters (unix socket paths: at most 103 bytes through NIO).
    static func withCRI(_ runtime: String, qemubox extra: String = "",
                        _ body: @Sendable @escaping (CRIEnvironment) async throws -> Void) async throws {
        let run: @Sendable () async throws -> Void = {
            try await TemporaryDirectory.with(prefix: "qc") { dir in
                let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
                let name = "qbxc" + suffix
                let namespacesBefore = CRIEnvironment.cniNamespaces()
                let settings = CRISettings(cniConfDir: dir + "/cni-conf")
                try await Shell.check("ip netns add \(name) && ip -n \(name) link set lo up")
                let env: CRIEnvironment
                do {
                    let containerd = try PrivateContainerd(dir: dir, qemubox: extra, cri: settings)
                    containerd.networkNamespace = "/run/netns/" + name
                    env = CRIEnvironment(containerd: containerd,
                                         client: try await CRIClient.build(endpoint: containerd.criEndpoint, scratch: dir),
                                         runtime: runtime, dir: dir, netns: "/run/netns/" + name,
                                         cgroupParent: "qbxcri-" + suffix)
                } catch {
                    _ = try? await Shell.run("ip netns delete \(name)")
                    throw error
                }
                do {
                    try writeNetwork(settings.cniConfDir, dir: dir)
                    try await env.containerd.start()
                    try await env.containerd.importImage()
                    try await env.containerd.importPauseImage()
                    let ready = await eventually(timeout: .seconds(60)) {
                        await env.client.isReady(images: [CRISettings.pauseImage, CRIEnvironment.image])
                    }
                    guard ready else { throw PeerError("CRI not ready: \(env.containerd.log())") }
                    try await body(env)
                } catch {
                    await cleanUp(env, namespacesBefore: namespacesBefore)
                    throw error
                }
                await cleanUp(env, namespacesBefore: namespacesBefore)
            }
        }
        if runtime == "qemubox" { try await ConcurrencyLimit.vms.run(run) } else { try await run() }
    }

    /// The pod network: bridge + host-local in the test's namespace, IPAM data in `dir`.
    static func writeNetwork(_ confDir: String, dir: String) throws {
        try FileManager.default.createDirectory(atPath: confDir, withIntermediateDirectories: true)
        try """
            {"cniVersion": "1.0.0", "name": "\(CRIEnvironment.network)", "plugins": [
              {"type": "bridge", "bridge": "\(CRIEnvironment.bridge)", "isGateway": true, "ipMasq": false,
               "ipam": {"type": "host-local", "ranges": [[{"subnet": "\(CRIEnvironment.subnet).0/24"}]],
                        "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "\(dir)/ipam"}}
            ]}
            """.write(toFile: confDir + "/10-\(CRIEnvironment.network).conflist", atomically: true, encoding: .utf8)
    }

    /// Best-effort removal of everything a CRI test made (each step independent of the others).
    static func cleanUp(_ env: CRIEnvironment, namespacesBefore: Set<String>) async {
        var client = env.client
        client.deadlineSeconds = 60
        if FileManager.default.fileExists(atPath: env.containerd.socket), let pods = try? await client.pods() {
            for pod in pods {
                _ = try? await client.stopPodSandbox(pod.id)
                _ = try? await client.removePodSandbox(pod.id)
            }
        }
        await env.containerd.tearDown()
        for name in CRIEnvironment.cniNamespaces().subtracting(namespacesBefore) {
            _ = try? await Shell.run("ip netns delete \(name) || { umount -l /var/run/netns/\(name); rm -f /var/run/netns/\(name); }")
        }
        // Container cgroups go with their containers; the pod's parent is the test's to remove.
        _ = try? await Shell.run("find /sys/fs/cgroup -maxdepth 4 -depth -type d -path '*/\(env.cgroupParent)*' -exec rmdir {} + 2>/dev/null")
        _ = try? await Shell.run("ip netns delete \(env.netnsName)")
    }

    /// Checks that a test that removed its sandboxes left nothing: no sandbox, container, shim,
    /// mount, pod network namespace, address or bridge member.
    static func expectNothingLeft(_ env: CRIEnvironment, namespacesBefore: Set<String>) async throws {
        #expect(try await env.client.pods().isEmpty)
        #expect(try await env.client.containers().isEmpty)
        #expect(try await env.containerd.ctrCheck("containers ls -q").isEmpty)
        let gone = await eventually(timeout: .seconds(30)) { env.containerd.leftoverProcesses().isEmpty }
        #expect(gone, "processes left: \(env.containerd.leftoverProcesses())")
        let unmounted = await eventually(timeout: .seconds(30)) { env.containerd.mounts().isEmpty }
        #expect(unmounted, "mounts left: \(env.containerd.mounts())")
        let namespaces = CRIEnvironment.cniNamespaces().subtracting(namespacesBefore)
        #expect(namespaces.isEmpty, "pod network namespaces left: \(namespaces)")
        #expect(env.allocations().isEmpty, "addresses left: \(env.allocations())")
        let members = try await env.inNamespace("ip -o link show master \(CRIEnvironment.bridge)")
        #expect(members.stdout.isEmpty, "bridge members left: \(members.stdout)")
        try await ContainerdShimTests.expectClean(env.containerd)
    }
}
