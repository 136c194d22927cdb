#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CGuestAgentSupport
import QemuboxAPI

/// Reading a container's cgroup v2 files into containerd's `io.containerd.cgroups.v2.Metrics`.
public enum CgroupStats {
    /// Where the unified hierarchy is mounted.
    public static let root = "/sys/fs/cgroup"

    /// The cgroup directory of `pid` (from `/proc/PID/cgroup`'s `0::` line).
    public static func cgroupDirectory(ofPid pid: Int32, root: String = root) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return nil }
        return cgroupDirectory(procCgroup: text, root: root)
    }

    /// The directory named by a `/proc/PID/cgroup` text (cgroup v2 entry `0::/path`).
    public static func cgroupDirectory(procCgroup text: String, root: String = root) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            let path = line.dropFirst(3)
            return path == "/" ? root : root + path
        }
        return nil
    }

    /// The pids in a cgroup (`cgroup.procs`).
    public static func pids(cgroupDirectory dir: String) -> [Int32] {
        guard let text = try? String(contentsOfFile: "\(dir)/cgroup.procs", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    /// Parses flat keyed files (`key value` per line: memory.stat, cpu.stat, memory.events).
    public static func parseFlatKeyed(_ text: String) -> [String: UInt64] {
        var values: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 2, let value = UInt64(fields[1]) else { continue }
            values[String(fields[0])] = value
        }
        return values
    }

    /// Parses a single value file; `max` is `UInt64.max`.
    public static func parseSingle(_ text: String) -> UInt64? {
        let trimmed = text.trimmedWhitespace()
        return trimmed == "max" ? UInt64.max : UInt64(trimmed)
    }

    /// Parses `io.stat` (`MAJ:MIN rbytes=… wbytes=… rios=… wios=… …` per line).
    public static func parseIOStat(_ text: String) -> [Io_Containerd_Cgroups_V2_IOEntry] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard let device = fields.first else { return nil }
            let numbers = device.split(separator: ":")
            guard numbers.count == 2, let major = UInt64(numbers[0]), let minor = UInt64(numbers[1]) else { return nil }
            var entry = Io_Containerd_Cgroups_V2_IOEntry()
            entry.major = major
            entry.minor = minor
            for field in fields.dropFirst() {
                let pair = field.split(separator: "=")
                guard pair.count == 2, let value = UInt64(pair[1]) else { continue }
                switch pair[0] {
                case "rbytes": entry.rbytes = value
                case "wbytes": entry.wbytes = value
                case "rios": entry.rios = value
                case "wios": entry.wios = value
                default: break
                }
            }
            return entry
        }
    }

    /// Reads the metrics of the cgroup at `dir` (missing files leave fields zero).
    public static func read(cgroupDirectory dir: String) -> Io_Containerd_Cgroups_V2_Metrics {
        metrics(files: { try? String(contentsOfFile: "\(dir)/\($0)", encoding: .utf8) })
    }

    /// Builds metrics from file contents (`files(name)` returns a file's text, or nil).
    public static func metrics(files: (String) -> String?) -> Io_Containerd_Cgroups_V2_Metrics {
        var metrics = Io_Containerd_Cgroups_V2_Metrics()
        if let current = files("pids.current").flatMap(parseSingle) {
            var pids = Io_Containerd_Cgroups_V2_PidsStat()
            pids.current = current
            // "max" is UInt64.max, as containerd's cgroups v2 manager reports it.
            if let limit = files("pids.max").flatMap(parseSingle) { pids.limit = limit }
            metrics.pids = pids
        }
        if let text = files("cpu.stat") {
            let values = parseFlatKeyed(text)
            var cpu = Io_Containerd_Cgroups_V2_CPUStat()
            cpu.usageUsec = values["usage_usec"] ?? 0
            cpu.userUsec = values["user_usec"] ?? 0
            cpu.systemUsec = values["system_usec"] ?? 0
            cpu.nrPeriods = values["nr_periods"] ?? 0
            cpu.nrThrottled = values["nr_throttled"] ?? 0
            cpu.throttledUsec = values["throttled_usec"] ?? 0
            metrics.cpu = cpu
        }
        if let text = files("memory.stat") {
            let v = parseFlatKeyed(text)
            var memory = Io_Containerd_Cgroups_V2_MemoryStat()
            memory.anon = v["anon"] ?? 0
            memory.file = v["file"] ?? 0
            memory.kernelStack = v["kernel_stack"] ?? 0
            memory.slab = v["slab"] ?? 0
            memory.sock = v["sock"] ?? 0
            memory.shmem = v["shmem"] ?? 0
            memory.fileMapped = v["file_mapped"] ?? 0
            memory.fileDirty = v["file_dirty"] ?? 0
            memory.fileWriteback = v["file_writeback"] ?? 0
            memory.anonThp = v["anon_thp"] ?? 0
            memory.inactiveAnon = v["inactive_anon"] ?? 0
            memory.activeAnon = v["active_anon"] ?? 0
            memory.inactiveFile = v["inactive_file"] ?? 0
            memory.activeFile = v["active_file"] ?? 0
            memory.unevictable = v["unevictable"] ?? 0
            memory.slabReclaimable = v["slab_reclaimable"] ?? 0
            memory.slabUnreclaimable = v["slab_unreclaimable"] ?? 0
            memory.pgfault = v["pgfault"] ?? 0
            memory.pgmajfault = v["pgmajfault"] ?? 0
            memory.workingsetRefault = v["workingset_refault_file"] ?? v["workingset_refault"] ?? 0
            memory.workingsetActivate = v["workingset_activate_file"] ?? v["workingset_activate"] ?? 0
            memory.workingsetNodereclaim = v["workingset_nodereclaim"] ?? 0
            memory.pgrefill = v["pgrefill"] ?? 0
            memory.pgscan = v["pgscan"] ?? 0
            memory.pgsteal = v["pgsteal"] ?? 0
            memory.pgactivate = v["pgactivate"] ?? 0
            memory.pgdeactivate = v["pgdeactivate"] ?? 0
            memory.pglazyfree = v["pglazyfree"] ?? 0
            memory.pglazyfreed = v["pglazyfreed"] ?? 0
            memory.thpFaultAlloc = v["thp_fault_alloc"] ?? 0
            memory.thpCollapseAlloc = v["thp_collapse_alloc"] ?? 0
            memory.usage = files("memory.current").flatMap(parseSingle) ?? 0
            memory.usageLimit = files("memory.max").flatMap(parseSingle) ?? 0
            memory.swapUsage = files("memory.swap.current").flatMap(parseSingle) ?? 0
            memory.swapLimit = files("memory.swap.max").flatMap(parseSingle) ?? 0
            metrics.memory = memory
        }
        if let text = files("memory.events") {
            let v = parseFlatKeyed(text)
            var events = Io_Containerd_Cgroups_V2_MemoryEvents()
            events.low = v["low"] ?? 0
            events.high = v["high"] ?? 0
            events.max = v["max"] ?? 0
            events.oom = v["oom"] ?? 0
            events.oomKill = v["oom_kill"] ?? 0
            metrics.memoryEvents = events
        }
        if let text = files("io.stat") {
            var io = Io_Containerd_Cgroups_V2_IOStat()
            io.usage = parseIOStat(text)
            metrics.io = io
        }
        return metrics
    }
}

/// Publishes `TaskOOM` when a container's `memory.events` `oom_kill` count grows.
///
/// The file is read when the kernel reports it modified (inotify on a cgroup v2 file), not
/// on a timer: an idle container then costs its VM no wake-ups (under TCG, a poll every
/// 500 ms was a third of an idle VM's host CPU). A thread per container waits, re-checking
/// at least every ``recheck`` whether the container is gone.
enum OOMWatcher {
    /// Longest wait without an event before the container's state is checked again.
    static let recheck: Int32 = 10_000
    /// The poll interval where inotify is unavailable.
    static let fallbackInterval: useconds_t = 500_000

    static func start(container: Container, events: EventQueue) {
        guard let dir = container.cgroup else { return }
        let path = "\(dir)/memory.events"
        let watch = qb_watch_modifications(path)
        PosixThread.start(name: "oom watcher \(container.id)") {
            defer { if watch >= 0 { close(watch) } }
            var watching = watch >= 0
            var last: UInt64 = 0
            while !container.isDeleted {
                if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                    let kills = CgroupStats.parseFlatKeyed(text)["oom_kill"] ?? 0
                    if kills > last {
                        var event = Containerd_Events_TaskOOM()
                        event.containerID = container.id
                        events.publish(event)
                    }
                    last = kills
                } else if container.initProcess.status == .stopped {
                    break
                }
                if watching {
                    let woke = qb_wait_modification(watch, recheck)
                    if woke == 2 { break }  // the cgroup (and its file) is gone
                    if woke < 0 { watching = false }  // poll from now on
                } else {
                    usleep(fallbackInterval)
                }
            }
        }
    }
}
