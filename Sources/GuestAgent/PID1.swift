#if canImport(Glibc)
import Glibc
#endif
import CGuestAgentSupport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The duties of the guest's PID 1: the early mounts, cgroup v2 with its
/// controllers enabled, signals, and powering off (with the reason on the
/// console) instead of ever exiting.
public enum PID1 {
    /// One early mount.
    struct EarlyMount {
        var type: String
        var source: String
        var target: String
        var flags: UInt
        var data: String?
    }

    /// The mounts PID 1 makes, in order (skipped when the target already is a mount point).
    static let earlyMounts: [EarlyMount] = [
        EarlyMount(type: "proc", source: "proc", target: "/proc", flags: UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), data: nil),
        EarlyMount(type: "sysfs", source: "sysfs", target: "/sys", flags: UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), data: nil),
        EarlyMount(type: "devtmpfs", source: "devtmpfs", target: "/dev", flags: UInt(MS_NOSUID), data: "mode=0755"),
        EarlyMount(type: "devpts", source: "devpts", target: "/dev/pts", flags: UInt(MS_NOSUID | MS_NOEXEC),
                   data: "newinstance,ptmxmode=0666,mode=0620,gid=5"),
        EarlyMount(type: "tmpfs", source: "shm", target: "/dev/shm", flags: UInt(MS_NOSUID | MS_NODEV), data: "mode=1777"),
        EarlyMount(type: "tmpfs", source: "tmpfs", target: "/run", flags: UInt(MS_NOSUID | MS_NODEV), data: "mode=0755"),
        EarlyMount(type: "tmpfs", source: "tmpfs", target: "/tmp", flags: UInt(MS_NOSUID | MS_NODEV), data: "mode=1777"),
        EarlyMount(type: "cgroup2", source: "cgroup2", target: "/sys/fs/cgroup",
                   flags: UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME), data: "nsdelegate"),
    ]

    /// Whether the kernel command line has `qemubox.debug=1` (verbose console log).
    public static let debug: Bool = {
        guard let text = try? String(contentsOfFile: "/proc/cmdline", encoding: .utf8) else { return false }
        return text.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("qemubox.debug=1")
    }()

    /// Logs only with `qemubox.debug=1`.
    static func debugLog(_ message: @autoclosure () -> String) {
        if debug { log(message()) }
    }

    /// Prints a line prefixed `vminitd:` on the console (stderr).
    public static func log(_ message: String) {
        let line = "vminitd: \(message)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    /// Makes sure fds 0, 1 and 2 are open (on /dev/console when possible).
    static func ensureConsole() {
        for fd: CInt in 0...2 where fcntl(fd, F_GETFD) < 0 {
            var opened = open("/dev/console", O_RDWR | O_NOCTTY)
            if opened < 0 { opened = open("/dev/null", O_RDWR) }
            if opened >= 0, opened != fd {
                dup2(opened, fd)
                close(opened)
            }
        }
    }

    /// Performs the early mounts; returns the failures (the caller decides).
    static func mountEarly() throws {
        for m in earlyMounts {
            if m.target != "/" { _ = Glibc.mkdir(m.target, 0o755) }
            if Mounter.isMountPoint(m.target) { continue }
            if Glibc.mount(m.source, m.target, m.type, m.flags, m.data) != 0 {
                let err = errno
                if err == EBUSY { continue }
                // nsdelegate is optional.
                if m.type == "cgroup2", Glibc.mount(m.source, m.target, m.type, m.flags, nil) == 0 { continue }
                throw GuestAgentError.system("mount \(m.type) on \(m.target)", errno: err)
            }
        }
        _ = unlink("/dev/ptmx")
        _ = symlink("pts/ptmx", "/dev/ptmx")
        for (link, target) in [("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"),
                               ("/dev/stdout", "/proc/self/fd/1"), ("/dev/stderr", "/proc/self/fd/2")] {
            _ = symlink(target, link)
        }
    }

    /// Enables every available controller for the root cgroup's children.
    /// Returns the controllers enabled.
    @discardableResult
    static func enableControllers(root: String = CgroupStats.root) -> [String] {
        guard let available = try? String(contentsOfFile: "\(root)/cgroup.controllers", encoding: .utf8) else { return [] }
        var enabled: [String] = []
        for controller in available.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let fd = open("\(root)/cgroup.subtree_control", O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { break }
            let text = "+\(controller)"
            if text.withCString({ write(fd, $0, strlen($0)) }) > 0 { enabled.append(String(controller)) }
            close(fd)
        }
        return enabled
    }

    /// Syncs and powers off, printing `reason`. As PID 1 it first kills every
    /// other process and unmounts what was mounted under /run (containers'
    /// rootfs, overlays, writable layers), so filesystems on disks are clean.
    /// Never returns.
    public static func powerOff(reason: String) -> Never {
        log("powering off: \(reason)")
        if getpid() == 1 {
            _ = kill(-1, SIGKILL)
            usleep(100_000)
            unmountAll(under: "/run/")
        }
        sync()
        if getpid() == 1 {
            _ = qb_poweroff()
            log("power-off failed (\(String(cString: strerror(errno)))); rebooting")
            _ = qb_reboot()
        }
        exit(0)
    }

    /// Unmounts every mount point below `prefix`, deepest (most recent) first,
    /// lazily when busy.
    static func unmountAll(under prefix: String) {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return }
        let targets = mountTargets(mountinfo: text).filter { $0.hasPrefix(prefix) }
        for target in targets.reversed() where umount2(target, 0) != 0 {
            if umount2(target, CInt(MNT_DETACH)) != 0 {
                log("cannot unmount \(target): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Mount points in /proc/self/mountinfo order (octal escapes decoded).
    static func mountTargets(mountinfo text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { return nil }
            return decodeMountPath(String(fields[4]))
        }
    }

    /// Decodes mountinfo's `\040`-style escapes.
    static func decodeMountPath(_ path: String) -> String {
        guard path.contains("\\") else { return path }
        var bytes: [UInt8] = []
        var utf8 = Array(path.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "\\"), utf8.count >= 3,
               let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The fatal path: the reason on the console, then power-off.
    public static func fatal(_ reason: String) -> Never {
        log("fatal: \(reason)")
        powerOff(reason: "fatal error")
    }

    /// Signals PID 1 handles itself (blocked in every thread, taken by ``watchSignals(onShutdown:)``).
    static let handledSignals: [CInt] = {
        var list: [CInt] = []
        var signal = qb_pid1_handled_signal(0)
        while signal != 0 {
            list.append(signal)
            signal = qb_pid1_handled_signal(CInt(list.count))
        }
        return list
    }()

    /// Blocks the handled signals (before any thread is started) and ignores SIGPIPE.
    static func blockSignals() {
        _ = handledSignals.withUnsafeBufferPointer { qb_block_signals($0.baseAddress, CInt($0.count)) }
        signal(SIGPIPE, SIG_IGN)
    }

    /// Waits for the handled signals on a thread: SIGTERM, SIGINT and SIGPWR power off.
    static func watchSignals(onShutdown: @escaping @Sendable (String) -> Void) {
        PosixThread.start(name: "signals") {
            while true {
                let signal = handledSignals.withUnsafeBufferPointer { qb_wait_signal($0.baseAddress, CInt($0.count)) }
                switch signal {
                case SIGTERM, SIGINT, SIGPWR:
                    onShutdown("signal \(signal)")
                    return
                default:
                    log("ignoring signal \(signal)")
                }
            }
        }
    }

    /// Sets up the guest as PID 1: console, signal mask, mounts, cgroups; returns
    /// the cgroup controllers enabled. `/proc` and the signal mask are already in
    /// place when it runs: CGuestAgentSupport sets them up before `main` in PID 1,
    /// before any thread exists (threads inherit the mask; libdispatch's worker-pool
    /// monitor reads `/proc/<tid>/stat` and aborts the process, SIGILL, without
    /// `/proc`). Powers off via ``fatal(_:)`` on failure.
    public static func prepare() -> [String] {
        ensureConsole()
        blockSignals()
        do {
            try mountEarly()
        } catch {
            fatal("\(error)")
        }
        ensureConsole()
        let controllers = enableControllers()
        if controllers.isEmpty { log("warning: no cgroup controllers enabled") }
        _ = sethostname("qemubox", 7)
        GuestNetwork.bringUpLoopback()
        return controllers
    }
}
