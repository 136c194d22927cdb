import Foundation
import NIOCore
import NIOPosix
import VsockTransport
import VsockTransportTestPeer

/// A hand-driven yamux peer on one end of a socketpair; the other end runs a
/// Swift ``YamuxSession``. Lets tests send arbitrary (hostile) bytes.
final class RawPeer: @unchecked Sendable {
    let fd: CInt
    let session: YamuxSession

    struct Frame: Equatable {
        var version: UInt8 = 0
        var type: UInt8
        var flags: UInt16
        var streamID: UInt32
        var length: UInt32
        var payload: [UInt8] = []
    }

    static let data: UInt8 = 0, windowUpdate: UInt8 = 1, ping: UInt8 = 2, goAway: UInt8 = 3
    static let syn: UInt16 = 1, ack: UInt16 = 2, fin: UInt16 = 4, rst: UInt16 = 8

    private var inbound: [UInt8] = []

    private init(fd: CInt, session: YamuxSession) {
        self.fd = fd
        self.session = session
    }

    /// A Swift session (with `role`) connected to a raw peer. The session serves
    /// the test command protocol when `serve` is set.
    static func make(role: YamuxRole = .server, configuration: YamuxConfiguration = .init(),
                     serve: Bool = false) async throws -> RawPeer {
        var fds: [CInt] = [0, 0]
        guard socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            throw VsockTransportError(.ioError, "socketpair: \(errno)")
        }
        let session = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .withConnectedSocket(fds[0]) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try YamuxSession.makeSession(on: channel, role: role, configuration: configuration)
                }
            }
        if serve { Task { await YamuxTestPeer.serve(session) } }
        return RawPeer(fd: fds[1], session: session)
    }

    deinit { close(fd) }

    static func encode(_ f: Frame) -> [UInt8] {
        var b: [UInt8] = [f.version, f.type, UInt8(f.flags >> 8), UInt8(f.flags & 0xff)]
        for shift in stride(from: 24, through: 0, by: -8) { b.append(UInt8((f.streamID >> UInt32(shift)) & 0xff)) }
        for shift in stride(from: 24, through: 0, by: -8) { b.append(UInt8((f.length >> UInt32(shift)) & 0xff)) }
        return b + f.payload
    }

    func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw VsockTransportError(.ioError, "raw peer write: \(errno)")
            }
            off += n
        }
    }

    func send(_ frame: Frame) throws { try send(Self.encode(frame)) }

    /// Reads whatever arrives within `timeout`; returns false at EOF.
    @discardableResult
    func pump(timeout: Double) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) > 0 else { return true }
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = read(fd, &buf, buf.count)
        if n <= 0 { return false }
        inbound += buf[0..<n]
        return true
    }

    /// The next frame from the Swift side, or nil on EOF/timeout (waits off the
    /// cooperative pool).
    func nextFrame(timeout: Double = 5) async throws -> Frame? {
        try await offPool { self.nextFrameBlocking(timeout: timeout) }
    }

    /// All frames until EOF (nil if the pipe stayed open past `timeout`), waiting
    /// off the cooperative pool.
    func framesUntilEOF(timeout: Double = 5) async throws -> [Frame]? {
        try await offPool { self.framesUntilEOFBlocking(timeout: timeout) }
    }

    private func nextFrameBlocking(timeout: Double) -> Frame? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if inbound.count >= 12 {
                let len = inbound[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                let type = inbound[1]
                let need = 12 + (type == Self.data ? Int(len) : 0)
                if inbound.count >= need {
                    let f = Frame(version: inbound[0], type: type,
                                  flags: UInt16(inbound[2]) << 8 | UInt16(inbound[3]),
                                  streamID: inbound[4..<8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) },
                                  length: len, payload: Array(inbound[12..<need]))
                    inbound.removeFirst(need)
                    return f
                }
            }
            guard Date() < deadline, pump(timeout: 0.05) else { return nil }
        }
    }

    private func framesUntilEOFBlocking(timeout: Double) -> [Frame]? {
        let deadline = Date().addingTimeInterval(timeout)
        var frames: [Frame] = []
        while Date() < deadline {
            if let f = nextFrameBlocking(timeout: 0.05) {
                frames.append(f)
                continue
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 10) > 0 {
                var b: UInt8 = 0
                if read(fd, &b, 1) == 0 { return frames }
                inbound.append(b)
            }
        }
        return nil
    }
}
