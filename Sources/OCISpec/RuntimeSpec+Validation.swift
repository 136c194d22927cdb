#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension RuntimeSpec {
    /// Checks the spec against the rules of the runtime specification that
    /// matter on Linux, and throws the first failure (see
    /// ``validationReport()`` for all of them).
    public func validate() throws(OCISpecError) {
        try validator().throwFirst()
    }

    /// Every rule violation found, each naming its JSON path.
    public func validationReport() -> OCIValidationReport {
        validator().report
    }

    private func validator() -> OCIValidator {
        var v = OCIValidator()
        if let ociVersion {
            if !OCIPatterns.isSemVer(ociVersion) {
                v.fail(.invalidValue, "ociVersion", "must be a SemVer version like 1.1.0, got \"\(ociVersion)\"")
            } else if !ociVersion.hasPrefix("1.") {
                v.fail(.invalidValue, "ociVersion", "unsupported major version in \"\(ociVersion)\" (expected 1.x)")
            }
        } else {
            v.require(ociVersion, "ociVersion")
        }
        if let root {
            v.require(root.path, "root.path")
            if root.path == "" { v.fail(.invalidValue, "root.path", "must not be empty") }
        } else {
            v.fail(.missingField, "root", "required")
        }
        if let process { Self.check(process, &v) }
        for (i, mount) in (mounts ?? []).enumerated() {
            v.absolute(mount.destination, "mounts[\(i)].destination")
        }
        if let hooks {
            for (name, list) in hooks.all {
                for (i, hook) in list.enumerated() {
                    v.absolute(hook.path, "hooks.\(name)[\(i)].path")
                    if let timeout = hook.timeout, timeout <= 0 {
                        v.fail(.invalidValue, "hooks.\(name)[\(i)].timeout", "must be greater than zero, got \(timeout)")
                    }
                }
            }
        }
        if let linux { Self.check(linux, &v) }
        return v
    }

    private static func check(_ process: Process, _ v: inout OCIValidator) {
        if let args = process.args {
            if args.isEmpty { v.fail(.invalidValue, "process.args", "must not be empty") }
        } else if process.commandLine == nil {
            v.fail(.missingField, "process.args", "required")
        }
        if let cwd = process.cwd {
            v.absolute(cwd, "process.cwd")
        } else {
            v.fail(.missingField, "process.cwd", "required")
        }
        if let user = process.user {
            v.require(user.uid, "process.user.uid")
            v.require(user.gid, "process.user.gid")
        } else {
            v.fail(.missingField, "process.user", "required")
        }
        for (i, entry) in (process.env ?? []).enumerated() where !entry.contains("=") || entry.hasPrefix("=") {
            v.fail(.invalidValue, "process.env[\(i)]", "must be KEY=value, got \"\(entry)\"")
        }
        if let capabilities = process.capabilities {
            for (name, set) in capabilities.all {
                for (i, cap) in set.enumerated() where !OCIPatterns.isConstant(cap, prefix: "CAP_") {
                    v.fail(.invalidValue, "process.capabilities.\(name)[\(i)]", "unknown capability \"\(cap)\"")
                }
            }
        }
        var seenRlimits: [String: Int] = [:]
        for (i, rlimit) in (process.rlimits ?? []).enumerated() {
            let path = "process.rlimits[\(i)]"
            if !OCIPatterns.isConstant(rlimit.type, prefix: "RLIMIT_") {
                v.fail(.invalidValue, path + ".type", "unknown rlimit \"\(rlimit.type)\"")
            }
            if let first = seenRlimits[rlimit.type] {
                v.fail(.duplicate, path + ".type", "duplicate rlimit \"\(rlimit.type)\" (first at process.rlimits[\(first)])")
            } else {
                seenRlimits[rlimit.type] = i
            }
            if rlimit.soft > rlimit.hard {
                v.fail(.invalidValue, path + ".soft", "must not exceed hard (\(rlimit.soft) > \(rlimit.hard))")
            }
        }
        v.range(process.oomScoreAdj, -1000...1000, "process.oomScoreAdj")
        if let io = process.ioPriority {
            v.oneOf(io.class, ["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"],
                    "process.ioPriority.class", what: "I/O priority class")
            v.range(io.priority, 0...7, "process.ioPriority.priority")
        }
        if let scheduler = process.scheduler {
            v.oneOf(scheduler.policy, ["SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO",
                                       "SCHED_IDLE", "SCHED_DEADLINE"],
                    "process.scheduler.policy", what: "scheduler policy")
            v.range(scheduler.nice, -20...19, "process.scheduler.nice")
        }
    }

    private static func check(_ linux: Linux, _ v: inout OCIValidator) {
        var seen: [NamespaceType: Int] = [:]
        for (i, ns) in (linux.namespaces ?? []).enumerated() {
            let path = "linux.namespaces[\(i)]"
            if !NamespaceType.known.contains(ns.type) {
                v.fail(.invalidValue, path + ".type", "unknown namespace \"\(ns.type)\"")
            }
            if let first = seen[ns.type] {
                v.fail(.duplicate, path + ".type",
                       "duplicate namespace \"\(ns.type)\" (first at linux.namespaces[\(first)])")
            } else {
                seen[ns.type] = i
            }
            v.absolute(ns.path, path + ".path")
        }
        for (key, _) in linux.timeOffsets ?? [:] where key != "boottime" && key != "monotonic" {
            v.fail(.invalidValue, "linux.timeOffsets.\(key)", "unknown clock \"\(key)\" (boottime or monotonic)")
        }
        for (i, device) in (linux.devices ?? []).enumerated() {
            let path = "linux.devices[\(i)]"
            v.oneOf(device.type, ["c", "b", "u", "p"], path + ".type", what: "device type")
            v.absolute(device.path, path + ".path")
            if device.type != "p" {
                v.require(device.major, path + ".major")
                v.require(device.minor, path + ".minor")
            }
        }
        v.oneOf(linux.rootfsPropagation, ["private", "shared", "slave", "unbindable",
                                          "rprivate", "rshared", "rslave", "runbindable"],
                "linux.rootfsPropagation", what: "propagation")
        for (i, path) in (linux.maskedPaths ?? []).enumerated() { v.absolute(path, "linux.maskedPaths[\(i)]") }
        for (i, path) in (linux.readonlyPaths ?? []).enumerated() { v.absolute(path, "linux.readonlyPaths[\(i)]") }
        if let resources = linux.resources { check(resources, &v) }
        if let seccomp = linux.seccomp { check(seccomp, &v) }
        if let personality = linux.personality {
            v.oneOf(personality.domain, ["LINUX", "LINUX32"], "linux.personality.domain", what: "personality domain")
        }
    }

    private static func check(_ resources: Resources, _ v: inout OCIValidator) {
        let base = "linux.resources"
        for (i, rule) in (resources.devices ?? []).enumerated() {
            v.oneOf(rule.type, ["a", "b", "c"], "\(base).devices[\(i)].type", what: "device type")
            if let access = rule.access, access.isEmpty || !access.allSatisfy({ "rwm".contains($0) }) {
                v.fail(.invalidValue, "\(base).devices[\(i)].access", "must combine r, w and m, got \"\(access)\"")
            }
        }
        if let memory = resources.memory {
            for (name, value) in [("limit", memory.limit), ("reservation", memory.reservation), ("swap", memory.swap)] {
                if let value, value < -1 {
                    v.fail(.invalidValue, "\(base).memory.\(name)", "must be -1 (unlimited) or >= 0, got \(value)")
                }
            }
            v.range(memory.swappiness, 0...100, "\(base).memory.swappiness")
        }
        if let blockIO = resources.blockIO {
            v.range(blockIO.weight, 10...1000, "\(base).blockIO.weight")
            v.range(blockIO.leafWeight, 10...1000, "\(base).blockIO.leafWeight")
        }
        for (i, limit) in (resources.hugepageLimits ?? []).enumerated() {
            let size = limit.pageSize
            let number = size.dropLast(2)
            let valid = ["KB", "MB", "GB"].contains(String(size.suffix(2))) && !number.isEmpty
                && number.allSatisfy(OCIPatterns.digits.contains) && number.first != "0"
            if !valid {
                v.fail(.invalidValue, "\(base).hugepageLimits[\(i)].pageSize", "must look like 2MB or 1GB, got \"\(size)\"")
            }
        }
    }

    private static func check(_ seccomp: Seccomp, _ v: inout OCIValidator) {
        let base = "linux.seccomp"
        if let action = seccomp.defaultAction {
            v.oneOf(action, Seccomp.knownActions, base + ".defaultAction", what: "seccomp action")
        } else {
            v.fail(.missingField, base + ".defaultAction", "required")
        }
        for (i, arch) in (seccomp.architectures ?? []).enumerated() where !OCIPatterns.isConstant(arch, prefix: "SCMP_ARCH_") {
            v.fail(.invalidValue, "\(base).architectures[\(i)]", "unknown architecture \"\(arch)\"")
        }
        for (i, rule) in (seccomp.syscalls ?? []).enumerated() {
            let path = "\(base).syscalls[\(i)]"
            if let names = rule.names {
                if names.isEmpty { v.fail(.invalidValue, path + ".names", "must not be empty") }
            } else {
                v.fail(.missingField, path + ".names", "required")
            }
            if let action = rule.action {
                v.oneOf(action, Seccomp.knownActions, path + ".action", what: "seccomp action")
            } else {
                v.fail(.missingField, path + ".action", "required")
            }
            for (j, arg) in (rule.args ?? []).enumerated() {
                v.range(arg.index, 0...5, "\(path).args[\(j)].index")
                v.oneOf(arg.op, Seccomp.knownOperators, "\(path).args[\(j)].op", what: "operator")
            }
        }
    }
}
