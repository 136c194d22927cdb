#if canImport(Glibc)
import Glibc
#endif

/// Plain detached POSIX threads for vminitd's blocking loops (reaper, signal
/// wait, stdio copies). vminitd uses only FoundationEssentials, which has no
/// `Thread`, so the static guest binary links no ICU.
enum PosixThread {
    /// Starts `body` on a new detached thread; `name` only labels a failure.
    static func start(name: String? = nil, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body: body)).toOpaque()
        var thread = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, CInt(PTHREAD_CREATE_DETACHED))
        defer { pthread_attr_destroy(&attributes) }
        let status = pthread_create(&thread, &attributes, { raw in
            guard let raw else { return nil }
            let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
            box.body()
            return nil
        }, box)
        if status != 0 {
            // No thread: run nothing rather than leak; callers' bodies are loops
            // that must not run inline. Release the box and report on the console.
            Unmanaged<Box>.fromOpaque(box).release()
            PID1.log("cannot start thread \(name ?? ""): errno \(status)")
        }
    }

    private final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(body: @escaping @Sendable () -> Void) {
            self.body = body
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
