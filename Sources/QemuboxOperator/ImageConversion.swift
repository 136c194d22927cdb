#if canImport(Glibc)
import Glibc
#endif
import EROFSImage
import Foundation
import OCISpec

/// `qemubox convert`: a directory, a layer tar (plain or gzip) or an OCI image layout
/// directory → one EROFS image.
///
/// A directory becomes the image root as it is. A single layer tar keeps its OCI whiteouts in
/// overlay form (the image can be an overlay `lowerdir`, as the shim uses layers). An OCI
/// layout's layers (index.json → manifest → layers, lowest first) are merged into one tree
/// with their whiteouts applied. The image is written under a temporary name and renamed
/// into place, so OUTPUT is never a partial image.
public struct ImageConversion: Sendable {
    /// What is converted.
    public enum Source: Sendable, Hashable {
        /// A directory tree.
        case directory(String)
        /// One layer tar (plain or gzip).
        case layerTar(String)
        /// An OCI image layout: its layer blobs, lowest first.
        case ociLayout(directory: String, manifest: String, layers: [Layer])

        /// `directory`, `layer-tar` or `oci-layout`.
        public var kind: String {
            switch self {
            case .directory: "directory"
            case .layerTar: "layer-tar"
            case .ociLayout: "oci-layout"
            }
        }
    }

    /// One layer of an OCI layout.
    public struct Layer: Sendable, Hashable, Codable {
        /// The blob file.
        public var path: String
        /// Its digest.
        public var digest: String
        /// Its media type.
        public var mediaType: String
        /// Its size in bytes (as the manifest says and the file has).
        public var bytes: Int64
    }

    /// The result.
    public struct Summary: Sendable, Hashable, Codable {
        /// The image written.
        public var output: String
        /// `directory`, `layer-tar` or `oci-layout`.
        public var sourceKind: String
        /// Layers applied (1 for a directory or tar).
        public var layers: Int
        /// Inodes in the image.
        public var inodes: Int
        /// Size of the image.
        public var imageBytes: UInt64
        /// Files stored compressed.
        public var compressedFiles: Int
        /// Seconds the conversion took.
        public var seconds: Double
    }

    /// Progress: the layer being converted (1-based) of how many, and the writer's progress.
    public typealias Progress = (_ layer: Int, _ layers: Int, _ progress: EROFSProgress) -> Void

    /// Writer options (compression, timestamps).
    public var options: EROFSWriterOptions
    /// The platform chosen from a multi-platform index (`os/architecture[/variant]`).
    public var platform: String

    /// A conversion with `options`, choosing `platform` from multi-platform layouts.
    public init(options: EROFSWriterOptions = EROFSWriterOptions(), platform: String = ImageConversion.hostPlatform) {
        self.options = options
        self.platform = platform
    }

    /// `linux/amd64` on x86-64, `linux/arm64` on AArch64.
    public static var hostPlatform: String {
        #if arch(arm64)
        "linux/arm64"
        #else
        "linux/amd64"
        #endif
    }

    /// What `path` is: an OCI layout (a directory with `oci-layout` and `index.json`), a
    /// directory, or a file taken as a layer tar.
    public func source(_ path: String) throws -> Source {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw OperatorError(.notFound, "\(path): \(String(cString: strerror(errno)))")
        }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            let fm = FileManager.default
            if fm.fileExists(atPath: path + "/oci-layout") && fm.fileExists(atPath: path + "/index.json") {
                let (manifest, layers) = try ociLayers(path)
                return .ociLayout(directory: path, manifest: manifest, layers: layers)
            }
            return .directory(path)
        case S_IFREG:
            return .layerTar(path)
        default:
            throw OperatorError(.usage, "\(path) is neither a directory nor a file")
        }
    }

    /// Converts `source` into an EROFS image at `output`.
    public func convert(_ source: Source, to output: String, progress: Progress? = nil) throws -> Summary {
        let started = ContinuousClock.now
        let temporary = output + ".tmp.\(getpid())"
        unlink(temporary)
        var layers = 1
        let summary: EROFSImageSummary
        do {
            let writer = try EROFSImageWriter(path: temporary, options: options)
            switch source {
            case .directory(let path):
                writer.progress = { progress?(1, 1, $0) }
                try writer.addDirectory(path)
            case .layerTar(let path):
                writer.progress = { progress?(1, 1, $0) }
                try writer.addLayer(tarPath: path, whiteouts: .overlay)
            case .ociLayout(_, _, let list):
                layers = list.count
                for (index, layer) in list.enumerated() {
                    writer.progress = { progress?(index + 1, list.count, $0) }
                    try writer.addLayer(tarPath: layer.path, whiteouts: .apply)
                }
            }
            summary = try writer.finish()
        } catch let error as OperatorError {
            unlink(temporary)
            throw error
        } catch {
            unlink(temporary)
            throw OperatorError(.conversion, "cannot convert \(Self.describe(source)): \(error)")
        }
        guard rename(temporary, output) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw OperatorError(.io, "cannot move the image to \(output): \(reason)")
        }
        let elapsed = ContinuousClock.now - started
        return Summary(output: output, sourceKind: source.kind, layers: layers, inodes: summary.inodes,
                       imageBytes: summary.imageBytes, compressedFiles: summary.compressedFiles,
                       seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    static func describe(_ source: Source) -> String {
        switch source {
        case .directory(let path), .layerTar(let path): path
        case .ociLayout(let directory, let manifest, _): "\(directory) (manifest \(manifest))"
        }
    }
}
