#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension RuntimeSpec {
    /// `linux.resources`: cgroup limits.
    public struct Resources: OCIObject {
        /// `devices`: device cgroup allow/deny rules, in order.
        public var devices: [DeviceCgroup]?
        /// `memory`.
        public var memory: Memory?
        /// `cpu`.
        public var cpu: CPU?
        /// `pids`.
        public var pids: Pids?
        /// `blockIO`.
        public var blockIO: BlockIO?
        /// `hugepageLimits`.
        public var hugepageLimits: [HugepageLimit]?
        /// `network`.
        public var network: Network?
        /// `rdma`, keyed by device name.
        public var rdma: [String: RDMA]?
        /// `unified`: cgroup v2 files and values.
        public var unified: [String: String]?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates empty resources.
        public init() {}

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            devices = try r.decode("devices")
            memory = try r.decode("memory")
            cpu = try r.decode("cpu")
            pids = try r.decode("pids")
            blockIO = try r.decode("blockIO")
            hugepageLimits = try r.decode("hugepageLimits")
            network = try r.decode("network")
            rdma = try r.decode("rdma")
            unified = try r.decode("unified")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(devices, "devices")
            try w.encode(memory, "memory")
            try w.encode(cpu, "cpu")
            try w.encode(pids, "pids")
            try w.encode(blockIO, "blockIO")
            try w.encode(hugepageLimits, "hugepageLimits")
            try w.encode(network, "network")
            try w.encode(rdma, "rdma")
            try w.encode(unified, "unified")
            try w.finish(extensions)
        }
    }

    /// An entry of `linux.resources.devices`.
    public struct DeviceCgroup: OCIObject {
        /// `allow` (true) or deny (false).
        public var allow: Bool
        /// `type`: `a`, `c` or `b`.
        public var type: String?
        /// `major`; absent means all.
        public var major: Int64?
        /// `minor`; absent means all.
        public var minor: Int64?
        /// `access`: combination of `r`, `w`, `m`.
        public var access: String?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a rule.
        public init(allow: Bool, type: String? = nil, major: Int64? = nil, minor: Int64? = nil, access: String? = nil) {
            self.allow = allow
            self.type = type
            self.major = major
            self.minor = minor
            self.access = access
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            allow = try r.require("allow")
            type = try r.decode("type")
            major = try r.decode("major")
            minor = try r.decode("minor")
            access = try r.decode("access")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(allow, "allow")
            try w.encode(type, "type")
            try w.encode(major, "major")
            try w.encode(minor, "minor")
            try w.encode(access, "access")
            try w.finish(extensions)
        }
    }

    /// `linux.resources.memory` (bytes; `-1` means unlimited where allowed).
    public struct Memory: OCIObject {
        /// `limit`.
        public var limit: Int64?
        /// `reservation`.
        public var reservation: Int64?
        /// `swap` (memory + swap).
        public var swap: Int64?
        /// `kernel` (deprecated).
        public var kernel: Int64?
        /// `kernelTCP` (deprecated).
        public var kernelTCP: Int64?
        /// `swappiness`.
        public var swappiness: UInt64?
        /// `disableOOMKiller`.
        public var disableOOMKiller: Bool?
        /// `useHierarchy`.
        public var useHierarchy: Bool?
        /// `checkBeforeUpdate`.
        public var checkBeforeUpdate: Bool?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a memory setting.
        public init(limit: Int64? = nil, swap: Int64? = nil) {
            self.limit = limit
            self.swap = swap
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            limit = try r.decode("limit")
            reservation = try r.decode("reservation")
            swap = try r.decode("swap")
            kernel = try r.decode("kernel")
            kernelTCP = try r.decode("kernelTCP")
            swappiness = try r.decode("swappiness")
            disableOOMKiller = try r.decode("disableOOMKiller")
            useHierarchy = try r.decode("useHierarchy")
            checkBeforeUpdate = try r.decode("checkBeforeUpdate")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(limit, "limit")
            try w.encode(reservation, "reservation")
            try w.encode(swap, "swap")
            try w.encode(kernel, "kernel")
            try w.encode(kernelTCP, "kernelTCP")
            try w.encode(swappiness, "swappiness")
            try w.encode(disableOOMKiller, "disableOOMKiller")
            try w.encode(useHierarchy, "useHierarchy")
            try w.encode(checkBeforeUpdate, "checkBeforeUpdate")
            try w.finish(extensions)
        }
    }

    /// `linux.resources.cpu`.
    public struct CPU: OCIObject {
        /// `shares` (relative weight).
        public var shares: UInt64?
        /// `quota` in µs per period (`-1`: none).
        public var quota: Int64?
        /// `burst` in µs.
        public var burst: UInt64?
        /// `period` in µs.
        public var period: UInt64?
        /// `realtimeRuntime` in µs.
        public var realtimeRuntime: Int64?
        /// `realtimePeriod` in µs.
        public var realtimePeriod: UInt64?
        /// `cpus`: CPU list.
        public var cpus: String?
        /// `mems`: memory node list.
        public var mems: String?
        /// `idle`: cgroup v2 `cpu.idle`.
        public var idle: Int64?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a CPU setting.
        public init() {}

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            shares = try r.decode("shares")
            quota = try r.decode("quota")
            burst = try r.decode("burst")
            period = try r.decode("period")
            realtimeRuntime = try r.decode("realtimeRuntime")
            realtimePeriod = try r.decode("realtimePeriod")
            cpus = try r.decode("cpus")
            mems = try r.decode("mems")
            idle = try r.decode("idle")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(shares, "shares")
            try w.encode(quota, "quota")
            try w.encode(burst, "burst")
            try w.encode(period, "period")
            try w.encode(realtimeRuntime, "realtimeRuntime")
            try w.encode(realtimePeriod, "realtimePeriod")
            try w.encode(cpus, "cpus")
            try w.encode(mems, "mems")
            try w.encode(idle, "idle")
            try w.finish(extensions)
        }
    }

    /// `linux.resources.pids`.
    public struct Pids: OCIObject {
        /// `limit` (`-1` or `0`: unlimited).
        public var limit: Int64?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a pids setting.
        public init(limit: Int64? = nil) { self.limit = limit }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            limit = try r.decode("limit")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(limit, "limit")
            try w.finish(extensions)
        }
    }

    /// An entry of `resources.hugepageLimits`.
    public struct HugepageLimit: OCIObject {
        /// `pageSize`, like `2MB`.
        public var pageSize: String
        /// `limit` in bytes.
        public var limit: UInt64
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a limit.
        public init(pageSize: String, limit: UInt64) {
            self.pageSize = pageSize
            self.limit = limit
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            pageSize = try r.require("pageSize")
            limit = try r.require("limit")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(pageSize, "pageSize")
            try w.encode(limit, "limit")
            try w.finish(extensions)
        }
    }

    /// `resources.network`.
    public struct Network: OCIObject {
        /// `classID` for net_cls.
        public var classID: UInt32?
        /// `priorities` for net_prio.
        public var priorities: [InterfacePriority]?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a network setting.
        public init(classID: UInt32? = nil, priorities: [InterfacePriority]? = nil) {
            self.classID = classID
            self.priorities = priorities
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            classID = try r.decode("classID")
            priorities = try r.decode("priorities")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(classID, "classID")
            try w.encode(priorities, "priorities")
            try w.finish(extensions)
        }
    }

    /// An entry of `network.priorities`.
    public struct InterfacePriority: OCIObject {
        /// `name` of the interface.
        public var name: String
        /// `priority`.
        public var priority: UInt32
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a priority.
        public init(name: String, priority: UInt32) {
            self.name = name
            self.priority = priority
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            name = try r.require("name")
            priority = try r.require("priority")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(name, "name")
            try w.encode(priority, "priority")
            try w.finish(extensions)
        }
    }

    /// A value of `resources.rdma`.
    public struct RDMA: OCIObject {
        /// `hcaHandles`.
        public var hcaHandles: UInt32?
        /// `hcaObjects`.
        public var hcaObjects: UInt32?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates an RDMA limit.
        public init(hcaHandles: UInt32? = nil, hcaObjects: UInt32? = nil) {
            self.hcaHandles = hcaHandles
            self.hcaObjects = hcaObjects
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            hcaHandles = try r.decode("hcaHandles")
            hcaObjects = try r.decode("hcaObjects")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(hcaHandles, "hcaHandles")
            try w.encode(hcaObjects, "hcaObjects")
            try w.finish(extensions)
        }
    }
}
