/// Renders a ``ResolvedMachine`` to QEMU's argv: a pure function of its input.
///
/// QEMU opens no host file, socket or device by path except its firmware, the kernel
/// and initrd and a RAM file: everything else is a descriptor the launcher opened and
/// passed in, at the fixed numbers ``DescriptorLayout`` assigns (3 the QMP socket, 4 the
/// serial console, then TAPs, vhost devices, serial-port listeners, disks, the control
/// monitor and an incoming migration stream). That is what lets QEMU run jailed
/// (``QEMUJail``) with `-sandbox` denying it new processes and privileges. The machine
/// always starts paused (`-S`): the launcher connects QMP, subscribes to events, then
/// sends `cont`, so nothing the guest does can be missed.
public enum QEMUCommandLine {
    /// Descriptor number of the QMP socket in QEMU.
    public static let qmpDescriptor: Int32 = 3
    /// Descriptor number of the console socket in QEMU.
    public static let consoleDescriptor: Int32 = 4

    /// QEMU's own seccomp deny-list, on top of the jail's allow-list.
    public static let sandboxOption = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

    /// Where each descriptor QEMU inherits goes, numbered from 5 in this order.
    public struct DescriptorLayout: Sendable, Hashable {
        /// TAP per NIC id (``NIC/Backend/tapDescriptor(_:)`` and ``NIC/Backend/tapName(_:)``).
        public var taps: [String: Int32] = [:]
        /// `/dev/vhost-net` per NIC id with ``NIC/vhost``.
        public var vhosts: [String: Int32] = [:]
        /// The listening socket of each ``SerialPort``, in order.
        public var serialPorts: [Int32] = []
        /// QEMU's end of each ``SharedDirectory``'s vhost-user connection, in order.
        public var sharedDirectories: [Int32] = []
        /// The image of each disk with a file, by disk id (also its fdset id), opened as the
        /// disk is attached (read-only or read-write).
        public var disks: [String: Int32] = [:]
        /// A second, read-only descriptor of each writable disk, in the same fdset: QEMU's
        /// block layer reopens an image read-only while no device writes to it.
        public var diskReadOnlyCopies: [String: Int32] = [:]
        /// `/dev/vhost-vsock`, when the machine has a vsock device.
        public var vsock: Int32?
        /// The listening socket of the control monitor (descriptor passing, see `QMPControlChannel`).
        public var control: Int32 = 0
        /// The saved state to load, when restoring.
        public var incomingState: Int32?
        /// The RAM to map, when it comes as a descriptor (``MemoryFile/descriptor``).
        public var memory: Int32?
    }

    /// The descriptor numbers for `m`.
    public static func layout(for m: ResolvedMachine, incoming: Bool = false) -> DescriptorLayout {
        var layout = DescriptorLayout()
        var next: Int32 = 5
        func take() -> Int32 {
            defer { next += 1 }
            return next
        }
        let d = m.description
        for nic in d.nics {
            switch nic.backend {
            case .tapDescriptor, .tapName: layout.taps[nic.id] = take()
            case .disconnected: break
            }
        }
        for nic in d.nics where nic.vhost && layout.taps[nic.id] != nil { layout.vhosts[nic.id] = take() }
        layout.serialPorts = d.serialPorts.map { _ in take() }
        layout.sharedDirectories = d.sharedDirectories.map { _ in take() }
        for disk in d.disks where disk.emptyBytes == nil {
            layout.disks[disk.id] = take()
            if !disk.readOnly { layout.diskReadOnlyCopies[disk.id] = take() }
        }
        if d.vsock != nil { layout.vsock = take() }
        layout.control = take()
        if incoming { layout.incomingState = take() }
        if d.memoryFile?.descriptor != nil { layout.memory = take() }
        return layout
    }

    /// The id of the virtio-scsi controller that takes hot-added disks.
    public static let hotplugController = "qemubox-scsi"
    /// The id of the virtio-mem device that holds hot-added memory.
    public static let hotplugMemoryDevice = "qemubox-mem"
    /// The id of that device's memory backend.
    static let hotplugMemoryBackend = "qemubox-hotmem"

    /// The kernel command line actually passed.
    public static func kernelCommandLine(for m: ResolvedMachine) -> String {
        var words = m.description.kernel.commandLine
        if m.machineType == .microvm && !words.contains(where: { $0.hasPrefix("tsc_early_khz=") }) {
            words.append("tsc_early_khz=\(m.host.tscKHz)")
        }
        if m.description.hotplugMemoryMiB > 0 && !words.contains(where: { $0.hasPrefix("memhp_default_state=") }) {
            // Hot-added memory goes to ZONE_MOVABLE, so that it can be given back.
            words.append("memhp_default_state=online_movable")
        }
        return words.joined(separator: " ")
    }

    /// The argv after the binary name. `incoming`: start waiting for an incoming
    /// migration (`-incoming defer`, see ``VMConfiguration/restoreState``).
    public static func arguments(for m: ResolvedMachine, incoming: Bool = false) -> [String] {
        let d = m.description
        let fds = layout(for: m, incoming: incoming)
        let microvm = m.machineType == .microvm
        let bus = microvm ? "device" : "pci"
        var a: [String] = []
        a += ["-name", "\(d.name),process=qemubox-\(d.name)"]
        var machine = microvm ? "microvm,x-option-roms=off,isa-serial=on,rtc=on" : "q35"
        if d.memoryFile != nil || !d.sharedDirectories.isEmpty { machine += ",memory-backend=qemubox-ram" }
        a += ["-M", machine]
        switch m.host.accelerator.accelerator {
        case .kvm: a += ["-accel", "kvm", "-cpu", d.cpuModel ?? "host"]
        case .tcg:
            // A vCPU hot-added under multi-threaded TCG takes a translation region of its own,
            // and QEMU 7.2 aborts (`tcg_region_initial_alloc__locked: assertion failed`) when
            // the running vCPUs hold every region, i.e. whenever their buffer is nearly full.
            // A VM with a vCPU ceiling therefore runs its vCPUs on one TCG thread.
            let threads = d.hotplugVCPUs ? "single" : "multi"
            a += ["-accel", "tcg,thread=\(threads),tb-size=\(d.translationBufferMiB)"]
            if let cpu = d.cpuModel { a += ["-cpu", cpu] }
        }
        a += ["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-S"]
        a += ["-sandbox", sandboxOption]
        var smp = "\(d.vcpus)"
        if let max = d.maxVCPUs, max > d.vcpus { smp += ",maxcpus=\(max)" }
        a += ["-smp", smp]
        var mem = "\(d.memoryMiB)M"
        if d.hotplugMemoryMiB > 0 { mem += ",maxmem=\(d.memoryMiB + d.hotplugMemoryMiB)M" }
        a += ["-m", mem]
        if let file = d.memoryFile {
            let path = fds.memory.map { "/proc/self/fd/\($0)" } ?? file.path
            a += ["-object", "memory-backend-file,id=qemubox-ram,size=\(d.memoryMiB)M,mem-path=\(path)"
                + ",share=\(file.shared ? "on" : "off")"]
        } else if !d.sharedDirectories.isEmpty {
            // vhost-user backends map guest RAM: it must be shared memory.
            a += ["-object", "memory-backend-memfd,id=qemubox-ram,size=\(d.memoryMiB)M,share=on"]
        }
        if d.hotplugMemoryMiB > 0 {
            // Hot-added memory: one virtio-mem device whose region starts empty; only
            // plugged blocks are touched, so only they take host memory. (`reserve=off`
            // would need /proc/sys/vm, which the jail does not show.)
            let backend = d.sharedDirectories.isEmpty ? "memory-backend-ram" : "memory-backend-memfd"
            a += ["-object", "\(backend),id=\(hotplugMemoryBackend),size=\(d.hotplugMemoryMiB)M"
                + (d.sharedDirectories.isEmpty ? "" : ",share=on")]
            a += ["-device", "virtio-mem-pci,id=\(hotplugMemoryDevice),memdev=\(hotplugMemoryBackend),requested-size=0"]
        }
        a += ["-kernel", d.kernel.kernelPath]
        if let initrd = d.kernel.initrdPath { a += ["-initrd", initrd] }
        a += ["-append", kernelCommandLine(for: m)]
        a += ["-chardev", "socket,id=qmp,fd=\(qmpDescriptor)", "-mon", "chardev=qmp,mode=control"]
        a += ["-chardev", "socket,id=console,fd=\(consoleDescriptor)", "-serial", "chardev:console"]
        a += ["-chardev", "socket,id=qmpctl,fd=\(fds.control),server=on,wait=off", "-mon", "chardev=qmpctl,mode=control"]
        if d.panicDevice {
            a += ["-device", "pvpanic", "-action", "panic=shutdown"]
        }
        if d.rng {
            a += ["-object", "rng-builtin,id=rng0", "-device", "virtio-rng-\(bus),rng=rng0"]
        }
        for disk in d.disks {
            var drive: String
            if let bytes = disk.emptyBytes {
                drive = "driver=null-co,size=\(bytes),read-zeroes=on,if=none,id=\(disk.id)"
            } else {
                let fd = fds.disks[disk.id] ?? -1
                a += ["-add-fd", "fd=\(fd),set=\(fd),opaque=\(disk.id)"]
                if let copy = fds.diskReadOnlyCopies[disk.id] {
                    a += ["-add-fd", "fd=\(copy),set=\(fd),opaque=\(disk.id)-ro"]
                }
                drive = "file=/dev/fdset/\(fd),if=none,id=\(disk.id),format=\(disk.format)"
                drive += ",cache=\(disk.cache.rawValue),aio=\(disk.aio.rawValue)"
            }
            if disk.readOnly { drive += ",readonly=on" }
            a += ["-drive", drive, "-device", "virtio-blk-\(bus),drive=\(disk.id),serial=\(disk.id)"]
        }
        if d.hotplugDisks {
            a += ["-device", "virtio-scsi-\(bus),id=\(hotplugController)"]
        }
        for (index, nic) in d.nics.enumerated() {
            var netdev: String
            switch nic.backend {
            case .tapDescriptor, .tapName: netdev = "tap,id=\(nic.id),fd=\(fds.taps[nic.id] ?? -1)"
            case .disconnected: netdev = "hubport,id=\(nic.id),hubid=\(index)"
            }
            if let vhost = fds.vhosts[nic.id] { netdev += ",vhost=on,vhostfd=\(vhost)" }
            var dev = "virtio-net-\(bus),netdev=\(nic.id)"
            if let mac = nic.mac { dev += ",mac=\(mac)" }
            if let mtu = nic.mtu { dev += ",host_mtu=\(mtu)" }
            a += ["-netdev", netdev, "-device", dev]
        }
        if !d.serialPorts.isEmpty {
            a += ["-device", "virtio-serial-\(bus),id=vser0"]
            for (i, port) in d.serialPorts.enumerated() {
                a += ["-chardev", "socket,id=vport\(i),fd=\(fds.serialPorts[i]),server=on,wait=off",
                      "-device", "virtserialport,bus=vser0.0,chardev=vport\(i),name=\(port.name)"]
            }
        }
        if microvm && !d.sharedDirectories.isEmpty {
            // vhost-user backends (libvhost-user) serve only modern virtio; microvm's
            // virtio-mmio transport is legacy unless told otherwise.
            a += ["-global", "virtio-mmio.force-legacy=false"]
        }
        for (i, share) in d.sharedDirectories.enumerated() {
            a += ["-chardev", "socket,id=fs\(i),fd=\(fds.sharedDirectories[i])",
                  "-device", "vhost-user-fs-\(bus),chardev=fs\(i),tag=\(share.tag)"]
        }
        if let v = d.vsock {
            a += ["-device", "vhost-vsock-\(bus),guest-cid=\(v.guestCID),vhostfd=\(fds.vsock ?? -1)"]
        }
        if incoming { a += ["-incoming", "defer"] }
        return a
    }
}
