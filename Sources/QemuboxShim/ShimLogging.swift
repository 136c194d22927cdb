#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOConcurrencyHelpers
import QemuboxKit

/// A swift-log handler writing logrus-style text lines
/// (`time="…" level=info msg="…" key=value`) to a descriptor: the bundle's `log`
/// FIFO, which containerd reads and copies into its own log, or stderr.
public struct ShimLogHandler: LogHandler {
    /// Where lines go.
    final class Sink: Sendable {
        let fd: Int32
        let lock = NIOLock()
        init(fd: Int32) { self.fd = fd }
        func write(_ line: String) {
            // A reader that is gone loses the line rather than blocking the shim.
            lock.withLock { _ = UnixSocket.write(fd, line) }
        }
    }

    let sink: Sink
    let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]

    init(label: String, sink: Sink, level: Logger.Level) {
        self.label = label
        self.sink = sink
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let level = switch event.level {
        case .trace, .debug: "debug"
        case .info, .notice: "info"
        case .warning: "warning"
        case .error: "error"
        case .critical: "fatal"
        }
        var line = "time=\"\(Self.timestamp())\" level=\(level) msg=\(Self.quote("\(event.message)"))"
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line += " \(key)=\(Self.quote("\(value)"))"
        }
        line += " runtime=io.containerd.qemubox.v1\n"
        sink.write(line)
    }

    static func quote(_ text: String) -> String {
        if !text.isEmpty, text.allSatisfy({ $0.isLetter || $0.isNumber || "-._/:".contains($0) }) { return text }
        var out = "\""
        for c in text {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default: out.append(c)
            }
        }
        return out + "\""
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var t = time_t(now.tv_sec)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", parts.tm_year + 1900, parts.tm_mon + 1,
                      parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, now.tv_nsec)
    }

    /// Opens the bundle's `log` FIFO for writing without blocking (containerd has
    /// its read end open); nil when there is no reader or no FIFO.
    static func openLogFIFO(_ path: String) -> Int32? {
        let fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        return fd
    }

    /// The sink and level of this process (set by the first ``bootstrap(fd:level:)``).
    private static let installed = NIOLockedValueBox<(sink: Sink, level: Logger.Level)?>(nil)

    /// Routes swift-log to `fd` at `level`. Called again (a spare VM's process becoming a
    /// container's shim), lines go to the new `fd` from now on (it takes the first one's
    /// number) and loggers made from now on log at the new level.
    static func bootstrap(fd: Int32, level: Logger.Level) {
        let existing = installed.withLockedValue { current -> Sink? in
            guard let sink = current?.sink else { return nil }
            current = (sink, level)
            return sink
        }
        if let sink = existing {
            if fd != sink.fd {
                _ = sink.lock.withLock { dup2(fd, sink.fd) }
                if fd > 2 { close(fd) }
            }
            return
        }
        let sink = Sink(fd: fd)
        installed.withLockedValue { $0 = (sink, level) }
        LoggingSystem.bootstrap { label in
            ShimLogHandler(label: label, sink: sink, level: installed.withLockedValue { $0?.level } ?? level)
        }
    }
}
