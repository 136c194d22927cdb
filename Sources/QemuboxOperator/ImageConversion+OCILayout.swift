#if canImport(Glibc)
import Glibc
#endif
import Foundation
import OCISpec

extension ImageConversion {
    /// The manifest (digest) and layers of an OCI image layout: `index.json`, then nested
    /// indexes, then the manifest for ``platform`` (or the only one).
    func ociLayers(_ layout: String) throws -> (manifest: String, layers: [Layer]) {
        let index: ImageIndex = try Self.decode(layout + "/index.json")
        let descriptor = try manifestDescriptor(in: index, layout: layout, depth: 0)
        let manifest: ImageManifest = try Self.decode(try Self.blobPath(layout, descriptor.digest))
        let layers = try manifest.layers.map { layer -> Layer in
            let mediaType = layer.mediaType ?? OCIMediaType.layer
            guard !mediaType.hasSuffix("+zstd") && !mediaType.hasSuffix(".zstd") else {
                throw OperatorError(.conversion, "layer \(layer.digest): zstd layers are not supported (\(mediaType))")
            }
            guard mediaType.contains("layer") || mediaType.contains("rootfs.diff") else {
                throw OperatorError(.conversion, "layer \(layer.digest): media type \(mediaType) is not a layer")
            }
            let path = try Self.blobPath(layout, layer.digest)
            var st = stat()
            guard stat(path, &st) == 0 else {
                throw OperatorError(.notFound, "layer \(layer.digest): \(path) is missing")
            }
            guard Int64(st.st_size) == layer.size else {
                throw OperatorError(.conversion,
                    "layer \(layer.digest): \(path) has \(st.st_size) bytes, the manifest says \(layer.size)")
            }
            return Layer(path: path, digest: layer.digest.rawValue, mediaType: mediaType, bytes: layer.size)
        }
        return (descriptor.digest.rawValue, layers)
    }

    /// The manifest to convert among `index`'s entries, following nested indexes.
    func manifestDescriptor(in index: ImageIndex, layout: String, depth: Int) throws -> ImageDescriptor {
        guard depth < 4 else { throw OperatorError(.conversion, "\(layout): indexes nested too deeply") }
        var manifests: [ImageDescriptor] = []
        for entry in index.manifests {
            switch entry.mediaType {
            case OCIMediaType.imageIndex, OCIMediaType.dockerManifestList:
                let nested: ImageIndex = try Self.decode(try Self.blobPath(layout, entry.digest))
                manifests.append(try manifestDescriptor(in: nested, layout: layout, depth: depth + 1))
            default:
                manifests.append(entry)
            }
        }
        if manifests.count == 1, let only = manifests.first { return only }
        let matching = manifests.filter { descriptor in
            guard let p = descriptor.platform else { return false }
            let name = [p.os, p.architecture] + (p.variant.map { [$0] } ?? [])
            return platform == name.joined(separator: "/") || platform == "\(p.os)/\(p.architecture)"
        }
        guard let chosen = matching.first else {
            let offered = manifests.compactMap { $0.platform.map { "\($0.os)/\($0.architecture)" } }
            throw OperatorError(.conversion, manifests.isEmpty ? "\(layout)/index.json lists no manifest"
                : "\(layout): no manifest for \(platform) (offered: \(offered.joined(separator: ", "))); pass --platform")
        }
        return chosen
    }

    /// `<layout>/blobs/<algorithm>/<encoded>`, refusing digests that could name another path.
    static func blobPath(_ layout: String, _ digest: Digest) throws -> String {
        guard let algorithm = digest.algorithm, let encoded = digest.encoded,
              !algorithm.isEmpty, !encoded.isEmpty,
              (algorithm + encoded).allSatisfy({ $0.isLetter || $0.isNumber || "+._-=".contains($0) }),
              algorithm.first != ".", encoded.first != "."
        else { throw OperatorError(.conversion, "malformed digest \(digest.rawValue)") }
        return "\(layout)/blobs/\(algorithm)/\(encoded)"
    }

    /// A JSON document decoded as `T` (at most 4 MiB).
    static func decode<T: Decodable>(_ path: String) throws -> T {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw OperatorError(.notFound, "\(path) is missing or unreadable")
        }
        guard data.count <= 4 << 20 else { throw OperatorError(.conversion, "\(path) is larger than 4 MiB") }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw OperatorError(.conversion, "\(path): \(error)")
        }
    }
}
