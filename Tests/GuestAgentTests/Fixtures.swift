import Foundation
import NIOCore
import TestSupport
import VsockTransport

enum Fixtures {
    /// A busybox rootfs as an EROFS image (mkfs.erofs), with the mount points crun needs.
    static func busyboxRootfs(in directory: String) throws -> String {
        let tree = "\(directory)/rootfs-tree"
        let fm = FileManager.default
        for dir in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
            try fm.createDirectory(atPath: "\(tree)/\(dir)", withIntermediateDirectories: true)
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"].first { fm.fileExists(atPath: $0) } ?? "/bin/busybox"
        try fm.copyItem(atPath: busybox, toPath: "\(tree)/bin/busybox")
        for applet in ["sh", "cat", "echo", "sleep", "ls", "test", "true", "false", "id", "head", "hostname", "stty", "tr", "tail"] {
            try fm.createSymbolicLink(atPath: "\(tree)/bin/\(applet)", withDestinationPath: "busybox")
        }
        let image = "\(directory)/rootfs.erofs"
        let mkfs = Process()
        mkfs.executableURL = URL(fileURLWithPath: Prerequisite.which("mkfs.erofs") ?? "/usr/bin/mkfs.erofs")
        mkfs.arguments = ["-zlz4", image, tree]
        mkfs.standardOutput = FileHandle.nullDevice
        try mkfs.run()
        mkfs.waitUntilExit()
        guard mkfs.terminationStatus == 0 else { throw PeerError("mkfs.erofs failed") }
        return image
    }

    /// An OCI process object like containerd's defaults.
    static func process(_ args: [String], terminal: Bool = false) -> [String: Any] {
        let caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
        return [
            "terminal": terminal,
            "user": ["uid": 0, "gid": 0],
            "args": args,
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": ["bounding": caps, "effective": caps, "permitted": caps],
            "rlimits": [["type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024]],
            "noNewPrivileges": true,
        ]
    }

    /// A config.json like containerd's default spec (namespaces, masked and
    /// read-only paths, device cgroup rules), with a read-only root.
    static func config(id: String, args: [String], terminal: Bool = false) throws -> Data {
        let spec: [String: Any] = [
            "ociVersion": "1.0.2",
            "process": process(args, terminal: terminal),
            "root": ["path": "rootfs", "readonly": true],
            "hostname": id,
            "mounts": [
                ["destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]],
                ["destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]],
                ["destination": "/dev/pts", "type": "devpts", "source": "devpts",
                 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]],
                ["destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]],
                ["destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]],
                ["destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]],
                ["destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                 "options": ["ro", "nosuid", "noexec", "nodev"]],
            ],
            "linux": [
                "cgroupsPath": "/default/\(id)",
                "resources": ["devices": [["allow": false, "access": "rwm"]]],
                // The host adds the cgroup namespace (PodSpec.guestConfig); the agent runs the spec as written.
                "namespaces": [["type": "pid"], ["type": "ipc"], ["type": "uts"], ["type": "mount"], ["type": "network"],
                               ["type": "cgroup"]],
                "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
                "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            ],
        ]
        return try JSONSerialization.data(withJSONObject: spec, options: [.sortedKeys])
    }

    /// Reads a stream to its end as text.
    static func readAll(_ stream: YamuxStream) async throws -> String {
        var buffer = try await stream.readAll()
        return buffer.readString(length: buffer.readableBytes) ?? ""
    }
}
