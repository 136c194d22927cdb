import Foundation
import TestSupport

/// A CRI client for the tests: the Go peer `Tests/Peers/go/cri-client` (crictl-like, gRPC
/// runtime.v1 from Debian's grpc and protobuf packages) run once per call against a CRI
/// endpoint. Configurations are written as JSON files into `scratch`.
public struct CRIClient: Sendable {
    /// The exit status of cri-client itself failing (an RPC error, bad usage), never a
    /// command's own (for `exec`).
    public static let clientFailure: Int32 = 200

    public let binary: String
    public let endpoint: String
    public let scratch: String
    /// cri-client's deadline for connecting and for each call.
    public var deadlineSeconds = 120

    /// Builds the client (once per process) for `endpoint` (`unix:///PATH`).
    public static func build(endpoint: String, scratch: String) async throws -> CRIClient {
        CRIClient(binary: try await GoPeer.build("cri-client"), endpoint: endpoint, scratch: scratch)
    }

    public init(binary: String, endpoint: String, scratch: String) {
        self.binary = binary
        self.endpoint = endpoint
        self.scratch = scratch
    }

    /// Runs `cri-client -endpoint E ARGUMENTS`.
    public func run(_ arguments: [String], timeout: Duration = .seconds(30)) async throws -> Shell.Result {
        let words = [binary, "-endpoint", endpoint, "-timeout", "\(deadlineSeconds)s"] + arguments
        return try await Shell.run(words.map(Shell.quote).joined(separator: " "),
                                   timeout: max(timeout, .seconds(deadlineSeconds + 30)))
    }

    /// Runs a call that must succeed; returns its standard output.
    @discardableResult
    public func check(_ arguments: [String]) async throws -> String {
        let result = try await run(arguments)
        guard result.status == 0 else {
            throw PeerError("cri-client \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
        }
        return result.stdout
    }

    private func decode<T: Decodable>(_ type: T.Type, _ arguments: [String]) async throws -> T {
        let out = try await check(arguments)
        do {
            return try JSONDecoder().decode(type, from: Data(out.utf8))
        } catch {
            throw PeerError("cri-client \(arguments.joined(separator: " ")): \(error) in \(out)")
        }
    }

    private func write(_ value: some Encodable, _ kind: String) throws -> String {
        let path = scratch + "/\(kind)-\(UUID().uuidString).json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(value).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func id(_ out: String) throws -> String {
        let id = out.trimmingCharacters(in: .whitespacesAndNewlines)
        guard id.count == 64 else { throw PeerError("not an id: \(out)") }
        return id
    }

    // MARK: Runtime and images

    /// RuntimeReady and NetworkReady (Status), and every image of `images` known to CRI.
    public func isReady(images: [String]) async -> Bool {
        guard let conditions = try? await decode([String: CRICondition].self, ["info"]),
              conditions["RuntimeReady"]?.status == true, conditions["NetworkReady"]?.status == true else { return false }
        for image in images {
            guard let out = try? await check(["image-status", image]), out.contains("\"id\"") else { return false }
        }
        return true
    }

    // MARK: Sandboxes

    /// RunPodSandbox with `runtimeHandler`; returns the sandbox id.
    public func runPodSandbox(_ config: CRIPodConfig, runtimeHandler: String) async throws -> String {
        try id(try await check(["runp", "-runtime", runtimeHandler, try write(config, "pod")]))
    }

    /// PodSandboxStatus (verbose).
    public func podStatus(_ id: String) async throws -> CRIPodStatus {
        try await decode(CRIPodStatus.self, ["inspectp", id])
    }

    /// ListPodSandbox.
    public func pods() async throws -> [CRIPodSummary] {
        try await decode([CRIPodSummary].self, ["pods"])
    }

    public func stopPodSandbox(_ id: String) async throws { try await check(["stopp", id]) }
    public func removePodSandbox(_ id: String) async throws { try await check(["rmp", id]) }

    // MARK: Containers

    /// CreateContainer in `sandbox`; returns the container id.
    public func createContainer(in sandbox: String, _ config: CRIContainerConfig, pod: CRIPodConfig) async throws -> String {
        try id(try await check(["create", sandbox, try write(config, "container"), try write(pod, "pod")]))
    }

    public func startContainer(_ id: String) async throws { try await check(["start", id]) }
    /// StopContainer: SIGTERM (the image's stop signal), SIGKILL after `timeout` seconds.
    public func stopContainer(_ id: String, timeout: Int = 0) async throws { try await check(["stop", "-t", "\(timeout)", id]) }
    public func removeContainer(_ id: String) async throws { try await check(["rm", id]) }

    /// ContainerStatus (verbose).
    public func containerStatus(_ id: String) async throws -> CRIContainerStatus {
        try await decode(CRIContainerStatus.self, ["status", id])
    }

    /// ListContainers (of one sandbox, or all).
    public func containers(in sandbox: String? = nil) async throws -> [CRIContainerSummary] {
        try await decode([CRIContainerSummary].self, ["ps"] + (sandbox.map { ["-pod", $0] } ?? []))
    }

    /// ExecSync `command` in container `id`: status is the command's exit code
    /// (``clientFailure`` when the call itself failed, with the error on stderr).
    public func exec(_ id: String, _ command: [String], timeout seconds: Int = 30) async throws -> Shell.Result {
        try await run(["exec", "-t", "\(seconds)", id, "--"] + command, timeout: .seconds(seconds + 30))
    }

    /// ExecSync `sh -c SCRIPT`.
    public func sh(_ id: String, _ script: String, timeout seconds: Int = 30) async throws -> Shell.Result {
        try await exec(id, ["sh", "-c", script], timeout: seconds)
    }
}

/// A runtime condition of the Status call.
public struct CRICondition: Decodable, Sendable {
    public var status: Bool
    public var reason: String
    public var message: String
}

/// What `cri-client inspectp` reports of a sandbox.
public struct CRIPodStatus: Decodable, Sendable {
    public var id: String
    public var name: String
    /// SANDBOX_READY or SANDBOX_NOTREADY.
    public var state: String
    public var ip: String
    public var runtimeHandler: String
    /// The pod's network namespace (from the sandbox's runtime spec).
    public var netns: String
    /// The sandbox task's pid as containerd reports it.
    public var pid: Int?
    public var labels: [String: String]?
    public var annotations: [String: String]?
}

/// A sandbox in ListPodSandbox.
public struct CRIPodSummary: Decodable, Sendable {
    public var id: String
    public var name: String
    public var state: String
    public var runtimeHandler: String
}

/// What `cri-client status` reports of a container.
public struct CRIContainerStatus: Decodable, Sendable {
    /// A mount as ContainerStatus reports it.
    public struct Mount: Decodable, Sendable, Equatable {
        public var containerPath: String
        public var hostPath: String
        public var readonly: Bool
        public var propagation: String

        public init(containerPath: String, hostPath: String, readonly: Bool, propagation: String) {
            self.containerPath = containerPath
            self.hostPath = hostPath
            self.readonly = readonly
            self.propagation = propagation
        }
    }

    public var id: String
    public var name: String
    public var attempt: Int
    /// CONTAINER_CREATED, CONTAINER_RUNNING, CONTAINER_EXITED or CONTAINER_UNKNOWN.
    public var state: String
    public var exitCode: Int32
    public var reason: String
    public var message: String
    public var logPath: String
    /// Nanoseconds since the epoch (0: not yet).
    public var startedAt: Double
    public var finishedAt: Double
    public var pid: Int?
    public var sandboxId: String?
    public var mounts: [Mount]
}

/// A container in ListContainers.
public struct CRIContainerSummary: Decodable, Sendable {
    public var id: String
    public var podSandboxId: String
    public var name: String
    public var attempt: Int
    public var state: String
}
