/// A jail for a child (Firecracker's jailer is the model), entered after its network
/// namespace, TAPs and descriptors are in place and before exec: new mount and IPC
/// namespaces, every mount private, a tmpfs on ``root`` built by ``steps``, remounted
/// read-only and made the root (`pivot_root`, the old root detached); the supplementary
/// groups set to ``groups``, gid and uid changed, every capability dropped including the
/// bounding and ambient sets (libcap-ng); `PR_SET_NO_NEW_PRIVS`; then ``filter``, the last
/// step before exec.
public struct JailSpec: Sendable, Hashable {
    /// What a ``Step`` does.
    public enum StepKind: Int32, Sendable, Hashable {
        /// `mkdir(target, mode)`.
        case directory = 1
        /// Bind-mount the directory `source` on `target` (created as a directory).
        case bindDirectory = 2
        /// Bind-mount the file `source` on `target` (created as an empty file).
        case bindFile = 3
        /// `symlink(source, target)`.
        case symlink = 4
        /// A small tmpfs on `target`.
        case tmpfs = 5
        /// procfs on `target` (created) with `hidepid=invisible,subset=pid`: the child sees
        /// only processes of its own uid, and of `/proc` only their pid directories (for
        /// `/proc/self/fd/N`, e.g. a sealed memfd it maps).
        case procfs = 6
    }

    /// One step of building the root.
    public struct Step: Sendable, Hashable {
        /// What it does.
        public var kind: StepKind
        /// Mount flags of a bind (it is remounted with them).
        public var readOnly: Bool, noSuid: Bool, noDev: Bool, noExec: Bool
        /// Bind source or symlink target.
        public var source: String
        /// Full host path under the root.
        public var target: String
        /// Mode of a created directory.
        public var mode: UInt32

        /// Creates a step.
        public init(kind: StepKind, readOnly: Bool = false, noSuid: Bool = true, noDev: Bool = true,
                    noExec: Bool = false, source: String = "", target: String, mode: UInt32 = 0o755) {
            self.kind = kind
            self.readOnly = readOnly
            self.noSuid = noSuid
            self.noDev = noDev
            self.noExec = noExec
            self.source = source
            self.target = target
            self.mode = mode
        }
    }

    /// An existing empty directory the root is built on (nothing appears in it on the host).
    public var root: String
    /// The steps, in order.
    public var steps: [Step]
    /// The uid and gid the child becomes (never 0).
    public var uid: UInt32
    public var gid: UInt32
    /// Its supplementary groups (often none).
    public var groups: [UInt32]
    /// The seccomp program loaded last; empty: none.
    public var filter: SeccompProgram

    /// Creates a jail.
    public init(root: String, steps: [Step], uid: UInt32, gid: UInt32, groups: [UInt32] = [], filter: SeccompProgram = .empty) {
        self.root = root
        self.steps = steps
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.filter = filter
    }
}
