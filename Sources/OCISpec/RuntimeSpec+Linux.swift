#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension RuntimeSpec {
    /// `linux`: Linux-specific configuration.
    public struct Linux: OCIObject {
        /// `namespaces` to create or join.
        public var namespaces: [Namespace]?
        /// `uidMappings` for the user namespace.
        public var uidMappings: [IDMapping]?
        /// `gidMappings` for the user namespace.
        public var gidMappings: [IDMapping]?
        /// `timeOffsets` for the time namespace, keyed by clock (`boottime`, `monotonic`).
        public var timeOffsets: [String: TimeOffset]?
        /// `devices` to create in the container.
        public var devices: [Device]?
        /// `netDevices` to move into the container, keyed by host name.
        public var netDevices: [String: NetDevice]?
        /// `cgroupsPath`.
        public var cgroupsPath: String?
        /// `rootfsPropagation`: `private`, `shared`, `slave` or `unbindable`.
        public var rootfsPropagation: String?
        /// `resources`: cgroup limits.
        public var resources: Resources?
        /// `seccomp` filter.
        public var seccomp: Seccomp?
        /// `sysctl` settings.
        public var sysctl: [String: String]?
        /// `maskedPaths`.
        public var maskedPaths: [String]?
        /// `readonlyPaths`.
        public var readonlyPaths: [String]?
        /// `mountLabel` (SELinux).
        public var mountLabel: String?
        /// `intelRdt`: Intel Resource Director Technology.
        public var intelRdt: IntelRdt?
        /// `personality`: execution domain.
        public var personality: Personality?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates an empty Linux section.
        public init(namespaces: [Namespace]? = nil) { self.namespaces = namespaces }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            namespaces = try r.decode("namespaces")
            uidMappings = try r.decode("uidMappings")
            gidMappings = try r.decode("gidMappings")
            timeOffsets = try r.decode("timeOffsets")
            devices = try r.decode("devices")
            netDevices = try r.decode("netDevices")
            cgroupsPath = try r.decode("cgroupsPath")
            rootfsPropagation = try r.decode("rootfsPropagation")
            resources = try r.decode("resources")
            seccomp = try r.decode("seccomp")
            sysctl = try r.decode("sysctl")
            maskedPaths = try r.decode("maskedPaths")
            readonlyPaths = try r.decode("readonlyPaths")
            mountLabel = try r.decode("mountLabel")
            intelRdt = try r.decode("intelRdt")
            personality = try r.decode("personality")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(namespaces, "namespaces")
            try w.encode(uidMappings, "uidMappings")
            try w.encode(gidMappings, "gidMappings")
            try w.encode(timeOffsets, "timeOffsets")
            try w.encode(devices, "devices")
            try w.encode(netDevices, "netDevices")
            try w.encode(cgroupsPath, "cgroupsPath")
            try w.encode(rootfsPropagation, "rootfsPropagation")
            try w.encode(resources, "resources")
            try w.encode(seccomp, "seccomp")
            try w.encode(sysctl, "sysctl")
            try w.encode(maskedPaths, "maskedPaths")
            try w.encode(readonlyPaths, "readonlyPaths")
            try w.encode(mountLabel, "mountLabel")
            try w.encode(intelRdt, "intelRdt")
            try w.encode(personality, "personality")
            try w.finish(extensions)
        }
    }

    /// A namespace type name. An open set: unknown names decode and round-trip,
    /// validation reports them.
    public struct NamespaceType: RawRepresentable, Codable, Sendable, Hashable, ExpressibleByStringLiteral,
        CustomStringConvertible
    {
        /// The JSON string.
        public var rawValue: String
        /// Wraps a name.
        public init(rawValue: String) { self.rawValue = rawValue }
        /// Wraps a literal name.
        public init(stringLiteral value: String) { rawValue = value }
        /// Decodes the string.
        public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
        /// Encodes the string.
        public func encode(to encoder: any Encoder) throws {
            var single = encoder.singleValueContainer()
            try single.encode(rawValue)
        }
        /// The name.
        public var description: String { rawValue }

        /// `pid`.
        public static let pid: NamespaceType = "pid"
        /// `network`.
        public static let network: NamespaceType = "network"
        /// `mount`.
        public static let mount: NamespaceType = "mount"
        /// `ipc`.
        public static let ipc: NamespaceType = "ipc"
        /// `uts`.
        public static let uts: NamespaceType = "uts"
        /// `user`.
        public static let user: NamespaceType = "user"
        /// `cgroup`.
        public static let cgroup: NamespaceType = "cgroup"
        /// `time`.
        public static let time: NamespaceType = "time"
        /// All types the specification defines.
        public static let known: [NamespaceType] = [.pid, .network, .mount, .ipc, .uts, .user, .cgroup, .time]
    }

    /// An entry of `linux.namespaces`.
    public struct Namespace: OCIObject {
        /// `type` (required).
        public var type: NamespaceType
        /// `path`: an existing namespace to join instead of creating one.
        public var path: String?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a namespace entry.
        public init(type: NamespaceType, path: String? = nil) {
            self.type = type
            self.path = path
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            type = try r.require("type")
            path = try r.decode("path")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(type, "type")
            try w.encode(path, "path")
            try w.finish(extensions)
        }
    }

    /// A value of `linux.timeOffsets`.
    public struct TimeOffset: OCIObject {
        /// `secs`.
        public var secs: Int64?
        /// `nanosecs`.
        public var nanosecs: UInt32?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates an offset.
        public init(secs: Int64? = nil, nanosecs: UInt32? = nil) {
            self.secs = secs
            self.nanosecs = nanosecs
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            secs = try r.decode("secs")
            nanosecs = try r.decode("nanosecs")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(secs, "secs")
            try w.encode(nanosecs, "nanosecs")
            try w.finish(extensions)
        }
    }

    /// An entry of `linux.devices`.
    public struct Device: OCIObject {
        /// `type`: `c`, `b`, `u` or `p`.
        public var type: String
        /// `path` in the container (required).
        public var path: String
        /// `major` number.
        public var major: Int64?
        /// `minor` number.
        public var minor: Int64?
        /// `fileMode` permission bits.
        public var fileMode: UInt32?
        /// `uid` owner.
        public var uid: UInt32?
        /// `gid` owner.
        public var gid: UInt32?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a device.
        public init(type: String, path: String, major: Int64? = nil, minor: Int64? = nil) {
            self.type = type
            self.path = path
            self.major = major
            self.minor = minor
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            type = try r.require("type")
            path = try r.require("path")
            major = try r.decode("major")
            minor = try r.decode("minor")
            fileMode = try r.decode("fileMode")
            uid = try r.decode("uid")
            gid = try r.decode("gid")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(type, "type")
            try w.encode(path, "path")
            try w.encode(major, "major")
            try w.encode(minor, "minor")
            try w.encode(fileMode, "fileMode")
            try w.encode(uid, "uid")
            try w.encode(gid, "gid")
            try w.finish(extensions)
        }
    }

    /// A value of `linux.netDevices`.
    public struct NetDevice: OCIObject {
        /// `name` in the container.
        public var name: String?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a net device entry.
        public init(name: String? = nil) { self.name = name }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            name = try r.decode("name")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(name, "name")
            try w.finish(extensions)
        }
    }

    /// `linux.intelRdt`.
    public struct IntelRdt: OCIObject {
        /// `closID`.
        public var closID: String?
        /// `l3CacheSchema`.
        public var l3CacheSchema: String?
        /// `memBwSchema`.
        public var memBwSchema: String?
        /// `schemata` lines.
        public var schemata: [String]?
        /// `enableCMT`.
        public var enableCMT: Bool?
        /// `enableMBM`.
        public var enableMBM: Bool?
        /// `enableMonitoring`.
        public var enableMonitoring: Bool?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates an empty setting.
        public init() {}

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            closID = try r.decode("closID")
            l3CacheSchema = try r.decode("l3CacheSchema")
            memBwSchema = try r.decode("memBwSchema")
            schemata = try r.decode("schemata")
            enableCMT = try r.decode("enableCMT")
            enableMBM = try r.decode("enableMBM")
            enableMonitoring = try r.decode("enableMonitoring")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(closID, "closID")
            try w.encode(l3CacheSchema, "l3CacheSchema")
            try w.encode(memBwSchema, "memBwSchema")
            try w.encode(schemata, "schemata")
            try w.encode(enableCMT, "enableCMT")
            try w.encode(enableMBM, "enableMBM")
            try w.encode(enableMonitoring, "enableMonitoring")
            try w.finish(extensions)
        }
    }

    /// `linux.personality`.
    public struct Personality: OCIObject {
        /// `domain`: `LINUX` or `LINUX32`.
        public var domain: String
        /// `flags`.
        public var flags: [String]?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a personality.
        public init(domain: String, flags: [String]? = nil) {
            self.domain = domain
            self.flags = flags
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            domain = try r.require("domain")
            flags = try r.decode("flags")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(domain, "domain")
            try w.encode(flags, "flags")
            try w.finish(extensions)
        }
    }
}
