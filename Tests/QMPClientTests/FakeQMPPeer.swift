import Foundation
@testable import QMPClient

/// The QEMU side of a socketpair, driven by the test with blocking calls on a
/// background thread: lets tests send exactly the bytes they want, malformed too.
final class FakeQMPPeer: @unchecked Sendable {
    let fd: Int32
    private var buffer: [UInt8] = []
    private let lock = NSLock()

    static let greeting = #"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}"#

    /// Returns the peer and the client's end of the pair.
    static func make() throws -> (FakeQMPPeer, Int32) {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &fds) == 0 else { throw POSIXError(.EIO) }
        return (FakeQMPPeer(fd: fds[0]), fds[1])
    }

    private init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    func send(_ text: String) {
        sendBytes(Array(text.utf8))
    }

    func sendLine(_ text: String) { send(text + "\r\n") }

    func sendBytes(_ bytes: [UInt8]) {
        var rest = bytes[...]
        while !rest.isEmpty {
            let n = rest.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            rest = rest.dropFirst(n)
        }
    }

    /// Reads one line (blocking, off the cooperative pool).
    func readLine() async -> String? {
        await withCheckedContinuation { c in
            Thread.detachNewThread { c.resume(returning: self.readLineBlocking()) }
        }
    }

    private func readLineBlocking() -> String? {
        lock.lock()
        defer { lock.unlock() }
        while true {
            if let i = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<i], as: UTF8.self)
                buffer.removeFirst(i + 1)
                return line.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            buffer += chunk[..<n]
        }
    }

    /// Reads a command and returns its (name, id as JSON text).
    func readCommand() async throws -> (name: String, id: JSONValue, arguments: JSONValue?) {
        guard let line = await readLine() else { throw POSIXError(.ECONNRESET) }
        let v = try JSONDecoder().decode(JSONValue.self, from: Data(line.utf8))
        return (v["execute"]?.stringValue ?? "", v["id"] ?? .null, v["arguments"])
    }

    func reply(id: JSONValue, _ returnJSON: String = "{}") {
        sendLine(#"{"return": \#(returnJSON), "id": \#(Self.json(id))}"#)
    }

    func replyError(id: JSONValue, cls: String, desc: String) {
        sendLine(#"{"error": {"class": "\#(cls)", "desc": "\#(desc)"}, "id": \#(Self.json(id))}"#)
    }

    static func json(_ v: JSONValue) -> String {
        String(decoding: (try? JSONEncoder().encode(v)) ?? Data("null".utf8), as: UTF8.self)
    }

    /// Greets and answers `qmp_capabilities`.
    func handshake() async throws {
        sendLine(Self.greeting)
        let cmd = try await readCommand()
        guard cmd.name == "qmp_capabilities" else { throw POSIXError(.EPROTO) }
        reply(id: cmd.id)
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }
}

/// A connected client and its fake peer.
func connectedPair(_ configuration: QMPClient.Configuration = .init()) async throws -> (QMPClient, FakeQMPPeer) {
    let (peer, clientFD) = try FakeQMPPeer.make()
    async let client = QMPClient.connect(takingOwnershipOf: clientFD, configuration: configuration)
    try await peer.handshake()
    return (try await client, peer)
}
