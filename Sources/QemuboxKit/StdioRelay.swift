#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import NIOPosix
import VsockTransport

/// Copies bytes between host file descriptors and a process's stdio streams.
/// Blocking file I/O runs on its own threads (descriptors may be terminals,
/// pipes or regular files, which an event loop cannot watch), never on the
/// cooperative pool. The caller owns the descriptors.
public enum StdioRelay {
    /// Copies everything the stream delivers into `fd` until the stream ends
    /// (the guest half-closes after the process's last byte). Returns the byte count.
    /// `onFirstChunk` runs once, when the first bytes arrive.
    @discardableResult
    public static func copy(from stream: YamuxStream, to fd: Int32,
                            onFirstChunk: (@Sendable () -> Void)? = nil) async throws -> UInt64 {
        var total: UInt64 = 0
        while let chunk = try await stream.read() {
            if total == 0 { onFirstChunk?() }
            let bytes = Array(chunk.readableBytesView)
            total += UInt64(bytes.count)
            try await NIOThreadPool.singleton.runIfActive {
                try writeAll(fd, bytes)
            }
        }
        return total
    }

    /// Copies `fd` into the stream until end of file, then half-closes the
    /// stream (the process sees EOF on stdin). Returns the byte count.
    @discardableResult
    public static func copy(from fd: Int32, to stream: YamuxStream, chunkSize: Int = 64 * 1024) async throws -> UInt64 {
        let total: UInt64 = try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                var total: UInt64 = 0
                var buffer = [UInt8](repeating: 0, count: chunkSize)
                do {
                    while true {
                        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, chunkSize) }
                        if n < 0 {
                            if errno == EINTR { continue }
                            throw QemuboxError(.system, "read stdin: \(String(cString: strerror(errno)))")
                        }
                        if n == 0 { break }
                        total += UInt64(n)
                        try stream.writeFuture(ByteBuffer(bytes: buffer[0..<n])).wait()
                    }
                    continuation.resume(returning: total)
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.name = "qemubox-stdin"
            thread.start()
        }
        try await stream.closeWrite()
        return total
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return write(fd, base + offset, raw.count - offset)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw QemuboxError(.system, "write to fd \(fd): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }
}
