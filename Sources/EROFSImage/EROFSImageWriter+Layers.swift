/// What to do with OCI whiteouts in layer tars.
public enum EROFSWhiteoutMode: Sendable {
    /// Keep them in overlayfs form (`.wh.x` → char 0/0 `x`, `.wh..wh..opq` →
    /// `trusted.overlay.opaque=y`), so the image can be an overlay lowerdir.
    case overlay
    /// Apply them to what earlier layers added (merging layers into one tree).
    case apply
}

extension EROFSImageWriter {
    func finishLayers() throws {}

    /// Adds one layer tar (plain or gzip).
    public func addLayer(tarPath: String, whiteouts: EROFSWhiteoutMode) throws {
        throw EROFSError(.unsupported, "not yet")
    }
}
