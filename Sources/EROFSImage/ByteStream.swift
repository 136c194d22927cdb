import CEROFSZlib
import Glibc

/// A sequential byte source (a file, or a gzip stream inflated by zlib).
protocol ByteStream: AnyObject {
    /// Reads up to `buffer.count` bytes; 0 means end of stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Bytes consumed from the underlying file so far.
    var consumedInput: UInt64 { get }
}

/// Reads a file descriptor.
final class FileByteStream: ByteStream {
    let fd: Int32
    let name: String
    private(set) var consumedInput: UInt64 = 0

    init(fd: Int32, name: String) {
        self.fd = fd
        self.name = name
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw EROFSError.errno("read \(name)")
            }
            consumedInput += UInt64(n)
            return n
        }
    }
}

/// Inflates a gzip stream (several concatenated members are accepted).
final class GzipByteStream: ByteStream {
    private let source: any ByteStream
    private var stream = z_stream()
    private var input: UnsafeMutableRawBufferPointer
    private var inputEOF = false
    private var finished = false
    private var initialized = false
    let name: String
    var consumedInput: UInt64 { source.consumedInput }

    init(source: any ByteStream, name: String, prefix: [UInt8]) throws {
        self.source = source
        self.name = name
        input = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
        prefix.withUnsafeBytes { p in
            if let s = p.baseAddress, let d = input.baseAddress { d.copyMemory(from: s, byteCount: p.count) }
        }
        stream.next_in = input.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.avail_in = uInt(prefix.count)
        let rc = inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            input.deallocate()
            throw EROFSError(.corruptGzip, "\(name): zlib init failed (\(rc))")
        }
        initialized = true
    }

    deinit {
        if initialized { inflateEnd(&stream) }
        input.deallocate()
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard !finished, buffer.count > 0 else { return 0 }
        stream.next_out = buffer.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(buffer.count)
        while stream.avail_out == uInt(buffer.count) {
            if stream.avail_in == 0 && !inputEOF {
                let n = try source.read(into: input)
                if n == 0 { inputEOF = true }
                stream.next_in = input.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_in = uInt(n)
            }
            let rc = inflate(&stream, Z_NO_FLUSH)
            if rc == Z_STREAM_END {
                // Another member may follow.
                if stream.avail_in == 0 && !inputEOF {
                    let n = try source.read(into: input)
                    if n == 0 { inputEOF = true }
                    stream.next_in = input.baseAddress?.assumingMemoryBound(to: Bytef.self)
                    stream.avail_in = uInt(n)
                }
                if stream.avail_in == 0 && inputEOF {
                    finished = true
                    break
                }
                inflateReset(&stream)
                continue
            }
            if rc == Z_BUF_ERROR && stream.avail_in == 0 && inputEOF {
                throw EROFSError(.corruptGzip, "\(name): gzip stream is truncated")
            }
            guard rc == Z_OK || rc == Z_BUF_ERROR else {
                let msg = stream.msg.map { String(cString: $0) } ?? "error \(rc)"
                throw EROFSError(.corruptGzip, "\(name): corrupt gzip stream: \(msg)")
            }
        }
        return buffer.count - Int(stream.avail_out)
    }
}

/// Buffered exact reads over a `ByteStream`.
final class StreamReader {
    private let stream: any ByteStream
    private var buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    private(set) var position: UInt64 = 0
    let name: String

    init(stream: any ByteStream, name: String) {
        self.stream = stream
        self.name = name
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    }

    deinit { buffer.deallocate() }

    var consumedInput: UInt64 { stream.consumedInput }

    /// Reads up to `count` bytes into `dst`; returns fewer only at end of stream.
    func read(into dst: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < dst.count {
            if start == end {
                // Large reads bypass the buffer.
                if dst.count - done >= buffer.count {
                    let n = try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: dst[done...]))
                    if n == 0 { break }
                    done += n
                    position += UInt64(n)
                    continue
                }
                start = 0
                end = try stream.read(into: buffer)
                if end == 0 { break }
            }
            let n = min(end - start, dst.count - done)
            if let d = dst.baseAddress, let s = buffer.baseAddress { (d + done).copyMemory(from: s + start, byteCount: n) }
            start += n
            done += n
            position += UInt64(n)
        }
        return done
    }

    /// Reads exactly `count` bytes or returns nil at a clean end of stream (no byte read).
    func readExactly(_ count: Int, what: @autoclosure () -> String) throws -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        let n = try out.withUnsafeMutableBytes { try read(into: $0) }
        if n == 0 && count > 0 { return nil }
        guard n == count else { throw EROFSError(.corruptTar, "\(name): truncated in \(what()) (\(n) of \(count) bytes)") }
        return out
    }

    /// Discards `count` bytes.
    func skip(_ count: UInt64, what: @autoclosure () -> String) throws {
        var remaining = count
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        defer { scratch.deallocate() }
        while remaining > 0 {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<Int(min(remaining, UInt64(scratch.count)))]))
            guard n > 0 else { throw EROFSError(.corruptTar, "\(name): truncated in \(what())") }
            remaining -= UInt64(n)
        }
    }
}
