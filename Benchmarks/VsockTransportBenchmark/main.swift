// yamux throughput: Swift (VsockTransport) against Go hashicorp/yamux in one
// run over a unix socket, and over virtio-serial into a TCG guest.
//
//   swift build -c release -Xswiftc -static-executable --scratch-path .build-guest \
//       --product VsockTransportBenchmark
//   .build-guest/release/VsockTransportBenchmark [--bytes MiB] [--streams N] [--runs N] [--no-vm]
//
// Every transfer goes through `discard N` streams (the receiver counts and
// confirms); the same command protocol is served by both implementations.
import Foundation
import NIOCore
import NIOPosix
import VsockTransport
import VsockTransportTestPeer
import VsockTransportTestVM

struct Options {
    var mebibytes = 256
    var streams = 4
    var runs = 3
    var vm = true
    var vmMebibytes = 16

    init(_ args: [String]) {
        var it = args.dropFirst().makeIterator()
        while let arg = it.next() {
            switch arg {
            case "--bytes": mebibytes = Int(it.next() ?? "") ?? mebibytes
            case "--streams": streams = Int(it.next() ?? "") ?? streams
            case "--runs": runs = Int(it.next() ?? "") ?? runs
            case "--vm-bytes": vmMebibytes = Int(it.next() ?? "") ?? vmMebibytes
            case "--no-vm": vm = false
            default:
                say("usage: VsockTransportBenchmark [--bytes MiB] [--streams N] [--runs N] [--vm-bytes MiB] [--no-vm]")
                exit(2)
            }
        }
    }
}

func run(_ argv: [String], env: [String: String] = [:], cwd: String? = nil) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    var e = ProcessInfo.processInfo.environment
    for (k, v) in env { e[k] = v }
    p.environment = e
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

func buildGoPeer() throws -> String {
    let root = EchoGuestVM.packageRoot
    let out = root + "/.build-peers"
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    let (status, output) = try run(
        ["go", "build", "-o", out + "/yamuxpeer", "."],
        env: ["GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOCACHE": out + "/gocache"],
        cwd: root + "/Tests/VsockTransportTests/GoPeer/yamuxpeer")
    guard status == 0 else { throw VsockTransportError(.ioError, "go build: \(output)") }
    return out + "/yamuxpeer"
}

func swiftServer(path: String) async throws -> any Channel {
    try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .childChannelInitializer { child in
            child.eventLoop.makeCompletedFuture {
                let session = try YamuxSession.makeSession(on: child, role: .server)
                Task { await YamuxTestPeer.serve(session) }
            }
        }
        .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
        .get()
}

func swiftClient(path: String) async throws -> YamuxSession {
    try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(unixDomainSocketPath: path) { channel in
            channel.eventLoop.makeCompletedFuture { try YamuxSession.makeSession(on: channel, role: .client) }
        }
}

/// Starts the Go server on `path`; returns the process.
func goServer(_ peer: String, path: String) async throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: peer)
    p.arguments = ["-listen", path]
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    while !FileManager.default.fileExists(atPath: path) { try await Task.sleep(for: .milliseconds(5)) }
    return p
}

func goClient(_ peer: String, path: String, bytes: Int, streams: Int) throws -> Double {
    let (status, output) = try run([peer, "-connect", path, "-scenario", "bench",
                                    "-bytes", "\(bytes)", "-streams", "\(streams)"])
    let words = output.split(whereSeparator: { $0 == " " || $0 == "\n" })
    guard status == 0, words.count >= 4, words[0] == "OK", let seconds = Double(words[3]) else {
        throw VsockTransportError(.ioError, "Go bench failed: \(output)")
    }
    return seconds
}

/// Prints at once (stdout is a pipe when the output is saved).
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

let options = Options(CommandLine.arguments)
let bytes = options.mebibytes << 20
let dir = NSTemporaryDirectory() + "vsock-bench-\(getpid())"
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: dir) }
let peer = try buildGoPeer()

say("yamux over a unix socket: \(options.mebibytes) MiB over \(options.streams) streams, median of \(options.runs) runs")
var rows: [(String, Double)] = []
for (name, client, server) in [("Go → Go", "go", "go"), ("Swift → Swift", "swift", "swift"),
                               ("Swift → Go", "swift", "go"), ("Go → Swift", "go", "swift")] {
    var times: [Double] = []
    for i in 0..<options.runs {
        let path = "\(dir)/\(client)-\(server)-\(i).sock"
        var goProcess: Process?
        var swiftListener: (any Channel)?
        if server == "go" { goProcess = try await goServer(peer, path: path) } else { swiftListener = try await swiftServer(path: path) }
        if client == "go" {
            times.append(try goClient(peer, path: path, bytes: bytes, streams: options.streams))
        } else {
            let session = try await swiftClient(path: path)
            times.append(try await YamuxTestPeer.discardThroughput(session, bytes: bytes, streams: options.streams))
            await session.close()
        }
        if let goProcess {
            if goProcess.isRunning { kill(goProcess.processIdentifier, SIGKILL) }
            goProcess.waitUntilExit()
        }
        try? await swiftListener?.close().get()
    }
    let mbps = Double(bytes) / 1e6 / median(times)
    rows.append((name, mbps))
    say("  \(name): \(String(format: "%.0f", mbps)) MB/s")
}
let go = rows[0].1, swift = rows[1].1
say("  Swift/Go throughput ratio: \(String(format: "%.2f", swift / go))")

if options.vm {
    let missing = EchoGuestVM.missingPrerequisites()
    if !missing.isEmpty {
        say("virtio-serial under TCG: skipped (missing \(missing.joined(separator: ", ")))")
    } else {
        let vmBytes = options.vmMebibytes << 20
        let vm = try EchoGuestVM(directory: dir)
        defer { vm.stop() }
        let session = try await vm.connect()
        let up = try await YamuxTestPeer.discardThroughput(session, bytes: vmBytes, streams: 1)
        let source = try await session.openStream()
        let start = ContinuousClock.now
        try await source.write(ByteBuffer(string: "source \(vmBytes)\n"))
        var got = 0
        for try await chunk in source.inbound { got += chunk.readableBytes }
        let d = ContinuousClock.now - start
        let down = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        await session.close()
        say("virtio-serial into a TCG guest (\(options.vmMebibytes) MiB, 1 stream):")
        say("  host → guest: \(String(format: "%.1f", Double(vmBytes) / 1e6 / up)) MB/s")
        say("  guest → host: \(String(format: "%.1f", Double(got) / 1e6 / down)) MB/s")
    }
}
