#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

/// The guest end of a virtio-serial pipe: the `/dev/vportNpM` character device
/// whose port name (QEMU's `virtserialport,name=...`) matches.
///
/// While no host client is connected to the port's chardev, reads return EOF and
/// `poll` reports `POLLHUP`; ``connect(named:role:configuration:group:timeout:)``
/// therefore waits for the host before starting a session.
///
/// A host that disconnects later is usually *not* signalled to the guest
/// (measured with QEMU 7.2: no EOF, no `POLLHUP` on the open port), so the guest
/// learns of it from yamux keepalives: ``guestConfiguration`` pings every second
/// and gives up after five. A hangup the port does report (`POLLHUP`, possibly
/// cleared again by a reconnecting host) ends the session at once. When the
/// session ends, call `connect` again for the next host.
///
/// NIO never polls the port itself: a relay thread pair copies between the port
/// and a socket pair, because NIO traps when a descriptor that reported a hangup
/// then reads neither bytes nor EOF, which a port does when the host reconnects
/// in between.
public enum VirtioSerialPort {
    /// The session configuration for the guest end: the defaults with a short
    /// keepalive (1 s interval, 5 s timeout) to notice a vanished host.
    public static var guestConfiguration: YamuxConfiguration {
        var configuration = YamuxConfiguration()
        configuration.keepaliveInterval = .seconds(1)
        configuration.keepaliveTimeout = .seconds(5)
        configuration.maxReadSize = 64 * 1024
        return configuration
    }

    /// Where the kernel lists virtio-serial ports.
    public static let defaultSysfsRoot = "/sys/class/virtio-ports"

    /// The device path (`/dev/vportNpM`) of the port called `name`.
    public static func devicePath(named name: String, sysfsRoot: String = defaultSysfsRoot,
                                  devRoot: String = "/dev") throws -> String {
        guard let dir = opendir(sysfsRoot) else {
            throw VsockTransportError(.deviceNotFound,
                "\(sysfsRoot) is not readable (\(String(cString: strerror(errno)))): no virtio-serial ports")
        }
        defer { closedir(dir) }
        var seen: [String] = []
        while let entry = readdir(dir) {
            let port = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard port.hasPrefix("vport") else { continue }
            let portName = (readSmallFile("\(sysfsRoot)/\(port)/name") ?? "")
                .split(whereSeparator: { $0 == "\n" || $0 == " " }).first.map(String.init) ?? ""
            if portName == name { return "\(devRoot)/\(port)" }
            seen.append("\(port)=\(portName)")
        }
        throw VsockTransportError(.deviceNotFound,
            "no virtio-serial port named \(name) (ports: \(seen.isEmpty ? "none" : seen.joined(separator: ", ")))")
    }

    /// Opens the port, waits until the host end is connected, writes the sync
    /// marker, and starts a yamux session on it (role `.server` by default: the
    /// host opens the streams).
    public static func connect(
        named name: String, role: YamuxRole = .server, configuration: YamuxConfiguration = guestConfiguration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        timeout: Duration = .seconds(60)
    ) async throws -> YamuxSession {
        let path = try devicePath(named: name)
        let fd = try await openConnected(path: path, timeout: timeout)
        do {
            try writeAll(fd, VirtioSerialSync.marker)
        } catch {
            close(fd)
            throw error
        }
        // NIO gets a socket, never the port itself (see VirtioSerialRelay for why).
        let socket = try VirtioSerialRelay.start(port: fd)
        do {
            return try await ClientBootstrap(group: group)
                .withConnectedSocket(socket) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try YamuxSession.makeSession(on: channel, role: role, configuration: configuration)
                    }
                }
        } catch {
            // NIO owns (and has closed) `socket`; the relay sees that and closes the port.
            throw VsockTransportError(.ioError, "cannot start a session on \(path): \(error)")
        }
    }

    /// Opens `path` and waits until `poll` no longer reports `POLLHUP` (the host
    /// has connected). Returns the descriptor (blocking mode cleared by NIO later).
    static func openConnected(path: String, timeout: Duration) async throws -> CInt {
        let deadline = ContinuousClock.now + timeout
        while true {
            let fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK)
            if fd < 0 {
                let err = errno
                // EBUSY: the previous holder's descriptor is still being closed.
                if err == EBUSY, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                    continue
                }
                throw VsockTransportError(.ioError, "open \(path): \(String(cString: strerror(err)))")
            }
            while true {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN | POLLOUT), revents: 0)
                let n = poll(&pfd, 1, 0)
                if n >= 0, pfd.revents & Int16(POLLHUP) == 0 { return fd }
                if ContinuousClock.now >= deadline {
                    close(fd)
                    throw VsockTransportError(.connectFailed, "no host connected to \(path) within \(timeout)")
                }
                do {
                    try await Task.sleep(for: .milliseconds(20))
                } catch {
                    close(fd)
                    throw error
                }
            }
        }
    }

    /// Writes `bytes` to a non-blocking descriptor, waiting while it is full.
    static func writeAll(_ fd: CInt, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                offset += n
            } else if n < 0, errno == EAGAIN || errno == EINTR {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&pfd, 1, 100)
            } else {
                throw VsockTransportError(.ioError, "write to the virtio-serial port: \(String(cString: strerror(errno)))")
            }
        }
    }

    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &bytes, bytes.count)
        guard n >= 0 else { return nil }
        return String(decoding: bytes[0..<n], as: UTF8.self)
    }
}

/// The host end of a virtio-serial pipe: the unix socket of QEMU's
/// `-chardev socket,server=on,wait=off` behind a `virtserialport`.
public enum VirtioSerialHost {
    /// Connects to the chardev socket at `path` (retrying while QEMU has not
    /// created it yet), waits for the guest's sync marker (discarding stale bytes
    /// of an earlier connection) and starts a yamux session (role `.client` by
    /// default). Reconnecting after a disconnect is calling this again.
    public static func connect(
        path: String, role: YamuxRole = .client, configuration: YamuxConfiguration = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        timeout: Duration = .seconds(30)
    ) async throws -> YamuxSession {
        let deadline = ContinuousClock.now + timeout
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            let connected: (YamuxSession, EventLoopFuture<Void>)
            do {
                connected = try await ClientBootstrap(group: group)
                    .connect(unixDomainSocketPath: path) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let synced = channel.eventLoop.makePromise(of: Void.self)
                            try channel.pipeline.syncOperations.addHandler(VirtioSerialSyncHandler(synced: synced))
                            let session = try YamuxSession.makeSession(on: channel, role: role, configuration: configuration)
                            return (session, synced.futureResult)
                        }
                    }
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(20))
                continue
            }
            let (session, synced) = connected
            // The guest writes the marker once it has opened its port.
            let remaining = deadline - ContinuousClock.now
            let timer = session.eventLoop.scheduleTask(in: .nanoseconds(max(0, Int64(remaining.components.seconds) * 1_000_000_000
                + remaining.components.attoseconds / 1_000_000_000))) {
                session.channel.close(promise: nil)
            }
            do {
                try await synced.get()
                timer.cancel()
                return session
            } catch {
                timer.cancel()
                await session.close()
                // QEMU closes a new client at once while it still holds the
                // previous connection: try again until the deadline.
                lastError = error
                if ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        }
        throw VsockTransportError(.connectFailed,
            "no guest answered on \(path) within \(timeout) (it sends a sync marker once its port is open): "
            + (lastError.map { "\($0)" } ?? "timeout"))
    }
}
