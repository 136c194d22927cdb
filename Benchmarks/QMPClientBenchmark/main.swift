// QMPClientBenchmark: QMP command round trips against a real QEMU, QMPClient vs QEMU's own
// Python library `qemu.qmp` (PyPI) on the same QEMU in the same run.
//
//   pip install qemu.qmp==0.0.6        # the peer (optional; skipped if absent)
//   swift run -c release QMPClientBenchmark [iterations]
import Foundation
import QMPClient

let iterations = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 5000
let concurrency = 16

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qmpbench-\(getpid())").path
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: dir) }
let socket = dir + "/qmp.sock"
let qemu = Process()
qemu.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-system-x86_64")
qemu.arguments = ["-M", "none", "-nodefaults", "-no-user-config", "-display", "none", "-S",
                  "-qmp", "unix:\(socket),server=on,wait=off"]
try qemu.run()
defer {
    kill(qemu.processIdentifier, SIGKILL)
    qemu.waitUntilExit()
}

var client: QMPClient?
for _ in 0..<400 where client == nil {
    client = try? await QMPClient.connect(unixSocketPath: socket)
    if client == nil { try await Task.sleep(for: .milliseconds(25)) }
}
guard let qmp = client else { fatalError("no QMP") }
for _ in 0..<200 { _ = try await qmp.queryStatus() }

var latencies: [Double] = []
latencies.reserveCapacity(iterations)
let clock = ContinuousClock()
let seqStart = clock.now
for _ in 0..<iterations {
    let t = clock.now
    _ = try await qmp.queryStatus()
    let d = clock.now - t
    latencies.append(Double(d.components.attoseconds) / 1e12 + Double(d.components.seconds) * 1e6)
}
let seqElapsed = clock.now - seqStart
latencies.sort()
let concStart = clock.now
try await withThrowingTaskGroup(of: Void.self) { group in
    for _ in 0..<concurrency {
        group.addTask { for _ in 0..<(iterations / concurrency) { _ = try await qmp.queryStatus() } }
    }
    try await group.waitForAll()
}
let concElapsed = clock.now - concStart
await qmp.close()

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
struct Row { var name: String; var seqOps: Double; var p50: Double; var p99: Double; var concOps: Double }
var rows = [Row(name: "QMPClient (Swift, NIO)", seqOps: Double(iterations) / seconds(seqElapsed),
                p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99),
                concOps: Double(iterations / concurrency * concurrency) / seconds(concElapsed))]

// The peer: qemu.qmp, QEMU's asyncio QMP library, on the same QEMU.
let peerScript = #"""
import asyncio, json, sys, time
from qemu.qmp import QMPClient
async def main(path, n, conc):
    q = QMPClient('bench')
    await q.connect(path)
    for _ in range(200): await q.execute('query-status')
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter(); await q.execute('query-status'); lat.append((time.perf_counter() - t) * 1e6)
    seq = time.perf_counter() - t0
    async def worker():
        for _ in range(n // conc): await q.execute('query-status')
    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(conc)])
    par = time.perf_counter() - t0
    await q.disconnect()
    lat.sort()
    print(json.dumps({"seq": n / seq, "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)], "conc": (n // conc * conc) / par}))
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""#
let scriptPath = dir + "/peer.py"
try peerScript.write(toFile: scriptPath, atomically: true, encoding: .utf8)
let py = Process()
py.executableURL = URL(fileURLWithPath: "/usr/bin/env")
py.arguments = ["python3", scriptPath, socket, "\(iterations)", "\(concurrency)"]
let out = Pipe()
py.standardOutput = out
py.standardError = FileHandle.nullDevice
try py.run()
let data = out.fileHandleForReading.readDataToEndOfFile()
py.waitUntilExit()
if py.terminationStatus == 0,
   let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Double] {
    rows.append(Row(name: "qemu.qmp 0.0.6 (Python asyncio)", seqOps: obj["seq"] ?? 0, p50: obj["p50"] ?? 0,
                    p99: obj["p99"] ?? 0, concOps: obj["conc"] ?? 0))
} else {
    print("peer skipped: `pip install qemu.qmp==0.0.6` to compare")
}

print("query-status round trips against QEMU \(qmp.greeting.versionString) (-M none), \(iterations) each")
print("| client | sequential ops/s | p50 µs | p99 µs | \(concurrency) concurrent ops/s |")
print("|---|---:|---:|---:|---:|")
for r in rows {
    print(String(format: "| %@ | %.0f | %.0f | %.0f | %.0f |", r.name, r.seqOps, r.p50, r.p99, r.concOps))
}
