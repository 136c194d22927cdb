#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension RuntimeSpec {
    /// `process`: the container's init process.
    public struct Process: OCIObject {
        /// `terminal`: attach a pseudo-terminal.
        public var terminal: Bool?
        /// `consoleSize`: terminal size in characters.
        public var consoleSize: ConsoleSize?
        /// `user`: the identity the process runs as.
        public var user: User?
        /// `args`: argv; at least one entry on Linux.
        public var args: [String]?
        /// `commandLine`: full command line (Windows).
        public var commandLine: String?
        /// `env`: `KEY=value` entries.
        public var env: [String]?
        /// `cwd`: absolute working directory (required).
        public var cwd: String?
        /// `capabilities`: capability sets.
        public var capabilities: Capabilities?
        /// `rlimits`: resource limits.
        public var rlimits: [Rlimit]?
        /// `noNewPrivileges`.
        public var noNewPrivileges: Bool?
        /// `apparmorProfile`.
        public var apparmorProfile: String?
        /// `oomScoreAdj`.
        public var oomScoreAdj: Int?
        /// `selinuxLabel`.
        public var selinuxLabel: String?
        /// `ioPriority`: I/O scheduling class and priority.
        public var ioPriority: IOPriority?
        /// `scheduler`: CPU scheduling policy.
        public var scheduler: Scheduler?
        /// `execCPUAffinity`: CPU affinity for `exec`'d processes.
        public var execCPUAffinity: ExecCPUAffinity?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a process.
        public init(args: [String]? = nil, env: [String]? = nil, cwd: String? = "/", user: User? = User(uid: 0, gid: 0)) {
            self.args = args
            self.env = env
            self.cwd = cwd
            self.user = user
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            terminal = try r.decode("terminal")
            consoleSize = try r.decode("consoleSize")
            user = try r.decode("user")
            args = try r.decode("args")
            commandLine = try r.decode("commandLine")
            env = try r.decode("env")
            cwd = try r.decode("cwd")
            capabilities = try r.decode("capabilities")
            rlimits = try r.decode("rlimits")
            noNewPrivileges = try r.decode("noNewPrivileges")
            apparmorProfile = try r.decode("apparmorProfile")
            oomScoreAdj = try r.decode("oomScoreAdj")
            selinuxLabel = try r.decode("selinuxLabel")
            ioPriority = try r.decode("ioPriority")
            scheduler = try r.decode("scheduler")
            execCPUAffinity = try r.decode("execCPUAffinity")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(terminal, "terminal")
            try w.encode(consoleSize, "consoleSize")
            try w.encode(user, "user")
            try w.encode(args, "args")
            try w.encode(commandLine, "commandLine")
            try w.encode(env, "env")
            try w.encode(cwd, "cwd")
            try w.encode(capabilities, "capabilities")
            try w.encode(rlimits, "rlimits")
            try w.encode(noNewPrivileges, "noNewPrivileges")
            try w.encode(apparmorProfile, "apparmorProfile")
            try w.encode(oomScoreAdj, "oomScoreAdj")
            try w.encode(selinuxLabel, "selinuxLabel")
            try w.encode(ioPriority, "ioPriority")
            try w.encode(scheduler, "scheduler")
            try w.encode(execCPUAffinity, "execCPUAffinity")
            try w.finish(extensions)
        }
    }

    /// `process.consoleSize`.
    public struct ConsoleSize: OCIObject {
        /// `height` in rows.
        public var height: UInt64
        /// `width` in columns.
        public var width: UInt64
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a size.
        public init(height: UInt64, width: UInt64) {
            self.height = height
            self.width = width
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            height = try r.require("height")
            width = try r.require("width")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(height, "height")
            try w.encode(width, "width")
            try w.finish(extensions)
        }
    }

    /// `process.user`.
    public struct User: OCIObject {
        /// `uid` in the container (required on Linux).
        public var uid: UInt32?
        /// `gid` in the container (required on Linux).
        public var gid: UInt32?
        /// `umask`.
        public var umask: UInt32?
        /// `additionalGids`.
        public var additionalGids: [UInt32]?
        /// `username` (Windows).
        public var username: String?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a user.
        public init(uid: UInt32? = nil, gid: UInt32? = nil, additionalGids: [UInt32]? = nil) {
            self.uid = uid
            self.gid = gid
            self.additionalGids = additionalGids
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            uid = try r.decode("uid")
            gid = try r.decode("gid")
            umask = try r.decode("umask")
            additionalGids = try r.decode("additionalGids")
            username = try r.decode("username")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(uid, "uid")
            try w.encode(gid, "gid")
            try w.encode(umask, "umask")
            try w.encode(additionalGids, "additionalGids")
            try w.encode(username, "username")
            try w.finish(extensions)
        }
    }

    /// `process.capabilities`: the five capability sets (`CAP_*` names).
    public struct Capabilities: OCIObject {
        /// `bounding`.
        public var bounding: [String]?
        /// `effective`.
        public var effective: [String]?
        /// `inheritable`.
        public var inheritable: [String]?
        /// `permitted`.
        public var permitted: [String]?
        /// `ambient`.
        public var ambient: [String]?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates capability sets.
        public init(bounding: [String]? = nil, effective: [String]? = nil, inheritable: [String]? = nil,
                    permitted: [String]? = nil, ambient: [String]? = nil) {
            self.bounding = bounding
            self.effective = effective
            self.inheritable = inheritable
            self.permitted = permitted
            self.ambient = ambient
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            bounding = try r.decode("bounding")
            effective = try r.decode("effective")
            inheritable = try r.decode("inheritable")
            permitted = try r.decode("permitted")
            ambient = try r.decode("ambient")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(bounding, "bounding")
            try w.encode(effective, "effective")
            try w.encode(inheritable, "inheritable")
            try w.encode(permitted, "permitted")
            try w.encode(ambient, "ambient")
            try w.finish(extensions)
        }

        /// Every set with its JSON name.
        public var all: [(name: String, values: [String])] {
            [("bounding", bounding), ("effective", effective), ("inheritable", inheritable),
             ("permitted", permitted), ("ambient", ambient)].compactMap { name, set in set.map { (name, $0) } }
        }
    }

    /// An entry of `process.rlimits`. `UInt64.max` is `RLIM_INFINITY`.
    public struct Rlimit: OCIObject {
        /// `type`: `RLIMIT_*` name.
        public var type: String
        /// `hard` limit.
        public var hard: UInt64
        /// `soft` limit.
        public var soft: UInt64
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// `RLIM_INFINITY`.
        public static let infinity = UInt64.max

        /// Creates an rlimit.
        public init(type: String, hard: UInt64, soft: UInt64) {
            self.type = type
            self.hard = hard
            self.soft = soft
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            type = try r.require("type")
            hard = try r.require("hard")
            soft = try r.require("soft")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(type, "type")
            try w.encode(hard, "hard")
            try w.encode(soft, "soft")
            try w.finish(extensions)
        }
    }

    /// `process.ioPriority`.
    public struct IOPriority: OCIObject {
        /// `class`: `IOPRIO_CLASS_RT`, `IOPRIO_CLASS_BE` or `IOPRIO_CLASS_IDLE`.
        public var `class`: String
        /// `priority` within the class (0...7).
        public var priority: Int?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates an I/O priority.
        public init(class: String, priority: Int? = nil) {
            self.class = `class`
            self.priority = priority
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            `class` = try r.require("class")
            priority = try r.decode("priority")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(`class`, "class")
            try w.encode(priority, "priority")
            try w.finish(extensions)
        }
    }

    /// `process.scheduler` (sched_setattr).
    public struct Scheduler: OCIObject {
        /// `policy`: `SCHED_OTHER`, `SCHED_FIFO`, `SCHED_RR`, `SCHED_BATCH`, `SCHED_ISO`, `SCHED_IDLE`, `SCHED_DEADLINE`.
        public var policy: String
        /// `nice`.
        public var nice: Int32?
        /// `priority`.
        public var priority: Int32?
        /// `flags`: `SCHED_FLAG_*` names.
        public var flags: [String]?
        /// `runtime` in ns (SCHED_DEADLINE).
        public var runtime: UInt64?
        /// `deadline` in ns (SCHED_DEADLINE).
        public var deadline: UInt64?
        /// `period` in ns (SCHED_DEADLINE).
        public var period: UInt64?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a scheduler setting.
        public init(policy: String) { self.policy = policy }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            policy = try r.require("policy")
            nice = try r.decode("nice")
            priority = try r.decode("priority")
            flags = try r.decode("flags")
            runtime = try r.decode("runtime")
            deadline = try r.decode("deadline")
            period = try r.decode("period")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(policy, "policy")
            try w.encode(nice, "nice")
            try w.encode(priority, "priority")
            try w.encode(flags, "flags")
            try w.encode(runtime, "runtime")
            try w.encode(deadline, "deadline")
            try w.encode(period, "period")
            try w.finish(extensions)
        }
    }

    /// `process.execCPUAffinity`: CPU lists like `0-3,7`.
    public struct ExecCPUAffinity: OCIObject {
        /// `initial`: affinity before joining the cgroup.
        public var initial: String?
        /// `final`: affinity after joining the cgroup.
        public var final: String?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates an affinity setting.
        public init(initial: String? = nil, final: String? = nil) {
            self.initial = initial
            self.final = final
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            initial = try r.decode("initial")
            final = try r.decode("final")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(initial, "initial")
            try w.encode(final, "final")
            try w.finish(extensions)
        }
    }
}
