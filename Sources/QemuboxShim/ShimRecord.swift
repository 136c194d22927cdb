#if canImport(Glibc)
import Glibc
#endif
import Foundation
import OCISpec
import QemuboxKit

/// Where one shim keeps its files, derived from the configuration's state
/// directory, the namespace and the task id.
public struct ShimPaths: Sendable, Hashable {
    /// `<state>/<namespace>/<id>`: record, disks, the VM's directory.
    public var stateDirectory: String
    /// The socket containerd dials (`<state>/s/<digest>.sock`, short enough for `sun_path`).
    public var socket: String

    /// Paths for a task (or a pod: its sandbox's id).
    public init(stateRoot: String, namespace: String, id: String) throws {
        stateDirectory = stateRoot + "/" + namespace + "/" + Self.directoryName(id)
        let digest = PodSpec.digest(namespace + "/" + id)
        socket = stateRoot + "/s/" + digest + ".sock"
        guard socket.utf8.count < 108 else {
            throw ShimError(.invalidArgument, "socket path \(socket) is too long for a unix socket; use a shorter state_dir")
        }
    }

    /// The state directory's name for a task id: the id itself up to 32 bytes, else a
    /// digest of it (CRI's ids are 64 hex digits, which would push the VM's sockets
    /// under it past `sun_path`'s 108 bytes). The record inside names the id.
    public static func directoryName(_ id: String) -> String {
        id.utf8.count <= 32 ? id : PodSpec.digest(id)
    }

    /// The pod a bundle's container joins (CRI's `io.kubernetes.cri.sandbox-id` on a
    /// `container`), from its config.json; nil for a sandbox, a lone container, or a
    /// bundle without a readable spec.
    public static func podID(bundle: String) -> String? {
        guard let spec = try? RuntimeSpec.load(bundle: bundle) else { return nil }
        return PodSpec.podID(annotations: spec.annotations ?? [:])
    }

    /// The VM's own state directory (QEMU's record, console log, agent socket).
    public var vmDirectory: String { stateDirectory + "/vm" }

    /// The spare VMs' directory under the state root (`warm_spares`; a name no containerd
    /// namespace can have), one directory per spare.
    public static let sparesDirectoryName = ".spares"
    /// The file in a spare's directory once a container took it.
    public static let spareClaimedMarker = "claimed"
    /// The record file.
    public var recordFile: String { stateDirectory + "/" + ShimRecord.fileName }
}

/// What a shim records in its state directory so that `delete` can clean up
/// after the shim died: the VM's directory (QEMU's pid record lives there), the
/// writable layer and where it goes back.
public struct ShimRecord: Codable, Sendable, Hashable {
    /// File name inside the state directory.
    public static let fileName = "shim.json"

    /// containerd namespace.
    public var namespace: String
    /// Task id.
    public var id: String
    /// The bundle.
    public var bundle: String
    /// The daemon's pid.
    public var shimPid: Int32
    /// The socket.
    public var socket: String
    /// The scratch disk with the writable layer, once created.
    public var scratchImage: String?
    /// Where the writable layer goes back.
    public var writeback: RootfsWriteback.Target?
    /// Set once the writable layer was written back (delete does not repeat it).
    public var writtenBack: Bool = false
    /// What the writable layer may bring back (from the spec).
    public var writebackPolicy: WritebackPolicy?
    /// The networks the shim attached itself (namespace, CNI networks), to detach.
    public var network: CNIAttachment?
    /// The writable layers of a pod's later containers (the first one's are above), by id.
    public var members: [String: MemberLayer]? = nil
    /// The spare whose process became this shim (`<state_dir>/.spares/NAME`: its VM's
    /// directory is there), removed with the task's state.
    public var spareDirectory: String? = nil

    /// A later container's writable layer, for the same cleanup.
    public struct MemberLayer: Codable, Sendable, Hashable {
        /// The scratch disk.
        public var scratchImage: String?
        /// Where the layer goes back.
        public var writeback: RootfsWriteback.Target?
        /// What it may bring back.
        public var writebackPolicy: WritebackPolicy?
        /// Already written back.
        public var writtenBack = false
    }

    /// Whether a writable layer still waits to be written back (its scratch disk is there).
    var pendingWritebacks: Bool {
        func due(_ scratch: String?, _ target: RootfsWriteback.Target?, _ done: Bool) -> Bool {
            guard !done, let scratch, target != nil else { return false }
            return FileManager.default.fileExists(atPath: scratch)
        }
        return due(scratchImage, writeback, writtenBack)
            || (members ?? [:]).values.contains { due($0.scratchImage, $0.writeback, $0.writtenBack) }
    }

    /// Writes the record atomically.
    func write(to paths: ShimPaths) throws {
        do {
            try FileManager.default.createDirectory(atPath: paths.stateDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            try JSONEncoder().encode(self).write(to: URL(fileURLWithPath: paths.recordFile), options: .atomic)
        } catch {
            throw ShimError(.internal, "cannot write \(paths.recordFile): \(error)")
        }
    }

    /// Reads a record, nil when absent or unreadable.
    static func read(from paths: ShimPaths) -> ShimRecord? {
        guard let data = FileManager.default.contents(atPath: paths.recordFile) else { return nil }
        return try? JSONDecoder().decode(ShimRecord.self, from: data)
    }

    /// The journal a shim's pod keeps in the record: what a `delete` after a crash
    /// needs to undo (the writable disk and where it goes back, the pod's own networks).
    static func journal(_ paths: ShimPaths) -> PodJournal {
        PodJournal(
            rootfsPlanned: { id, rootfs, policy in
                guard var record = read(from: paths) else {
                    throw ShimError(.internal, "\(paths.recordFile) vanished")
                }
                if id == record.id {
                    record.scratchImage = rootfs.scratchImage
                    record.writeback = rootfs.writeback
                    record.writebackPolicy = policy
                } else {
                    var members = record.members ?? [:]
                    members[id] = MemberLayer(scratchImage: rootfs.scratchImage, writeback: rootfs.writeback,
                                              writebackPolicy: policy)
                    record.members = members
                }
                try record.write(to: paths)
            },
            networkAttached: { attachment in
                guard var record = read(from: paths) else {
                    throw ShimError(.internal, "\(paths.recordFile) vanished")
                }
                record.network = attachment
                try record.write(to: paths)
            },
            writtenBack: { id in
                guard var record = read(from: paths) else { return }
                if id == record.id {
                    record.writtenBack = true
                } else {
                    record.members?[id]?.writtenBack = true
                }
                try? record.write(to: paths)
            })
    }
}
