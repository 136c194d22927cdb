#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import QemuboxKit

/// Puts a terminal into raw mode and restores it (once).
final class TerminalMode: @unchecked Sendable {
    private let fd: Int32
    private var saved: termios?

    init?(fd: Int32) {
        self.fd = fd
        var original = termios()
        guard tcgetattr(fd, &original) == 0 else { return nil }
        saved = original
        var raw = original
        cfmakeraw(&raw)
        tcsetattr(fd, TCSANOW, &raw)
    }

    func restore() {
        guard var original = saved else { return }
        tcsetattr(fd, TCSANOW, &original)
        saved = nil
    }
}

/// Delivers this terminal's size now and after every SIGWINCH.
enum WindowWatcher {
    nonisolated(unsafe) static var source: (any DispatchSourceSignal)?

    static func current() -> WindowSize? {
        var size = winsize()
        guard ioctl(1, UInt(TIOCGWINSZ), &size) == 0 || ioctl(0, UInt(TIOCGWINSZ), &size) == 0 else { return nil }
        return WindowSize(rows: size.ws_row, columns: size.ws_col)
    }

    static func start() -> AsyncStream<WindowSize> {
        let (stream, continuation) = AsyncStream.makeStream(of: WindowSize.self, bufferingPolicy: .bufferingNewest(1))
        if let size = current() { continuation.yield(size) }
        signal(SIGWINCH, SIG_IGN)
        let signals = DispatchSource.makeSignalSource(signal: SIGWINCH)
        signals.setEventHandler {
            if let size = current() { continuation.yield(size) }
        }
        signals.resume()
        source = signals
        return stream
    }
}
