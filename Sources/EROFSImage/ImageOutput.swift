import CEROFSSupport
import Glibc

/// The image file being written: a buffered, append-only stream of blocks plus
/// positioned writes for the superblock.
final class ImageOutput {
    let fd: Int32
    let path: String
    private var buffer: UnsafeMutableRawBufferPointer
    private var buffered = 0
    /// Bytes written so far (including the buffered ones).
    private(set) var position: UInt64 = 0

    init(path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EROFSError.errno("open \(path)") }
        self.fd = fd
        self.path = path
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 4096)
    }

    deinit {
        buffer.deallocate()
        close(fd)
    }

    var nextBlock: UInt32 { UInt32(position / UInt64(EROFSFormat.blockSize)) }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var remaining = bytes
        while !remaining.isEmpty {
            if buffered == buffer.count { try flush() }
            let n = min(remaining.count, buffer.count - buffered)
            if let src = remaining.baseAddress, let dst = buffer.baseAddress {
                (dst + buffered).copyMemory(from: src, byteCount: n)
            }
            buffered += n
            position += UInt64(n)
            remaining = UnsafeRawBufferPointer(rebasing: remaining[n...])
        }
    }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    func writeZeros(_ count: Int) throws {
        var remaining = count
        while remaining > 0 {
            if buffered == buffer.count { try flush() }
            let n = min(remaining, buffer.count - buffered)
            if let dst = buffer.baseAddress { (dst + buffered).initializeMemory(as: UInt8.self, repeating: 0, count: n) }
            buffered += n
            position += UInt64(n)
            remaining -= n
        }
    }

    /// Pads with zeros to the next block boundary.
    func padToBlock() throws {
        let bs = UInt64(EROFSFormat.blockSize)
        let rem = Int((bs - position % bs) % bs)
        try writeZeros(rem)
    }

    func flush() throws {
        var off = 0
        while off < buffered {
            guard let base = buffer.baseAddress else { return }
            let n = Glibc.write(fd, base + off, buffered - off)
            if n < 0 {
                if errno == EINTR { continue }
                throw EROFSError.errno("write \(path)")
            }
            off += n
        }
        buffered = 0
    }

    /// Drops everything after `offset` (used to undo a file that did not pay off).
    func truncate(to offset: UInt64) throws {
        try flush()
        guard ftruncate(fd, off_t(offset)) == 0, lseek(fd, off_t(offset), SEEK_SET) >= 0 else {
            throw EROFSError.errno("truncate \(path)")
        }
        position = offset
    }

    /// Copies `count` bytes of `source` from `offset` with copy_file_range (no
    /// user-space copy); returns false when the kernel cannot, having copied nothing.
    func copy(from source: Int32, offset: UInt64, count: UInt64) throws -> Bool {
        try flush()
        var inOffset = Int64(offset)
        var remaining = count
        while remaining > 0 {
            let n = cerofs_copy_file_range(source, &inOffset, fd, remaining)
            if n < 0 {
                if -n == Int64(EINTR) { continue }
                if remaining == count && [EXDEV, ENOSYS, EINVAL, EOPNOTSUPP].contains(Int32(-n)) { return false }
                throw EROFSError.errno("copy_file_range into \(path)", Int32(-n))
            }
            if n == 0 { throw EROFSError(.io, "copy_file_range: source ended early") }
            remaining -= UInt64(n)
            position += UInt64(n)
        }
        return true
    }

    func pwrite(_ bytes: [UInt8], at offset: UInt64) throws {
        try flush()
        let n = bytes.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        guard n == bytes.count else { throw EROFSError.errno("pwrite \(path)") }
    }

    func sync() throws {
        try flush()
    }
}

/// An unlinked temporary file holding inline tails until the metadata is written,
/// so that memory stays bounded however many small files there are.
final class TailStore {
    private let fd: Int32
    private var end: UInt64 = 0

    init(directory: String) throws {
        var fd = open(directory, O_RDWR | O_CLOEXEC | 0o20200000 /* O_TMPFILE */, 0o600)
        if fd < 0 {
            var template = Array("\(directory)/.erofs-tails.XXXXXX".utf8CString)
            fd = template.withUnsafeMutableBufferPointer { buf -> Int32 in
                guard let base = buf.baseAddress else { return -1 }
                let fd = mkstemp(base)
                if fd >= 0 { unlink(base) }
                return fd
            }
        }
        guard fd >= 0 else { throw EROFSError.errno("temporary tail file in \(directory)") }
        self.fd = fd
    }

    deinit { close(fd) }

    func append(_ bytes: UnsafeRawBufferPointer) throws -> TailRef {
        let ref = TailRef(offset: end, length: bytes.count)
        var done = 0
        while done < bytes.count {
            guard let base = bytes.baseAddress else { break }
            let n = Glibc.pwrite(fd, base + done, bytes.count - done, off_t(end) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw EROFSError.errno("write tail store")
            }
            done += n
        }
        end += UInt64(bytes.count)
        return ref
    }

    func read(_ ref: TailRef) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: ref.length)
        let n = out.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress, ref.length, off_t(ref.offset)) }
        guard n == ref.length else { throw EROFSError.errno("read tail store") }
        return out
    }
}
