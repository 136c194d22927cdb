import Foundation
import OCISpec
@testable import QemuboxKit
@testable import QemuboxShim
import Testing

/// Which containers a spare VM can serve (``Pod/spareMismatch(_:_:)``): exactly the VM a
/// container with no special needs would get, whatever the disks.
@Suite struct SpareFitTests {
    static let host = PodConfiguration(id: "spare-1", stateDirectory: "/tmp/s",
                                       assets: GuestAssets(kernelPath: "/k", systemImagePath: "/i"))

    /// The sandbox a plain container's create asks for (its spec without resources).
    static func wanted(_ host: PodConfiguration = host, annotations: [String: String] = [:]) throws -> SandboxConfiguration {
        var spec = RuntimeSpec()
        spec.annotations = annotations
        let options = try ContainerOptions(annotations: annotations, policy: host.annotations)
        var sandbox = host.sandbox(name: "qbx-c", directory: "/tmp/c/vm",
                                   shape: try VMShape(spec: spec, options: options, configuration: host))
        sandbox.network = SandboxNetwork.new(slots: host.network.nicSlots)
        return sandbox
    }

    @Test func aPlainContainerFits() throws {
        let spare = try Self.host.spareSandbox()
        #expect(spare.hotplugDisks && spare.network?.namespace == .new)
        #expect(Pod.spareMismatch(spare, try Self.wanted()) == nil)
    }

    /// A namespace that exists (CRI's pod namespace, or one the pod made for `[network]
    /// networks`) fits when it has no more interfaces than the spare has NICs: they move there.
    @Test func anExistingNamespaceFitsUpToTheSparesNICs() throws {
        var host = Self.host
        host.network.nicSlots = 2
        let spare = try host.spareSandbox()
        for count in 0...2 {
            var pod = try Self.wanted(host)
            pod.network = SandboxNetwork(namespace: .path("/var/run/netns/cni-1"), slots: (0..<count).map(SandboxNetwork.slot))
            #expect(Pod.spareMismatch(spare, pod) == nil, "\(count) interfaces")
        }
    }

    /// What `start` may hand to a spare at all: a plain container or a CRI sandbox (with its
    /// network namespace by path), not a CRI app container or one joining other namespaces.
    @Test func whoMayClaim() throws {
        let policy = AnnotationPolicy()
        var plain = RuntimeSpec()
        plain.linux = RuntimeSpec.Linux(namespaces: [.init(type: .pid), .init(type: .network)])
        #expect(ShimSpare.mayClaim(plain, policy: policy))
        var sandbox = plain
        sandbox.annotations = [PodSpec.containerTypeAnnotation: "sandbox"]
        sandbox.linux?.namespaces = [.init(type: .pid), .init(type: .network, path: "/var/run/netns/cni-1")]
        #expect(ShimSpare.mayClaim(sandbox, policy: policy))
        var app = sandbox
        app.annotations = [PodSpec.containerTypeAnnotation: "container"]
        #expect(!ShimSpare.mayClaim(app, policy: policy))
        var joining = plain
        joining.linux?.namespaces = [.init(type: .ipc, path: "/proc/1/ns/ipc"), .init(type: .network)]
        #expect(!ShimSpare.mayClaim(joining, policy: policy))
        var hostNetwork = plain
        hostNetwork.linux?.namespaces = [.init(type: .pid)]
        #expect(!ShimSpare.mayClaim(hostNetwork, policy: policy), "host networking: no NIC, a spare has them")
        var cold = plain
        cold.annotations = ["io.qemubox.warm_start": "false"]
        #expect(!ShimSpare.mayClaim(cold, policy: policy))
        var invalid = plain
        invalid.annotations = ["io.qemubox.memory_mib": "lots"]
        #expect(!ShimSpare.mayClaim(invalid, policy: policy))
    }

    @Test func otherVMsDoNotFit() throws {
        let spare = try Self.host.spareSandbox()
        let bigger = try Self.wanted(annotations: ["io.qemubox.memory_mib": "384"])
        #expect(Pod.spareMismatch(spare, bigger)?.contains("384 MiB") == true)
        var shared = try Self.wanted()
        shared.sharedDirectories = [SharedDirectory(tag: "t", path: "/tmp")]
        #expect(Pod.spareMismatch(spare, shared)?.contains("virtio-fs") == true)
        var warm = try Self.wanted()
        warm.templates = VMTemplateStore(directory: "/tmp/t")
        #expect(Pod.spareMismatch(spare, warm)?.contains("warm start") == true)
        var hostNetwork = try Self.wanted()
        hostNetwork.network = nil
        #expect(Pod.spareMismatch(spare, hostNetwork)?.contains("network") == true)
        var crowded = try Self.wanted()
        crowded.network = SandboxNetwork(namespace: .path("/var/run/netns/cni-1"), slots: [SandboxNetwork.slot(0), SandboxNetwork.slot(1)])
        #expect(Pod.spareMismatch(spare, crowded)?.contains("1 NICs") == true, "two interfaces, one NIC")
        var arguments = try Self.wanted()
        arguments.extraKernelArguments = ["quiet"]
        #expect(Pod.spareMismatch(spare, arguments)?.contains("kernel command line") == true)
        var buffer = try Self.wanted()
        buffer.translationBufferMiB = 16
        #expect(Pod.spareMismatch(spare, buffer) != nil)
    }
}
