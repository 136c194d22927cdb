import ContainerdTestSupport
import Foundation
import OCISpec
@testable import QemuboxKit
import Testing
import TestSupport

/// `io.qemubox.*` annotations against the host's `[annotations]` policy, and through containerd.
@Suite struct AnnotationTests {
    static func expectRefused(_ annotations: [String: String], _ policy: AnnotationPolicy = AnnotationPolicy(),
                              mentioning text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(sourceLocation: sourceLocation) { try ContainerOptions(annotations: annotations, policy: policy) } throws: {
            ($0 as? QemuboxError)?.code == .invalidArgument && "\($0)".contains(text)
        }
    }

    @Test func optionsWithinThePolicy() throws {
        var policy = AnnotationPolicy()
        policy.allowed.insert("kernel_args")
        policy.kernelArguments = ["quiet", "loglevel="]
        let options = try ContainerOptions(annotations: [
            "io.qemubox.vcpus": "2", "io.qemubox.memory_mib": "384", "io.qemubox.warm_start": "false",
            "io.qemubox.kernel_args": "quiet loglevel=7", "io.kubernetes.cri.sandbox-id": "ignored",
        ], policy: policy)
        #expect(options.vcpus == 2 && options.memoryMiB == 384 && options.warmStart == false)
        #expect(options.kernelArguments == ["quiet", "loglevel=7"])
        #expect(try ContainerOptions(annotations: [:], policy: policy) == ContainerOptions())
    }

    @Test func refusalsNameTheAnnotation() {
        Self.expectRefused(["io.qemubox.cpus": "2"], mentioning: "io.qemubox.cpus is unknown")
        Self.expectRefused(["io.qemubox.kernel_args": "quiet"], mentioning: "not allowed by this host")
        Self.expectRefused(["io.qemubox.vcpus": "9"], mentioning: "io.qemubox.vcpus=9")
        Self.expectRefused(["io.qemubox.vcpus": "two"], mentioning: "expected an integer")
        Self.expectRefused(["io.qemubox.memory_mib": "32"], mentioning: "64…16384")
        Self.expectRefused(["io.qemubox.warm_start": "yes"], mentioning: "true or false")
        Self.expectRefused(["io.qemubox.hotplug": "1"], mentioning: "true or false")
        Self.expectRefused(["io.qemubox.max_vcpus": "9"], mentioning: "io.qemubox.max_vcpus=9")
        Self.expectRefused(["io.qemubox.machine": "q35"], mentioning: "not allowed by this host")
        var machines = AnnotationPolicy()
        machines.allowed.insert("machine")
        Self.expectRefused(["io.qemubox.machine": "pc"], machines, mentioning: "expected auto, microvm or q35")
        var policy = AnnotationPolicy()
        policy.allowed = ["kernel_args"]
        policy.kernelArguments = ["loglevel="]
        Self.expectRefused(["io.qemubox.kernel_args": "loglevel=3 init=/bin/sh"], policy, mentioning: "\"init=/bin/sh\"")
        Self.expectRefused(["io.qemubox.vcpus": "1"], policy, mentioning: "not allowed by this host")
    }

    /// The VM's shape: sizes from the spec, ceilings from the host or the annotations.
    @Test func shapes() throws {
        var host = PodConfiguration(id: "s", stateDirectory: "/tmp/s", assets: GuestAssets(kernelPath: "/k", systemImagePath: "/i"))
        host.annotations.allowed.insert("machine")
        var spec = RuntimeSpec()
        spec.linux = RuntimeSpec.Linux()
        func shape(_ annotations: [String: String]) throws -> VMShape {
            try VMShape(spec: spec, options: try ContainerOptions(annotations: annotations, policy: host.annotations),
                        configuration: host)
        }
        #expect(try shape([:]) == VMShape(vcpus: 1, memoryMiB: 256), "no ceiling anywhere: the fast microvm")
        host.maxVCPUs = 4
        host.maxMemoryMiB = 1024
        #expect(try shape([:]) == VMShape(vcpus: 1, memoryMiB: 256, maxVCPUs: 4, maxMemoryMiB: 1024))
        #expect(try shape(["io.qemubox.hotplug": "false"]) == VMShape(vcpus: 1, memoryMiB: 256))
        #expect(try shape(["io.qemubox.machine": "microvm"]) == VMShape(vcpus: 1, memoryMiB: 256, machineType: .microvm))
        #expect(try shape(["io.qemubox.max_vcpus": "2", "io.qemubox.vcpus": "2"]).maxVCPUs == nil, "a ceiling at the start size")
        #expect(throws: QemuboxError.self) { try shape(["io.qemubox.machine": "microvm", "io.qemubox.max_vcpus": "2"]) }
        #expect(throws: QemuboxError.self) { try shape(["io.qemubox.vcpus": "3", "io.qemubox.max_vcpus": "2"]) }
        host.maxVCPUs = nil
        host.maxMemoryMiB = nil
        #expect(try shape(["io.qemubox.hotplug": "true"]) == VMShape(vcpus: 1, memoryMiB: 256, maxVCPUs: 8, maxMemoryMiB: 16_384),
                "hotplug=true without a ceiling: the annotation bounds")
    }

    @Test func configurationSection() throws {
        let configuration = try QemuboxConfiguration.parse("""
            [annotations]
            allow = ["vcpus", "kernel_args"]
            max_vcpus = 4
            kernel_args = ["quiet"]
            """)
        #expect(configuration.annotations.allowed == ["vcpus", "kernel_args"])
        #expect(configuration.annotations.maxVCPUs == 4 && configuration.annotations.kernelArguments == ["quiet"])
        for (text, message) in [("[annotations]\nallow = [\"cpus\"]", "unknown annotation \"cpus\""),
                                ("[annotations]\nmax_vcpus = 0", "out of range"),
                                ("[annotations]\nkernel_args = [\"a b\"]", "not one word"),
                                ("[annotations]\nnope = 1", "unknown key \"annotations.nope\"")] {
            #expect { try QemuboxConfiguration.parse(text) } throws: { "\($0)".contains(message) }
        }
    }

    /// Through containerd: the VM gets the annotated size; a refused annotation fails the run clearly.
    @Test(.enabled(if: PrivateContainerd.vmAvailable))
    func sizeFromAnnotationsThroughContainerd() async throws {
        try await ConcurrencyLimit.vms.run {
            try await ContainerdShimTests.withContainerd(qemubox: "[annotations]\nkernel_args = [\"quiet\"]\n") { containerd in
                let run = try await containerd.ctr("run --rm --annotation io.qemubox.vcpus=2 --annotation io.qemubox.memory_mib=400 "
                    + "\(ContainerdShimTests.qemubox) \(PrivateContainerd.image) ann1 sh -c 'nproc; grep MemTotal /proc/meminfo'")
                #expect(run.status == 0, "\(run.stderr)")
                let lines = run.stdout.split(separator: "\n")
                #expect(lines.first == "2", "\(run.stdout)")
                let kib = lines.dropFirst().first.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
                #expect(kib > 300 << 10 && kib <= 400 << 10, "\(run.stdout)")
                let refused = try await containerd.ctr("run --rm --annotation io.qemubox.kernel_args=init=/bin/sh "
                    + "\(ContainerdShimTests.qemubox) \(PrivateContainerd.image) ann2 true")
                #expect(refused.status != 0)
                #expect(refused.stderr.contains("not allowed by this host"), "\(refused.stderr)")
            }
        }
    }
}
