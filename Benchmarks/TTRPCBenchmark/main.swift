// TTRPCBenchmark: ttrpc round trips/s and throughput, Swift server vs Go
// server (github.com/containerd/ttrpc 1.1.1), both driven by the same Go
// client in the same run, on unix sockets. Build in release:
//
//   swift run -c release TTRPCBenchmark [seconds-per-run]
//   swift run -c release TTRPCBenchmark --serve PATH    (the Swift server alone, for perf)
//
// Prints a Markdown table (medians of 3 alternating runs) for
// Documentation/performance.md.
import EchoService
import Foundation
import TestSupport
import TTRPCCodec

struct BenchResult: Decodable {
    var calls: Int
    var failures: Int
    var seconds: Double
    var calls_per_sec: Double
    var mb_per_sec: Double
    /// The Go client's own CPU time over the run.
    var cpu_seconds: Double
}

/// CPU seconds (user + system) this process has used: the Swift server's, while a Go
/// client drives it (nothing else here runs meanwhile).
func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// CPU seconds another process has used, from `/proc/PID/stat` (utime + stime, in ticks).
func processCPUSeconds(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let end = stat.lastIndex(of: ")") else { return .nan }
    // Fields after the command name start at field 3; utime and stime are fields 14 and 15.
    let fields = stat[stat.index(after: end)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return .nan }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

// Run it with glibc's allocator thresholds fixed (see Documentation/performance.md):
//   MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456 TTRPCBenchmark 3
// Otherwise glibc returns freed memory to the kernel whenever the top of the heap holds
// more than a trim threshold that follows the largest buffer freed so far: with 1 MiB
// messages the server then faults every buffer back in on each call, or not, depending
// on which buffers happen to be alive together (one build measured 0.8 or 3.3 ms per
// call). Go's heap keeps its pages.
let arguments = CommandLine.arguments

// `TTRPCBenchmark --serve PATH`: only the Swift echo server, until killed (for profiling it
// under `perf record -p` while `ttrpc-peer bench` drives it).
if arguments.count == 3, arguments[1] == "--serve" {
    let server = TTRPCServer(services: [EchoService.make()])
    try await server.bind(unixDomainSocketPath: arguments[2])
    print("serving on \(arguments[2])")
    while true { try await Task.sleep(for: .seconds(3600)) }
}

let seconds = arguments.dropFirst().first.flatMap(Double.init) ?? 3
let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ttrpc-bench-\(getpid())").path
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: dir) }

let peer = try await GoPeer.build("ttrpc-peer")
let swiftSocket = dir + "/swift.sock"
let goSocket = dir + "/go.sock"
let server = TTRPCServer(services: [EchoService.make()])
try await server.bind(unixDomainSocketPath: swiftSocket)
let goServer = try await PeerProcess.start(peer, ["server", "-socket", goSocket])
defer { goServer.stop() }

/// One Go-client run against `socket`, with the server's CPU seconds over it.
func goBench(_ socket: String, size: Int, concurrency: Int) async throws -> (BenchResult, serverCPU: Double) {
    let serverCPU = { socket == swiftSocket ? ownCPUSeconds() : processCPUSeconds(goServer.pid) }
    let before = serverCPU()
    let out = try await GoPeer.run(peer, ["bench", "-socket", socket, "-duration", "\(seconds)s",
                                    "-size", "\(size)", "-concurrency", "\(concurrency)"])
    let used = serverCPU() - before
    return (try JSONDecoder().decode(BenchResult.self, from: out), used)
}

func swiftClientBench(_ socket: String, size: Int, concurrency: Int) async throws -> Double {
    let client = try await TTRPCClient.connect(unixDomainSocketPath: socket)
    let request = {
        var request = EchoRequest()
        request.payload = Data(count: size)
        return request
    }()
    let end = ContinuousClock.now + .seconds(seconds)
    let start = ContinuousClock.now
    let calls = try await withThrowingTaskGroup(of: Int.self) { group in
        for _ in 0..<concurrency {
            group.addTask {
                var count = 0
                while ContinuousClock.now < end {
                    _ = try await client.call(service: echoServiceName, method: "Echo", request: request,
                                              as: EchoResponse.self)
                    count += 1
                }
                return count
            }
        }
        return try await group.reduce(0, +)
    }
    let elapsed = ContinuousClock.now - start
    try await client.close()
    return Double(calls) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

var cpuRows: [String] = []
print("| scenario | Swift server | Go server | Swift / Go |")
print("|---|---|---|---|")
let scenarios: [(String, Int, Int, Bool)] = [
    ("unary round trips/s, empty payload, 1 caller", 0, 1, false),
    ("unary round trips/s, empty payload, 16 callers", 0, 16, false),
    ("throughput MB/s, 1 MiB payload echoed, 4 callers", 1 << 20, 4, true),
]
for (name, size, concurrency, megabytes) in scenarios {
    var swiftRuns: [Double] = []
    var goRuns: [Double] = []
    // CPU microseconds per call: [server, client] for each server.
    var swiftCPU: [[Double]] = [[], []]
    var goCPU: [[Double]] = [[], []]
    for round in 0..<3 {
        // Alternate which server goes first to spread any warm-up or noise.
        let order = round % 2 == 0 ? [swiftSocket, goSocket] : [goSocket, swiftSocket]
        for socket in order {
            let (result, serverCPU) = try await goBench(socket, size: size, concurrency: concurrency)
            precondition(result.failures == 0, "benchmark calls failed")
            let value = megabytes ? result.mb_per_sec : result.calls_per_sec
            let perCall = [serverCPU, result.cpu_seconds].map { $0 * 1e6 / Double(max(result.calls, 1)) }
            if socket == swiftSocket {
                swiftRuns.append(value)
                for i in 0..<2 { swiftCPU[i].append(perCall[i]) }
            } else {
                goRuns.append(value)
                for i in 0..<2 { goCPU[i].append(perCall[i]) }
            }
        }
    }
    let (s, g) = (median(swiftRuns), median(goRuns))
    print(String(format: "| Go client → %@ | %.0f | %.0f | %.2f× |", name, s, g, s / g))
    cpuRows.append(String(format: "| %@ | %.1f | %.1f | %.2f× | %.1f | %.1f |", name,
                          median(swiftCPU[0]), median(goCPU[0]), median(swiftCPU[0]) / median(goCPU[0]),
                          median(swiftCPU[1]), median(goCPU[1])))
}
// The Swift client against both servers.
var swiftToSwift: [Double] = []
var swiftToGo: [Double] = []
for _ in 0..<3 {
    swiftToSwift.append(try await swiftClientBench(swiftSocket, size: 0, concurrency: 16))
    swiftToGo.append(try await swiftClientBench(goSocket, size: 0, concurrency: 16))
}
print(String(format: "| Swift client → unary round trips/s, empty payload, 16 callers | %.0f | %.0f | %.2f× |",
             median(swiftToSwift), median(swiftToGo), median(swiftToSwift) / median(swiftToGo)))

// Server streaming (protocol 1.2; Go ttrpc 1.1.1 has none): Swift ↔ Swift only.
// ttrpc has no flow control: a consumer slower than the server buffers the difference. The
// stream is 256 MiB; the client's default caps (16 MiB per stream) would end it with
// ResourceExhausted, so the benchmark lifts them to measure throughput.
var streamConfiguration = TTRPCClient.Configuration()
streamConfiguration.maxBufferedStreamBytes = 512 << 20
streamConfiguration.maxBufferedBytes = 512 << 20
streamConfiguration.maxBufferedStreamMessages = 1 << 16
let client = try await TTRPCClient.connect(unixDomainSocketPath: swiftSocket, configuration: streamConfiguration)
var count = CountRequest()
count.count = 4096
count.size = 64 << 10
var streamRuns: [Double] = []
for _ in 0..<3 {
    let start = ContinuousClock.now
    var bytes = 0
    for try await message in try await client.serverStream(service: echoServiceName, method: "Count",
                                                           request: count, as: CountResponse.self) {
        bytes += message.payload.count
    }
    let elapsed = ContinuousClock.now - start
    streamRuns.append(Double(bytes) / 1e6
                      / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
}
try await client.close()
print(String(format: "| Swift client ← Swift server, server-streaming MB/s (64 KiB messages) | %.0f | n/a | — |",
             median(streamRuns)))
print("")
print("CPU time per call, µs (medians; the Go client's own, and the server process's):")
print("")
print("| scenario | Swift server | Go server | Swift / Go | Go client (→ Swift) | Go client (→ Go) |")
print("|---|---|---|---|---|---|")
for row in cpuRows { print(row) }
await server.shutdown()
