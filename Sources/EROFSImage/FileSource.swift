import Glibc

/// Where a regular file's bytes come from while the image is written.
protocol FileSource: AnyObject {
    /// Logical size of the file.
    var size: UInt64 { get }
    /// Ranges that hold data, ascending; nil when the file is dense (or unknown).
    var dataSegments: [Range<UInt64>]? { get }
    /// Whether `read(at:into:)` accepts any offset (not only non-decreasing ones).
    var rewindable: Bool { get }
    /// Fills `buffer` with the logical bytes at `offset` (zeros in holes); returns
    /// the count, short only at end of file.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// A name for error messages.
    var displayName: String { get }
}

/// A file on the host, read with `pread`.
final class HostFileSource: FileSource {
    let fd: Int32
    let size: UInt64
    let dataSegments: [Range<UInt64>]?
    let displayName: String
    var rewindable: Bool { true }

    init(path: [UInt8], size: UInt64, allocatedBytes: UInt64) throws {
        let name = String(decoding: path, as: UTF8.self)
        let fd = withCPath(path) { open($0, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { throw EROFSError.errno("open \(name)") }
        self.fd = fd
        self.size = size
        displayName = name
        // Only ask for the hole map when the file is visibly sparse.
        if allocatedBytes + 65536 < size {
            var segments: [Range<UInt64>] = []
            var pos: off_t = 0
            while UInt64(pos) < size {
                let dataStart = lseek(fd, pos, 3 /* SEEK_DATA */)
                if dataStart < 0 { break }
                var holeStart = lseek(fd, dataStart, 4 /* SEEK_HOLE */)
                if holeStart < 0 { holeStart = off_t(size) }
                segments.append(UInt64(dataStart)..<min(UInt64(holeStart), size))
                pos = holeStart
            }
            dataSegments = segments
        } else {
            dataSegments = nil
        }
    }

    deinit { close(fd) }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let want = Int(min(UInt64(buffer.count), size > offset ? size - offset : 0))
        var done = 0
        while done < want {
            guard let base = buffer.baseAddress else { break }
            let n = pread(fd, base + done, want - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw EROFSError.errno("read \(displayName)")
            }
            if n == 0 {
                // The file shrank while we read it: the rest reads as zeros.
                (base + done).initializeMemory(as: UInt8.self, repeating: 0, count: want - done)
                break
            }
            done += n
        }
        return want
    }
}

/// A file whose bytes are already in memory.
final class MemoryFileSource: FileSource {
    let bytes: [UInt8]
    let displayName: String
    var size: UInt64 { UInt64(bytes.count) }
    var dataSegments: [Range<UInt64>]? { nil }
    var rewindable: Bool { true }

    init(bytes: [UInt8], displayName: String) {
        self.bytes = bytes
        self.displayName = displayName
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < size else { return 0 }
        let n = min(buffer.count, bytes.count - Int(offset))
        bytes.withUnsafeBytes { src in
            if let s = src.baseAddress, let d = buffer.baseAddress { d.copyMemory(from: s + Int(offset), byteCount: n) }
        }
        return n
    }
}
