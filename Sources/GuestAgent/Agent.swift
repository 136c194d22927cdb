#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Instrumentation
import NIOCore
import QemuboxAPI
import TTRPCCodec
import VsockTransport

/// The guest agent: serves the host over the VM's pipe (a yamux session on
/// the virtio-serial port ``GuestAgentProtocol/portName``), routing each
/// stream by its header line — `ttrpc` to the System and Task services,
/// `stdio KEY` to the stdio registry.
public final class GuestAgent: Sendable {
    /// The outgoing event queue (System/Events drains it).
    public let events: EventQueue
    /// Stdio streams waiting for their create/exec call.
    public let registry: StdioRegistry
    /// containerd's task service.
    public let tasks: TaskService
    /// qemubox's system service.
    public let system: SystemService
    let server: TTRPCServer

    /// Creates the agent; `onShutdown` is called for System/Shutdown. `runtimeVersion`
    /// is asked for lazily (System/Info), so that it may still be running.
    public init(runtimeVersion: @escaping @Sendable () async -> String, onShutdown: @escaping @Sendable (String) -> Void) {
        events = EventQueue()
        registry = StdioRegistry()
        tasks = TaskService(registry: registry, events: events)
        system = SystemService(events: events, runtimeVersion: runtimeVersion, onShutdown: onShutdown)
        var configuration = TTRPCServer.Configuration()
        // A server span per call, recorded only when the host's request carries a traceparent.
        configuration.tracesRequests = true
        server = TTRPCServer(services: [system.ttrpcService, tasks.ttrpcService], configuration: configuration)
    }

    /// Serves one yamux session until it ends.
    public func serve(session: YamuxSession) async {
        await withTaskGroup(of: Void.self) { group in
            do {
                for try await stream in session.inboundStreams {
                    group.addTask { await self.handle(stream) }
                }
            } catch {
                PID1.log("session ended: \(error)")
            }
        }
    }

    /// Reads a stream's header and routes it.
    func handle(_ stream: YamuxStream) async {
        do {
            let (header, wrapped) = try await AgentStream.readHeader(of: stream)
            PID1.debugLog("stream \(stream.id): \(header.line.dropLast())")
            switch header {
            case .ttrpc:
                let channel = try await stream.makeChannel(startReading: false)
                try await server.serve(channel: channel)
                try await stream.write(Array(GuestAgentProtocol.ttrpcReady.utf8))
                stream.startReadingChannel()
            case .stdio(let key):
                await registry.offer(wrapped, key: key)
            }
        } catch {
            PID1.log("stream \(stream.id) refused: \(error)")
            stream.reset()
        }
    }

    /// Connects to the host over the named virtio-serial port and serves each
    /// connection in turn, forever.
    public func run(portName: String = GuestAgentProtocol.portName) async -> Never {
        var failures = 0
        while true {
            do {
                let session = try await VirtioSerialPort.connect(named: portName, timeout: .seconds(3600))
                failures = 0
                await serve(session: session)
            } catch {
                failures += 1
                if failures == 1 || failures % 50 == 0 { PID1.log("agent port \(portName): \(error)") }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// The guest as PID 1 after ``PID1/prepare()``: reaper, signals, the agent.
    /// Never returns; anything fatal powers the VM off with the reason on the console.
    public static func runAsPID1(controllers: [String]) async -> Never {
        Reaper.shared.start()
        let shutdown: @Sendable (String) -> Void = { reason in PID1.powerOff(reason: reason) }
        PID1.watchSignals(onShutdown: shutdown)
        // `crun --version` runs beside the host's connection instead of before it: it
        // answers System/Info and pages crun and its libraries in for the first create.
        let version = Task { await Runtime().version() }
        PID1.log("agent \(GuestAgentProtocol.version) up; cgroup controllers: \(controllers.joined(separator: " "))")
        let agent = GuestAgent(runtimeVersion: { await version.value }, onShutdown: shutdown)
        InstrumentationSystem.bootstrap(GuestTracer(events: agent.events))
        await agent.run()
    }
}
