#if canImport(Glibc)
import Glibc
#endif
import Foundation

extension VMTemplateStore {
    /// One directory of the store as `qemubox templates ls` shows it: a saved template
    /// (`<key>/`) or the work directory of a save (`<key>.tmp-<pid>/`).
    public struct StoredTemplate: Sendable, Hashable {
        /// The template key (16 hex digits).
        public var key: String
        /// The directory.
        public var directory: String
        /// Whether every file is there: the `complete` marker (written last), the state, and the
        /// RAM file at the memory size recorded in `identity`. Work directories never are.
        public var complete: Bool
        /// Whether it can still be restored: the kernel, initrd, image and QEMU it was saved
        /// with are unchanged (false for incomplete ones).
        public var current: Bool
        /// Whether this is the work directory of a save (`<key>.tmp-<pid>`).
        public var isWorkDirectory: Bool
        /// Whether a save holds the key's lock now.
        public var locked: Bool
        /// Bytes of its files (the RAM file counts at its full size).
        public var bytes: UInt64
        /// Bytes they take on disk (the RAM file is sparse).
        public var allocatedBytes: UInt64
        /// When it was saved (the `complete` marker's mtime; the directory's for incomplete ones).
        public var created: Date
        /// Guest memory in MiB from its identity (nil when unreadable).
        public var memoryMiB: Int?
        /// vCPUs from its identity (nil when unreadable).
        public var vcpus: Int?
    }

    /// The templates and work directories in the store, sorted by key (work directories after
    /// their template). Anything else in the directory is ignored.
    public func storedTemplates() -> [StoredTemplate] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else { return [] }
        var found: [StoredTemplate] = []
        for name in names.sorted() {
            let key = String(name.prefix(16))
            guard key.count == 16, key.allSatisfy(\.isHexDigit),
                  name.count == 16 || name.dropFirst(16).hasPrefix(".tmp-") else { continue }
            let path = directory + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { continue }
            let identity = (try? String(contentsOfFile: path + "/identity", encoding: .utf8))?
                .split(separator: "\n").map(String.init) ?? []
            func number(_ field: String) -> Int? {
                identity.first { $0.hasPrefix(field + "=") }.flatMap { Int($0.dropFirst(field.count + 1)) }
            }
            let memory = number("memory")
            let work = name.count > 16
            let complete = !work && memory.map {
                isComplete(VMTemplate(directory: path, slots: slots), memoryBytes: Int64($0) << 20)
            } ?? false
            var marker = stat()
            let createdStat = stat(path + "/complete", &marker) == 0 ? marker : st
            let usage = Self.usage(of: path)
            found.append(StoredTemplate(
                key: key, directory: path, complete: complete,
                current: complete && Self.isCurrent(templateDirectory: path), isWorkDirectory: work,
                locked: isLocked(key: key), bytes: usage.bytes, allocatedBytes: usage.allocated,
                created: Date(timeIntervalSince1970: Double(createdStat.st_mtim.tv_sec)),
                memoryMiB: memory, vcpus: number("vcpus")))
        }
        return found
    }

    /// Whether a save of `key` runs now (it holds `<key>.lock`). Creates no file.
    public func isLocked(key: String) -> Bool {
        let fd = open(directory + "/" + key + ".lock", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return false }
        return errno == EWOULDBLOCK
    }

    /// Removes a stored template or work directory under its key's lock, and the lock file
    /// when nothing of the key is left. Returns false (and removes nothing) when a save holds
    /// the lock. VMs already restored from a template keep running: they hold its files open.
    @discardableResult
    public func removeStored(_ template: StoredTemplate) throws -> Bool {
        let lockPath = directory + "/" + template.key + ".lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw QemuboxError(.stateDirectory, "cannot open the lock \(lockPath): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            if errno == EWOULDBLOCK { return false }
            throw QemuboxError(.system, "flock \(lockPath): \(String(cString: strerror(errno)))")
        }
        // The marker first: a half-removed template is never taken for a complete one.
        unlink(template.directory + "/complete")
        do {
            try FileManager.default.removeItem(atPath: template.directory)
        } catch {
            throw QemuboxError(.stateDirectory, "remove \(template.directory): \(error)")
        }
        let rest = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix(template.key) && $0 != template.key + ".lock" }
        if rest.isEmpty { unlink(lockPath) }
        return true
    }

    /// Apparent and allocated bytes of the files under `path`.
    static func usage(of path: String) -> (bytes: UInt64, allocated: UInt64) {
        var bytes: UInt64 = 0
        var allocated: UInt64 = 0
        let files = FileManager.default.enumerator(atPath: path)
        while let name = files?.nextObject() as? String {
            var st = stat()
            guard lstat(path + "/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            bytes += UInt64(st.st_size)
            allocated += UInt64(st.st_blocks) * 512
        }
        return (bytes, allocated)
    }
}
