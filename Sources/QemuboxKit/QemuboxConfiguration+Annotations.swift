import Foundation

/// `[annotations]`: which `io.qemubox.*` OCI annotations a container may set, and within
/// what bounds. A container cannot weaken the host's policy: a key not listed in `allow`
/// is refused, as is every unknown `io.qemubox.*` key.
///
/// ```toml
/// [annotations]
/// allow = ["vcpus", "memory_mib", "max_vcpus",   # keys a container may set (default: these six;
///          "max_memory_mib", "hotplug",           #  also known: machine, kernel_args)
///          "warm_start"]
/// max_vcpus = 8                                    # bounds of io.qemubox.vcpus / max_vcpus
/// max_memory_mib = 16384                           # and of memory_mib / max_memory_mib
/// kernel_args = ["quiet", "loglevel="]             # words io.qemubox.kernel_args may hold
///                                                  # ("name=" admits any value); empty: none
/// ```
public struct AnnotationPolicy: Sendable, Hashable {
    /// The keys (without the `io.qemubox.` prefix) containers may set.
    public var allowed: Set<String> = ["vcpus", "memory_mib", "max_vcpus", "max_memory_mib", "hotplug", "warm_start"]
    /// Largest `io.qemubox.vcpus` and `io.qemubox.max_vcpus`.
    public var maxVCPUs = 8
    /// Largest `io.qemubox.memory_mib` and `io.qemubox.max_memory_mib`.
    public var maxMemoryMiB = 16_384
    /// Kernel command-line words `io.qemubox.kernel_args` may hold: exact words, or
    /// prefixes ending in `=` that admit any value.
    public var kernelArguments: [String] = []

    /// Every key qemubox knows.
    public static let knownKeys: Set<String> = [
        "vcpus", "memory_mib", "max_vcpus", "max_memory_mib", "hotplug", "machine", "warm_start", "kernel_args",
    ]
    /// The annotations' prefix.
    public static let prefix = "io.qemubox."

    /// The defaults.
    public init() {}

    static func parse(_ table: TOMLTable, source: String) throws -> AnnotationPolicy {
        var policy = AnnotationPolicy()
        for key in table.keys.sorted() {
            guard let value = table[key] else { continue }
            let name = "annotations.\(key)"
            func strings() throws -> [String] {
                guard let array = value.array else { throw wrongType(name, "an array of strings", value, source) }
                return try array.map {
                    guard let s = $0.string, !s.isEmpty else { throw wrongType(name, "an array of strings", $0, source) }
                    return s
                }
            }
            func int(_ range: ClosedRange<Int>) throws -> Int {
                guard let i = value.int else { throw wrongType(name, "an integer", value, source) }
                guard range.contains(i) else {
                    throw QemuboxError(.invalidConfiguration,
                        "\(source): \(name) = \(i) is out of range (\(range.lowerBound)…\(range.upperBound))")
                }
                return i
            }
            switch key {
            case "allow":
                let keys = try strings()
                if let unknown = keys.first(where: { !knownKeys.contains($0) }) {
                    throw QemuboxError(.invalidConfiguration, "\(source): \(name): unknown annotation \"\(unknown)\" "
                        + "(known: \(knownKeys.sorted().joined(separator: ", ")))")
                }
                policy.allowed = Set(keys)
            case "max_vcpus": policy.maxVCPUs = try int(1...256)
            case "max_memory_mib": policy.maxMemoryMiB = try int(64...1 << 20)
            case "kernel_args":
                let words = try strings()
                if let bad = words.first(where: { $0.contains(where: \.isWhitespace) }) {
                    throw QemuboxError(.invalidConfiguration, "\(source): \(name): \"\(bad)\" is not one word")
                }
                policy.kernelArguments = words
            default:
                throw QemuboxError(.invalidConfiguration, "\(source): unknown key \"\(name)\"")
            }
        }
        return policy
    }
}

/// What a container's `io.qemubox.*` annotations ask for, checked against the host's
/// ``AnnotationPolicy``.
public struct ContainerOptions: Sendable, Hashable {
    /// `io.qemubox.vcpus`: the VM's vCPUs instead of the sizing from the CPU quota.
    public var vcpus: Int?
    /// `io.qemubox.memory_mib`: the VM's memory instead of the sizing from the memory limit.
    public var memoryMiB: Int?
    /// `io.qemubox.max_vcpus`: the vCPU hotplug ceiling instead of the host's.
    public var maxVCPUs: Int?
    /// `io.qemubox.max_memory_mib`: the memory hotplug ceiling instead of the host's.
    public var maxMemoryMiB: Int?
    /// `io.qemubox.hotplug`: false gives the VM no ceiling (the fast microvm); true gives
    /// it one even where the host sets none (the annotation bounds: ``AnnotationPolicy``).
    public var hotplug: Bool?
    /// `io.qemubox.machine`: the machine type.
    public var machineType: MachineDescription.MachineType?
    /// `io.qemubox.warm_start`: false boots even where the host restores templates.
    public var warmStart: Bool?
    /// `io.qemubox.kernel_args`: words appended to the guest kernel's command line.
    public var kernelArguments: [String] = []

    /// No options.
    public init() {}

    /// Reads the spec's `io.qemubox.*` annotations. A key the policy does not allow, an
    /// unknown key or a value out of bounds is an `invalidArgument` error naming it.
    public init(annotations: [String: String], policy: AnnotationPolicy) throws {
        for (key, value) in annotations.sorted(by: { $0.key < $1.key }) where key.hasPrefix(AnnotationPolicy.prefix) {
            let name = String(key.dropFirst(AnnotationPolicy.prefix.count))
            guard AnnotationPolicy.knownKeys.contains(name) else {
                throw QemuboxError(.invalidArgument, "annotation \(key) is unknown (known: "
                    + AnnotationPolicy.knownKeys.sorted().map { AnnotationPolicy.prefix + $0 }.joined(separator: ", ") + ")")
            }
            guard policy.allowed.contains(name) else {
                throw QemuboxError(.invalidArgument,
                    "annotation \(key) is not allowed by this host ([annotations] allow in the qemubox configuration)")
            }
            func int(_ range: ClosedRange<Int>) throws -> Int {
                guard let i = Int(value), range.contains(i) else {
                    throw QemuboxError(.invalidArgument,
                        "annotation \(key)=\(value): expected an integer in \(range.lowerBound)…\(range.upperBound)")
                }
                return i
            }
            func flag() throws -> Bool {
                guard let flag = Bool(value) else {
                    throw QemuboxError(.invalidArgument, "annotation \(key)=\(value): expected true or false")
                }
                return flag
            }
            switch name {
            case "vcpus": vcpus = try int(1...policy.maxVCPUs)
            case "memory_mib": memoryMiB = try int(64...policy.maxMemoryMiB)
            case "max_vcpus": maxVCPUs = try int(1...policy.maxVCPUs)
            case "max_memory_mib": maxMemoryMiB = try int(64...policy.maxMemoryMiB)
            case "hotplug": hotplug = try flag()
            case "warm_start": warmStart = try flag()
            case "machine":
                guard let type = MachineDescription.MachineType(rawValue: value) else {
                    throw QemuboxError(.invalidArgument, "annotation \(key)=\(value): expected auto, microvm or q35")
                }
                machineType = type
            default:
                let words = value.split(whereSeparator: \.isWhitespace).map(String.init)
                for word in words where !policy.kernelArguments.contains(where: { allowed in
                    allowed.hasSuffix("=") ? word.hasPrefix(allowed) : word == allowed
                }) {
                    throw QemuboxError(.invalidArgument,
                        "annotation \(key): kernel argument \"\(word)\" is not allowed by this host ([annotations] kernel_args)")
                }
                kernelArguments = words
            }
        }
    }
}
