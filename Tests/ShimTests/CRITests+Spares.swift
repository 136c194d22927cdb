import ContainerdTestSupport
import Foundation
import TestSupport
import Testing

/// A CRI pod's sandbox in a spare VM (`warm_spares`): its network namespace exists before its
/// VM is needed (CRI made it and ran CNI in it), so the spare's TAPs move into it. In this
/// suite: CRI tests compare the host's `cni-*` namespaces before and after, one at a time.
extension CRITests {
    /// RunPodSandbox after a spare is ready: the pod's VM is that spare (its NIC's TAP now in
    /// CRI's pod namespace), the pod's address answers from the test's namespace through it,
    /// an app container joins the VM, and removing the pods leaves nothing.
    @Test(.enabled(if: PrivateContainerd.vmAvailable))
    func podSandboxTakesASpare() async throws {
        guard Self.runnable("qemubox") else { return }
        try await TemporaryDirectory.with(prefix: "qbx-templates") { templates in
            try await Self.withCRI("qemubox", qemubox: ContainerdSpareTests.configuration(templates)) { env in
                let containerd = env.containerd
                do {
                    try await Self.podInASpare(env)
                } catch {
                    await ContainerdSpareTests.stopSpares(containerd)
                    throw error
                }
            }
        }
    }

    static func podInASpare(_ env: CRIEnvironment) async throws {
        let namespacesBefore = CRIEnvironment.cniNamespaces()
        let client = env.client
        let containerd = env.containerd
        // The first pod boots a VM of its own; its shim starts the spare.
        let first = try await client.runPodSandbox(env.podConfig("first"), runtimeHandler: "qemubox")
        #expect(await eventually(timeout: .seconds(90)) { ContainerdSpareTests.ready(containerd).count == 1 },
                "no spare got ready: \(containerd.log().suffix(2000))")
        let spare = try #require(ContainerdSpareTests.ready(containerd).first)

        let pod = env.podConfig("web")
        let sandbox = try await client.runPodSandbox(pod, runtimeHandler: "qemubox")
        #expect(containerd.log(last: .max).contains("\(sandbox) runs in a spare VM"),
                "\(containerd.log(last: .max).split(separator: "\n").filter { $0.contains("spare") }.joined(separator: "\n"))")
        #expect(FileManager.default.fileExists(atPath: ContainerdSpareTests.spares(containerd) + "/" + spare + "/claimed"))
        let status = try await client.podStatus(sandbox)
        #expect(status.state == "SANDBOX_READY")
        #expect(status.ip.hasPrefix(CRIEnvironment.subnet + "."), "pod ip \(status.ip)")
        let links = try await Shell.run("nsenter --net=\(status.netns) ip -br link")
        #expect(links.stdout.contains("qbxtap0"), "the spare's TAP is not in the pod's namespace: \(links.stdout)")

        let server = CRIContainerConfig(
            name: "a", image: CRIEnvironment.image,
            command: ["sh", "-c", "while true; do echo pong-A | nc -l -p 8080; done"])
        let id = try await client.createContainer(in: sandbox, server, pod: pod)
        try await client.startContainer(id)
        #expect(try await client.containerStatus(id).state == "CONTAINER_RUNNING")
        #expect(try await client.sh(id, "hostname").stdout == "qbx-web\n")
        let address = try await client.sh(id, "ip -4 -o addr show dev eth0").stdout
        #expect(address.contains(" \(status.ip)/"), "the guest's eth0: \(address)")
        let fromHost = await eventually(timeout: .seconds(30)) {
            let r = try? await env.inNamespace("echo go | busybox nc -w 3 \(status.ip) 8080")
            return r?.stdout == "pong-A\n"
        }
        #expect(fromHost, "test namespace → pod at \(status.ip)")
        #expect(await env.waitOutput(id, "ping -c 1 -W 3 \(CRIEnvironment.subnet).1 >/dev/null && echo up", "up\n") == "up\n",
                "pod → its gateway")

        for each in [sandbox, first] {
            try await client.stopPodSandbox(each)
            try await client.removePodSandbox(each)
        }
        // The spare's directory went with the pod's VM; the refill's spare is ended here.
        #expect(!FileManager.default.fileExists(atPath: ContainerdSpareTests.spares(containerd) + "/" + spare))
        await ContainerdSpareTests.stopSpares(containerd)
        try await Self.expectNothingLeft(env, namespacesBefore: namespacesBefore)
    }
}
