import CQemuboxSupport
import Foundation
import NIOCore
import ProcessSpawn

/// What launching one QEMU needs besides its argv: the machine as QEMU will see it,
/// the descriptors it inherits (opened here, by the launcher) and its jail.
struct QEMULaunch {
    /// The descriptors for the spawner, and what to close once QEMU has them.
    var descriptors: [(source: Int32, target: Int32)] = []
    var taps: [ProcessSpawner.Tap] = []
    var opened: [Int32] = []
    /// The listening end of each shared directory's vhost-user socket, for its virtiofsd
    /// (QEMU's end is already connected to it).
    var shareListeners: [Int32] = []

    /// Closes every descriptor opened here (QEMU holds its own copies once spawned).
    mutating func closeAll() {
        for fd in opened { close(fd) }
        opened = []
    }

    /// The machine as a jailed QEMU sees it: the kernel, initrd and RAM file at their
    /// resolved paths (the jail holds no symlinks to them), and the RAM file QEMU's uid
    /// can open: a template being saved is handed to that uid until QEMU exits. A clone
    /// must bring its template's RAM as a sealed descriptor (``MemoryFile/descriptor``):
    /// QEMU 7.2 opens a RAM file read-write even for a private mapping, so a template file
    /// would have to be writable by every clone. Returns the files to hand back to root
    /// afterwards.
    static func jailedMachine(_ machine: MachineDescription, identity: JailIdentity,
                              stateDirectory: String) throws -> (MachineDescription, handBack: [String]) {
        var m = machine
        m.kernel.kernelPath = try QEMUJail.resolve(m.kernel.kernelPath)
        if let initrd = m.kernel.initrdPath { m.kernel.initrdPath = try QEMUJail.resolve(initrd) }
        var handBack: [String] = []
        if let file = m.memoryFile {
            if file.shared {
                let fd = Glibc.open(file.path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
                guard fd >= 0 else { throw QemuboxError(.spawnFailed, "open \(file.path): \(String(cString: strerror(errno)))") }
                defer { close(fd) }
                guard fchown(fd, identity.id, identity.id) == 0 else {
                    throw QemuboxError(.spawnFailed, "chown \(file.path): \(String(cString: strerror(errno)))")
                }
                handBack.append(try QEMUJail.resolve(file.path))
                m.memoryFile = MemoryFile(path: handBack[0], shared: true)
            } else if file.descriptor == nil {
                throw QemuboxError(.invalidDescription, "\(m.name): a jailed QEMU maps a template's RAM only as a "
                    + "sealed descriptor (MemoryFile.descriptor), never the template file itself")
            }
        }
        return (m, handBack)
    }

    /// Opens what `layout` says QEMU inherits: disks, serial-port and control listeners,
    /// vhost devices and the incoming state; TAPs by name are created by the spawner in
    /// QEMU's network namespace. On error everything opened is closed.
    static func openDescriptors(_ m: ResolvedMachine, layout: QEMUCommandLine.DescriptorLayout, controlSocket: String,
                     incomingState: String?) throws -> QEMULaunch {
        var launch = QEMULaunch()
        do {
            try launch.openAll(m, layout: layout, controlSocket: controlSocket, incomingState: incomingState)
        } catch {
            launch.closeAll()
            throw error
        }
        return launch
    }

    private mutating func openAll(_ m: ResolvedMachine, layout: QEMUCommandLine.DescriptorLayout,
                                  controlSocket: String, incomingState: String?) throws {
        let d = m.description
        for nic in d.nics {
            guard let target = layout.taps[nic.id] else { continue }
            let vhost = layout.vhosts[nic.id]
            switch nic.backend {
            case .tapDescriptor(let fd):
                descriptors.append((fd, target))
                if let vhost { descriptors.append((try take("/dev/vhost-net", O_RDWR), vhost)) }
            case .tapName(let name):
                taps.append(ProcessSpawner.Tap(name: name, target: target, vnetHeader: true, vhostTarget: vhost))
            case .disconnected:
                break
            }
        }
        for (port, target) in zip(d.serialPorts, layout.serialPorts) {
            descriptors.append((try listen(port.socketPath), target))
        }
        for (index, target) in layout.sharedDirectories.enumerated() {
            // virtiofsd accepts on the listener; QEMU gets a socket already connected to it.
            // The listener has an abstract name (no file, no path length limit), unique per VM.
            let name = "qemubox-fs-\(getpid())-\(UInt64.random(in: 0...UInt64.max))-\(index)"
            let listener = try abstractSocket(name, listening: true)
            descriptors.append((try abstractSocket(name, listening: false), target))
            shareListeners.append(listener)
        }
        for disk in d.disks {
            guard let target = layout.disks[disk.id] else { continue }
            var flags = disk.readOnly ? O_RDONLY : O_RDWR
            if disk.cache.isDirect { flags |= qbx_o_direct() }
            descriptors.append((try take(disk.path, flags), target))
            if let copy = layout.diskReadOnlyCopies[disk.id] {
                descriptors.append((try take(disk.path, O_RDONLY | (disk.cache.isDirect ? qbx_o_direct() : 0)), copy))
            }
        }
        if let target = layout.vsock { descriptors.append((try take("/dev/vhost-vsock", O_RDWR), target)) }
        descriptors.append((try listen(controlSocket), layout.control))
        if let target = layout.incomingState, let incomingState {
            descriptors.append((try take(incomingState, O_RDONLY), target))
        }
        // Borrowed from the caller, who closes it after the spawn.
        if let target = layout.memory, let memory = d.memoryFile?.descriptor { descriptors.append((memory, target)) }
    }

    private mutating func take(_ path: String, _ flags: Int32) throws -> Int32 {
        let fd = Glibc.open(path, flags | O_CLOEXEC)
        guard fd >= 0 else { throw QemuboxError(.spawnFailed, "open \(path): \(String(cString: strerror(errno)))") }
        opened.append(fd)
        return fd
    }

    /// A unix socket in the abstract namespace: listening on `name`, or connected to it.
    private mutating func abstractSocket(_ name: String, listening: Bool) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw QemuboxError(.spawnFailed, "socket: \(String(cString: strerror(errno)))") }
        opened.append(fd)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(name.utf8.prefix(100))
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw[0] = 0
            for (i, byte) in bytes.enumerated() { raw[i + 1] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + 1 + bytes.count)
        let rc = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                listening ? bind(fd, socketAddress, length) : Glibc.connect(fd, socketAddress, length)
            }
        }
        guard rc == 0, !listening || Glibc.listen(fd, 1) == 0 else {
            throw QemuboxError(.spawnFailed, "\(listening ? "listen on" : "connect to") @\(name): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// A listening unix socket at `path` (replacing a stale one), mode 0600.
    private mutating func listen(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw QemuboxError(.spawnFailed, "socket: \(String(cString: strerror(errno)))") }
        opened.append(fd)
        let address: SocketAddress
        do {
            address = try SocketAddress(unixDomainSocketPath: path)
        } catch {
            throw QemuboxError(.spawnFailed, "socket path \(path): \(error)")
        }
        unlink(path)
        let rc = address.withSockAddr { bind(fd, $0, socklen_t($1)) }
        guard rc == 0, chmod(path, 0o600) == 0, Glibc.listen(fd, 16) == 0 else {
            throw QemuboxError(.spawnFailed, "listen on \(path): \(String(cString: strerror(errno)))")
        }
        return fd
    }
}
