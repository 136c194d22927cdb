#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An image configuration (`application/vnd.oci.image.config.v1+json`): the
/// default execution parameters and the layer chain of an image.
public struct ImageConfiguration: OCIObject {
    /// `created`: RFC 3339 date-time, kept as written.
    public var created: String?
    /// `author`.
    public var author: String?
    /// `architecture` (required).
    public var architecture: String?
    /// `os` (required).
    public var os: String?
    /// `os.version`.
    public var osVersion: String?
    /// `os.features`.
    public var osFeatures: [String]?
    /// `variant`.
    public var variant: String?
    /// `config`: default execution parameters.
    public var config: Config?
    /// `rootfs`: the layer diff IDs (required).
    public var rootfs: RootFS?
    /// `history`, one entry per build step.
    public var history: [History]?
    /// Unmodelled members.
    public var extensions: [String: JSONValue] = [:]

    /// Creates a configuration.
    public init(architecture: String? = nil, os: String? = nil, rootfs: RootFS? = nil) {
        self.architecture = architecture
        self.os = os
        self.rootfs = rootfs
    }

    /// Decodes from a decoder.
    public init(from decoder: any Decoder) throws {
        var r = try OCIObjectReader(decoder)
        created = try r.decode("created")
        author = try r.decode("author")
        architecture = try r.decode("architecture")
        os = try r.decode("os")
        osVersion = try r.decode("os.version")
        osFeatures = try r.decode("os.features")
        variant = try r.decode("variant")
        config = try r.decode("config")
        rootfs = try r.decode("rootfs")
        history = try r.decode("history")
        extensions = try r.extensions()
    }

    /// Encodes to an encoder.
    public func encode(to encoder: any Encoder) throws {
        var w = OCIObjectWriter(encoder)
        try w.encode(created, "created")
        try w.encode(author, "author")
        try w.encode(architecture, "architecture")
        try w.encode(os, "os")
        try w.encode(osVersion, "os.version")
        try w.encode(osFeatures, "os.features")
        try w.encode(variant, "variant")
        try w.encode(config, "config")
        try w.encode(rootfs, "rootfs")
        try w.encode(history, "history")
        try w.finish(extensions)
    }
}

extension ImageConfiguration {
    /// `config`: execution defaults (member names are capitalised in JSON).
    public struct Config: OCIObject {
        /// `User`: `user`, `uid`, `user:group` or `uid:gid`.
        public var user: String?
        /// `ExposedPorts`: set of `port/proto` (values are empty objects).
        public var exposedPorts: [String: JSONValue]?
        /// `Env`: `KEY=value` entries.
        public var env: [String]?
        /// `Entrypoint`.
        public var entrypoint: [String]?
        /// `Cmd`.
        public var cmd: [String]?
        /// `Volumes`: set of paths (values are empty objects).
        public var volumes: [String: JSONValue]?
        /// `WorkingDir`.
        public var workingDir: String?
        /// `Labels`.
        public var labels: [String: String]?
        /// `StopSignal`.
        public var stopSignal: String?
        /// `ArgsEscaped` (Windows).
        public var argsEscaped: Bool?
        /// Unmodelled members (e.g. Docker's `Healthcheck`, `Shell`, `OnBuild`).
        public var extensions: [String: JSONValue] = [:]

        /// Creates empty defaults.
        public init() {}

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            user = try r.decode("User")
            exposedPorts = try r.decode("ExposedPorts")
            env = try r.decode("Env")
            entrypoint = try r.decode("Entrypoint")
            cmd = try r.decode("Cmd")
            volumes = try r.decode("Volumes")
            workingDir = try r.decode("WorkingDir")
            labels = try r.decode("Labels")
            stopSignal = try r.decode("StopSignal")
            argsEscaped = try r.decode("ArgsEscaped")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(user, "User")
            try w.encode(exposedPorts, "ExposedPorts")
            try w.encode(env, "Env")
            try w.encode(entrypoint, "Entrypoint")
            try w.encode(cmd, "Cmd")
            try w.encode(volumes, "Volumes")
            try w.encode(workingDir, "WorkingDir")
            try w.encode(labels, "Labels")
            try w.encode(stopSignal, "StopSignal")
            try w.encode(argsEscaped, "ArgsEscaped")
            try w.finish(extensions)
        }
    }

    /// `rootfs`: the uncompressed layer digests, base first.
    public struct RootFS: OCIObject {
        /// `type` (must be `layers`).
        public var type: String?
        /// `diff_ids`.
        public var diffIDs: [Digest]?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a layer chain.
        public init(diffIDs: [Digest]) {
            type = "layers"
            self.diffIDs = diffIDs
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            type = try r.decode("type")
            diffIDs = try r.decode("diff_ids")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(type, "type")
            try w.encode(diffIDs, "diff_ids")
            try w.finish(extensions)
        }
    }

    /// An entry of `history`.
    public struct History: OCIObject {
        /// `created`: RFC 3339, kept as written.
        public var created: String?
        /// `created_by`.
        public var createdBy: String?
        /// `author`.
        public var author: String?
        /// `comment`.
        public var comment: String?
        /// `empty_layer`: this step added no layer.
        public var emptyLayer: Bool?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a history entry.
        public init(createdBy: String? = nil, emptyLayer: Bool? = nil) {
            self.createdBy = createdBy
            self.emptyLayer = emptyLayer
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            created = try r.decode("created")
            createdBy = try r.decode("created_by")
            author = try r.decode("author")
            comment = try r.decode("comment")
            emptyLayer = try r.decode("empty_layer")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(created, "created")
            try w.encode(createdBy, "created_by")
            try w.encode(author, "author")
            try w.encode(comment, "comment")
            try w.encode(emptyLayer, "empty_layer")
            try w.finish(extensions)
        }
    }
}
