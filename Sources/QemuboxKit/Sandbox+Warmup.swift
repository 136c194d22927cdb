import Foundation
import NIOPosix
import OCISpec
import QemuboxAPI

extension Sandbox {
    /// The container id of the warm-up run (a name containerd ids never take: `qemubox-`
    /// is reserved for qemubox's own work in the guest).
    static let warmUpID = "qemubox-warmup"

    /// Runs one throwaway container the way a real one runs, so that this VM's QEMU has
    /// translated the code a container start goes through (under TCG the expensive part of
    /// a first start; see Documentation/warm-start.md, "Spare VMs"): two disks hot-added
    /// (the guest system image as the read-only layer, a small ext4 scratch disk), the
    /// bundle written and its overlay mounted, stdio streams, `crun create`, `start`,
    /// `delete` — the process is the image's own `crun --version` under a spec like
    /// containerd's default — then everything unmounted, detached and removed. Needs
    /// ``SandboxConfiguration/hotplugDisks``; the scratch file goes in `scratchDirectory`.
    /// Throws if any step fails or the process does not print crun's version; the VM is
    /// then in an unknown state and should be discarded.
    public func warmUp(scratchDirectory: String) async throws {
        let id = Self.warmUpID
        let guestBundle = GuestAgentProtocol.bundleRoot + "/" + id
        let layer = "/run/qemubox/layers/\(id)/0"
        let scratch = RootfsPlan.guestScratch(id)
        let scratchImage = scratchDirectory + "/warmup-scratch.ext4"
        defer { unlink(scratchImage) }
        try await NIOThreadPool.singleton.runIfActive { try RootfsPlan.makeScratchDisk(scratchImage, bytes: 64 << 20) }
        let disks = [Disk(id: "qbx-warmup0", path: configuration.assets.systemImagePath, readOnly: true),
                     Disk(id: "qbx-warmup1", path: scratchImage, readOnly: false)]
        let plan = RootfsPlan(
            disks: disks,
            steps: [
                .mount([RootfsPlan.guestMount("erofs", "disk:" + disks[0].id, layer, ["ro"]),
                        RootfsPlan.guestMount("ext4", "disk:" + disks[1].id, scratch, ["rw", "nodev"])]),
                .mkdir([scratch + "/upper", scratch + "/work"]),
                .mount([RootfsPlan.guestMount("overlay", "overlay", guestBundle + "/rootfs",
                                              ["lowerdir=\(layer)", "upperdir=\(scratch)/upper", "workdir=\(scratch)/work"])]),
            ],
            unmountTargets: [guestBundle + "/rootfs", scratch, layer], guestBundle: guestBundle)
        for disk in disks { try await vm.attachDisk(disk) }
        let original = Data(Self.warmUpSpec.utf8)
        let configJSON = try PodSpec.guestConfig(try RuntimeSpec(json: original), original: original, terminal: false)
        try await prepareBundle(plan, configJSON: configJSON)
        let stdio = try await ProcessStdio.open(on: agent, name: id, stdin: false)
        try await createTask(id: id, bundle: guestBundle, stdio: stdio, terminal: false)
        var start = Containerd_Task_V2_StartRequest()
        start.id = id
        _ = try await agent.task.start(start)
        async let out = stdio.stdout?.readAll(limit: 64 << 10)
        async let err = stdio.stderr?.readAll(limit: 64 << 10)
        let (output, errors) = (try await out, try await err)
        let exit = try await wait(containerID: id)
        var delete = Containerd_Task_V2_DeleteRequest()
        delete.id = id
        _ = try await agent.task.delete(delete)
        try await releaseBundle(plan)
        for disk in disks.reversed() { try await vm.detachDisk(id: disk.id) }
        let printed = output.map { String(buffer: $0) } ?? ""
        guard exit.exitStatus == 0, printed.contains("crun version") else {
            throw QemuboxError(.agentError, "the warm-up container exited with \(exit.exitStatus): "
                + "\(printed.prefix(200)) \(errors.map { String(buffer: $0) }?.prefix(500) ?? "")")
        }
    }

    /// The warm-up container's spec: what `ctr run` gives a container (containerd's
    /// default Linux spec), running the guest image's crun.
    static let warmUpSpec = """
        {"ociVersion": "1.0.2",
         "process": {"user": {"uid": 0, "gid": 0}, "args": ["/usr/bin/crun", "--version"],
           "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "cwd": "/",
           "capabilities": {
             "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
             "effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
             "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]},
           "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": true},
         "root": {"path": "rootfs"},
         "hostname": "qemubox-warmup",
         "mounts": [
           {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
           {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
           {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
           {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
           {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
           {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
           {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}],
         "linux": {
           "resources": {"devices": [{"allow": false, "access": "rwm"}]},
           "cgroupsPath": "/qemubox/qemubox-warmup",
           "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
           "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
           "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]}}
        """
}
