import Foundation
import OCISpec

/// The size of a container's VM at boot and how far it may grow: what its spec's
/// resources, its `io.qemubox.*` annotations and the host's configuration give.
public struct VMShape: Sendable, Hashable {
    /// vCPUs at boot.
    public var vcpus: Int
    /// Memory at boot, MiB.
    public var memoryMiB: Int
    /// vCPU ceiling (nil: no vCPU hotplug).
    public var maxVCPUs: Int?
    /// Memory ceiling, MiB (nil: no memory hotplug).
    public var maxMemoryMiB: Int?
    /// Requested machine type.
    public var machineType: MachineDescription.MachineType

    /// Whether the VM can grow at all.
    public var canHotplug: Bool {
        (maxVCPUs.map { $0 > vcpus } ?? false) || (maxMemoryMiB.map { $0 > memoryMiB } ?? false)
    }

    /// A shape given outright.
    public init(vcpus: Int, memoryMiB: Int, maxVCPUs: Int? = nil, maxMemoryMiB: Int? = nil,
                machineType: MachineDescription.MachineType = .auto) {
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
        self.maxVCPUs = maxVCPUs
        self.maxMemoryMiB = maxMemoryMiB
        self.machineType = machineType
    }

    /// The shape of the VM a container with `spec` and `options` boots in. Annotations
    /// win over the host's defaults; `io.qemubox.hotplug=false` drops every ceiling and
    /// `=true` sets the annotation bounds as ceilings where nothing else does. An
    /// annotated ceiling below the VM's boot size is an error; a host ceiling below it
    /// just means that resource cannot grow. `io.qemubox.machine=microvm` drops the
    /// host's ceilings (microvm cannot hotplug) and refuses annotated ones.
    public init(spec: RuntimeSpec, options: ContainerOptions, configuration: PodConfiguration) throws {
        vcpus = options.vcpus ?? PodSpec.vcpus(spec, defaultCount: configuration.vcpus)
        memoryMiB = options.memoryMiB ?? PodSpec.memoryMiB(spec, defaultMiB: configuration.memoryMiB,
                                                           overheadMiB: configuration.guestOverheadMiB)
        machineType = options.machineType ?? configuration.machineType
        let policy = configuration.annotations
        let hotplug = options.hotplug
        let annotated = options.maxVCPUs != nil || options.maxMemoryMiB != nil
        if hotplug == false || (machineType == .microvm && !annotated && hotplug != true) {
            maxVCPUs = nil
            maxMemoryMiB = nil
        } else {
            if machineType == .microvm {
                throw QemuboxError(.invalidArgument, "io.qemubox.machine=microvm cannot hotplug; drop the hotplug annotations or use auto or q35")
            }
            maxVCPUs = options.maxVCPUs ?? configuration.maxVCPUs ?? (hotplug == true ? policy.maxVCPUs : nil)
            maxMemoryMiB = options.maxMemoryMiB ?? configuration.maxMemoryMiB ?? (hotplug == true ? policy.maxMemoryMiB : nil)
            if let max = options.maxVCPUs, max < vcpus {
                throw QemuboxError(.invalidArgument, "io.qemubox.max_vcpus=\(max) is below the VM's \(vcpus) vCPUs at start")
            }
            if let max = options.maxMemoryMiB, max < memoryMiB {
                throw QemuboxError(.invalidArgument,
                    "io.qemubox.max_memory_mib=\(max) is below the VM's \(memoryMiB) MiB at start (the memory limit plus the guest's overhead)")
            }
            if let max = maxVCPUs, max <= vcpus { maxVCPUs = nil }
            if let max = maxMemoryMiB, max <= memoryMiB { maxMemoryMiB = nil }
        }
    }

    /// The vCPUs containers with these resources need: the sum of their CPU quotas,
    /// each rounded up; nil when none sets a quota.
    public static func vcpusNeeded(_ resources: [RuntimeSpec.Resources]) -> Int? {
        let counts = resources.compactMap { r -> Int? in
            guard let quota = r.cpu?.quota, quota > 0, let period = r.cpu?.period, period > 0 else { return nil }
            return Int((UInt64(quota) + period - 1) / period)
        }
        return counts.isEmpty ? nil : counts.reduce(0, +)
    }

    /// The memory containers with these resources need, MiB: the sum of their limits
    /// plus the guest's overhead; nil when none sets a limit.
    public static func memoryNeeded(_ resources: [RuntimeSpec.Resources], overheadMiB: Int) -> Int? {
        let limits = resources.compactMap { r -> Int? in
            guard let limit = r.memory?.limit, limit > 0 else { return nil }
            return Int((limit + (1 << 20) - 1) >> 20)
        }
        return limits.isEmpty ? nil : limits.reduce(0, +) + overheadMiB
    }
}
