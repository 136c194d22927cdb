import OCISpec

/// What a writable layer coming back from the guest may contain: only what the
/// container could have created under runc with the same spec, within the layer's
/// size. Everything in the stream is hostile input; ``ChangeApplier`` enforces this.
public struct WritebackPolicy: Sendable, Hashable, Codable {
    /// Total file data (bytes in DATA records) at most: the writable disk's size.
    public var maxDataBytes: UInt64
    /// Records at most.
    public var maxEntries = 2_000_000
    /// A file's (sparse) size at most.
    public var maxFileSize: UInt64 = 1 << 40
    /// Device nodes other than overlay whiteouts (CAP_MKNOD).
    public var devices = false
    /// Ownership other than the process's own (CAP_CHOWN).
    public var chown = false
    /// setuid/setgid on files not owned by the process's user and group (CAP_FSETID / CAP_FOWNER).
    public var setID = false
    /// `security.capability` (CAP_SETFCAP).
    public var fileCapabilities = false
    /// `trusted.*` attributes (CAP_SYS_ADMIN).
    public var trustedAttributes = false
    /// The process's user and group (in host ids).
    public var uid: UInt32 = 0
    /// See ``uid``.
    public var gid: UInt32 = 0
    /// With a user namespace, the host ids files may have (nil: any the other rules allow).
    public var uidRanges: [ClosedRange<UInt32>]?
    /// See ``uidRanges``.
    public var gidRanges: [ClosedRange<UInt32>]?

    /// A policy admitting anything but bounded by `maxDataBytes` (for trusted sources and tests).
    public init(maxDataBytes: UInt64) {
        self.maxDataBytes = maxDataBytes
    }

    /// The policy for a container's spec: capabilities from its bounding set (what
    /// any process of the container could hold), ids from its user and mappings.
    public init(spec: RuntimeSpec, layerBytes: UInt64) {
        maxDataBytes = layerBytes
        let caps = Set(spec.process?.capabilities?.bounding ?? [])
        devices = caps.contains("CAP_MKNOD")
        chown = caps.contains("CAP_CHOWN")
        setID = caps.contains("CAP_FSETID") || caps.contains("CAP_FOWNER")
        fileCapabilities = caps.contains("CAP_SETFCAP")
        trustedAttributes = caps.contains("CAP_SYS_ADMIN")
        let user = spec.process?.user
        let uidMappings = spec.linux?.uidMappings ?? []
        let gidMappings = spec.linux?.gidMappings ?? []
        func host(_ id: UInt32, _ mappings: [RuntimeSpec.IDMapping]) -> UInt32 {
            for m in mappings where id >= m.containerID && id - m.containerID < m.size { return m.hostID + (id - m.containerID) }
            return id
        }
        uid = host(user?.uid ?? 0, uidMappings)
        gid = host(user?.gid ?? 0, gidMappings)
        if !uidMappings.isEmpty {
            uidRanges = uidMappings.filter { $0.size > 0 }.map { $0.hostID...($0.hostID &+ ($0.size - 1)) }
        }
        if !gidMappings.isEmpty {
            gidRanges = gidMappings.filter { $0.size > 0 }.map { $0.hostID...($0.hostID &+ ($0.size - 1)) }
        }
    }

    /// Whether a file may be owned by `uid`:`gid`.
    func admitsOwner(uid: UInt32, gid: UInt32) -> Bool {
        if let uidRanges, !uidRanges.contains(where: { $0.contains(uid) }) { return false }
        if let gidRanges, !gidRanges.contains(where: { $0.contains(gid) }) { return false }
        return chown || (uid == self.uid && gid == self.gid)
    }

    /// Whether an extended attribute may be set.
    func admitsAttribute(_ name: String) -> Bool {
        if name == "security.capability" { return fileCapabilities }
        if name.hasPrefix("trusted.") { return trustedAttributes && !name.hasPrefix("trusted.overlay.") }
        return name.hasPrefix("user.") || name.hasPrefix("system.posix_acl_")
    }
}
