import Foundation
import OCISpec
@testable import QemuboxKit
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
        var criNetwork = try Self.wanted()
        criNetwork.network = SandboxNetwork(namespace: .path("/var/run/netns/cni-1"), slots: [SandboxNetwork.slot(0)])
        #expect(Pod.spareMismatch(spare, criNetwork)?.contains("network") == true)
        var arguments = try Self.wanted()
        arguments.extraKernelArguments = ["quiet"]
        #expect(Pod.spareMismatch(spare, arguments)?.contains("kernel command line") == true)
        var buffer = try Self.wanted()
        buffer.translationBufferMiB = 16
        #expect(Pod.spareMismatch(spare, buffer) != nil)
    }
}
