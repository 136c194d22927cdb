/// What a yamux stream to the guest agent carries, announced by the host in the
/// stream's first line.
///
/// The host opens every stream. Its first bytes are one header line
/// (`qemubox ttrpc\n` or `qemubox stdio KEY\n`, at most ``maxLength`` bytes);
/// whatever follows belongs to the stream's payload. A ttrpc stream is answered
/// with ``GuestAgentProtocol/ttrpcReady`` once the guest's ttrpc server owns it,
/// and the host starts its ttrpc client only after reading that line, so no
/// request can be consumed by the header reader.
///
/// A stdio stream's KEY is the string the host put into `stdin`, `stdout` or
/// `stderr` of a `CreateTaskRequest` or `ExecProcessRequest`; the guest pairs the
/// stream with the process's fd by that key. Stdio streams are opened before the
/// create or exec call that names them.
public enum GuestStreamHeader: Sendable, Hashable {
    /// The agent's ttrpc connection.
    case ttrpc
    /// One stdio stream of one process, named by the key used in the task API.
    case stdio(key: String)

    /// Longest header line accepted, newline included.
    public static let maxLength = 512

    /// The header line, newline included.
    public var line: String {
        switch self {
        case .ttrpc: return "qemubox ttrpc\n"
        case .stdio(let key): return "qemubox stdio \(key)\n"
        }
    }

    /// The header line as bytes.
    public var bytes: [UInt8] { Array(line.utf8) }

    /// Why a header line was refused.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        /// Human-readable reason, with the offending text.
        public let description: String
    }

    /// Parses a header line (with or without its newline).
    public static func parse(_ line: some StringProtocol) throws(ParseError) -> GuestStreamHeader {
        var text = Substring(line)
        if text.hasSuffix("\n") { text = text.dropLast() }
        guard text.utf8.count < maxLength else {
            throw ParseError(description: "stream header longer than \(maxLength) bytes")
        }
        let words = text.split(separator: " ", omittingEmptySubsequences: false)
        guard words.first == "qemubox" else {
            throw ParseError(description: "not a qemubox stream header: \(text.debugDescription)")
        }
        switch (words.count, words.dropFirst().first) {
        case (2, "ttrpc"):
            return .ttrpc
        case (3, "stdio") where !words[2].isEmpty && isValidKey(words[2]):
            return .stdio(key: String(words[2]))
        default:
            throw ParseError(description: "unknown qemubox stream header: \(text.debugDescription)")
        }
    }

    /// Keys are printable ASCII without spaces (e.g. `ctr1/exec2/stdout`).
    public static func isValidKey(_ key: some StringProtocol) -> Bool {
        !key.isEmpty && key.utf8.count <= 256 && key.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
    }
}

/// Fixed names and paths shared by the host (QemuboxKit) and the guest agent.
public enum GuestAgentProtocol {
    /// The virtio-serial port name (and vsock port's role) of the agent's pipe.
    public static let portName = "org.qemubox.agent"
    /// The vsock port the agent listens on when the host has vhost-vsock.
    public static let vsockPort: UInt32 = 1024
    /// The guest's answer to a ttrpc stream header.
    public static let ttrpcReady = "ok\n"
    /// Where bundles live in the guest: `<bundleRoot>/<container id>` holds
    /// `config.json` and `rootfs/`.
    public static let bundleRoot = "/run/qemubox/bundles"
    /// Prefix of a mount source naming a virtio-blk disk by its serial.
    public static let diskSourcePrefix = "disk:"
    /// The agent's version string, reported by `System/Info`.
    public static let version = "0.1.0"
}
