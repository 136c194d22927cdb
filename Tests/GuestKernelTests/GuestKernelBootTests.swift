import Foundation
import Testing
import TestSupport

/// Boots the guest kernel built by kernel-config/build.sh under QEMU microvm
/// (PVH `vmlinux`, TCG) with a busybox initramfs whose /init probes, from inside
/// the guest, the features qemubox relies on and prints one `QBX <probe> <value>`
/// line each; the test asserts every line.
@Suite(.serialized)
struct GuestKernelBootTests {
    static let portName = "org.qemubox.agent"

    /// The guest's /init. Every probe prints a line even when it fails, so a
    /// missing feature shows as a wrong value, not a hang.
    static let initScript = #"""
    #!/bin/sh
    /bin/busybox --install -s /bin
    export PATH=/bin
    mount -t devtmpfs devtmpfs /dev
    exec </dev/console >/dev/console 2>&1
    echo "QBX init"
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
    mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
    echo "QBX kernel $(uname -r)"
    echo "QBX filesystems $(awk '{print $NF}' /proc/filesystems | tr '\n' ' ')"
    echo "QBX controllers $(cat /sys/fs/cgroup/cgroup.controllers)"
    echo "+cpu +memory +pids +io" > /sys/fs/cgroup/cgroup.subtree_control
    mkdir /sys/fs/cgroup/probe
    echo "QBX child-controllers $(cat /sys/fs/cgroup/probe/cgroup.controllers)"
    echo 1 > /sys/fs/cgroup/probe/cgroup.freeze
    echo "QBX freeze $(grep frozen /sys/fs/cgroup/probe/cgroup.events)"
    echo "QBX namespaces $(ls /proc/self/ns | tr '\n' ' ')"
    echo "QBX unshare $(unshare -m -u -i -n -p -U -f sh -c 'echo pid=$$' 2>&1)"
    echo "QBX seccomp $(grep -c '^Seccomp_filters:' /proc/self/status)"
    echo "QBX ptmx $(test -c /dev/pts/ptmx && echo yes || echo no)"
    echo "QBX hwrng $(cat /sys/class/misc/hw_random/rng_current) $(head -c 32 /dev/hwrng | wc -c)"
    echo "QBX vsock $(test -c /dev/vsock && echo yes || echo no)"
    echo "QBX tun $(test -c /dev/net/tun && echo yes || echo no)"
    echo "QBX rtc-year $(date +%Y)"
    echo "QBX memory-auto-online $(cat /sys/devices/system/memory/auto_online_blocks)"
    ip link set lo up
    ip link set eth0 up
    echo "QBX eth0 $(cat /sys/class/net/eth0/operstate)"
    ip link add qbr0 type bridge && ip link add qveth0 type veth peer name qveth1 &&
        ip link set qveth0 master qbr0 && echo "QBX bridge-veth ok" || echo "QBX bridge-veth failed"
    port=""
    for p in /sys/class/virtio-ports/*; do
        name="$(cat "$p/name")"
        echo "QBX vport ${p##*/} $name"
        [ "$name" = "org.qemubox.agent" ] && port="/dev/${p##*/}"
    done
    if [ -n "$port" ]; then
        line=""
        i=0
        while [ $i -lt 300 ] && [ -z "$line" ]; do
            line="$(head -n 1 "$port")"
            [ -z "$line" ] && sleep 0.1
            i=$((i + 1))
        done
        echo "QBX vport-read $line"
        echo "pong-from-guest" > "$port"
    fi
    mkdir -p /mnt/lower /mnt/rw /mnt/merged
    mount -t erofs -o ro /dev/vda /mnt/lower && echo "QBX erofs-mounted yes"
    echo "QBX erofs-hello $(cat /mnt/lower/hello.txt)"
    echo "QBX erofs-big $(sha256sum /mnt/lower/big.txt | cut -d' ' -f1)"
    echo "QBX erofs-nested $(cat /mnt/lower/sub/dir/file)"
    touch /mnt/lower/new 2>/dev/null && echo "QBX erofs-readonly no" || echo "QBX erofs-readonly yes"
    mount -t tmpfs tmpfs /mnt/rw && mkdir /mnt/rw/upper /mnt/rw/work
    mount -t overlay overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /mnt/merged &&
        echo "QBX overlay-mounted yes"
    echo "appended" >> /mnt/merged/hello.txt
    echo "QBX overlay-merged $(cat /mnt/merged/hello.txt | tr '\n' '|')"
    echo "QBX overlay-upper $(cat /mnt/rw/upper/hello.txt | tr '\n' '|')"
    echo "QBX overlay-lower $(cat /mnt/lower/hello.txt | tr '\n' '|')"
    rm /mnt/merged/sub/dir/file
    echo "QBX overlay-whiteout $(test -e /mnt/merged/sub/dir/file && echo visible || echo gone) $(test -c /mnt/rw/upper/sub/dir/file && echo char-dev)"
    echo "QBX overlay-xattr-warnings $(dmesg | grep -c 'not support xattr')"
    echo "QBX done"
    poweroff -f
    sleep 5
    echo "QBX poweroff-failed"
    reboot -f
    """#

    @Test(.enabled(if: GuestKernel.available
                   && Prerequisite.tools("qemu-system-x86_64", "busybox", "cpio", "mkfs.erofs")))
    func bootsAndProvidesEverythingQemuboxNeeds() async throws {
        let kernel = try #require(GuestKernel.path,
                                  "no guest kernel (QEMUBOX_GUEST_KERNEL or \(GuestKernel.defaultPath)); CI builds it via scripts/install-deps.sh")
        try await TemporaryDirectory.with(prefix: "qemubox-guest-kernel") { dir in
            let initrd = try GuestFixtures.initramfs(in: dir, script: Self.initScript)
            let image = try GuestFixtures.erofsImage(in: dir)
            let imageSize = try #require(try FileManager.default.attributesOfItem(atPath: image)[.size] as? Int)
            // The 64 KiB file must really be lz4-compressed, so the guest's lz4 path is exercised.
            #expect(imageSize < 32_768, "erofs image is \(imageSize) bytes: not compressed?")
            let socket = dir + "/agent.sock"
            let arguments = GuestVM.microvmArguments(kernel: kernel, initrd: initrd) + [
                "-chardev", "socket,id=agent,path=\(socket),server=on,wait=off",
                "-device", "virtio-serial-device",
                "-device", "virtserialport,chardev=agent,name=\(Self.portName)",
                "-drive", "file=\(image),if=none,id=lower,format=raw,readonly=on",
                "-device", "virtio-blk-device,drive=lower",
                "-netdev", "user,id=net0,restrict=on",
                "-device", "virtio-net-device,netdev=net0",
            ]
            let (result, fromGuest) = try await ConcurrencyLimit.vms.run {
                let vm = try GuestVM(arguments: arguments)
                defer { vm.kill() }
                let fromGuest: String
                do {
                    fromGuest = try await VirtioSerialHost.exchange(
                        path: socket, greeting: "ping-from-host\n", until: "pong-from-guest\n", timeout: 180,
                        isRunning: { vm.isRunning })
                } catch {
                    vm.kill()
                    throw error
                }
                return (try await vm.wait(timeout: 180), fromGuest)
            }
            let bigDigest = try GuestFixtures.run("sha256sum", [dir + "/erofs-tree/big.txt"])
                .split(separator: " ").first.map(String.init)
            try Self.check(result, fromGuest: fromGuest, bigDigest: bigDigest)
            print("guest-kernel boot: first init line \(result.time("QBX init") ?? -1) s, "
                  + "exit \(String(format: "%.2f", result.seconds)) s")
        }
    }

    static func check(_ result: GuestVM.Result, fromGuest: String, bigDigest: String?) throws {
        let console = result.console
        #expect(!result.timedOut, "QEMU timed out; console:\n\(console)")
        #expect(result.exitStatus == 0, "QEMU exited \(result.exitStatus); console:\n\(console)")
        try #require(result.value("QBX done") != nil, "the guest's /init did not finish; console:\n\(console)")
        #expect(result.value("QBX poweroff-failed") == nil, "poweroff -f did not end the VM")

        #expect(result.value("QBX kernel ")?.hasSuffix("-qemubox") == true)
        let filesystems = Set((result.value("QBX filesystems ") ?? "").split(separator: " ").map(String.init))
        for fs in ["erofs", "overlay", "ext4", "tmpfs", "cgroup2", "devtmpfs", "proc", "sysfs", "devpts"] {
            #expect(filesystems.contains(fs), "\(fs) missing from /proc/filesystems: \(filesystems.sorted())")
        }
        let controllers = Set((result.value("QBX controllers ") ?? "").split(separator: " ").map(String.init))
        for controller in ["cpu", "cpuset", "memory", "pids", "io"] {
            #expect(controllers.contains(controller), "cgroup controller \(controller) missing: \(controllers.sorted())")
        }
        let child = Set((result.value("QBX child-controllers ") ?? "").split(separator: " ").map(String.init))
        #expect(child.isSuperset(of: ["cpu", "memory", "pids", "io"]), "delegated controllers: \(child.sorted())")
        #expect(result.value("QBX freeze ") == "frozen 1")
        let namespaces = Set((result.value("QBX namespaces ") ?? "").split(separator: " ").map(String.init))
        #expect(namespaces.isSuperset(of: ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts", "time"]),
                "namespaces: \(namespaces.sorted())")
        #expect(result.value("QBX unshare ") == "pid=1")
        #expect(result.value("QBX seccomp ") == "1")
        #expect(result.value("QBX ptmx ") == "yes")
        #expect(result.value("QBX hwrng ")?.hasPrefix("virtio_rng") == true)
        #expect(result.value("QBX hwrng ")?.hasSuffix(" 32") == true, "reading /dev/hwrng")
        #expect(result.value("QBX vsock ") == "yes")
        #expect(result.value("QBX tun ") == "yes")
        #expect((Int(result.value("QBX rtc-year ") ?? "") ?? 0) >= 2024, "guest clock not set from the RTC")
        #expect(result.value("QBX memory-auto-online ") == "online")
        #expect(result.value("QBX eth0 ") != nil && result.value("QBX eth0 ") != "")
        #expect(result.value("QBX bridge-veth ") == "ok")

        let ports = result.lines.filter { $0.text.hasPrefix("QBX vport vport") }.map(\.text)
        #expect(ports.contains { $0.hasSuffix(" \(portName)") }, "virtio-serial ports: \(ports)")
        #expect(result.value("QBX vport-read ") == "ping-from-host", "guest did not read the host's line")
        #expect(fromGuest.contains("pong-from-guest"), "host did not read the guest's line: \(fromGuest)")

        #expect(result.value("QBX erofs-mounted ") == "yes")
        #expect(result.value("QBX erofs-hello ") == "hello from erofs")
        #expect(bigDigest != nil && result.value("QBX erofs-big ") == bigDigest)
        #expect(result.value("QBX erofs-nested ") == "nested")
        #expect(result.value("QBX erofs-readonly ") == "yes")
        #expect(result.value("QBX overlay-mounted ") == "yes")
        #expect(result.value("QBX overlay-merged ") == "hello from erofs|appended|")
        #expect(result.value("QBX overlay-upper ") == "hello from erofs|appended|")
        #expect(result.value("QBX overlay-lower ") == "hello from erofs|")
        #expect(result.value("QBX overlay-whiteout ") == "gone char-dev")
        #expect(result.value("QBX overlay-xattr-warnings ") == "0")
    }
}
