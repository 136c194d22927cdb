#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An OCI runtime specification `config.json` (runtime-spec 1.0.x / 1.1),
/// decoded losslessly: every member this model does not know is kept in
/// ``extensions`` (at every object level) and written back unchanged, and
/// integers keep their exact values.
public struct RuntimeSpec: OCIObject {
    /// `ociVersion`: the SemVer version of the specification (required).
    public var ociVersion: String?
    /// `process`: the container process.
    public var process: Process?
    /// `root`: the root filesystem.
    public var root: Root?
    /// `hostname`.
    public var hostname: String?
    /// `domainname`.
    public var domainname: String?
    /// `mounts`, in mount order.
    public var mounts: [Mount]?
    /// `hooks`: lifecycle hooks.
    public var hooks: Hooks?
    /// `annotations`: arbitrary metadata.
    public var annotations: [String: String]?
    /// `linux`: Linux-specific configuration.
    public var linux: Linux?
    /// Unmodelled members (e.g. `solaris`, `windows`, `vm`, `zos`, future fields).
    public var extensions: [String: JSONValue] = [:]

    /// Creates a spec; set the other properties afterwards.
    public init(ociVersion: String? = "1.1.0") {
        self.ociVersion = ociVersion
    }

    /// Decodes from a decoder.
    public init(from decoder: any Decoder) throws {
        var r = try OCIObjectReader(decoder)
        ociVersion = try r.decode("ociVersion")
        process = try r.decode("process")
        root = try r.decode("root")
        hostname = try r.decode("hostname")
        domainname = try r.decode("domainname")
        mounts = try r.decode("mounts")
        hooks = try r.decode("hooks")
        annotations = try r.decode("annotations")
        linux = try r.decode("linux")
        extensions = try r.extensions()
    }

    /// Encodes to an encoder.
    public func encode(to encoder: any Encoder) throws {
        var w = OCIObjectWriter(encoder)
        try w.encode(ociVersion, "ociVersion")
        try w.encode(process, "process")
        try w.encode(root, "root")
        try w.encode(hostname, "hostname")
        try w.encode(domainname, "domainname")
        try w.encode(mounts, "mounts")
        try w.encode(hooks, "hooks")
        try w.encode(annotations, "annotations")
        try w.encode(linux, "linux")
        try w.finish(extensions)
    }
}

extension RuntimeSpec {
    /// `root`: the container's root filesystem.
    public struct Root: OCIObject {
        /// `path`: the rootfs path, absolute or relative to the bundle (required).
        public var path: String?
        /// `readonly`: mount the rootfs read-only.
        public var readonly: Bool?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a root.
        public init(path: String? = nil, readonly: Bool? = nil) {
            self.path = path
            self.readonly = readonly
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            path = try r.decode("path")
            readonly = try r.decode("readonly")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(path, "path")
            try w.encode(readonly, "readonly")
            try w.finish(extensions)
        }
    }

    /// An entry of `mounts`.
    public struct Mount: OCIObject {
        /// `destination`: absolute path in the container (required).
        public var destination: String
        /// `type`: filesystem type.
        public var type: String?
        /// `source`: device name, directory or dummy.
        public var source: String?
        /// `options`: mount options (fstab style).
        public var options: [String]?
        /// `uidMappings`: idmapped-mount user mappings.
        public var uidMappings: [IDMapping]?
        /// `gidMappings`: idmapped-mount group mappings.
        public var gidMappings: [IDMapping]?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a mount.
        public init(destination: String, type: String? = nil, source: String? = nil, options: [String]? = nil) {
            self.destination = destination
            self.type = type
            self.source = source
            self.options = options
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            destination = try r.require("destination")
            type = try r.decode("type")
            source = try r.decode("source")
            options = try r.decode("options")
            uidMappings = try r.decode("uidMappings")
            gidMappings = try r.decode("gidMappings")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(destination, "destination")
            try w.encode(type, "type")
            try w.encode(source, "source")
            try w.encode(options, "options")
            try w.encode(uidMappings, "uidMappings")
            try w.encode(gidMappings, "gidMappings")
            try w.finish(extensions)
        }
    }

    /// `hooks`: commands run at points of the container lifecycle.
    public struct Hooks: OCIObject {
        /// `prestart` (deprecated in favour of the three below).
        public var prestart: [Hook]?
        /// `createRuntime`.
        public var createRuntime: [Hook]?
        /// `createContainer`.
        public var createContainer: [Hook]?
        /// `startContainer`.
        public var startContainer: [Hook]?
        /// `poststart`.
        public var poststart: [Hook]?
        /// `poststop`.
        public var poststop: [Hook]?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates empty hooks.
        public init() {}

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            prestart = try r.decode("prestart")
            createRuntime = try r.decode("createRuntime")
            createContainer = try r.decode("createContainer")
            startContainer = try r.decode("startContainer")
            poststart = try r.decode("poststart")
            poststop = try r.decode("poststop")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(prestart, "prestart")
            try w.encode(createRuntime, "createRuntime")
            try w.encode(createContainer, "createContainer")
            try w.encode(startContainer, "startContainer")
            try w.encode(poststart, "poststart")
            try w.encode(poststop, "poststop")
            try w.finish(extensions)
        }

        /// Every hook list with its JSON name, in lifecycle order.
        public var all: [(name: String, hooks: [Hook])] {
            [("prestart", prestart), ("createRuntime", createRuntime), ("createContainer", createContainer),
             ("startContainer", startContainer), ("poststart", poststart), ("poststop", poststop)]
                .compactMap { name, hooks in hooks.map { (name, $0) } }
        }
    }

    /// One hook command.
    public struct Hook: OCIObject {
        /// `path`: absolute path of the executable (required).
        public var path: String
        /// `args`: argv, including argv[0].
        public var args: [String]?
        /// `env`: `KEY=value` entries.
        public var env: [String]?
        /// `timeout`: seconds before the hook is aborted (> 0).
        public var timeout: Int?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a hook.
        public init(path: String, args: [String]? = nil, env: [String]? = nil, timeout: Int? = nil) {
            self.path = path
            self.args = args
            self.env = env
            self.timeout = timeout
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            path = try r.require("path")
            args = try r.decode("args")
            env = try r.decode("env")
            timeout = try r.decode("timeout")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(path, "path")
            try w.encode(args, "args")
            try w.encode(env, "env")
            try w.encode(timeout, "timeout")
            try w.finish(extensions)
        }
    }

    /// A user or group ID mapping (`uidMappings` / `gidMappings` entries).
    public struct IDMapping: OCIObject {
        /// `containerID`: first ID in the container.
        public var containerID: UInt32
        /// `hostID`: first ID on the host.
        public var hostID: UInt32
        /// `size`: number of IDs mapped.
        public var size: UInt32
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a mapping.
        public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
            self.containerID = containerID
            self.hostID = hostID
            self.size = size
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            containerID = try r.require("containerID")
            hostID = try r.require("hostID")
            size = try r.require("size")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(containerID, "containerID")
            try w.encode(hostID, "hostID")
            try w.encode(size, "size")
            try w.finish(extensions)
        }
    }
}
