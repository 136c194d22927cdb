import CQemuboxSupport
import Foundation

/// Small blocking helpers for the host's own unix sockets (a template's memory holder,
/// a spare VM's claim socket): listening at a path, connecting, the peer's uid, and one
/// bounded line read with a deadline. Errors are ``QemuboxError``s with code `stateDirectory`.
package enum UnixSocket {
    /// A listening socket at `path` (0600; a stale socket file there is replaced: the
    /// caller holds whatever lock says nobody else serves it).
    package static func listen(at path: String, backlog: Int32 = 64) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw QemuboxError(.stateDirectory, "socket: \(String(cString: strerror(errno)))") }
        do {
            var address = try address(path)
            unlink(path)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0, chmod(path, 0o600) == 0, Glibc.listen(fd, backlog) == 0 else {
                throw QemuboxError(.stateDirectory, "listening on \(path): \(String(cString: strerror(errno)))")
            }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// A socket connected to `path`, reads on it timing out after `receiveTimeout`.
    package static func connect(to path: String, receiveTimeout: Duration) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw QemuboxError(.stateDirectory, "socket: \(String(cString: strerror(errno)))") }
        do {
            var address = try address(path)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard connected == 0 else {
                throw QemuboxError(.stateDirectory, "connect \(path): \(String(cString: strerror(errno)))")
            }
        } catch {
            close(fd)
            throw error
        }
        var timeout = timeval(tv_sec: Int(receiveTimeout.components.seconds),
                              tv_usec: Int(receiveTimeout.components.attoseconds / 1_000_000_000_000))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// The uid of the process at the other end (`SO_PEERCRED`), nil if unknown.
    package static func peerUID(_ fd: Int32) -> UInt32? {
        var uid: UInt32 = 0
        return qbx_peer_uid(fd, &uid) == 0 ? uid : nil
    }

    /// `path` as a `sockaddr_un` (too long for `sun_path`: an error).
    package static func address(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw QemuboxError(.stateDirectory, "socket path too long (\(bytes.count) bytes): \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return address
    }

    /// One line (without its newline) of at most `limit` bytes from `fd`, waiting until
    /// `timeout` has passed; nil when the peer closed first, the line is longer or time ran out.
    package static func readLine(_ fd: Int32, limit: Int, timeout: Duration) -> String? {
        var bytes: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !bytes.contains(UInt8(ascii: "\n")) {
            guard bytes.count <= limit else { return nil }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return nil }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(min(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000, 60_000))
            if poll(&p, 1, max(ms, 1)) < 0 { if errno == EINTR { continue } else { return nil } }
            guard p.revents != 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR || errno == EAGAIN { continue }
            guard n > 0 else { return nil }
            bytes += chunk[0..<n]
        }
        guard let end = bytes.firstIndex(of: UInt8(ascii: "\n")), end <= limit else { return nil }
        return String(decoding: bytes[..<end], as: UTF8.self)
    }

    /// Writes all of `text` to `fd` (any descriptor: a socket, a pipe or FIFO), retrying
    /// after `EINTR`; false when the peer went away or the write failed (the rest is lost).
    @discardableResult
    package static func write(_ fd: Int32, _ text: String) -> Bool {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return Glibc.write(fd, base + offset, raw.count - offset)
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }
}
