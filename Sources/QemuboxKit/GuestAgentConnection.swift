import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Tracing
import QemuboxAPI
import TTRPCCodec
import VsockTransport

/// The host's connection to a guest's agent (vminitd): one yamux session over the
/// VM's pipe, a ttrpc connection on its first stream, and one stream per stdio
/// fd of each process (see Documentation/guest-agent.md).
///
/// ```swift
/// let agent = try await GuestAgentConnection.connect(virtioSerialSocket: port.socketPath)
/// let info = try await agent.system.info(.init())
/// let stdout = try await agent.openStdio(key: "ctr/stdout")
/// ```
public final class GuestAgentConnection: Sendable {
    /// The yamux session on the VM's pipe.
    public let session: YamuxSession
    /// The ttrpc connection to the agent.
    public let client: TTRPCClient

    /// `qemubox.guest.v1.System`: info, ping, time, mounts, files, shutdown, events.
    public var system: QemuboxGuestV1SystemClient { QemuboxGuestV1SystemClient(client) }
    /// `containerd.task.v2.Task` as the guest serves it for container processes.
    public var task: ContainerdTaskV2TaskClient { ContainerdTaskV2TaskClient(client) }

    init(session: YamuxSession, client: TTRPCClient) {
        self.session = session
        self.client = client
    }

    /// Connects to the host end of the agent's virtio-serial port (QEMU's chardev
    /// socket), waiting up to `timeout` for the guest to open its end, and opens
    /// the ttrpc stream.
    public static func connect(virtioSerialSocket path: String, timeout: Duration = .seconds(60)) async throws
        -> GuestAgentConnection
    {
        let session: YamuxSession
        do {
            // The guest opens no streams: any it tries is reset at once.
            session = try await withSpan("qemubox.agent.sync") { _ in
                try await VirtioSerialHost.connect(path: path, configuration: .refusingPeerStreams, timeout: timeout)
            }
        } catch {
            throw QemuboxError(.agentUnavailable, "no agent on \(path): \(error)")
        }
        do {
            return try await connect(session: session, timeout: timeout)
        } catch {
            await session.close()
            throw error
        }
    }

    /// Opens the ttrpc stream on an established session: writes the `ttrpc`
    /// header, waits for the guest's `ok` and starts a ttrpc client on the stream.
    public static func connect(session: YamuxSession, timeout: Duration = .seconds(30)) async throws
        -> GuestAgentConnection
    {
        let stream: YamuxStream
        do {
            stream = try await session.openStream()
            try await stream.write(GuestStreamHeader.ttrpc.bytes)
            let answer = try await readLine(stream, limit: 64, timeout: timeout)
            guard answer + "\n" == GuestAgentProtocol.ttrpcReady else {
                stream.reset()
                throw QemuboxError(.agentUnavailable, "the agent answered the ttrpc header with \(answer.debugDescription)")
            }
        } catch let error as QemuboxError {
            throw error
        } catch {
            throw QemuboxError(.agentUnavailable, "ttrpc handshake with the agent failed: \(error)")
        }
        do {
            let channel = try await stream.makeChannel(startReading: false)
            var configuration = TTRPCClient.Configuration()
            // A guest that never answers must not hold a call (and the container it serves)
            // forever: waits and streams say `.unbounded`.
            configuration.defaultTimeout = GuestAgentConnection.defaultCallTimeout
            let client = try await TTRPCClient(channel: channel, configuration: configuration)
            stream.startReadingChannel()
            return GuestAgentConnection(session: session, client: client)
        } catch {
            stream.reset()
            throw QemuboxError(.agentUnavailable, "cannot start ttrpc on the agent stream: \(error)")
        }
    }

    /// The deadline of agent calls that name none (waits and streams are unbounded).
    public static let defaultCallTimeout: Duration = .seconds(120)

    /// Opens a stdio stream named `key` (the string then passed as `stdin`,
    /// `stdout` or `stderr` in a create or exec request).
    public func openStdio(key: String) async throws -> YamuxStream {
        guard GuestStreamHeader.isValidKey(key) else {
            throw QemuboxError(.invalidDescription, "stdio key \(key.debugDescription) is not printable ASCII without spaces")
        }
        do {
            let stream = try await session.openStream()
            try await stream.write(GuestStreamHeader.stdio(key: key).bytes)
            return stream
        } catch {
            throw QemuboxError(.agentUnavailable, "cannot open stdio stream \(key): \(error)")
        }
    }

    /// Closes the ttrpc connection and the session.
    public func close() async {
        try? await client.close()
        await session.close()
    }

    /// Reads one line (without its newline) of at most `limit` bytes; bytes after
    /// the newline are a protocol violation here, since the peer only answers.
    /// After `timeout` the stream is reset, which ends the read.
    static func readLine(_ stream: YamuxStream, limit: Int, timeout: Duration) async throws -> String {
        let expired = NIOLockedValueBox(false)
        let timer = Task {
            try await Task.sleep(for: timeout)
            expired.withLockedValue { $0 = true }
            stream.reset()
        }
        defer { timer.cancel() }
        var line = ByteBuffer()
        while true {
            let next: ByteBuffer?
            do {
                next = try await stream.read()
            } catch {
                if expired.withLockedValue({ $0 }) {
                    throw QemuboxError(.timeout, "the agent did not answer within \(timeout)")
                }
                throw error
            }
            guard var chunk = next else {
                throw QemuboxError(.agentUnavailable, "the agent closed the stream before answering")
            }
            line.writeBuffer(&chunk)
            let bytes = line.readableBytesView
            if let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                guard newline == bytes.index(before: bytes.endIndex) else {
                    throw QemuboxError(.agentUnavailable, "the agent sent data after its answer line")
                }
                return String(decoding: bytes.dropLast(), as: UTF8.self)
            }
            if line.readableBytes > limit {
                throw QemuboxError(.agentUnavailable, "the agent's answer line exceeds \(limit) bytes")
            }
        }
    }
}
