import CQemuboxSupport
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import ProcessSpawn

/// How the clones of a template get its RAM.
///
/// A clone maps its template's RAM copy-on-write, so every page it never writes is shared
/// with the other clones. QEMU 7.2 opens a RAM file read-write even for a private mapping, so
/// a jailed QEMU cannot be handed the template file itself (it could write into every other
/// clone's memory). Instead the RAM is copied once into a memfd sealed against writes and
/// resizing (`F_SEAL_WRITE`, `F_SEAL_SHRINK`, `F_SEAL_GROW`, `F_SEAL_SEAL`: not even root can
/// change it again), and QEMU maps that descriptor privately as `/proc/self/fd/N`.
public enum TemplateMemorySharing: Sendable, Hashable {
    /// One sealed copy per template in this process, shared by the VMs it starts.
    case inProcess
    /// One sealed copy per template on the host, served to every process by a holder process
    /// (`executable arguments… TEMPLATE_DIRECTORY`, which must call
    /// ``TemplateMemoryHolder/run(templateDirectory:readyDescriptor:idleTimeout:)``), started
    /// on first use and gone after it has been idle. The shim uses this: each container is a
    /// process of its own.
    case holder(executable: String, arguments: [String])
}

/// A template's RAM as a sealed memfd.
enum TemplateMemory {
    /// Sealed copies this process made or received, by template directory.
    private static let cache = NIOLockedValueBox<[String: Cached]>([:])

    private struct Cached {
        var descriptor: Int32
        var identity: Identity
    }

    /// Which saved template a copy is of: its `complete` marker and RAM file (device,
    /// inode, size, modification time), so a template saved again, or a RAM file replaced,
    /// is never served from an old copy.
    struct Identity: Hashable, Sendable {
        var marker: [Int64]
        var memory: [Int64]

        init(directory: String) throws {
            func stamp(_ path: String) throws -> [Int64] {
                var st = stat()
                guard stat(path, &st) == 0 else {
                    throw QemuboxError(.stateDirectory, "template file \(path): \(String(cString: strerror(errno)))")
                }
                return [Int64(st.st_dev), Int64(st.st_ino), Int64(st.st_size),
                        Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec)]
            }
            marker = try stamp(directory + "/complete")
            memory = try stamp(directory + "/memory")
        }
    }

    /// A descriptor of the sealed copy of `template`'s RAM (`bytes` long) for one VM start;
    /// the caller closes it once QEMU has been spawned. With ``TemplateMemorySharing/holder(executable:arguments:)``
    /// a holder that cannot be reached or started is logged and replaced by a copy in this
    /// process (the VM starts; it shares its pages only with this process's VMs).
    static func descriptor(for template: VMTemplate, bytes: Int64, sharing: TemplateMemorySharing,
                           logger: Logger) async throws -> Int32 {
        let identity = try Identity(directory: template.directory)
        let fd: Int32
        if let hit = cached(template.directory, identity: identity) {
            fd = hit
        } else {
            fd = store(try await makeDescriptor(template, sharing: sharing, logger: logger),
                       for: template.directory, identity: identity)
        }
        do {
            try validate(fd, bytes: bytes)
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    private static func makeDescriptor(_ template: VMTemplate, sharing: TemplateMemorySharing,
                                       logger: Logger) async throws -> Int32 {
        switch sharing {
        case .inProcess:
            return try await NIOThreadPool.singleton.runIfActive { try sealedCopy(of: template.memoryPath) }
        case .holder(let executable, let arguments):
            do {
                let fd = try await TemplateMemoryHolder.obtain(template: template, executable: executable,
                                                               arguments: arguments)
                guard qbx_is_sealed_read_only(fd) == 1 else {
                    close(fd)
                    throw QemuboxError(.stateDirectory, "the holder's descriptor is not sealed against writes")
                }
                return fd
            } catch {
                logger.warning("template memory holder unavailable: this VM's RAM is shared with this process only",
                               metadata: ["template": "\(template.directory)", "error": "\(error)"])
                return try await NIOThreadPool.singleton.runIfActive { try sealedCopy(of: template.memoryPath) }
            }
        }
    }

    /// The cached descriptor (duplicated) when it is for the same saved template.
    private static func cached(_ directory: String, identity: Identity) -> Int32? {
        cache.withLockedValue { entries -> Int32? in
            guard let entry = entries[directory] else { return nil }
            if entry.identity == identity { return fcntl(entry.descriptor, F_DUPFD_CLOEXEC, 0) }
            close(entry.descriptor)
            entries[directory] = nil
            return nil
        }
    }

    /// Keeps `fd` for later starts and returns a duplicate for this one.
    private static func store(_ fd: Int32, for directory: String, identity: Identity) -> Int32 {
        cache.withLockedValue { entries -> Int32 in
            if let old = entries[directory] { close(old.descriptor) }
            entries[directory] = Cached(descriptor: fd, identity: identity)
            return fcntl(fd, F_DUPFD_CLOEXEC, 0)
        }
    }

    /// Forgets the copy of a removed template.
    static func forget(_ directory: String) {
        cache.withLockedValue { entries in
            if let entry = entries.removeValue(forKey: directory) { close(entry.descriptor) }
        }
    }

    /// Checks that `fd` is a sealed memfd of `bytes` bytes.
    static func validate(_ fd: Int32, bytes: Int64) throws {
        guard qbx_is_sealed_read_only(fd) == 1 else {
            throw QemuboxError(.stateDirectory, "template memory descriptor is not sealed against writes")
        }
        var st = stat()
        guard fstat(fd, &st) == 0, Int64(st.st_size) == bytes else {
            throw QemuboxError(.stateDirectory, "template memory is \(st.st_size) bytes, expected \(bytes)")
        }
    }

    /// A new memfd holding the file at `path` (its data segments; holes stay unallocated),
    /// sealed read-only.
    static func sealedCopy(of path: String) throws -> Int32 {
        let input = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard input >= 0 else { throw QemuboxError(.stateDirectory, "open \(path): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        let output = qbx_memfd_create(VMTemplate.memoryMemfdName)
        guard output >= 0 else { throw QemuboxError(.stateDirectory, "memfd_create: \(String(cString: strerror(errno)))") }
        do {
            try copyDataSegments(from: input, to: output, describe: "copying \(path) to a memfd")
            guard qbx_seal_read_only(output) == 0 else {
                throw QemuboxError(.stateDirectory, "sealing the copy of \(path): \(String(cString: strerror(errno)))")
            }
        } catch {
            close(output)
            throw error
        }
        return output
    }

    /// Copies `input` to `output` (sized to match), data segments only.
    static func copyDataSegments(from input: Int32, to output: Int32, describe: String) throws {
        func fail(_ what: String) -> QemuboxError {
            QemuboxError(.stateDirectory, "\(describe): \(what): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard fstat(input, &st) == 0 else { throw fail("stat") }
        guard ftruncate(output, st.st_size) == 0 else { throw fail("truncate") }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: off_t = 0
        while offset < st.st_size {
            let data = lseek(input, offset, qbx_seek_data())
            if data < 0 {
                if errno == ENXIO { break }
                throw fail("seek")
            }
            var end = lseek(input, data, qbx_seek_hole())
            if end < 0 { end = st.st_size }
            var at = data
            while at < end {
                let want = min(buffer.count, Int(end - at))
                let n = buffer.withUnsafeMutableBytes { pread(input, $0.baseAddress, want, at) }
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { throw fail("read") }
                var written = 0
                while written < n {
                    let w = buffer.withUnsafeBytes { raw -> Int in
                        guard let base = raw.baseAddress else { return -1 }
                        return pwrite(output, base + written, n - written, at + off_t(written))
                    }
                    if w < 0, errno == EINTR { continue }
                    guard w > 0 else { throw fail("write") }
                    written += w
                }
                at += off_t(n)
            }
            offset = end
        }
    }
}
