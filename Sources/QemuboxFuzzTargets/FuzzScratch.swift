#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Scratch space for the targets that need files: each input gets a fresh
/// directory (in /dev/shm when writable, else the temporary directory) that is
/// removed afterwards, so nothing is left behind unless the process dies mid-input.
enum FuzzScratch {
    /// Where the directories are made.
    static let base: String = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory()

    /// `mkdtemp(prefix + "XXXXXX")`.
    private static func makeDirectory(_ prefix: String) -> String? {
        var template = Array((prefix + "XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress.flatMap { mkdtemp($0) }
        }
        guard made != nil else { return nil }
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs `body` with a fresh, empty directory that is removed afterwards.
    static func withDirectory(_ body: (String) -> Void) {
        guard let dir = makeDirectory(base + "/qemubox-fuzz.") else { return }
        body(dir)
        removeTree(dir)
    }

    /// Writes `bytes` to a new file at `path`.
    static func write(_ bytes: [UInt8], to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                guard let base = raw.baseAddress else { return false }
                let n = Glibc.write(fd, base + done, raw.count - done)
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { return false }
                done += n
            }
            return true
        }
    }

    /// The contents of the file at `path` (at most 64 KiB), or nil.
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n >= 0 else { return nil }
        return Array(buffer.prefix(n))
    }

    /// Removes `path` and everything below it, never following symlinks and
    /// making directories searchable first (the writeback may leave mode 000).
    static func removeTree(_ path: String) {
        removeEntry(AT_FDCWD, path)
    }

    private static func removeEntry(_ parent: Int32, _ name: String) {
        removeEntry(parent, Array(name.utf8CString))
    }

    private static func removeEntry(_ parent: Int32, _ name: [CChar]) {
        var st = stat()
        guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            _ = unlinkat(parent, name, 0)
            return
        }
        _ = fchmodat(parent, name, 0o700, 0)
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd >= 0, let handle = fdopendir(fd) {
            var names: [[CChar]] = []
            while let item = readdir(handle) {
                let child = withUnsafeBytes(of: item.pointee.d_name) { raw in
                    raw.prefix(while: { $0 != 0 }).map { CChar(bitPattern: $0) }
                }
                if child != [0x2E] && child != [0x2E, 0x2E] { names.append(child + [0]) }
            }
            for child in names { removeEntry(dirfd(handle), child) }
            closedir(handle)
        } else if fd >= 0 {
            close(fd)
        }
        _ = unlinkat(parent, name, AT_REMOVEDIR)
    }
}
