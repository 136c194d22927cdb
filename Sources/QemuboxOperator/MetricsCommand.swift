import ArgumentParser
import Dispatch
import Foundation

/// `qemubox metrics`.
struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "The host's and every VM's metrics in the Prometheus text format: printed once, or served.",
        discussion: """
            Asks each running VM's shim for its metrics (Task API calls and latency, VM starts, \
            the VM's vCPUs and memory, QEMU's CPU time and RSS, each container's CPU and memory \
            in the guest) and adds the host's (VMs, layer cache). With --listen, serves them at \
            http://ADDRESS/metrics, scraped afresh on each request: one scrape target per host.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Serve on HOST:PORT (e.g. 127.0.0.1:9464; port 0 picks one) instead of printing once.",
                               valueName: "host:port"))
    var listen: String?

    @Option(help: "Seconds each shim has to answer.")
    var timeout: Int = 5

    func validate() throws {
        guard (1...60).contains(timeout) else { throw ValidationError("--timeout must be 1…60 seconds") }
        if let listen, MetricsServer.parse(listen) == nil {
            throw ValidationError("--listen wants HOST:PORT, e.g. 127.0.0.1:9464; got \(listen)")
        }
    }

    func run() throws {
        let configuration = try global.load()
        let collector = MetricsCollector(stateDirectory: configuration.stateDirectory,
                                         cacheDirectory: configuration.cacheDirectory, timeout: .seconds(timeout))
        guard let listen, let (host, port) = MetricsServer.parse(listen) else {
            Output.out(try Blocking.run { await collector.scrape() })
            return
        }
        let server = try Blocking.run { try await MetricsServer.start(host: host, port: port, collector: collector) }
        Output.err("qemubox: serving metrics at http://\(server.address)/metrics\n")
        // Until SIGINT or SIGTERM.
        let stop = DispatchSemaphore(value: 0)
        let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            return source
        }
        stop.wait()
        for source in sources { source.cancel() }
        try Blocking.run { await server.close() }
    }
}

/// Runs async work from a synchronous command (the CLI's main thread waits; the work runs on
/// Swift's cooperative pool).
enum Blocking {
    static func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        guard let result = box.result else { throw OperatorError(.system, "async work ended without a result") }
        return try result.get()
    }

    /// Written by the task before the semaphore is signalled, read after the wait.
    private final class ResultBox<T>: @unchecked Sendable {
        var result: Result<T, any Error>?
    }
}
