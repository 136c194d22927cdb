/// What a QEMU machine looks like: a pure value, rendered to argv by
/// ``QEMUCommandLine``. Defaults give the fast shape measured on TCG hosts:
/// microvm, 1 vCPU, 256 MiB, virtio-rng, a pvpanic device, serial console.
public struct MachineDescription: Sendable, Hashable {
    /// Machine type.
    public enum MachineType: String, Sendable, Hashable, CaseIterable {
        /// microvm unless a hotplug ceiling is set, then q35 (microvm cannot hotplug CPUs or memory).
        case auto
        /// `-M microvm`: virtio-mmio, no PCI, fastest boot, no hotplug.
        case microvm
        /// `-M q35`: PCI(e), ACPI CPU and DIMM hotplug.
        case q35
    }

    /// A name for logs and `-name` (letters, digits, `-`, `_`, `.`).
    public var name: String
    /// Requested machine type.
    public var machineType: MachineType
    /// Requested accelerator.
    public var accelerator: AcceleratorPreference
    /// vCPUs at boot.
    public var vcpus: Int
    /// vCPU hotplug ceiling (`maxcpus`); nil = no hotplug.
    public var maxVCPUs: Int?
    /// Boot memory in MiB.
    public var memoryMiB: Int
    /// Memory hotplug ceiling in MiB; nil = no hotplug. The memory above ``memoryMiB``
    /// is a virtio-mem device (``VirtualMachine/setMemory(mib:timeout:)``) whose region
    /// is rounded up to whole 128 MiB guest memory blocks.
    public var maxMemoryMiB: Int?
    /// Boot memory backed by a file (`memory-backend-file`) instead of anonymous
    /// memory: what saving a template (shared) and cloning it (private) need.
    public var memoryFile: MemoryFile?
    /// CPU model (`-cpu`); nil = QEMU's default for TCG, `host` for KVM.
    public var cpuModel: String?
    /// Under TCG, the size of QEMU's translated-code buffer in MiB (`tb-size`; full, it is
    /// flushed and refilled). QEMU's default is 1 GiB, and every page of it that fills
    /// stays host memory: a busy guest's QEMU would grow towards it. 64 MiB holds what a
    /// boot or a container start translates (about 45 MiB), so starts never flush;
    /// 16–32 MiB made a warm start's create 0.2–0.5 s slower (performance.md).
    public var translationBufferMiB: Int = 64
    /// Kernel, initrd and command line.
    public var kernel: KernelBoot
    /// Block devices, in order.
    public var disks: [Disk]
    /// A virtio-scsi controller for disks added while the machine runs
    /// (``VirtualMachine/attachDisk(_:)``): a pod's later containers. Any machine type;
    /// up to ``VirtualMachine/maxAttachedDisks`` at once.
    public var hotplugDisks = false
    /// Network interfaces, in order.
    public var nics: [NIC]
    /// virtio-serial ports (host side: a listening unix socket each).
    public var serialPorts: [SerialPort]
    /// vsock device, needs `/dev/vhost-vsock` on the host.
    public var vsock: Vsock?
    /// Host directories shared with the guest through virtio-fs, each served by its own
    /// virtiofsd (guest RAM becomes a shared memfd, which vhost-user needs; such a
    /// machine cannot be saved as a template).
    public var sharedDirectories: [SharedDirectory] = []
    /// Attach virtio-rng fed from /dev/urandom (without it first execs block on entropy).
    public var rng: Bool
    /// Attach a pvpanic device so a guest panic is reported (GUEST_PANICKED) and ends QEMU.
    public var panicDevice: Bool
    /// Console log limits.
    public var console: ConsoleSettings

    /// Creates a description with the fast defaults.
    public init(name: String, kernel: KernelBoot, machineType: MachineType = .auto,
                accelerator: AcceleratorPreference = .auto, vcpus: Int = 1, maxVCPUs: Int? = nil,
                memoryMiB: Int = 256, maxMemoryMiB: Int? = nil,
                cpuModel: String? = nil, disks: [Disk] = [], nics: [NIC] = [],
                serialPorts: [SerialPort] = [], vsock: Vsock? = nil, rng: Bool = true,
                panicDevice: Bool = true, console: ConsoleSettings = ConsoleSettings()) {
        self.name = name
        self.kernel = kernel
        self.machineType = machineType
        self.accelerator = accelerator
        self.vcpus = vcpus
        self.maxVCPUs = maxVCPUs
        self.memoryMiB = memoryMiB
        self.maxMemoryMiB = maxMemoryMiB
        self.memoryFile = nil
        self.cpuModel = cpuModel
        self.disks = disks
        self.nics = nics
        self.serialPorts = serialPorts
        self.vsock = vsock
        self.rng = rng
        self.panicDevice = panicDevice
        self.console = console
    }

    /// Whether CPU or memory hotplug was asked for.
    public var wantsHotplug: Bool { hotplugVCPUs || hotplugMemoryMiB > 0 }

    /// Whether vCPUs can be added (a ceiling above ``vcpus``).
    public var hotplugVCPUs: Bool { maxVCPUs.map { $0 > vcpus } ?? false }

    /// The most vCPUs the machine can have: the ceiling, or the boot count without vCPU hotplug.
    public var vcpuCeiling: Int { hotplugVCPUs ? (maxVCPUs ?? vcpus) : vcpus }

    /// The most memory the machine can have, MiB: the ceiling (within the virtio-mem
    /// region), or boot memory without memory hotplug.
    public var memoryCeilingMiB: Int {
        hotplugMemoryMiB > 0 ? min(maxMemoryMiB ?? memoryMiB, memoryMiB + hotplugMemoryMiB) : memoryMiB
    }

    /// The guest memory block (Linux's `memory_block_size_bytes` on x86-64 with under 64 GiB):
    /// the unit the guest onlines hot-added memory in.
    public static let memoryBlockMiB = 128

    /// The size of the virtio-mem region: the ceiling above boot memory, rounded up to
    /// whole guest memory blocks; 0 = no memory hotplug.
    public var hotplugMemoryMiB: Int {
        guard let max = maxMemoryMiB, max > memoryMiB else { return 0 }
        let block = Self.memoryBlockMiB
        return (max - memoryMiB + block - 1) / block * block
    }
}

/// Direct kernel boot.
public struct KernelBoot: Sendable, Hashable {
    /// Kernel image (bzImage or PVH vmlinux).
    public var kernelPath: String
    /// Optional initrd.
    public var initrdPath: String?
    /// Kernel command line words. The renderer adds `tsc_early_khz=` on microvm.
    public var commandLine: [String]

    /// The default command line: serial console, panic reboots at once (with `-no-reboot`
    /// QEMU then exits), quiet.
    public static let defaultCommandLine = ["console=ttyS0", "panic=-1", "quiet"]

    /// Creates a kernel boot.
    public init(kernelPath: String, initrdPath: String? = nil, commandLine: [String] = KernelBoot.defaultCommandLine) {
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        self.commandLine = commandLine
    }
}

/// A virtio block device backed by a host file.
public struct Disk: Sendable, Hashable {
    /// Host cache mode (`cache=`).
    public enum Cache: String, Sendable, Hashable, CaseIterable {
        case none, writeback, writethrough, directsync, unsafe
        /// Whether the mode opens the file with O_DIRECT (needed for `aio=native`).
        var isDirect: Bool { self == .none || self == .directsync }
    }
    /// Host I/O engine (`aio=`).
    public enum AIO: String, Sendable, Hashable, CaseIterable {
        case threads, native
        case ioUring = "io_uring"
    }

    /// Device id (also the guest-visible serial), unique in the machine.
    public var id: String
    /// Host path of the image.
    public var path: String
    /// Attach read-only.
    public var readOnly: Bool
    /// Image format (`raw`, `qcow2`).
    public var format: String
    /// Cache mode.
    public var cache: Cache
    /// AIO engine.
    public var aio: AIO
    /// When set, the disk has no file: QEMU's `null-co` driver of this many bytes,
    /// reading zeros (a template's placeholder slot). ``path`` is ignored.
    public var emptyBytes: UInt64?

    /// Creates a disk.
    public init(id: String, path: String, readOnly: Bool = true, format: String = "raw",
                cache: Cache = .writeback, aio: AIO = .threads) {
        self.id = id
        self.path = path
        self.readOnly = readOnly
        self.format = format
        self.cache = cache
        self.aio = aio
        self.emptyBytes = nil
    }

    /// A placeholder without a file (`null-co`, reads zeros), writable, `bytes` long.
    public static func empty(id: String, bytes: UInt64) -> Disk {
        var disk = Disk(id: id, path: "", readOnly: false)
        disk.emptyBytes = bytes
        return disk
    }
}

/// Guest RAM in a host file.
public struct MemoryFile: Sendable, Hashable {
    /// The file (created at the memory size if absent).
    public var path: String
    /// `share=on`: guest writes land in the file (a template being booted and saved).
    /// `share=off`: the file is mapped copy-on-write and never written (a clone).
    public var shared: Bool
    /// With `shared` off: an open descriptor of the same RAM to map instead of opening
    /// `path` (a sealed memfd, see ``TemplateMemorySharing``; QEMU maps it as
    /// `/proc/self/fd/N`). Borrowed: it must stay open until the VM has been spawned.
    public var descriptor: Int32?

    /// Creates a memory file description.
    public init(path: String, shared: Bool, descriptor: Int32? = nil) {
        self.path = path
        self.shared = shared
        self.descriptor = shared ? nil : descriptor
    }
}

/// A virtio-net interface.
public struct NIC: Sendable, Hashable {
    /// Where the TAP comes from.
    public enum Backend: Sendable, Hashable {
        /// An open TAP descriptor in the launching process; passed to QEMU.
        case tapDescriptor(Int32)
        /// A TAP by name; with ``VMConfiguration/networkNamespacePath`` QEMU opens it inside that netns.
        case tapName(String)
        /// Connected to nothing (a hub port of its own): a NIC that exists for its
        /// place in the device list, e.g. in a warm-start template.
        case disconnected
    }

    /// Netdev id, unique in the machine.
    public var id: String
    /// Guest MAC address (`52:54:00:…`); nil lets QEMU pick.
    public var mac: String?
    /// TAP source.
    public var backend: Backend
    /// The MTU offered to the guest (virtio-net `host_mtu`); nil: none offered.
    public var mtu: Int?
    /// vhost-net (in-kernel data path); only where `/dev/vhost-net` can be opened.
    public var vhost: Bool

    /// Creates a NIC.
    public init(id: String, mac: String? = nil, backend: Backend, mtu: Int? = nil, vhost: Bool = false) {
        self.id = id
        self.mac = mac
        self.backend = backend
        self.mtu = mtu
        self.vhost = vhost
    }
}

/// A host directory the guest mounts with `mount -t virtiofs TAG DIR`, served by
/// virtiofsd (QEMU's, `/usr/lib/qemu/virtiofsd`) running as root in its own namespace
/// sandbox (mount, pid and network namespaces, pivot_root into the directory, seccomp).
public struct SharedDirectory: Sendable, Hashable {
    /// The tag the guest mounts (at most 36 bytes).
    public var tag: String
    /// The host directory.
    public var path: String
    /// virtiofsd's capability changes (`-o modcaps=`), e.g. `["-mknod", "-setfcap"]`:
    /// what the guest may not do to the directory's files.
    public var capabilityChanges: [String]

    /// Creates a share.
    public init(tag: String, path: String, capabilityChanges: [String] = []) {
        self.tag = tag
        self.path = path
        self.capabilityChanges = capabilityChanges
    }
}

/// A virtio-serial port whose host end is a listening unix socket.
public struct SerialPort: Sendable, Hashable {
    /// Port name the guest sees in `/sys/class/virtio-ports/*/name`.
    public var name: String
    /// Host socket path QEMU listens on.
    public var socketPath: String

    /// Creates a port.
    public init(name: String, socketPath: String) {
        self.name = name
        self.socketPath = socketPath
    }
}

/// A vhost-vsock device.
public struct Vsock: Sendable, Hashable {
    /// Guest context id (≥ 3, unique on the host).
    public var guestCID: UInt32

    /// Creates a vsock device.
    public init(guestCID: UInt32) { self.guestCID = guestCID }
}

/// Where the serial console goes: a log file in the state directory, bounded.
public struct ConsoleSettings: Sendable, Hashable {
    /// Bytes after which `console.log` is rotated to `console.log.1` (so at most twice this on disk).
    public var maxLogBytes: Int
    /// Bytes of recent console output kept in memory (for readiness checks and exit reports).
    public var memoryTailBytes: Int

    /// Creates console settings.
    public init(maxLogBytes: Int = 1 << 20, memoryTailBytes: Int = 64 << 10) {
        self.maxLogBytes = maxLogBytes
        self.memoryTailBytes = memoryTailBytes
    }
}
