#if canImport(Glibc)
import Glibc
#endif
import ContainerdTestSupport
import Foundation
import OCISpec
import TestSupport
import Testing

/// Kubernetes' view of qemubox: containerd's CRI plugin driven over the CRI gRPC API
/// (runtime.v1, as the kubelet does) for the `runc` handler and qemubox's, with the same
/// scenarios and the same expected observations. A pod is a sandbox (the pause container)
/// plus app containers sharing its network, UTS and IPC namespaces and host directories.
///
/// For qemubox, one VM serves the pod (one QEMU, its containers' disks added while it runs).
/// QEMUBOX_CRI_FIXTURES=DIR makes the runc lifecycle test copy the bundles' config.json
/// of the sandbox and of an app container there (Tests/ShimTests/Fixtures/cri-*.json).
@Suite(.serialized) struct CRITests {
    static let handlers = ["runc", "qemubox"]

    /// RunPodSandbox, two containers sharing a directory and the pod's network, ExecSync in
    /// each, logs, a read-only host file updated on the host, graceful and forced stops, and
    /// the sandbox's removal leaving nothing behind.
    @Test(arguments: handlers)
    func podLifecycle(_ runtime: String) async throws {
        guard Self.runnable(runtime) else { return }
        try await Self.withCRI(runtime) { env in
            let namespacesBefore = CRIEnvironment.cniNamespaces()
            let client = env.client
            // An emptyDir volume where the kubelet keeps it (qemubox keeps such a volume in the pod VM).
            let shared = env.dir + "/kubelet/pods/uid-web/volumes/kubernetes.io~empty-dir/shared"
            let hostFile = env.dir + "/host-file"
            try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
            try "version-1\n".write(toFile: hostFile, atomically: false, encoding: .utf8)

            let pod = env.podConfig("web")
            let sandbox = try await client.runPodSandbox(pod, runtimeHandler: runtime)
            let podStatus = try await client.podStatus(sandbox)
            #expect(podStatus.state == "SANDBOX_READY")
            #expect(podStatus.runtimeHandler == runtime)
            #expect(podStatus.ip.hasPrefix(CRIEnvironment.subnet + "."), "pod ip \(podStatus.ip)")
            #expect(podStatus.annotations == pod.annotations)
            #expect(FileManager.default.fileExists(atPath: podStatus.netns), "pod netns \(podStatus.netns)")

            // A: a TCP server on 8080 that says bye and exits 3 on SIGTERM.
            let a = CRIContainerConfig(
                name: "a", image: CRIEnvironment.image,
                command: ["sh", "-c", "trap 'echo bye-from-A; exit 3' TERM; echo hello-from-A; "
                    + "while true; do echo pong-A | nc -l -p 8080 & wait $!; done"],
                mounts: [.init(containerPath: "/shared", hostPath: shared),
                         .init(containerPath: "/config/host-file", hostPath: hostFile, readonly: true)],
                environment: ["QBX_ROLE": "server"], workingDir: "/tmp")
            // B: writes into the shared directory, then sleeps as PID 1 (SIGTERM ignored).
            let b = CRIContainerConfig(
                name: "b", image: CRIEnvironment.image,
                command: ["sh", "-c", "echo hello-from-B > /shared/b; echo hello-from-B; exec sleep 1000"],
                mounts: [.init(containerPath: "/shared", hostPath: shared)])
            let idA = try await client.createContainer(in: sandbox, a, pod: pod)
            let idB = try await client.createContainer(in: sandbox, b, pod: pod)
            #expect(try await client.containerStatus(idA).state == "CONTAINER_CREATED")
            try await client.startContainer(idA)
            try await client.startContainer(idB)
            for id in [idA, idB] {
                let status = try await client.containerStatus(id)
                #expect(status.state == "CONTAINER_RUNNING", "\(status)")
                #expect(status.sandboxId == sandbox)
            }
            let listed = try await client.containers(in: sandbox).map(\.id).sorted()
            #expect(listed == [idA, idB].sorted())
            if runtime == "qemubox" {
                // The pod is one VM: one shim and one QEMU for the sandbox and both containers.
                #expect(ContainerdPodTests.qemuboxShims(env.containerd).count == 1)
                #expect(ContainerdPodTests.qemus(env.containerd).count == 1)
            }
            if let capture = ProcessInfo.processInfo.environment["QEMUBOX_CRI_FIXTURES"], runtime == "runc" {
                try Self.captureBundles(env, sandbox: sandbox, container: idA, into: capture)
            }

            // The pod's identity files: CRI's hostname, its copy of the host's /etc/hosts, the DNS config.
            let hostHosts = try String(contentsOfFile: "/etc/hosts", encoding: .utf8)
            for id in [idA, idB] {
                #expect(try await client.sh(id, "hostname").stdout == "qbx-web\n")
                #expect(try await client.sh(id, "cat /etc/hosts").stdout == hostHosts)
                let resolv = try await client.sh(id, "cat /etc/resolv.conf").stdout
                #expect(resolv == "search qbx.test\nnameserver \(CRIEnvironment.subnet).1\noptions ndots:2\n", "\(resolv)")
            }
            #expect(try await client.sh(idA, "echo $QBX_ROLE $(pwd)").stdout == "server /tmp\n")

            // The shared directory, both ways.
            #expect(await env.waitOutput(idA, "cat /shared/b", "hello-from-B\n") == "hello-from-B\n")
            #expect(try await client.sh(idA, "echo hello-from-A > /shared/a").status == 0)
            #expect(try await client.sh(idB, "cat /shared/a").stdout == "hello-from-A\n")
            if runtime == "runc" {
                #expect(try String(contentsOfFile: shared + "/a", encoding: .utf8) == "hello-from-A\n")
            } else {
                #expect(!FileManager.default.fileExists(atPath: shared + "/a"), "qemubox keeps emptyDir in the pod's VM")
                // A read-write host directory (a hostPath volume) cannot reach a running pod VM: a clear error.
                let hostPath = env.dir + "/host-dir"
                try FileManager.default.createDirectory(atPath: hostPath, withIntermediateDirectories: true)
                let c = CRIContainerConfig(name: "c", image: CRIEnvironment.image, command: ["true"],
                                           mounts: [.init(containerPath: "/data", hostPath: hostPath)])
                // CRI makes the task (the shim's Create) at StartContainer.
                let idC = try await client.createContainer(in: sandbox, c, pod: pod)
                await #expect {
                    try await client.startContainer(idC)
                } throws: { error in
                    "\(error)".contains("read-write directory") && "\(error)".contains("Unimplemented")
                }
                try await client.removeContainer(idC)
            }

            // One network: B reaches A on localhost; the test's namespace reaches the pod's address.
            #expect(await env.waitOutput(idB, "echo go | nc 127.0.0.1 8080", "pong-A\n") == "pong-A\n")
            let fromHost = await eventually(timeout: .seconds(30)) {
                let r = try? await env.inNamespace("echo go | busybox nc -w 3 \(podStatus.ip) 8080")
                return r?.stdout == "pong-A\n"
            }
            #expect(fromHost, "test namespace → pod at \(podStatus.ip)")

            // Logs in CRI's format at the path the status names.
            let statusA = try await client.containerStatus(idA)
            #expect(statusA.logPath == env.dir + "/logs/web/a/0.log")
            #expect(await CRIEnvironment.waitLog(statusA.logPath, "hello-from-A"), "\(CRIEnvironment.logLines(statusA.logPath))")
            let logB = try await client.containerStatus(idB).logPath
            #expect(await CRIEnvironment.waitLog(logB, "hello-from-B"), "\(CRIEnvironment.logLines(logB))")
            #expect(statusA.mounts == [
                .init(containerPath: "/shared", hostPath: shared, readonly: false, propagation: "PROPAGATION_PRIVATE"),
                .init(containerPath: "/config/host-file", hostPath: hostFile, readonly: true, propagation: "PROPAGATION_PRIVATE"),
            ])

            // A read-only host file: visible, not writable, and a change on the host shows.
            #expect(try await client.sh(idA, "cat /config/host-file").stdout == "version-1\n")
            #expect(try await client.sh(idA, "echo x > /config/host-file").status != 0)
            try "version-2\n".write(toFile: hostFile, atomically: false, encoding: .utf8)  // same inode
            #expect(await env.waitOutput(idA, "cat /config/host-file", "version-2\n") == "version-2\n")

            // Graceful stop (A's trap: exit 3) and forced (B: SIGTERM ignored, no grace).
            try await client.stopContainer(idA, timeout: 30)
            try await client.stopContainer(idB, timeout: 0)
            let stoppedA = try await env.waitState(idA, "CONTAINER_EXITED")
            #expect(stoppedA.exitCode == 3, "\(stoppedA)")
            #expect(await CRIEnvironment.waitLog(statusA.logPath, "bye-from-A"), "\(CRIEnvironment.logLines(statusA.logPath))")
            let stoppedB = try await env.waitState(idB, "CONTAINER_EXITED")
            #expect(stoppedB.exitCode == 137, "\(stoppedB)")
            #expect(stoppedB.finishedAt > 0)

            try await client.removeContainer(idA)
            try await client.removeContainer(idB)
            try await client.stopPodSandbox(sandbox)
            #expect(try await client.podStatus(sandbox).state == "SANDBOX_NOTREADY")
            try await client.removePodSandbox(sandbox)
            #expect(!FileManager.default.fileExists(atPath: podStatus.netns), "pod netns \(podStatus.netns) left")
            try await Self.expectNothingLeft(env, namespacesBefore: namespacesBefore)
        }
    }

    /// A container that exits, observed with its exit code, then created again in the same
    /// sandbox as attempt 1 (as the kubelet restarts one): it runs, exits, and both attempts
    /// keep their own status and log while the sandbox stays ready.
    @Test(arguments: handlers)
    func exitedContainerRunsAgainInTheSameSandbox(_ runtime: String) async throws {
        guard Self.runnable(runtime) else { return }
        try await Self.withCRI(runtime) { env in
            let namespacesBefore = CRIEnvironment.cniNamespaces()
            let client = env.client
            let pod = env.podConfig("job")
            let sandbox = try await client.runPodSandbox(pod, runtimeHandler: runtime)
            let first = CRIContainerConfig(name: "once", attempt: 0, image: CRIEnvironment.image,
                                           command: ["sh", "-c", "echo first-run; exit 5"])
            let id0 = try await client.createContainer(in: sandbox, first, pod: pod)
            try await client.startContainer(id0)
            let exited0 = try await env.waitState(id0, "CONTAINER_EXITED")
            #expect(exited0.exitCode == 5, "\(exited0)")
            #expect(exited0.reason == "Error")
            #expect(await CRIEnvironment.waitLog(exited0.logPath, "first-run"), "\(CRIEnvironment.logLines(exited0.logPath))")
            let execInExited = try await client.sh(id0, "true")
            #expect(execInExited.status == CRIClient.clientFailure, "exec in an exited container: \(execInExited)")
            #expect(try await client.podStatus(sandbox).state == "SANDBOX_READY")

            let second = CRIContainerConfig(name: "once", attempt: 1, image: CRIEnvironment.image,
                                            command: ["sh", "-c", "echo second-run; exit 0"])
            let id1 = try await client.createContainer(in: sandbox, second, pod: pod)
            #expect(id1 != id0)
            try await client.startContainer(id1)
            let exited1 = try await env.waitState(id1, "CONTAINER_EXITED")
            #expect(exited1.exitCode == 0, "\(exited1)")
            #expect(exited1.reason == "Completed")
            #expect(exited1.attempt == 1)
            #expect(exited1.logPath == env.dir + "/logs/job/once/1.log")
            #expect(await CRIEnvironment.waitLog(exited1.logPath, "second-run"), "\(CRIEnvironment.logLines(exited1.logPath))")
            #expect(!CRIEnvironment.logLines(exited1.logPath).contains("stdout F first-run"))
            let attempts = try await client.containers(in: sandbox).map { "\($0.name)/\($0.attempt) \($0.state)" }.sorted()
            #expect(attempts == ["once/0 CONTAINER_EXITED", "once/1 CONTAINER_EXITED"])
            #expect(try await client.podStatus(sandbox).state == "SANDBOX_READY")

            for id in [id0, id1] { try await client.removeContainer(id) }
            try await client.stopPodSandbox(sandbox)
            try await client.removePodSandbox(sandbox)
            try await Self.expectNothingLeft(env, namespacesBefore: namespacesBefore)
        }
    }

    /// `shareProcessNamespace: true`: the kubelet asks for the pod's PID namespace (POD) for the
    /// sandbox and its containers; a container then sees the pause process as PID 1.
    @Test(arguments: handlers)
    func sharedProcessNamespace(_ runtime: String) async throws {
        guard Self.runnable(runtime) else { return }
        try await Self.withCRI(runtime) { env in
            let namespacesBefore = CRIEnvironment.cniNamespaces()
            let client = env.client
            var pod = env.podConfig("pidns")
            pod.linux?.securityContext?.namespaceOptions.pid = "POD"
            let sandbox = try await client.runPodSandbox(pod, runtimeHandler: runtime)
            var config = CRIContainerConfig(name: "peek", image: CRIEnvironment.image, command: ["sleep", "1000"])
            config.linux?.securityContext?.namespaceOptions.pid = "POD"
            let id = try await client.createContainer(in: sandbox, config, pod: pod)
            try await client.startContainer(id)
            _ = try await env.waitState(id, "CONTAINER_RUNNING")
            let first = try await client.sh(id, "tr '\\0' ' ' < /proc/1/cmdline")
            #expect(first.stdout == "/pause ", "PID 1 in the container: \(first)")
            try await client.stopContainer(id, timeout: 0)
            try await client.removeContainer(id)
            try await client.stopPodSandbox(sandbox)
            try await client.removePodSandbox(sandbox)
            try await Self.expectNothingLeft(env, namespacesBefore: namespacesBefore)
        }
    }

    /// A pod whose shim is SIGKILLed: its container is reported exited, StopPodSandbox and
    /// RemovePodSandbox still succeed, and nothing is left (for qemubox: QEMU died with the
    /// shim, containerd's `shim delete` cleaned up the pod).
    @Test(arguments: handlers)
    func podSurvivesItsShimBeingKilled(_ runtime: String) async throws {
        guard Self.runnable(runtime) else { return }
        try await Self.withCRI(runtime) { env in
            let namespacesBefore = CRIEnvironment.cniNamespaces()
            let client = env.client
            let pod = env.podConfig("crash")
            let sandbox = try await client.runPodSandbox(pod, runtimeHandler: runtime)
            let config = CRIContainerConfig(name: "victim", image: CRIEnvironment.image, command: ["sleep", "1000"])
            let id = try await client.createContainer(in: sandbox, config, pod: pod)
            try await client.startContainer(id)
            _ = try await env.waitState(id, "CONTAINER_RUNNING")
            let shimName = runtime == "qemubox" ? "containerd-shim-qemubox-v1" : "containerd-shim-runc-v2"
            let shims = env.containerd.leftoverProcesses().filter { pid in
                let cmd = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
                return cmd.contains(shimName) && cmd.contains(sandbox)
            }
            try #require(shims.count == 1, "the pod's shim")
            kill(shims[0], SIGKILL)
            if runtime == "qemubox" {
                // The container ran in the pod's VM, which died with the shim.
                let exited = try await env.waitState(id, "CONTAINER_EXITED")
                // 255 is containerd's "unknown" status: its Wait on the dead shim's task fails
                // before `shim delete` reports 137 (containerd decides which one CRI sees).
                #expect(exited.exitCode == 137 || exited.exitCode == 255, "\(exited)")
            }
            try await client.stopPodSandbox(sandbox)
            try await client.removePodSandbox(sandbox)
            try await Self.expectNothingLeft(env, namespacesBefore: namespacesBefore)
        }
    }

    /// What containerd 1.6's CRI gives a shim (captured with runc): the sandbox creates its
    /// namespaces (network: CRI's `/var/run/netns/cni-*`), an app container joins the
    /// sandbox's through `/proc/<sandbox task pid>/ns/*` (its pid namespace is its own, as
    /// the kubelet asks) and gets the pod's files as bind mounts of CRI's sandbox directories.
    @Test func capturedBundlesShowHowCRIGroupsAPod() throws {
        let fixtures = PrivateContainerd.packageRoot + "/Tests/ShimTests/Fixtures/"
        func load(_ name: String) throws -> RuntimeSpec {
            try JSONDecoder().decode(RuntimeSpec.self, from: Data(contentsOf: URL(fileURLWithPath: fixtures + name)))
        }
        let sandbox = try load("cri-sandbox-config.json")
        let container = try load("cri-container-config.json")
        let sandboxID = try #require(sandbox.annotations?["io.kubernetes.cri.sandbox-id"])
        #expect(sandbox.annotations?["io.kubernetes.cri.container-type"] == "sandbox")
        #expect(container.annotations?["io.kubernetes.cri.container-type"] == "container")
        #expect(container.annotations?["io.kubernetes.cri.sandbox-id"] == sandboxID)
        #expect(container.annotations?["io.kubernetes.cri.container-name"] == "a")
        #expect(sandbox.process?.args == ["/pause"])
        let sandboxNetwork = sandbox.linux?.namespaces?.first { $0.type == .network }?.path ?? ""
        #expect(sandboxNetwork.hasPrefix("/var/run/netns/cni-"))
        let joined = (container.linux?.namespaces ?? []).filter { $0.path != nil }.map(\.type)
        #expect(Set(joined) == [.network, .ipc, .uts])
        for namespace in container.linux?.namespaces ?? [] {
            if let path = namespace.path { #expect(path.hasPrefix("/proc/") && path.contains("/ns/"), "\(path)") }
        }
        let podFiles = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm"]
        let binds = (container.mounts ?? []).filter { podFiles.contains($0.destination) }
        #expect(binds.map(\.destination).sorted() == podFiles.sorted())
        #expect(binds.allSatisfy { $0.type == "bind" && ($0.source ?? "").contains("/io.containerd.grpc.v1.cri/sandboxes/\(sandboxID)/") })
    }

    /// Copies the runtime bundles' config.json (what a shim receives) of a sandbox and a container.
    static func captureBundles(_ env: CRIEnvironment, sandbox: String, container: String, into dir: String) throws {
        let bundles = env.dir + "/state/io.containerd.runtime.v2.task/" + CRISettings.namespace
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (id, name) in [(sandbox, "cri-sandbox-config.json"), (container, "cri-container-config.json")] {
            let data = try Data(contentsOf: URL(fileURLWithPath: "\(bundles)/\(id)/config.json"))
            try data.write(to: URL(fileURLWithPath: dir + "/" + name))
        }
    }
}
