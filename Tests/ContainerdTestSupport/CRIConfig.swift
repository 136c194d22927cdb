import Foundation

// The CRI (runtime.v1) configurations the tests send, as the protobuf JSON the CRI client
// reads (lowerCamelCase field names, enums by name). Only the fields the tests use; the
// names and nesting are CRI's (Tests/Peers/proto/cri/api.proto).

/// A CRI `NamespaceOption`: POD, CONTAINER, NODE (or TARGET) per namespace.
public struct CRINamespaceOptions: Codable, Sendable, Equatable {
    public var network: String
    public var pid: String
    public var ipc: String

    /// What the kubelet sends for a pod without host namespaces or a shared process namespace.
    public static let kubelet = CRINamespaceOptions(network: "POD", pid: "CONTAINER", ipc: "POD")

    public init(network: String, pid: String, ipc: String) {
        self.network = network
        self.pid = pid
        self.ipc = ipc
    }
}

/// A CRI `PodSandboxConfig`.
public struct CRIPodConfig: Codable, Sendable {
    /// `PodSandboxMetadata`.
    public struct Metadata: Codable, Sendable {
        public var name: String
        public var uid: String
        public var namespace: String
        public var attempt: UInt32
    }

    /// `DNSConfig`.
    public struct DNS: Codable, Sendable {
        public var servers: [String]
        public var searches: [String]
        public var options: [String]

        public init(servers: [String], searches: [String], options: [String]) {
            self.servers = servers
            self.searches = searches
            self.options = options
        }
    }

    /// `LinuxPodSandboxConfig` (with its security context's namespace options).
    public struct Linux: Codable, Sendable {
        public struct SecurityContext: Codable, Sendable {
            public var namespaceOptions: CRINamespaceOptions
        }

        public var cgroupParent: String?
        public var securityContext: SecurityContext?
    }

    public var metadata: Metadata
    public var hostname: String?
    public var logDirectory: String?
    public var dnsConfig: DNS?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var linux: Linux?

    /// A pod named `name` (uid and namespace derived from it) as the kubelet describes one.
    public init(name: String, hostname: String, logDirectory: String, cgroupParent: String?, dns: DNS?) {
        metadata = Metadata(name: name, uid: "uid-" + name, namespace: "qbx", attempt: 0)
        self.hostname = hostname
        self.logDirectory = logDirectory
        dnsConfig = dns
        labels = ["io.kubernetes.pod.name": name, "qbx.test/pod": name]
        annotations = ["qbx.test/annotation": "pod-" + name]
        linux = Linux(cgroupParent: cgroupParent, securityContext: .init(namespaceOptions: .kubelet))
    }
}

/// A CRI `ContainerConfig`.
public struct CRIContainerConfig: Codable, Sendable {
    /// `ContainerMetadata`.
    public struct Metadata: Codable, Sendable {
        public var name: String
        public var attempt: UInt32
    }

    /// `ImageSpec`.
    public struct Image: Codable, Sendable {
        public var image: String
    }

    /// `KeyValue`.
    public struct KeyValue: Codable, Sendable {
        public var key: String
        public var value: String
    }

    /// `Mount`: a host path into the container; propagation PROPAGATION_PRIVATE when nil.
    public struct Mount: Codable, Sendable {
        public var containerPath: String
        public var hostPath: String
        public var readonly: Bool?
        public var propagation: String?

        public init(containerPath: String, hostPath: String, readonly: Bool = false) {
            self.containerPath = containerPath
            self.hostPath = hostPath
            self.readonly = readonly ? true : nil
        }
    }

    /// `LinuxContainerConfig` (its security context's namespace options).
    public struct Linux: Codable, Sendable {
        public struct SecurityContext: Codable, Sendable {
            public var namespaceOptions: CRINamespaceOptions
        }

        public var securityContext: SecurityContext?
    }

    public var metadata: Metadata
    public var image: Image
    public var command: [String]?
    public var args: [String]?
    public var workingDir: String?
    public var envs: [KeyValue]?
    public var mounts: [Mount]?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var logPath: String?
    public var linux: Linux?

    /// A container `name` (attempt `attempt`) of `image` running `command`, logging to
    /// `NAME/ATTEMPT.log` in the pod's log directory, namespaces as the kubelet sets them.
    public init(name: String, attempt: UInt32 = 0, image: String, command: [String],
                mounts: [Mount] = [], environment: [String: String] = [:], workingDir: String? = nil) {
        metadata = Metadata(name: name, attempt: attempt)
        self.image = Image(image: image)
        self.command = command
        self.workingDir = workingDir
        envs = environment.isEmpty ? nil : environment.sorted { $0.key < $1.key }.map { KeyValue(key: $0.key, value: $0.value) }
        self.mounts = mounts.isEmpty ? nil : mounts
        labels = ["io.kubernetes.container.name": name]
        annotations = ["qbx.test/annotation": "container-" + name]
        logPath = "\(name)/\(attempt).log"
        linux = Linux(securityContext: .init(namespaceOptions: .kubelet))
    }
}
