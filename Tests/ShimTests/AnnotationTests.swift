import ContainerdTestSupport
import Foundation
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
        var policy = AnnotationPolicy()
        policy.allowed = ["kernel_args"]
        policy.kernelArguments = ["loglevel="]
        Self.expectRefused(["io.qemubox.kernel_args": "loglevel=3 init=/bin/sh"], policy, mentioning: "\"init=/bin/sh\"")
        Self.expectRefused(["io.qemubox.vcpus": "1"], policy, mentioning: "not allowed by this host")
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
