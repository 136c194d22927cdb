// OCISpecBenchmark: config.json decode + encode time per document, OCISpec vs
// Foundation's untyped JSONSerialization vs Go (encoding/json with the
// runtime-spec types containerd uses, and untyped with UseNumber), same input
// files, same run. Build in release:
//
//   swift run -c release OCISpecBenchmark [iterations]
//
// Inputs: `crun spec` output, and the same with a containerd-sized seccomp
// profile (300 syscall rules). Prints a Markdown table for
// Documentation/performance.md.
import Foundation
import OCISpec
import TestSupport

let iterations = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 2000

func microseconds(_ iterations: Int, _ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    for _ in 0..<iterations { try body() }
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return seconds / Double(iterations) * 1e6
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

struct GoResult: Decodable {
    var typed_us: Double
    var untyped_us: Double
}

let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ocispec-bench-\(getpid())").path
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: dir) }

guard let crun = Prerequisite.which("crun") else {
    FileHandle.standardError.write(Data("crun is not installed (scripts/install-deps.sh)\n".utf8))
    exit(1)
}
let generate = Process()
generate.executableURL = URL(fileURLWithPath: crun)
generate.arguments = ["spec"]
generate.currentDirectoryURL = URL(fileURLWithPath: dir)
try generate.run()
generate.waitUntilExit()
let small = try Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))

var big = try RuntimeSpec(json: small)
big.linux?.seccomp = RuntimeSpec.Seccomp(
    defaultAction: "SCMP_ACT_ERRNO",
    architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    syscalls: (0..<300).map { i in
        RuntimeSpec.Syscall(names: ["syscall_\(i)", "syscall_\(i)_alt"], action: "SCMP_ACT_ALLOW",
                            args: i % 10 == 0 ? [.init(index: 0, value: UInt64(i), op: "SCMP_CMP_EQ")] : nil)
    })
big.linux?.seccomp?.defaultErrnoRet = 1
let bigData = try big.jsonData(pretty: true)
try bigData.write(to: URL(fileURLWithPath: dir + "/big.json"))

let peer = try await GoPeer.build("ocispec-peer")

print("| document | OCISpec µs | JSONSerialization µs | Go specs-go µs | Go untyped µs |")
print("|---|---:|---:|---:|---:|")
for (name, data, path) in [("crun spec (\(small.count) B)", small, dir + "/config.json"),
                           ("+ 300-rule seccomp (\(bigData.count) B)", bigData, dir + "/big.json")] {
    var ours: [Double] = [], foundation: [Double] = [], goTyped: [Double] = [], goUntyped: [Double] = []
    let n = data.count > 10_000 ? max(iterations / 10, 10) : iterations
    for _ in 0..<3 {
        ours.append(try microseconds(n) { _ = try RuntimeSpec(json: data).jsonData() })
        foundation.append(try microseconds(n) {
            _ = try JSONSerialization.data(withJSONObject: JSONSerialization.jsonObject(with: data))
        })
        let go = try JSONDecoder().decode(GoResult.self, from: try await GoPeer.run(peer, ["bench", path, "\(n)"]))
        goTyped.append(go.typed_us)
        goUntyped.append(go.untyped_us)
    }
    print(String(format: "| %@ | %.1f | %.1f | %.1f | %.1f |", name, median(ours), median(foundation),
                 median(goTyped), median(goUntyped)))
}
