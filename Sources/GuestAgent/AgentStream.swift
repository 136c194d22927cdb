import NIOConcurrencyHelpers
import NIOCore
import QemuboxAPI
import VsockTransport

/// A yamux stream whose header line has been read: ``read()`` returns the
/// bytes that arrived after the header first.
public final class AgentStream: Sendable {
    /// The underlying stream.
    public let stream: YamuxStream
    private let leftover: NIOLockedValueBox<ByteBuffer?>

    init(stream: YamuxStream, leftover: ByteBuffer?) {
        self.stream = stream
        self.leftover = NIOLockedValueBox(leftover.flatMap { $0.readableBytes > 0 ? $0 : nil })
    }

    /// The next chunk, or nil at the peer's half-close.
    public func read() async throws -> ByteBuffer? {
        if let pending = leftover.withLockedValue({ value -> ByteBuffer? in
            defer { value = nil }
            return value
        }) {
            return pending
        }
        return try await stream.read()
    }

    /// Reads the header line of `stream`: returns it (without newline) and
    /// the stream wrapped with whatever followed the line.
    public static func readHeader(of stream: YamuxStream) async throws -> (header: GuestStreamHeader, stream: AgentStream) {
        var collected = ByteBuffer()
        while true {
            if let newline = collected.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                let length = newline - collected.readerIndex + 1
                let line = collected.readString(length: length) ?? ""
                do {
                    let header = try GuestStreamHeader.parse(line)
                    return (header, AgentStream(stream: stream, leftover: collected))
                } catch {
                    throw GuestAgentError(.invalidArgument, error.description)
                }
            }
            guard collected.readableBytes < GuestStreamHeader.maxLength else {
                throw GuestAgentError(.invalidArgument, "stream header longer than \(GuestStreamHeader.maxLength) bytes")
            }
            guard var chunk = try await stream.read() else {
                throw GuestAgentError(.invalidArgument, "stream ended before its header line")
            }
            collected.writeBuffer(&chunk)
        }
    }
}

/// Where stdio streams wait to be claimed by the create or exec call that
/// names their key (the host opens them first; a call waits up to a timeout
/// for a stream that has not arrived yet).
public actor StdioRegistry {
    private var ready: [String: AgentStream] = [:]
    private var waiting: [String: CheckedContinuation<AgentStream?, Never>] = [:]
    /// Most unclaimed streams kept; older ones are reset.
    let capacity: Int

    /// Creates an empty registry.
    public init(capacity: Int = 1024) { self.capacity = capacity }

    /// Offers an arrived stream under `key`. A stream already waiting under
    /// the same key is replaced (and reset).
    public func offer(_ stream: AgentStream, key: String) {
        if let waiter = waiting.removeValue(forKey: key) {
            waiter.resume(returning: stream)
            return
        }
        if let old = ready.updateValue(stream, forKey: key) { old.stream.reset() }
        if ready.count > capacity, let victim = ready.keys.first(where: { $0 != key }) {
            ready.removeValue(forKey: victim)?.stream.reset()
        }
    }

    /// Takes the stream named `key`, waiting up to `timeout` for it.
    public func take(_ key: String, timeout: Duration = .seconds(10)) async throws -> AgentStream {
        if let stream = ready.removeValue(forKey: key) { return stream }
        guard waiting[key] == nil else {
            throw GuestAgentError(.alreadyExists, "stdio stream \(key) is already awaited")
        }
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            await self?.expire(key)
        }
        defer { timer.cancel() }
        let stream = await withCheckedContinuation { waiting[key] = $0 }
        guard let stream else {
            throw GuestAgentError(.failedPrecondition, "stdio stream \(key) did not arrive within \(timeout)")
        }
        return stream
    }

    /// Number of streams not yet claimed.
    public var unclaimedCount: Int { ready.count }

    private func expire(_ key: String) {
        waiting.removeValue(forKey: key)?.resume(returning: nil)
    }
}
