import ArgumentParser
import Dispatch
import Foundation

/// `qemubox metrics`.
struct MetricsCommand: AsyncParsableCommand {
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

    func run() async throws {
        let configuration = try global.load()
        let collector = MetricsCollector(stateDirectory: configuration.stateDirectory,
                                         cacheDirectory: configuration.cacheDirectory, timeout: .seconds(timeout))
        guard let listen, let (host, port) = MetricsServer.parse(listen) else {
            Output.out(await collector.scrape())
            return
        }
        let server = try await MetricsServer.start(host: host, port: port, collector: collector)
        Output.err("qemubox: serving metrics at http://\(server.address)/metrics\n")
        // Until SIGINT or SIGTERM.
        let (stopped, stop) = AsyncStream<Void>.makeStream()
        let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { stop.yield() }
            source.resume()
            return source
        }
        for await _ in stopped { break }
        for source in sources { source.cancel() }
        await server.close()
    }
}
