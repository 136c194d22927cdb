/// Renders a ``ResolvedMachine`` to QEMU's argv: a pure function of its input.
///
/// Descriptors QEMU inherits have fixed numbers: 3 is the QMP socket, 4 the serial
/// console socket, 5… the TAP descriptors in NIC order (see ``inheritedDescriptors(for:)``).
/// The machine always starts paused (`-S`): the launcher connects QMP, subscribes to
/// events, then sends `cont`, so nothing the guest does can be missed.
public enum QEMUCommandLine {
    /// Descriptor number of the QMP socket in QEMU.
    public static let qmpDescriptor: Int32 = 3
    /// Descriptor number of the console socket in QEMU.
    public static let consoleDescriptor: Int32 = 4
    /// First descriptor number used for TAPs.
    public static let firstTapDescriptor: Int32 = 5

    /// Maps each caller-held TAP descriptor (by NIC id) to its number in QEMU.
    public static func inheritedDescriptors(for m: ResolvedMachine) -> [(nicID: String, source: Int32, target: Int32)] {
        var next = firstTapDescriptor
        var out: [(String, Int32, Int32)] = []
        for nic in m.description.nics {
            if case .tapDescriptor(let fd) = nic.backend {
                out.append((nic.id, fd, next))
                next += 1
            }
        }
        return out
    }

    /// The kernel command line actually passed.
    public static func kernelCommandLine(for m: ResolvedMachine) -> String {
        var words = m.description.kernel.commandLine
        if m.machineType == .microvm && !words.contains(where: { $0.hasPrefix("tsc_early_khz=") }) {
            words.append("tsc_early_khz=\(m.host.tscKHz)")
        }
        return words.joined(separator: " ")
    }

    /// The argv after the binary name. `incoming`: start waiting for an incoming
    /// migration (`-incoming defer`, see ``VMConfiguration/restoreState``).
    public static func arguments(for m: ResolvedMachine, incoming: Bool = false) -> [String] {
        let d = m.description
        let microvm = m.machineType == .microvm
        let bus = microvm ? "device" : "pci"
        var a: [String] = []
        a += ["-name", "\(d.name),process=qemubox-\(d.name)"]
        var machine = microvm ? "microvm,x-option-roms=off,isa-serial=on,rtc=on" : "q35"
        if d.memoryFile != nil { machine += ",memory-backend=qemubox-ram" }
        a += ["-M", machine]
        switch m.host.accelerator.accelerator {
        case .kvm: a += ["-accel", "kvm", "-cpu", d.cpuModel ?? "host"]
        case .tcg:
            a += ["-accel", "tcg,thread=multi"]
            if let cpu = d.cpuModel { a += ["-cpu", cpu] }
        }
        a += ["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-S"]
        var smp = "\(d.vcpus)"
        if let max = d.maxVCPUs, max > d.vcpus { smp += ",maxcpus=\(max)" }
        a += ["-smp", smp]
        var mem = "\(d.memoryMiB)M"
        if let max = d.maxMemoryMiB, max > d.memoryMiB { mem += ",slots=\(d.memorySlots),maxmem=\(max)M" }
        a += ["-m", mem]
        if let file = d.memoryFile {
            a += ["-object", "memory-backend-file,id=qemubox-ram,size=\(d.memoryMiB)M,mem-path=\(file.path)"
                + ",share=\(file.shared ? "on" : "off")"]
        }
        a += ["-kernel", d.kernel.kernelPath]
        if let initrd = d.kernel.initrdPath { a += ["-initrd", initrd] }
        a += ["-append", kernelCommandLine(for: m)]
        a += ["-chardev", "socket,id=qmp,fd=\(qmpDescriptor)", "-mon", "chardev=qmp,mode=control"]
        a += ["-chardev", "socket,id=console,fd=\(consoleDescriptor)", "-serial", "chardev:console"]
        if d.panicDevice {
            a += ["-device", "pvpanic", "-action", "panic=shutdown"]
        }
        if d.rng {
            a += ["-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-\(bus),rng=rng0"]
        }
        for disk in d.disks {
            var drive: String
            if let bytes = disk.emptyBytes {
                drive = "driver=null-co,size=\(bytes),read-zeroes=on,if=none,id=\(disk.id)"
            } else {
                drive = "file=\(disk.path),if=none,id=\(disk.id),format=\(disk.format)"
                drive += ",cache=\(disk.cache.rawValue),aio=\(disk.aio.rawValue)"
            }
            if disk.readOnly { drive += ",readonly=on" }
            a += ["-drive", drive, "-device", "virtio-blk-\(bus),drive=\(disk.id),serial=\(disk.id)"]
        }
        let taps = Dictionary(uniqueKeysWithValues: inheritedDescriptors(for: m).map { ($0.nicID, $0.target) })
        for (index, nic) in d.nics.enumerated() {
            var netdev = "tap,id=\(nic.id)"
            switch nic.backend {
            case .tapDescriptor: netdev += ",fd=\(taps[nic.id] ?? -1)"
            case .tapName(let name): netdev += ",ifname=\(name),script=no,downscript=no"
            case .disconnected: netdev = "hubport,id=\(nic.id),hubid=\(index)"
            }
            if nic.vhost { netdev += ",vhost=on" }
            var dev = "virtio-net-\(bus),netdev=\(nic.id)"
            if let mac = nic.mac { dev += ",mac=\(mac)" }
            if let mtu = nic.mtu { dev += ",host_mtu=\(mtu)" }
            a += ["-netdev", netdev, "-device", dev]
        }
        if !d.serialPorts.isEmpty {
            a += ["-device", "virtio-serial-\(bus),id=vser0"]
            for (i, port) in d.serialPorts.enumerated() {
                a += ["-chardev", "socket,id=vport\(i),path=\(port.socketPath),server=on,wait=off",
                      "-device", "virtserialport,bus=vser0.0,chardev=vport\(i),name=\(port.name)"]
            }
        }
        if let v = d.vsock {
            a += ["-device", "vhost-vsock-\(bus),guest-cid=\(v.guestCID)"]
        }
        if incoming { a += ["-incoming", "defer"] }
        return a
    }
}
