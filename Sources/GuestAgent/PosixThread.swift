#if canImport(Glibc)
import Glibc
#endif
import ProcessSpawn

/// Detached threads for vminitd's blocking loops (reaper, signal wait, stdio copies),
/// through ProcessSpawn's ``DetachedThread`` (vminitd uses only FoundationEssentials,
/// which has no `Thread`). A thread that cannot be started is reported on the console.
enum PosixThread {
    /// Starts `body` on a new detached thread; `name` only labels a failure. Without a
    /// thread nothing runs: callers' bodies are loops that must not run inline.
    static func start(name: String? = nil, _ body: @escaping @Sendable () -> Void) {
        if !DetachedThread.start(body) {
            PID1.log("cannot start thread \(name ?? "")")
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing whitespace and newlines (what
    /// Foundation's `trimmingCharacters(in: .whitespacesAndNewlines)` does for
    /// the ASCII and Unicode white space vminitd reads from /proc, /sys and crun).
    func trimmedWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[first...last])
        return String(view)
    }
}
