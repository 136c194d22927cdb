#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

/// The `AF_VSOCK` pipe, for hosts with vhost-vsock: the host connects to the
/// guest's CID and port, the guest listens. Where `/dev/vhost-vsock` is absent
/// (nested clouds, CI), use ``VirtioSerialHost`` / ``VirtioSerialPort``.
public enum VsockPipe {
    /// The device QEMU's `vhost-vsock-device` opens.
    public static let vhostDevice = "/dev/vhost-vsock"

    /// Whether this host can give guests a vsock (the vhost device is usable).
    public static func hostSupportsVsock(device: String = vhostDevice) -> Bool {
        access(device, R_OK | W_OK) == 0
    }

    /// Host side: connects to `port` on guest `cid` (retrying until the guest
    /// listens or `timeout` passes) and starts a yamux session (role `.client`).
    /// Throws ``VsockTransportError/Code/vsockUnavailable`` at once when the
    /// host has no vhost-vsock.
    public static func connect(
        cid: UInt32, port: UInt32, role: YamuxRole = .client, configuration: YamuxConfiguration = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        timeout: Duration = .seconds(30), device: String = vhostDevice
    ) async throws -> YamuxSession {
        guard hostSupportsVsock(device: device) else {
            throw VsockTransportError(.vsockUnavailable,
                "\(device) is missing or not accessible: this host cannot give guests a vsock; use virtio-serial")
        }
        let address = VsockAddress(cid: .init(rawValue: cid), port: .init(rawValue: port))
        let deadline = ContinuousClock.now + timeout
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            do {
                return try await ClientBootstrap(group: group)
                    .connect(to: address) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try YamuxSession.makeSession(on: channel, role: role, configuration: configuration)
                        }
                    }
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        throw VsockTransportError(.connectFailed,
            "vsock \(cid):\(port) did not accept within \(timeout): \(lastError.map { "\($0)" } ?? "timeout")")
    }

    /// Guest side: listens on `port` and starts a yamux session (role `.server`)
    /// on every connection, handing it to `onSession`. Returns the listening
    /// channel; close it to stop.
    public static func listen(
        port: UInt32, role: YamuxRole = .server, configuration: YamuxConfiguration = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onSession: @escaping @Sendable (YamuxSession) -> Void
    ) async throws -> any Channel {
        let address = VsockAddress(cid: .any, port: .init(rawValue: port))
        do {
            return try await ServerBootstrap(group: group)
                .childChannelInitializer { child in
                    child.eventLoop.makeCompletedFuture {
                        onSession(try YamuxSession.makeSession(on: child, role: role, configuration: configuration))
                    }
                }
                .bind(to: address)
                .get()
        } catch {
            throw VsockTransportError(.vsockUnavailable, "cannot listen on vsock port \(port): \(error)")
        }
    }
}
