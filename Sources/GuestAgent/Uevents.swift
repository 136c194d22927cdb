#if canImport(Glibc)
import Glibc
#endif
import CGuestAgentSupport

/// Waiting for something the kernel announces with a uevent (a disk or a CPU the host
/// added to the running VM).
enum Uevents {
    /// Returns `look()`'s first non-nil answer, looking again whenever uevents arrive,
    /// for at most `wait`; nil when time runs out. Listens before the second look, so an
    /// event between two looks is not missed. Without a uevent socket (the agent is not
    /// PID 1 of a guest) it looks every 50 ms.
    static func wait<T>(for wait: Duration, _ look: () -> T?) -> T? {
        if let found = look() { return found }
        let events = qb_uevent_open()
        defer { if events >= 0 { close(events) } }
        let deadline = ContinuousClock.now + wait
        while ContinuousClock.now < deadline {
            if let found = look() { return found }
            let left = deadline - ContinuousClock.now
            let milliseconds = Int32(clamping: max(1, left.components.seconds * 1000
                + left.components.attoseconds / 1_000_000_000_000_000))
            if events < 0 || qb_uevent_wait(events, milliseconds) < 0 {
                var pause = timespec(tv_sec: 0, tv_nsec: 50_000_000)
                nanosleep(&pause, nil)
            }
        }
        return look()
    }
}
