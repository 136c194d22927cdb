#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QemuboxAPI

/// A saved guest, booted until its agent answered: sandboxes restore it instead
/// of booting (warm start, see Documentation/warm-start.md).
///
/// A template is a directory holding `memory` (the guest's RAM, written through a
/// shared `memory-backend-file` while it booted) and `state` (QEMU's device state,
/// a migration stream saved with `x-ignore-shared`, so without the RAM). A clone
/// maps `memory` copy-on-write and loads `state`: about 0.1 s instead of a boot.
/// Its disk slots after the system disk are placeholders in the template; a clone
/// attaches its own disks in their place and the agent drops the cached blocks.
public struct VMTemplate: Sendable, Hashable {
    /// The template's directory.
    public var directory: String
    /// Data-disk slots after the system disk (a clone may attach at most this many disks).
    public var slots: Int
    /// The guest RAM file.
    public var memoryPath: String { directory + "/memory" }
    /// The name of the memfds holding sealed copies of templates' RAM (`/proc/PID/fd` and
    /// `/proc/PID/maps` show `/memfd:qemubox-template (deleted)`).
    public static let memoryMemfdName = "qemubox-template"

    /// The saved device state.
    public var statePath: String { directory + "/state" }

    /// Id of the `index`-th placeholder slot (the device's serial until a clone replaces it).
    public static func slotID(_ index: Int) -> String { "qemubox-slot\(index)" }
    /// Size the guest sees for every slot disk, also after a clone attached a smaller one:
    /// filesystems only read within their own size, so a larger device is harmless.
    public static let slotBytes: UInt64 = 1 << 40

    /// Creates a handle on an existing template directory.
    public init(directory: String, slots: Int) {
        self.directory = directory
        self.slots = slots
    }

    /// The disks after the system disk for a clone: `disks`, then placeholders up to `slots`.
    public func slotDisks(_ disks: [Disk]) throws -> [Disk] {
        guard disks.count <= slots else {
            throw QemuboxError(.invalidConfiguration, "\(disks.count) disks do not fit the template's \(slots) slots")
        }
        return disks + (disks.count..<slots).map { Disk.empty(id: Self.slotID($0), bytes: Self.slotBytes) }
    }
}

/// Where templates live, keyed by everything that shapes the saved guest: kernel,
/// initrd, system image and QEMU binary (path, size, mtime), memory, vCPUs,
/// accelerator, kernel command line and slot count. A changed input is a new key,
/// so a rebuilt kernel or image never restores a stale guest.
///
/// ```swift
/// var configuration = SandboxConfiguration(name: "c1", assets: try .locate(), stateDirectory: dir)
/// configuration.templates = VMTemplateStore(directory: "/var/cache/qemubox/templates")
/// let sandbox = try await Sandbox.start(configuration, extraDisks: disks)   // boots and saves once, then restores
/// ```
public struct VMTemplateStore: Sendable, Hashable {
    /// The store's directory (created on demand, 0700).
    public var directory: String
    /// Data-disk slots of new templates. The default, 16, leaves room on microvm (24
    /// virtio-mmio transports, three taken by the RNG, the system disk and the agent's
    /// port) and costs nothing measurable at restore (0.40 s against 0.39 s with 8).
    public var slots: Int
    /// How clones get the template's RAM (a sealed copy, shared among clones).
    public var memorySharing: TemplateMemorySharing = .inProcess

    /// The default store, beside the guest kernel cache.
    public static let defaultDirectory = "/var/cache/qemubox/templates"

    /// Creates a store in `directory`.
    public init(directory: String = VMTemplateStore.defaultDirectory, slots: Int = 16,
                memorySharing: TemplateMemorySharing = .inProcess) {
        self.directory = directory
        self.slots = slots
        self.memorySharing = memorySharing
    }

    /// A descriptor of `template`'s RAM, sealed read-only, for one clone of
    /// `configuration`'s size (see ``TemplateMemorySharing``); the caller closes it once
    /// the VM is spawned.
    func memoryDescriptor(for template: VMTemplate, configuration: SandboxConfiguration) async throws -> Int32 {
        try await TemplateMemory.descriptor(for: template, bytes: Int64(configuration.memoryMiB) << 20,
                                            sharing: memorySharing, logger: configuration.logger)
    }

    /// The key of the template `configuration` would restore from.
    public func key(for configuration: SandboxConfiguration) throws -> String {
        Self.key(identity: try identity(for: configuration))
    }

    /// What the key is made of, a line each; the lines naming files are `NAME=PATH:SIZE:MTIME`.
    func identity(for configuration: SandboxConfiguration) throws -> [String] {
        let name = configuration.qemuBinary
        guard let binary = name.contains("/") ? name : VirtualMachine.findExecutable(name) else {
            throw QemuboxError(.spawnFailed, "\(name) not found on PATH")
        }
        var identity = ["qemubox-template-v1", "slots=\(slots)", "nics=\(configuration.network?.slots.count ?? 0)",
                        "memory=\(configuration.memoryMiB)",
                        "vcpus=\(configuration.vcpus)", "accel=\(configuration.accelerator)",
                        "cmdline=\(Sandbox.commandLine(configuration).joined(separator: " "))"]
        // Only pod VMs carry the controller (and the line): other keys stay as they were.
        if configuration.hotplugDisks { identity.append("hotplug-disks") }
        // Hotplug shapes (q35 and its ceilings) get their own templates; others keep their keys.
        if configuration.machineType != .auto { identity.append("machine=\(configuration.machineType.rawValue)") }
        if let max = configuration.maxVCPUs { identity.append("max-vcpus=\(max)") }
        if let max = configuration.maxMemoryMiB { identity.append("max-memory=\(max)") }
        for (name, path) in [("kernel", configuration.assets.kernelPath), ("initrd", configuration.assets.initrdPath),
                             ("image", configuration.assets.systemImagePath), ("qemu", binary)] {
            guard let path else { continue }
            guard let stamp = Self.fileStamp(path) else {
                throw QemuboxError(.guestAssetsMissing, "\(name) \(path): \(String(cString: strerror(errno)))")
            }
            identity.append("\(name)=\(path):\(stamp)")
        }
        return identity
    }

    static func key(identity: [String]) -> String {
        String(format: "%016llx", EROFSLayerCache.fnv1a64(identity.joined(separator: "\n")))
    }

    /// `SIZE:MTIME` of a file, nil if it cannot be read.
    static func fileStamp(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return "\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }

    /// Removes templates that can never be restored again: a kernel, initrd, system
    /// image or QEMU binary they were saved with has changed or is gone (the key
    /// would differ), or they carry no readable identity. Runs after every new
    /// template; safe to call any time. Returns how many were removed.
    @discardableResult
    public func pruneStale() -> Int {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else { return 0 }
        var removed = 0
        for name in names where name.count == 16 && name.allSatisfy(\.isHexDigit) {
            let path = directory + "/" + name
            if !Self.isCurrent(templateDirectory: path), (try? fm.removeItem(atPath: path)) != nil {
                TemplateMemory.forget(path)
                unlink(path + ".lock")
                removed += 1
            }
        }
        return removed
    }

    /// Whether the template in `templateDirectory` can still be restored: it has a readable
    /// identity and every file named in it (kernel, initrd, image, QEMU) is unchanged.
    static func isCurrent(templateDirectory: String) -> Bool {
        let lines = (try? String(contentsOfFile: templateDirectory + "/identity", encoding: .utf8))?
            .split(separator: "\n").map(String.init) ?? []
        return !lines.isEmpty && lines.allSatisfy { line in
            guard let equals = line.firstIndex(of: "="), ["kernel", "initrd", "image", "qemu"].contains(line[..<equals])
            else { return true }
            let value = line[line.index(after: equals)...]
            // PATH:SIZE:MTIME; the path itself may contain colons.
            let parts = value.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count >= 3 else { return false }
            let file = parts.dropLast(2).joined(separator: ":")
            return Self.fileStamp(file) == parts.suffix(2).joined(separator: ":")
        }
    }

    /// The template for `configuration`: the saved one, or a new one booted and
    /// saved now (seconds; one process at a time per key, others wait on a lock).
    public func template(for configuration: SandboxConfiguration) async throws -> VMTemplate {
        let identity = try identity(for: configuration)
        let key = Self.key(identity: identity)
        let template = VMTemplate(directory: directory + "/" + key, slots: slots)
        let memoryBytes = Int64(configuration.memoryMiB) << 20
        if isComplete(template, memoryBytes: memoryBytes) { return template }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw QemuboxError(.stateDirectory, "cannot create the template store \(directory): \(error)")
        }
        let lock = try FileLock(path: directory + "/" + key + ".lock")
        defer { lock.release() }
        try await lock.acquire()
        if isComplete(template, memoryBytes: memoryBytes) { return template }
        // Under the key's lock nobody else builds it: what a crashed build left is garbage.
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix(key + ".tmp-") {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
        try await create(template, identity: identity, configuration: configuration)
        let pruned = pruneStale()
        if pruned > 0 { configuration.logger.info("removed stale VM templates", metadata: ["count": "\(pruned)"]) }
        return template
    }

    /// Removes a template (e.g. one that failed to restore); the next use saves a new one.
    public func remove(_ template: VMTemplate) {
        TemplateMemory.forget(template.directory)
        unlink(template.directory + "/complete")
        try? FileManager.default.removeItem(atPath: template.directory)
    }

    /// Whether the template's files are all there: the marker (written last), the
    /// state, and the RAM file at the memory size (QEMU would create a missing one
    /// empty and restore a guest without memory).
    func isComplete(_ template: VMTemplate, memoryBytes: Int64) -> Bool {
        var st = stat()
        guard FileManager.default.fileExists(atPath: template.directory + "/complete"),
              stat(template.statePath, &st) == 0, st.st_size > 0,
              stat(template.memoryPath, &st) == 0, Int64(st.st_size) == memoryBytes else { return false }
        return true
    }

    /// Boots a guest with placeholder slots and its RAM in a shared file, waits until
    /// the agent answers (and has run `crun --version`, so crun is paged in), lets
    /// the agent go back to waiting for a host, saves the state and quits QEMU.
    private func create(_ template: VMTemplate, identity: [String], configuration: SandboxConfiguration) async throws {
        let fm = FileManager.default
        let work = template.directory + ".tmp-\(getpid())"
        try? fm.removeItem(atPath: work)
        try? fm.removeItem(atPath: template.directory)
        do {
            try fm.createDirectory(atPath: work, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        } catch {
            throw QemuboxError(.stateDirectory, "cannot create \(work): \(error)")
        }
        var finished = false
        defer { if !finished { try? fm.removeItem(atPath: work) } }
        let started = ContinuousClock.now
        var boot = configuration
        boot.name = "template-" + URL(fileURLWithPath: template.directory).lastPathComponent
        boot.stateDirectory = work + "/vm"
        boot.removeStateDirectoryOnExit = true
        // The template's NICs are connected to nothing; each clone attaches its own TAPs.
        boot.placeholderNICs = configuration.network?.slots.count ?? 0
        boot.network = nil
        // QEMU opens the RAM file as it finds it: created here, so only root can read the guest's memory.
        let ram = open(work + "/memory", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard ram >= 0 else {
            throw QemuboxError(.stateDirectory, "cannot create \(work)/memory: \(String(cString: strerror(errno)))")
        }
        close(ram)
        let placeholders = try VMTemplate(directory: work, slots: slots).slotDisks([])
        let sandbox = try await Sandbox.boot(boot, disks: placeholders,
                                             memoryFile: MemoryFile(path: work + "/memory", shared: true), restore: nil)
        do {
            // Info waits for the agent's `crun --version`: crun and its libraries are in the page cache.
            _ = try await sandbox.agent.system.info(.init(), options: .init(timeout: .seconds(60)))
            await sandbox.agent.close()
            // The agent notices the host left and waits for the next one: that is the state clones start in.
            try await Task.sleep(for: .milliseconds(300))
            try await sandbox.vm.saveState(to: work + "/state")
        } catch {
            await sandbox.kill()
            throw QemuboxError(.startFailed, "cannot save a template for \(configuration.name): \(error)")
        }
        // The guest must not run again: its RAM file is now the template.
        await sandbox.vm.stop(StopPolicy(powerdownTimeout: .zero, quitTimeout: .seconds(10)))
        let seconds = (ContinuousClock.now - started).seconds
        let note = "template for \(configuration.assets.kernelPath) + \(configuration.assets.systemImagePath), "
            + "\(configuration.memoryMiB) MiB, \(configuration.vcpus) vCPU, \(slots) slots; "
            + String(format: "booted and saved in %.2f s\n", seconds)
        guard fm.createFile(atPath: work + "/identity", contents: Data((identity.joined(separator: "\n") + "\n").utf8)),
              fm.createFile(atPath: work + "/complete", contents: Data(note.utf8)),
              rename(work, template.directory) == 0 else {
            throw QemuboxError(.stateDirectory, "cannot move \(work) to \(template.directory): \(String(cString: strerror(errno)))")
        }
        finished = true
        configuration.logger.info("saved a VM template", metadata: ["template": "\(template.directory)",
                                                                    "seconds": "\(String(format: "%.2f", seconds))"])
    }
}

/// An exclusive `flock` on a file, waited for without blocking a thread of the pool.
final class FileLock: Sendable {
    let fd: Int32

    init(path: String) throws {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw QemuboxError(.stateDirectory, "cannot open the lock \(path): \(String(cString: strerror(errno)))")
        }
    }

    func acquire(timeout: Duration = .seconds(300)) async throws {
        let deadline = ContinuousClock.now + timeout
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw QemuboxError(.system, "flock: \(String(cString: strerror(errno)))")
            }
            guard ContinuousClock.now < deadline else { throw QemuboxError(.timeout, "lock held for \(timeout)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func release() { close(fd) }
}
