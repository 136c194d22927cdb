#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A content digest, `algorithm:encoded` (e.g. `sha256:` + 64 lowercase hex).
///
/// Decoding accepts any string (nothing is lost); ``validate()`` and the
/// image validators check the format.
public struct Digest: RawRepresentable, Codable, Sendable, Hashable, ExpressibleByStringLiteral,
    CustomStringConvertible
{
    /// The full string.
    public var rawValue: String

    /// Wraps a string.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Wraps a literal.
    public init(stringLiteral value: String) { rawValue = value }
    /// Wraps and validates a string.
    public init(validating value: String) throws(OCISpecError) {
        rawValue = value
        try validate()
    }
    /// Decodes the string.
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    /// Encodes the string.
    public func encode(to encoder: any Encoder) throws {
        var single = encoder.singleValueContainer()
        try single.encode(rawValue)
    }
    /// The string.
    public var description: String { rawValue }

    /// The part before the first `:` (e.g. `sha256`), or nil.
    public var algorithm: String? {
        rawValue.firstIndex(of: ":").map { String(rawValue[..<$0]) }
    }

    /// The part after the first `:`, or nil.
    public var encoded: String? {
        rawValue.firstIndex(of: ":").map { String(rawValue[rawValue.index(after: $0)...]) }
    }

    /// Checks the grammar of the image specification and, for the registered
    /// algorithms `sha256` and `sha512`, the exact lowercase-hex length.
    public func validate(path: String = "") throws(OCISpecError) {
        if let problem = problem {
            throw OCISpecError(.invalidValue, path: path, problem)
        }
    }

    /// Why this digest is malformed, or nil.
    var problem: String? {
        guard let algorithm, let encoded else {
            return "digest must be algorithm:hex, got \"\(rawValue)\""
        }
        // algorithm-component ([a-z0-9]+) joined by one of + . _ -
        let components = algorithm.split(omittingEmptySubsequences: false) { "+._-".contains($0) }
        let algorithmOK = components.allSatisfy { part in
            !part.isEmpty && part.allSatisfy { OCIPatterns.lower.contains($0) || OCIPatterns.digits.contains($0) }
        }
        guard algorithmOK else { return "digest algorithm \"\(algorithm)\" is malformed" }
        let encodedOK = !encoded.isEmpty && encoded.allSatisfy {
            $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "=" || $0 == "_" || $0 == "-")
        }
        guard encodedOK else { return "digest encoding \"\(encoded)\" is malformed" }
        let hexLength: Int? = ["sha256": 64, "sha512": 128][algorithm]
        if let hexLength, encoded.count != hexLength || !encoded.allSatisfy(OCIPatterns.lowerHex.contains) {
            return "\(algorithm) digest must be \(hexLength) lowercase hex characters, got \"\(encoded)\""
        }
        return nil
    }
}

/// Media types of the OCI image specification, and a well-formedness check.
public enum OCIMediaType {
    /// `application/vnd.oci.descriptor.v1+json`.
    public static let descriptor = "application/vnd.oci.descriptor.v1+json"
    /// `application/vnd.oci.layout.header.v1+json`.
    public static let layoutHeader = "application/vnd.oci.layout.header.v1+json"
    /// `application/vnd.oci.image.index.v1+json`.
    public static let imageIndex = "application/vnd.oci.image.index.v1+json"
    /// `application/vnd.oci.image.manifest.v1+json`.
    public static let imageManifest = "application/vnd.oci.image.manifest.v1+json"
    /// `application/vnd.oci.image.config.v1+json`.
    public static let imageConfig = "application/vnd.oci.image.config.v1+json"
    /// `application/vnd.oci.image.layer.v1.tar`.
    public static let layer = "application/vnd.oci.image.layer.v1.tar"
    /// `application/vnd.oci.image.layer.v1.tar+gzip`.
    public static let layerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    /// `application/vnd.oci.image.layer.v1.tar+zstd`.
    public static let layerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    /// `application/vnd.oci.empty.v1+json`.
    public static let empty = "application/vnd.oci.empty.v1+json"
    /// Docker's manifest list (accepted by containerd).
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    /// Docker's image manifest (accepted by containerd).
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    /// Docker's image config.
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    /// Docker's gzip layer.
    public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"

    /// Every media type above.
    public static let known: Set<String> = [
        descriptor, layoutHeader, imageIndex, imageManifest, imageConfig, layer, layerGzip, layerZstd, empty,
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        dockerManifestList, dockerManifest, dockerConfig, dockerLayerGzip,
    ]

    /// Whether `value` is a well-formed RFC 6838 media type (`type/subtype`,
    /// restricted-name characters, no parameters).
    public static func isWellFormed(_ value: String) -> Bool {
        let parts = value.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return false }
        return parts.allSatisfy { name in
            guard let first = name.first, first.isASCII, first.isLetter || first.isNumber, name.count <= 127 else {
                return false
            }
            return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "!#$&-^_.+".contains($0)) }
        }
    }
}
