/// Result of `query-status`.
public struct StatusInfo: Sendable, Hashable, Decodable {
    /// Whether the vCPUs are running.
    public var running: Bool
    /// QEMU's run state (`running`, `paused`, `prelaunch`, `shutdown`, `guest-panicked`, …).
    public var status: String
}

/// One entry of `query-cpus-fast`.
public struct CPUInfoFast: Sendable, Hashable, Decodable {
    /// Index of the vCPU.
    public var cpuIndex: Int
    /// QOM path of the vCPU object.
    public var qomPath: String
    /// Host thread id running it.
    public var threadID: Int
    /// Topology properties.
    public var props: CPUInstanceProperties?
    /// Target architecture (`x86_64`).
    public var target: String?

    enum CodingKeys: String, CodingKey {
        case cpuIndex = "cpu-index", qomPath = "qom-path", threadID = "thread-id", props, target
    }
}

/// A CPU's place in the topology (`CpuInstanceProperties`).
public struct CPUInstanceProperties: Sendable, Hashable, Codable {
    public var nodeID: Int?
    public var socketID: Int?
    public var dieID: Int?
    public var clusterID: Int?
    public var coreID: Int?
    public var threadID: Int?

    /// Creates topology properties.
    public init(nodeID: Int? = nil, socketID: Int? = nil, dieID: Int? = nil, clusterID: Int? = nil,
                coreID: Int? = nil, threadID: Int? = nil) {
        self.nodeID = nodeID
        self.socketID = socketID
        self.dieID = dieID
        self.clusterID = clusterID
        self.coreID = coreID
        self.threadID = threadID
    }

    enum CodingKeys: String, CodingKey {
        case nodeID = "node-id", socketID = "socket-id", dieID = "die-id", clusterID = "cluster-id"
        case coreID = "core-id", threadID = "thread-id"
    }

    /// The properties as `device_add` arguments.
    public var deviceArguments: [String: JSONValue] {
        var a: [String: JSONValue] = [:]
        if let nodeID { a["node-id"] = .int(Int64(nodeID)) }
        if let socketID { a["socket-id"] = .int(Int64(socketID)) }
        if let dieID { a["die-id"] = .int(Int64(dieID)) }
        if let clusterID { a["cluster-id"] = .int(Int64(clusterID)) }
        if let coreID { a["core-id"] = .int(Int64(coreID)) }
        if let threadID { a["thread-id"] = .int(Int64(threadID)) }
        return a
    }
}

/// One entry of `query-hotpluggable-cpus`: a slot that holds (or could hold) a vCPU.
public struct HotpluggableCPU: Sendable, Hashable, Decodable {
    /// The CPU device type to `device_add` into this slot.
    public var type: String
    /// vCPUs the slot holds.
    public var vcpusCount: Int
    /// Where the slot is.
    public var props: CPUInstanceProperties
    /// QOM path when the slot is occupied, nil when free.
    public var qomPath: String?

    /// Whether a vCPU is plugged in this slot.
    public var isPlugged: Bool { qomPath != nil }

    enum CodingKeys: String, CodingKey {
        case type, vcpusCount = "vcpus-count", props, qomPath = "qom-path"
    }
}

/// One entry of `query-memory-devices` (dimm, nvdimm, virtio-mem, …).
public struct MemoryDeviceInfo: Sendable, Hashable, Decodable {
    /// Device kind (`dimm`, `nvdimm`, `virtio-pmem`, `virtio-mem`, `sgx-epc`).
    public var type: String
    /// The kind-specific data; for dimms the typed view is ``dimm``.
    public var data: JSONValue

    /// Typed view of a dimm's data.
    public var dimm: DIMMInfo? {
        guard type == "dimm" || type == "nvdimm" else { return nil }
        return try? data.decode(DIMMInfo.self)
    }

    /// Typed view of a virtio-mem device's data.
    public var virtioMem: VirtioMemInfo? {
        guard type == "virtio-mem" else { return nil }
        return try? data.decode(VirtioMemInfo.self)
    }
}

/// `VirtioMEMDeviceInfo`: a virtio-mem device's region and how much of it the guest holds.
public struct VirtioMemInfo: Sendable, Hashable, Decodable {
    /// The device's id.
    public var id: String?
    /// Where the region starts in guest-physical memory.
    public var memaddr: Int64
    /// What the host asked the guest to plug, bytes.
    public var requestedSize: Int64
    /// What the guest has plugged, bytes.
    public var size: Int64
    /// The region's size, bytes.
    public var maxSize: Int64
    /// The plug granularity, bytes.
    public var blockSize: Int64
    /// The memory backend's QOM path.
    public var memdev: String

    enum CodingKeys: String, CodingKey {
        case id, memaddr, size, memdev
        case requestedSize = "requested-size", maxSize = "max-size", blockSize = "block-size"
    }
}

/// `PCDIMMDeviceInfo`.
public struct DIMMInfo: Sendable, Hashable, Decodable {
    public var id: String?
    public var addr: Int64
    public var size: Int64
    public var slot: Int
    public var node: Int
    public var memdev: String
    public var hotplugged: Bool
    public var hotpluggable: Bool
}

/// Result of `query-memory-size-summary`.
public struct MemorySizeSummary: Sendable, Hashable, Decodable {
    /// Boot memory, bytes.
    public var baseMemory: Int64
    /// Memory added by hotplug, bytes (absent on machines without hotplug).
    public var pluggedMemory: Int64?

    enum CodingKeys: String, CodingKey {
        case baseMemory = "base-memory", pluggedMemory = "plugged-memory"
    }
}

/// Result of `chardev-add`.
public struct ChardevAddResult: Sendable, Hashable, Decodable {
    /// The pty path for a `pty` backend.
    public var pty: String?
}

/// `query-migrate`: the state of the last (or current) outgoing or incoming migration.
public struct MigrationInfo: Sendable, Hashable, Decodable {
    /// `none`, `setup`, `active`, `device`, `completed`, `failed`, `cancelled`, … (nil before any migration).
    public var status: String?
    /// QEMU's reason when `status` is `failed`.
    public var errorDescription: String?

    /// Whether the migration has ended (successfully or not).
    public var isFinished: Bool { ["completed", "failed", "cancelled"].contains(status ?? "") }

    enum CodingKeys: String, CodingKey {
        case status
        case errorDescription = "error-desc"
    }
}
