// ShimBenchmark: `ctr run --rm IMAGE true` latency, qemubox vs runc, in one run,
// against a private containerd 1.6 (own root/state/sockets in a temp dir), plus
// the breakdown of qemubox's time from the shim's own log lines.
//
//   swift build -c release --product ShimBenchmark --product containerd-shim-qemubox-v1
//   QEMUBOX_GUEST_IMAGE=… .build/release/ShimBenchmark [ITERATIONS]
#if canImport(Glibc)
import Glibc
#endif
import Foundation

let iterations = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 5
let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

@discardableResult
func sh(_ command: String, _ environment: [String: String] = [:], check: Bool = true) -> (Int32, String) {
    // Output through a file, not a pipe: containerd started in the background would
    // otherwise inherit the pipe and hold its end-of-file back.
    let outFile = NSTemporaryDirectory() + "/qbx-bench-\(UUID().uuidString).out"
    defer { unlink(outFile) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-c", "{ \(command) ; } >\(outFile) 2>&1"]
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    process.standardInput = FileHandle.nullDevice
    do { try process.run() } catch { fatalError("cannot run bash: \(error)") }
    process.waitUntilExit()
    let out = (try? String(contentsOfFile: outFile, encoding: .utf8)) ?? ""
    if check && process.terminationStatus != 0 { fatalError("`\(command)` failed: \(out)") }
    return (process.terminationStatus, out)
}

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

let dir = sh("mktemp -d /tmp/qbx-bench.XXXXXX").1.trimmingCharacters(in: .whitespacesAndNewlines)
let shim = binDir + "/containerd-shim-qemubox-v1"
guard FileManager.default.isExecutableFile(atPath: shim) else { fatalError("build containerd-shim-qemubox-v1 first") }
var guestImage = ProcessInfo.processInfo.environment["QEMUBOX_GUEST_IMAGE"] ?? ""
if guestImage.isEmpty, FileManager.default.fileExists(atPath: packageRoot + "/.build-guest/qemubox-guest.erofs") {
    guestImage = packageRoot + "/.build-guest/qemubox-guest.erofs"
}
sh("mkdir -p \(dir)/opt/bin && ln -s \(shim) \(dir)/opt/bin/")
try """
    version = 2
    root = "\(dir)/root"
    state = "\(dir)/state"
    disabled_plugins = ["io.containerd.grpc.v1.cri"]
    [grpc]
      address = "\(dir)/c.sock"
    [ttrpc]
      address = "\(dir)/c.sock.ttrpc"
    [plugins."io.containerd.internal.v1.opt"]
      path = "\(dir)/opt"
    """.write(toFile: dir + "/containerd.toml", atomically: true, encoding: .utf8)
try """
    state_dir = "\(dir)/qb"
    cache_dir = "\(dir)/cache"
    writable_layer_mib = 256
    \(guestImage.isEmpty ? "" : "guest_image = \"\(guestImage)\"")
    """.write(toFile: dir + "/qemubox.toml", atomically: true, encoding: .utf8)
let env = ["QEMUBOX_CONFIG": dir + "/qemubox.toml"]
let containerd = sh("cd \(dir) && (containerd --config \(dir)/containerd.toml </dev/null > \(dir)/containerd.log 2>&1 & echo $!)", env).1
    .trimmingCharacters(in: .whitespacesAndNewlines)
defer {
    sh("kill \(containerd); sleep 1; rm -rf \(dir)", check: false)
}
var up = false
for _ in 0..<100 where !up {
    up = sh("ctr -a \(dir)/c.sock version", check: false).0 == 0
    if !up { usleep(100_000) }
}
guard up else { fatalError("containerd did not start") }
sh("python3 \(packageRoot)/scripts/make-busybox-image.py \(dir)/image.tar && ctr -a \(dir)/c.sock -n bench image import \(dir)/image.tar")
let image = "docker.io/library/qemubox-busybox:latest"

func run(_ runtime: String, _ id: String) -> Double {
    let start = now()
    let (status, out) = sh("ctr -a \(dir)/c.sock -n bench run --rm --runtime \(runtime) \(image) \(id) true", check: false)
    if status != 0 { fatalError("\(runtime) run failed: \(out)") }
    return now() - start
}

// Warm-up (and the cold rootfs conversion for qemubox: its first run converts the layer).
_ = run("io.containerd.runc.v2", "warm-runc")
let cold = run("io.containerd.qemubox.v1", "cold-qemubox")
var runc: [Double] = [], qemubox: [Double] = []
for i in 0..<iterations {
    runc.append(run("io.containerd.runc.v2", "runc\(i)"))
    qemubox.append(run("io.containerd.qemubox.v1", "qbx\(i)"))
}

// The shim logs `created … rootfs_s= boot_s= create_s=` and `deleted … seconds=` lines.
let log = (try? String(contentsOfFile: dir + "/containerd.log", encoding: .utf8)) ?? ""
func values(_ key: String) -> [Double] {
    log.split(separator: "\n").compactMap { line -> Double? in
        guard let range = line.range(of: " \(key)=") else { return nil }
        let rest = line[range.upperBound...].prefix { $0 != " " }.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        return Double(rest)
    }
}
let rootfs = values("rootfs_s"), boot = values("boot_s"), create = values("create_s")
let start = values("start_s"), delete = values("delete_s")
print("ctr run --rm \(image) true — \(iterations) iterations each, median seconds")
print(String(format: "runc      %.3f", median(runc)))
print(String(format: "qemubox   %.3f   (ratio %.1fx)", median(qemubox), median(qemubox) / median(runc)))
print(String(format: "qemubox first run (cold layer conversion) %.3f", cold))
print("qemubox breakdown (median of warm runs, from the shim's log):")
print(String(format: "  rootfs plan (cached EROFS layer + scratch ext4)  %.3f   cold conversion run: %.3f",
             median(Array(rootfs.dropFirst())), rootfs.first ?? .nan))
print(String(format: "  VM boot until the agent answers                   %.3f", median(Array(boot.dropFirst()))))
print(String(format: "  bundle + Task/Create in the guest (crun create)   %.3f", median(Array(create.dropFirst()))))
print(String(format: "  Task/Start (crun start)                           %.3f", median(Array(start.dropFirst()))))
print(String(format: "  Delete (guest delete, unmount, power-off, writeback) %.3f", median(Array(delete.dropFirst()))))
