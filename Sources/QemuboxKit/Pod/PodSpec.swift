import Foundation
import OCISpec

/// How a container's OCI spec becomes what its VM and its guest get: the VM's size,
/// the guest's config.json, and the files the host writes into the guest.
public enum PodSpec {
    /// VM memory: `defaultMiB`, or the container's memory limit plus `overheadMiB` for the guest.
    public static func memoryMiB(_ spec: RuntimeSpec, defaultMiB: Int, overheadMiB: Int) -> Int {
        guard let resources = spec.linux?.resources,
              let needed = VMShape.memoryNeeded([resources], overheadMiB: overheadMiB) else { return defaultMiB }
        return max(defaultMiB, needed)
    }

    /// vCPUs: `defaultCount`, or the CPU quota rounded up (at most `hostCPUs`).
    public static func vcpus(_ spec: RuntimeSpec, defaultCount: Int,
                             hostCPUs: Int = ProcessInfo.processInfo.activeProcessorCount) -> Int {
        guard let resources = spec.linux?.resources, let wanted = VMShape.vcpusNeeded([resources]) else { return defaultCount }
        return max(1, min(wanted, hostCPUs))
    }

    /// CRI's annotation naming a container's role (`sandbox` or `container`).
    public static let containerTypeAnnotation = "io.kubernetes.cri.container-type"
    /// CRI's annotation naming the pod (the sandbox container's id).
    public static let sandboxIDAnnotation = "io.kubernetes.cri.sandbox-id"

    /// Whether the spec is a CRI pod's sandbox (pause) container: its VM is a pod VM,
    /// which the pod's other containers join.
    public static func isPodSandbox(_ spec: RuntimeSpec) -> Bool {
        spec.annotations?[containerTypeAnnotation] == "sandbox"
    }

    /// The pod a container joins, from CRI's annotations: the sandbox's id for a
    /// `container`, nil for a sandbox or a container outside any pod.
    public static func podID(annotations: [String: String]) -> String? {
        guard annotations[containerTypeAnnotation] == "container",
              let id = annotations[sandboxIDAnnotation], !id.isEmpty else { return nil }
        return id
    }

    /// The `/proc/N/ns/NAME` file of each namespace type that can be joined.
    static let namespaceFiles: [RuntimeSpec.NamespaceType: String] = [
        "pid": "pid", "ipc": "ipc", "uts": "uts", "mount": "mnt", "cgroup": "cgroup", "user": "user",
    ]

    /// Checks the namespace paths of a spec (other than the network's, which names the
    /// host namespace QEMU joins): they name host processes, which the guest cannot
    /// enter. A pod's later container may join its sandbox's namespaces (`joining`: the
    /// guest pid of the sandbox's init); anything else is refused.
    public static func checkNamespacePaths(_ spec: RuntimeSpec, joining sandboxPid: UInt32?) throws {
        for entry in spec.linux?.namespaces ?? [] where entry.type != .network {
            guard let path = entry.path, !path.isEmpty else { continue }
            guard sandboxPid != nil, namespaceFiles[entry.type] != nil else {
                throw QemuboxError(.unimplemented,
                    "the \(entry.type) namespace at \(path) belongs to a host process; in qemubox only a pod's containers can share namespaces, with their sandbox")
            }
        }
    }

    /// A QEMU-safe VM name for a container or pod id.
    public static func vmName(_ id: String) -> String {
        let cleaned = String(id.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "-" })
        return "qbx-" + String(cleaned.prefix(48))
    }

    /// The config.json the guest gets: `original` (containerd's bytes) unless the rootfs
    /// path, the terminal flag or the namespaces must change. The container never gets a
    /// network namespace of its own in the guest: it shares the VM's, which holds the
    /// interfaces of the namespace it was given (``Sandbox/attachNetwork()``). `files`
    /// (container path, guest path) are bind-mounted read-only into the container;
    /// `sources` replaces the source of the spec's mount at each index (host bind mounts
    /// become their copies in the guest, ``HostMount``).
    ///
    /// A pod's later container (`joining`: the guest pid of the sandbox's init) gets every
    /// namespace path the spec names (CRI: the sandbox's IPC and UTS, its PID namespace when
    /// the pod shares one) pointed at the sandbox's init in the guest.
    ///
    /// A spec without `linux.personality` gets `{"domain": "LINUX"}`: the guest runs crun
    /// without address randomisation (``needsPersonality(_:)``), and crun applying the
    /// personality before it executes the container's process gives randomisation back.
    public static func guestConfig(_ spec: RuntimeSpec, original: Data, terminal: Bool,
                                   files: [(destination: String, source: String)] = [],
                                   sources: [Int: String] = [:], joining sandboxPid: UInt32? = nil) throws -> Data {
        let networkNamespace = spec.linux?.namespaces?.contains { $0.type == .network } ?? false
        let joined = spec.linux?.namespaces?.contains { $0.path.map { !$0.isEmpty } ?? false } ?? false
        let cgroupNamespace = needsCgroupNamespace(spec)
        let personality = needsPersonality(spec)
        if spec.root?.path == "rootfs" && (spec.process?.terminal ?? false) == terminal && !networkNamespace
            && files.isEmpty && sources.isEmpty && !joined && !cgroupNamespace && !personality {
            return original
        }
        do {
            return try JSONEncoder().encode(spec.with {
                for (index, source) in sources where index < ($0.mounts?.count ?? 0) {
                    $0.mounts?[index].source = source
                }
                if $0.root == nil { $0.root = RuntimeSpec.Root() }
                $0.root?.path = "rootfs"
                $0.process?.terminal = terminal
                $0.linux?.namespaces?.removeAll { $0.type == .network }
                if cgroupNamespace {
                    let namespaces = $0.linux?.namespaces ?? []
                    $0.linux?.namespaces = namespaces + [RuntimeSpec.Namespace(type: .cgroup)]
                }
                if personality {
                    if $0.linux == nil { $0.linux = RuntimeSpec.Linux() }
                    $0.linux?.personality = RuntimeSpec.Personality(domain: "LINUX")
                }
                if let sandboxPid {
                    for (i, entry) in ($0.linux?.namespaces ?? []).enumerated() where !(entry.path ?? "").isEmpty {
                        $0.linux?.namespaces?[i].path = namespaceFiles[entry.type].map { "/proc/\(sandboxPid)/ns/\($0)" }
                    }
                }
                $0.mounts = ($0.mounts ?? []) + files.map {
                    RuntimeSpec.Mount(destination: $0.destination, type: "bind", source: $0.source, options: ["rbind", "ro"])
                }
                if $0.mounts?.isEmpty == true { $0.mounts = nil }
            })
        } catch {
            throw QemuboxError(.invalidBundle, "cannot re-encode config.json: \(error)")
        }
    }

    /// Whether the guest config needs a cgroup namespace added: `spec` mounts cgroupfs at
    /// `/sys/fs/cgroup` (CRI's specs do) and names none, and without one crun shows the
    /// container the guest's whole hierarchy there. Decided here, where the spec is parsed
    /// anyway: the guest agent runs config.json as written.
    static func needsCgroupNamespace(_ spec: RuntimeSpec) -> Bool {
        let mountsCgroup = (spec.mounts ?? []).contains {
            $0.destination == "/sys/fs/cgroup" && ($0.type == "cgroup" || $0.type == "cgroup2")
        }
        guard mountsCgroup, let linux = spec.linux else { return false }
        return !(linux.namespaces ?? []).contains { $0.type == .cgroup }
    }

    /// Whether the guest config needs `linux.personality` added: the guest agent starts crun
    /// with `ADDR_NO_RANDOMIZE` (under TCG a fixed layout lets every crun run reuse the
    /// translations of the last), a personality is inherited across exec, and crun sets the
    /// spec's personality, when there is one, before executing the container's process.
    /// A spec that names a personality keeps its own.
    static func needsPersonality(_ spec: RuntimeSpec) -> Bool {
        spec.linux?.personality == nil
    }

    /// Whether `spec` gives the container a new PID namespace (one named without a path):
    /// its init's exit then ends all of its processes.
    public static func hasOwnPIDNamespace(_ spec: RuntimeSpec) -> Bool {
        spec.linux?.namespaces?.contains { $0.type == .pid && ($0.path ?? "").isEmpty } ?? false
    }

    /// A file the host writes into the guest for a container.
    public struct GuestFile: Sendable, Hashable {
        /// Where the container sees it.
        public var destination: String
        /// Where it is written in the guest (next to the guest bundle).
        public var guestPath: String
        /// Its text.
        public var content: String
    }

    /// The files a container gets from networks the host attached itself (`[network]`):
    /// `/etc/resolv.conf` from the first result naming DNS servers and `/etc/hosts` with
    /// its addresses under the spec's hostname — each unless the spec mounts its own.
    public static func networkFiles(_ attachment: CNIAttachment?, spec: RuntimeSpec, plan: RootfsPlan) -> [GuestFile] {
        guard let attachment else { return [] }
        var files: [GuestFile] = []
        if let resolv = attachment.resolvConf {
            files.append(GuestFile(destination: "/etc/resolv.conf", guestPath: plan.guestBundle + "/resolv.conf",
                                   content: resolv))
        }
        let hostname = spec.hostname.flatMap { $0.isEmpty ? nil : $0 }
        var hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        if let hostname {
            for address in attachment.addresses { hosts += "\(address)\t\(hostname)\n" }
        }
        files.append(GuestFile(destination: "/etc/hosts", guestPath: plan.guestBundle + "/hosts", content: hosts))
        return files.filter { file in !(spec.mounts?.contains { $0.destination == file.destination } ?? false) }
    }

    /// A short stable digest of `text` (32 hex digits) for file and namespace names.
    public static func digest(_ text: String) -> String {
        var a: UInt64 = 0xcbf2_9ce4_8422_2325, b: UInt64 = 0x8422_2325_cbf2_9ce4
        for byte in text.utf8 {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 &+ 1
        }
        return String(format: "%016llx%016llx", a, b)
    }

    /// The name of the network namespace the host makes for a pod (`/run/netns/qbx-<digest>`).
    public static func namespaceName(namespace: String, id: String) -> String {
        "qbx-" + String(digest(namespace + "/" + id).prefix(16))
    }
}
