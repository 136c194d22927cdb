import Foundation
import NIOCore
import NIOPosix
import TestSupport
import VsockTransport
import VsockTransportTestPeer

/// Builds (once per test process) and runs the Go hashicorp/yamux peer.
enum GoYamuxPeer {
    static let packageRoot: String = {
        // .../Tests/VsockTransportTests/Support/GoYamuxPeer.swift → package root
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    static var available: Bool {
        Prerequisite.tools("go") && (FileManager.default.fileExists(
            atPath: "/usr/share/gocode/src/github.com/hashicorp/yamux/session.go") || Prerequisite.isCI)
    }

    private static let builder = Builder()

    actor Builder {
        var path: String?
        func build() async throws -> String {
            if let path { return path }
            let out = GoYamuxPeer.packageRoot + "/.build-peers"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let binary = out + "/yamuxpeer"
            let result = try await ProcessRunner.runAsync(
                ["go", "build", "-o", binary, "."],
                cwd: GoYamuxPeer.packageRoot + "/Tests/VsockTransportTests/GoPeer/yamuxpeer",
                env: ["GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOFLAGS": "",
                      "GOCACHE": out + "/gocache"])
            guard result.status == 0 else {
                throw VsockTransportError(.ioError, "go build of yamuxpeer failed: \(result.output)")
            }
            path = binary
            return binary
        }
    }

    static func binary() async throws -> String { try await builder.build() }

    /// Runs the Go peer as a yamux client against a Swift server at `socketPath`
    /// (which must already listen) and returns its output.
    static func runClient(socketPath: String, scenario: String, extra: [String] = []) async throws -> ProcessRunner.Result {
        let bin = try await binary()
        return try await ProcessRunner.runAsync([bin, "-connect", socketPath, "-scenario", scenario] + extra)
    }

    /// Starts the Go peer as a yamux server on `socketPath`, connects to it and
    /// runs `body` with a Swift client session; kills the peer afterwards.
    static func withServer<T: Sendable>(
        in dir: String, extra: [String] = [], configuration: YamuxConfiguration = .init(),
        _ body: (YamuxSession) async throws -> T
    ) async throws -> T {
        let bin = try await binary()
        let socketPath = dir + "/go.sock"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: bin)
        process.arguments = ["-listen", socketPath] + extra
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: socketPath) {
            guard Date() < deadline, process.isRunning else {
                throw VsockTransportError(.connectFailed, "Go yamux peer did not listen on \(socketPath)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let session = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(unixDomainSocketPath: socketPath) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try YamuxSession.makeSession(on: channel, role: .client, configuration: configuration)
                }
            }
        do {
            let result = try await body(session)
            await session.close()
            return result
        } catch {
            await session.close()
            throw error
        }
    }
}

/// A Swift yamux server on a unix socket serving the test command protocol on
/// every connection.
final class SwiftYamuxServer: Sendable {
    let channel: any Channel
    let path: String

    init(path: String, configuration: YamuxConfiguration = .init()) async throws {
        self.path = path
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    let session = try YamuxSession.makeSession(on: child, role: .server, configuration: configuration)
                    Task { await YamuxTestPeer.serve(session) }
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
            .get()
    }

    func close() async {
        try? await channel.close()
    }
}
