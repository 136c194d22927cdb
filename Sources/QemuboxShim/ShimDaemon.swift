#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import QemuboxKit
import TTRPCCodec

/// The shim daemon: serves the Task API on the socket `start` chose, publishes
/// events to containerd, and exits after `Shutdown` (or SIGTERM/SIGINT, which
/// kill the VM first).
enum ShimDaemon {
    /// Serves until shutdown. `spare`: this process started a spare VM and was claimed for
    /// `arguments`' task (``ShimSpare``); readiness goes to the claim's connection.
    static func run(_ arguments: ShimArguments, environment: [String: String], spare: SpareHandoff? = nil) async throws {
        signal(SIGPIPE, SIG_IGN)
        let readyFD: Int32 = spare?.answer ?? 3
        let ready = fcntl(readyFD, F_GETFD) >= 0
        func answer(_ text: String) {
            guard ready else { return }
            let line = Array((text + "\n").utf8)
            _ = line.withUnsafeBytes { write(readyFD, $0.baseAddress, $0.count) }
            close(readyFD)
        }
        let configuration: QemuboxConfiguration
        let paths: ShimPaths
        do {
            configuration = try QemuboxShim.configuration(environment)
            paths = try ShimPaths(stateRoot: configuration.stateDirectory, namespace: arguments.namespace,
                                  id: arguments.id)
        } catch {
            answer("\(error)")
            throw error
        }
        let level: Logger.Level = arguments.debug ? .debug : Logger.Level(rawValue: configuration.logLevel) ?? .info
        if let fd = ShimLogHandler.openLogFIFO("log") {
            ShimLogHandler.bootstrap(fd: fd, level: level)
        } else {
            ShimLogHandler.bootstrap(fd: 2, level: level)
        }
        var logger = Logger(label: "qemubox.shim")
        logger[metadataKey: "id"] = "\(arguments.id)"
        logger[metadataKey: "namespace"] = "\(arguments.namespace)"
        let publisher = EventPublisher(address: environment["TTRPC_ADDRESS"] ?? "", namespace: arguments.namespace,
                                       logger: logger)
        let (stopped, stop) = AsyncStream<Void>.makeStream()
        let service = ShimTaskService(context: ShimContext(
            namespace: arguments.namespace, id: arguments.id, configuration: configuration, paths: paths,
            publisher: publisher, logger: logger, environment: environment, spare: spare?.sandbox,
            spareDirectory: spare?.directory, onShutdown: { stop.yield() }))
        var serverConfiguration = TTRPCServer.Configuration()
        serverConfiguration.startsHandlersOnEventLoop = false
        let metrics = ShimMetrics.bootstrap()
        let tracing = ShimTracing.bootstrap(configuration.tracing, logger: logger)
        serverConfiguration.tracesRequests = tracing != nil
        let server = TTRPCServer(
            services: [metrics.instrument(service.ttrpcService), metrics.service { await service.metrics() }],
            configuration: serverConfiguration, logger: logger)
        do {
            try FileManager.default.createDirectory(atPath: paths.stateDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            try ShimRecord(namespace: arguments.namespace, id: arguments.id,
                           bundle: FileManager.default.currentDirectoryPath, shimPid: getpid(),
                           socket: arguments.socket, spareDirectory: spare?.directory).write(to: paths)
            try await server.bind(unixDomainSocketPath: arguments.socket)
        } catch {
            answer("cannot serve on \(arguments.socket): \(error)")
            throw error
        }
        answer("ok")
        logger.info("serving", metadata: ["socket": "\(arguments.socket)", "version": "\(QemuboxShim.version)",
                                          "spare": "\(spare.map { ($0.directory as NSString).lastPathComponent } ?? "none")"])

        // SIGTERM/SIGINT: stop the VM and leave.
        let signals = [SIGTERM, SIGINT].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { stop.yield() }
            source.resume()
            return source
        }
        defer { for source in signals { source.cancel() } }

        for await _ in stopped { break }
        logger.info("shutting down")
        await service.terminate()
        await tracing?.shutdown(timeout: .seconds(5))
        await publisher.close(timeout: .seconds(5))
        await server.shutdown(gracePeriod: .seconds(2))
        unlink(arguments.socket)
    }
}
