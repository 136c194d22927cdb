#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension ImageDescriptor {
    /// Checks the descriptor; throws the first failure.
    public func validate() throws(OCISpecError) {
        var v = OCIValidator()
        check(&v, "")
        try v.throwFirst()
    }

    func check(_ v: inout OCIValidator, _ base: String) {
        let prefix = base.isEmpty ? "" : base + "."
        if let mediaType {
            if !OCIMediaType.isWellFormed(mediaType) {
                v.fail(.invalidValue, prefix + "mediaType", "malformed media type \"\(mediaType)\"")
            }
        } else {
            v.fail(.missingField, prefix + "mediaType", "required")
        }
        if let artifactType, !OCIMediaType.isWellFormed(artifactType) {
            v.fail(.invalidValue, prefix + "artifactType", "malformed media type \"\(artifactType)\"")
        }
        if let problem = digest.problem { v.fail(.invalidValue, prefix + "digest", problem) }
        if size < 0 { v.fail(.invalidValue, prefix + "size", "must be >= 0, got \(size)") }
        if let data {
            if let bytes = Data(base64Encoded: data) {
                if bytes.count != size {
                    v.fail(.invalidValue, prefix + "data", "holds \(bytes.count) bytes but size is \(size)")
                }
            } else {
                v.fail(.invalidValue, prefix + "data", "not valid base64")
            }
        }
        for (i, url) in (urls ?? []).enumerated() where URL(string: url)?.scheme == nil {
            v.fail(.invalidValue, "\(prefix)urls[\(i)]", "not a URL: \"\(url)\"")
        }
        if let platform {
            if platform.os.isEmpty { v.fail(.invalidValue, prefix + "platform.os", "must not be empty") }
            if platform.architecture.isEmpty {
                v.fail(.invalidValue, prefix + "platform.architecture", "must not be empty")
            }
        }
    }
}

extension OCIValidator {
    mutating func schemaVersion(_ value: Int?) {
        if let value {
            if value != 2 { fail(.invalidValue, "schemaVersion", "must be 2, got \(value)") }
        } else {
            fail(.missingField, "schemaVersion", "required")
        }
    }

    mutating func mediaType(_ value: String?, expected: String, alternatives: Set<String> = []) {
        guard let value, value != expected, !alternatives.contains(value) else { return }
        fail(.invalidValue, "mediaType", "must be \(expected), got \"\(value)\"")
    }
}

extension ImageIndex {
    /// Checks the index and every descriptor; throws the first failure.
    public func validate() throws(OCISpecError) { try validator().throwFirst() }

    /// Every failure found.
    public func validationReport() -> OCIValidationReport { validator().report }

    private func validator() -> OCIValidator {
        var v = OCIValidator()
        v.schemaVersion(schemaVersion)
        v.mediaType(mediaType, expected: OCIMediaType.imageIndex, alternatives: [OCIMediaType.dockerManifestList])
        for (i, manifest) in manifests.enumerated() { manifest.check(&v, "manifests[\(i)]") }
        subject?.check(&v, "subject")
        return v
    }
}

extension ImageManifest {
    /// Checks the manifest and every descriptor; throws the first failure.
    public func validate() throws(OCISpecError) { try validator().throwFirst() }

    /// Every failure found.
    public func validationReport() -> OCIValidationReport { validator().report }

    private func validator() -> OCIValidator {
        var v = OCIValidator()
        v.schemaVersion(schemaVersion)
        v.mediaType(mediaType, expected: OCIMediaType.imageManifest, alternatives: [OCIMediaType.dockerManifest])
        config.check(&v, "config")
        for (i, layer) in layers.enumerated() { layer.check(&v, "layers[\(i)]") }
        subject?.check(&v, "subject")
        return v
    }
}

extension ImageConfiguration {
    /// Checks the configuration; throws the first failure.
    public func validate() throws(OCISpecError) { try validator().throwFirst() }

    /// Every failure found.
    public func validationReport() -> OCIValidationReport { validator().report }

    private func validator() -> OCIValidator {
        var v = OCIValidator()
        v.require(architecture, "architecture")
        v.require(os, "os")
        if let rootfs {
            if let type = rootfs.type {
                if type != "layers" { v.fail(.invalidValue, "rootfs.type", "must be \"layers\", got \"\(type)\"") }
            } else {
                v.fail(.missingField, "rootfs.type", "required")
            }
            if let diffIDs = rootfs.diffIDs {
                for (i, id) in diffIDs.enumerated() {
                    if let problem = id.problem { v.fail(.invalidValue, "rootfs.diff_ids[\(i)]", problem) }
                }
                if let history {
                    let layered = history.filter { $0.emptyLayer != true }.count
                    if layered != diffIDs.count {
                        v.fail(.invalidValue, "history",
                               "\(layered) non-empty layer entries but \(diffIDs.count) diff_ids")
                    }
                }
            } else {
                v.fail(.missingField, "rootfs.diff_ids", "required")
            }
        } else {
            v.fail(.missingField, "rootfs", "required")
        }
        for (i, entry) in (config?.env ?? []).enumerated() where !entry.contains("=") {
            v.fail(.invalidValue, "config.Env[\(i)]", "must be KEY=value, got \"\(entry)\"")
        }
        return v
    }
}
