#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An OCI content descriptor: what a blob is, its digest and size.
public struct ImageDescriptor: OCIObject {
    /// `mediaType` of the referenced content (required by the specification).
    public var mediaType: String?
    /// `digest` of the referenced content (required).
    public var digest: Digest
    /// `size` in bytes (required).
    public var size: Int64
    /// `urls` to download from.
    public var urls: [String]?
    /// `annotations`.
    public var annotations: [String: String]?
    /// `data`: the content itself, base64 (kept as the original string).
    public var data: String?
    /// `platform` (in an index's manifests).
    public var platform: ImagePlatform?
    /// `artifactType`.
    public var artifactType: String?
    /// Unmodelled members.
    public var extensions: [String: JSONValue] = [:]

    /// Creates a descriptor.
    public init(mediaType: String?, digest: Digest, size: Int64) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
    }

    /// Decodes from a decoder.
    public init(from decoder: any Decoder) throws {
        var r = try OCIObjectReader(decoder)
        mediaType = try r.decode("mediaType")
        digest = try r.require("digest")
        size = try r.require("size")
        urls = try r.decode("urls")
        annotations = try r.decode("annotations")
        data = try r.decode("data")
        platform = try r.decode("platform")
        artifactType = try r.decode("artifactType")
        extensions = try r.extensions()
    }

    /// Encodes to an encoder.
    public func encode(to encoder: any Encoder) throws {
        var w = OCIObjectWriter(encoder)
        try w.encode(mediaType, "mediaType")
        try w.encode(digest, "digest")
        try w.encode(size, "size")
        try w.encode(urls, "urls")
        try w.encode(annotations, "annotations")
        try w.encode(data, "data")
        try w.encode(platform, "platform")
        try w.encode(artifactType, "artifactType")
        try w.finish(extensions)
    }

    /// The decoded `data`, or nil when absent or not valid base64.
    public var decodedData: Data? {
        data.flatMap { Data(base64Encoded: $0) }
    }
}

/// A platform: the OS and CPU an image runs on.
public struct ImagePlatform: OCIObject {
    /// `architecture` (GOARCH values, e.g. `amd64`).
    public var architecture: String
    /// `os` (GOOS values, e.g. `linux`).
    public var os: String
    /// `os.version`.
    public var osVersion: String?
    /// `os.features`.
    public var osFeatures: [String]?
    /// `variant` (e.g. `v8` for arm64).
    public var variant: String?
    /// `features` (reserved).
    public var features: [String]?
    /// Unmodelled members.
    public var extensions: [String: JSONValue] = [:]

    /// Creates a platform.
    public init(architecture: String, os: String, variant: String? = nil) {
        self.architecture = architecture
        self.os = os
        self.variant = variant
    }

    /// Decodes from a decoder.
    public init(from decoder: any Decoder) throws {
        var r = try OCIObjectReader(decoder)
        architecture = try r.require("architecture")
        os = try r.require("os")
        osVersion = try r.decode("os.version")
        osFeatures = try r.decode("os.features")
        variant = try r.decode("variant")
        features = try r.decode("features")
        extensions = try r.extensions()
    }

    /// Encodes to an encoder.
    public func encode(to encoder: any Encoder) throws {
        var w = OCIObjectWriter(encoder)
        try w.encode(architecture, "architecture")
        try w.encode(os, "os")
        try w.encode(osVersion, "os.version")
        try w.encode(osFeatures, "os.features")
        try w.encode(variant, "variant")
        try w.encode(features, "features")
        try w.finish(extensions)
    }
}

/// An image index (`application/vnd.oci.image.index.v1+json`): manifests per platform.
public struct ImageIndex: OCIObject {
    /// `schemaVersion` (2).
    public var schemaVersion: Int?
    /// `mediaType`.
    public var mediaType: String?
    /// `artifactType`.
    public var artifactType: String?
    /// `manifests` (required).
    public var manifests: [ImageDescriptor]
    /// `subject`: the manifest this index refers to.
    public var subject: ImageDescriptor?
    /// `annotations`.
    public var annotations: [String: String]?
    /// Unmodelled members.
    public var extensions: [String: JSONValue] = [:]

    /// Creates an index.
    public init(manifests: [ImageDescriptor], mediaType: String? = OCIMediaType.imageIndex) {
        schemaVersion = 2
        self.mediaType = mediaType
        self.manifests = manifests
    }

    /// Decodes from a decoder.
    public init(from decoder: any Decoder) throws {
        var r = try OCIObjectReader(decoder)
        schemaVersion = try r.decode("schemaVersion")
        mediaType = try r.decode("mediaType")
        artifactType = try r.decode("artifactType")
        manifests = try r.require("manifests")
        subject = try r.decode("subject")
        annotations = try r.decode("annotations")
        extensions = try r.extensions()
    }

    /// Encodes to an encoder.
    public func encode(to encoder: any Encoder) throws {
        var w = OCIObjectWriter(encoder)
        try w.encode(schemaVersion, "schemaVersion")
        try w.encode(mediaType, "mediaType")
        try w.encode(artifactType, "artifactType")
        try w.encode(manifests, "manifests")
        try w.encode(subject, "subject")
        try w.encode(annotations, "annotations")
        try w.finish(extensions)
    }

    /// The first manifest descriptor for `os`/`architecture` (and `variant`, if given).
    public func manifest(os: String, architecture: String, variant: String? = nil) -> ImageDescriptor? {
        manifests.first { descriptor in
            guard let platform = descriptor.platform else { return false }
            return platform.os == os && platform.architecture == architecture
                && (variant == nil || platform.variant == variant)
        }
    }
}

/// An image manifest (`application/vnd.oci.image.manifest.v1+json`).
public struct ImageManifest: OCIObject {
    /// `schemaVersion` (2).
    public var schemaVersion: Int?
    /// `mediaType`.
    public var mediaType: String?
    /// `artifactType`.
    public var artifactType: String?
    /// `config`: the image configuration blob (required).
    public var config: ImageDescriptor
    /// `layers`, base first (required).
    public var layers: [ImageDescriptor]
    /// `subject`.
    public var subject: ImageDescriptor?
    /// `annotations`.
    public var annotations: [String: String]?
    /// Unmodelled members.
    public var extensions: [String: JSONValue] = [:]

    /// Creates a manifest.
    public init(config: ImageDescriptor, layers: [ImageDescriptor], mediaType: String? = OCIMediaType.imageManifest) {
        schemaVersion = 2
        self.mediaType = mediaType
        self.config = config
        self.layers = layers
    }

    /// Decodes from a decoder.
    public init(from decoder: any Decoder) throws {
        var r = try OCIObjectReader(decoder)
        schemaVersion = try r.decode("schemaVersion")
        mediaType = try r.decode("mediaType")
        artifactType = try r.decode("artifactType")
        config = try r.require("config")
        layers = try r.require("layers")
        subject = try r.decode("subject")
        annotations = try r.decode("annotations")
        extensions = try r.extensions()
    }

    /// Encodes to an encoder.
    public func encode(to encoder: any Encoder) throws {
        var w = OCIObjectWriter(encoder)
        try w.encode(schemaVersion, "schemaVersion")
        try w.encode(mediaType, "mediaType")
        try w.encode(artifactType, "artifactType")
        try w.encode(config, "config")
        try w.encode(layers, "layers")
        try w.encode(subject, "subject")
        try w.encode(annotations, "annotations")
        try w.finish(extensions)
    }
}
