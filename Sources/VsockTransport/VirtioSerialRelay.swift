#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers

/// Copies bytes between a virtio-serial port and one end of a unix socket pair,
/// so that NIO only ever polls a socket.
///
/// Why: NIO assumes that a descriptor reporting a hangup (`EPOLLHUP`) reads EOF.
/// A virtio-serial port does not keep that promise: it reports `POLLHUP` while
/// the host end is disconnected, and the flag clears as soon as a host connects
/// again, after which a read returns `EAGAIN`. If the host reconnects between
/// NIO's `epoll_wait` and its read (a window that TCG and a loaded host make
/// wide), NIO stops the process with "got .readEOF and read returned not
/// reading any bytes, nor EOF" (a precondition, so a bare `SIGILL` in release
/// builds). The relay owns the port instead and turns any hangup it sees into
/// the end of the connection: the session on top ends, and the caller opens
/// the port again and resynchronises with whichever host is connected now.
///
/// Two detached threads, one per direction, each blocking in `poll`; the last
/// one to finish closes the port and its socket end. Either direction ending
/// (host hangup, port error, NIO closing its end) shuts the socket down, which
/// ends the other direction too.
final class VirtioSerialRelay: Sendable {
    private let port: CInt
    private let socket: CInt
    private let running = NIOLockedValueBox(2)
    private static let bufferSize = 64 * 1024

    private init(port: CInt, socket: CInt) {
        self.port = port
        self.socket = socket
    }

    /// Starts relaying `port` (a non-blocking descriptor the relay owns from now
    /// on, also when this throws) and returns the other end of the socket pair,
    /// for NIO.
    static func start(port: CInt) throws -> CInt {
        var pair: [CInt] = [-1, -1]
        guard socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            close(port)
            throw VsockTransportError(.ioError, "socketpair: \(String(cString: strerror(errno)))")
        }
        let flags = fcntl(pair[0], F_GETFL)
        _ = fcntl(pair[0], F_SETFL, flags | O_NONBLOCK)
        let relay = VirtioSerialRelay(port: port, socket: pair[0])
        do {
            try spawn { relay.portToSocket() }
        } catch {
            close(port)
            close(pair[0])
            close(pair[1])
            throw error
        }
        do {
            try spawn { relay.socketToPort() }
        } catch {
            // The first thread is running: let it finish and close the port
            // and the socket end.
            _ = shutdown(pair[0], CInt(SHUT_RDWR))
            relay.finished()
            close(pair[1])
            throw error
        }
        return pair[1]
    }

    // MARK: Directions

    /// Port to socket. Ends when the host hangs up (`POLLHUP`, or a read of 0
    /// bytes, which the port returns while no host is connected), on a port
    /// error, or when the socket is shut down.
    private func portToSocket() {
        var buffer = [UInt8](repeating: 0, count: Self.bufferSize)
        loop: while true {
            var fds = [pollfd(fd: port, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: socket, events: 0, revents: 0)]
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[1].revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 { break }
            let portEvents = fds[0].revents
            guard portEvents != 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(port, $0.baseAddress, $0.count) }
            if n > 0 {
                // Bytes queued before a hangup are delivered first; the hangup
                // is seen on a later round.
                guard Self.writeAll(socket, buffer, count: n, unlessHangupOn: port) else { break }
                continue
            }
            if n == 0 { break }  // no host connected
            let err = errno
            guard err == EAGAIN || err == EINTR else { break }
            // POLLHUP then EAGAIN: the host went away and another connected in
            // between. The bytes of the old connection are lost: end it.
            if portEvents & Int16(POLLHUP) != 0 { break loop }
        }
        _ = shutdown(socket, CInt(SHUT_RDWR))
        finished()
    }

    /// Socket to port. Ends when NIO closes its end, or when the port cannot
    /// take bytes because the host hung up.
    private func socketToPort() {
        var buffer = [UInt8](repeating: 0, count: Self.bufferSize)
        while true {
            var fds = [pollfd(fd: socket, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 1, -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            let n = buffer.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
            if n > 0 {
                guard Self.writeAll(port, buffer, count: n, unlessHangupOn: socket) else { break }
                continue
            }
            if n == 0 { break }
            guard errno == EAGAIN || errno == EINTR else { break }
        }
        _ = shutdown(socket, CInt(SHUT_RDWR))
        finished()
    }

    /// One direction is done; the second one closes both descriptors.
    private func finished() {
        let last = running.withLockedValue { count -> Bool in
            count -= 1
            return count == 0
        }
        if last {
            close(port)
            close(socket)
        }
    }

    /// Writes `count` bytes of `buffer` to the non-blocking `fd`, waiting while
    /// it is full. False on an error or a hangup of `fd` (nothing more can be
    /// written), or when `other` (the relay's other descriptor) hangs up while
    /// waiting: a host that stays connected but stops reading must not keep the
    /// port open after the session has closed its end.
    private static func writeAll(_ fd: CInt, _ buffer: [UInt8], count: Int, unlessHangupOn other: CInt) -> Bool {
        var offset = 0
        while offset < count {
            let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress.map { $0 + offset }, count - offset) }
            if n > 0 {
                offset += n
                continue
            }
            let err = errno
            guard n < 0, err == EAGAIN || err == EINTR else { return false }
            var fds = [pollfd(fd: fd, events: Int16(POLLOUT), revents: 0),
                       pollfd(fd: other, events: 0, revents: 0)]
            if poll(&fds, 2, -1) < 0, errno != EINTR { return false }
            // A port whose host is gone never becomes writable; it reports POLLHUP.
            if fds[0].revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0, fds[0].revents & Int16(POLLOUT) == 0 {
                return false
            }
            if fds[1].revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 { return false }
        }
        return true
    }

    // MARK: Threads

    private final class ThreadBody {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// Runs `body` on a new detached thread.
    private static func spawn(_ body: @escaping @Sendable () -> Void) throws {
        let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { argument in
            if let argument {
                Unmanaged<ThreadBody>.fromOpaque(argument).takeRetainedValue().body()
            }
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<ThreadBody>.fromOpaque(context).release()
            throw VsockTransportError(.ioError, "cannot start the virtio-serial relay thread: \(String(cString: strerror(rc)))")
        }
        pthread_detach(thread)
    }
}
