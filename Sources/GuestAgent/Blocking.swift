import NIOPosix

/// Blocking work of the agent's handlers (file systems, mounts, netlink, reads of a
/// layer) runs on NIO's blocking thread pool, never on the event loop that carries the
/// VM's whole connection or on Swift's cooperative pool.
enum Blocking {
    /// Runs `work` on the blocking pool and returns its result.
    static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }
}
