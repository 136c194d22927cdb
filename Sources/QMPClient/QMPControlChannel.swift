import Foundation
import NIOCore

/// A short, blocking QMP connection that can pass file descriptors to QEMU
/// (`SCM_RIGHTS`), for the commands that take one: `getfd` (then `migrate fd:NAME`
/// on the same connection), `add-fd`, `netdev_add` with `fd=`.
///
/// QEMU listens on a second monitor (`-chardev socket,server=on,fd=N -mon
/// chardev=…,mode=control`); the caller connects only while it has descriptors to
/// pass, so no event piles up on a connection nobody reads. One command at a time;
/// every call blocks its thread (run it off any event loop and off Swift's
/// cooperative pool, e.g. on `NIOThreadPool`). Lines are bounded by
/// ``maxMessageBytes`` and each read by ``timeout``; events arriving meanwhile are
/// skipped. Not `Sendable`: one owner at a time.
///
/// ```swift
/// let control = try QMPControlChannel(unixSocketPath: "/run/vm/qmp-control.sock")
/// defer { control.close() }
/// _ = try control.execute("getfd", arguments: ["fdname": "state"], passing: fileFD)
/// _ = try control.execute("migrate", arguments: ["uri": "fd:state"])
/// ```
public final class QMPControlChannel {
    /// Largest accepted message.
    public let maxMessageBytes: Int
    /// The greeting QEMU sent.
    public private(set) var greeting: QMPGreeting?
    private var fd: Int32
    private var buffer: [UInt8] = []

    /// Connects to `path`, reads the greeting and negotiates capabilities.
    public init(unixSocketPath path: String, timeout: Duration = .seconds(10), maxMessageBytes: Int = 1 << 20) throws {
        self.maxMessageBytes = maxMessageBytes
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw QMPError(.connectFailed, "socket: \(String(cString: strerror(errno)))") }
        do {
            var tv = timeval(tv_sec: Int(timeout.components.seconds),
                             tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
            for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
                setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size))
            }
            let address: SocketAddress
            do {
                address = try SocketAddress(unixDomainSocketPath: path)
            } catch {
                throw QMPError(.connectFailed, "socket path \(path): \(error)")
            }
            let rc = address.withSockAddr { Glibc.connect(fd, $0, socklen_t($1)) }
            guard rc == 0 else { throw QMPError(.connectFailed, "connect \(path): \(String(cString: strerror(errno)))") }
            guard case .greeting(let g) = try readMessage(skippingEvents: true) else {
                throw QMPError(.protocolViolation, "\(path): no greeting")
            }
            greeting = g
            _ = try execute("qmp_capabilities")
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Closes the connection (idempotent).
    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Runs `command`, passing `descriptor` with it if given (QEMU keeps its own copy; the
    /// caller still owns `descriptor`). Returns the `return` value; a QMP error throws
    /// ``QMPError`` with code `.commandFailed`.
    @discardableResult
    public func execute(_ command: String, arguments: JSONValue? = nil, passing descriptor: Int32? = nil) throws -> JSONValue {
        guard fd >= 0 else { throw QMPError(.connectionClosed, "control channel closed", command: command) }
        var message: [String: JSONValue] = ["execute": .string(command)]
        if let arguments {
            guard case .object = arguments else { throw QMPError(.invalidArgument, "arguments must be an object", command: command) }
            message["arguments"] = arguments
        }
        var line = try JSONEncoder().encode(JSONValue.object(message))
        line.append(UInt8(ascii: "\n"))
        try send(Array(line), descriptor: descriptor, command: command)
        while true {
            switch try readMessage(skippingEvents: true) {
            case .response(_, let result):
                switch result {
                case .success(let value): return value
                case .failure(var error):
                    error.command = command
                    throw error
                }
            case .greeting:
                throw QMPError(.protocolViolation, "a second greeting", command: command)
            case .event:
                continue
            }
        }
    }

    private func send(_ bytes: [UInt8], descriptor: Int32?, command: String) throws {
        var sent = 0
        while sent < bytes.count {
            let n: Int = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                var iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: base + sent), iov_len: raw.count - sent)
                return withUnsafeMutablePointer(to: &iov) { iovp -> Int in
                    var msg = msghdr()
                    msg.msg_iov = iovp
                    msg.msg_iovlen = 1
                    // The descriptor rides on the first byte only.
                    guard sent == 0, let descriptor else { return sendmsg(fd, &msg, Int32(MSG_NOSIGNAL)) }
                    let space = Self.cmsgSpace(MemoryLayout<Int32>.size)
                    var control = [UInt8](repeating: 0, count: space)
                    return control.withUnsafeMutableBytes { c -> Int in
                        guard let cbase = c.baseAddress else { return -1 }
                        let header = cbase.assumingMemoryBound(to: cmsghdr.self)
                        header.pointee.cmsg_level = SOL_SOCKET
                        header.pointee.cmsg_type = Int32(SCM_RIGHTS)
                        header.pointee.cmsg_len = Self.cmsgLength(MemoryLayout<Int32>.size)
                        (cbase + Self.cmsgLength(0)).storeBytes(of: descriptor, as: Int32.self)
                        msg.msg_control = cbase
                        msg.msg_controllen = space
                        return sendmsg(fd, &msg, Int32(MSG_NOSIGNAL))
                    }
                }
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw QMPError(errno == EAGAIN ? .timeout : .connectionClosed,
                               "send: \(String(cString: strerror(errno)))", command: command)
            }
            sent += n
        }
    }

    private static func cmsgAlign(_ n: Int) -> Int { (n + MemoryLayout<Int>.size - 1) & ~(MemoryLayout<Int>.size - 1) }
    private static func cmsgLength(_ n: Int) -> Int { cmsgAlign(MemoryLayout<cmsghdr>.size) + n }
    private static func cmsgSpace(_ n: Int) -> Int { cmsgAlign(MemoryLayout<cmsghdr>.size) + cmsgAlign(n) }

    private func readMessage(skippingEvents: Bool) throws -> QMPIncoming {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { continue }
                let parsed = try QMPIncoming.parse(ByteBuffer(bytes: line))
                if skippingEvents, case .event = parsed { continue }
                return parsed
            }
            guard buffer.count <= maxMessageBytes else {
                throw QMPError(.messageTooLarge, "message exceeds \(maxMessageBytes) bytes without a line end")
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw QMPError(errno == EAGAIN ? .timeout : .connectionClosed, "read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw QMPError(.connectionClosed, "QEMU closed the control channel") }
            buffer += chunk[..<n]
        }
    }
}
