// EROFSBenchmark: build time and image size of EROFSImageWriter against
// mkfs.erofs on the same tree, for none / lz4 / lz4hc, in one run.
//
//   swift run -c release EROFSBenchmark [TREE] [ROUNDS]
//
// TREE defaults to /var/cache/qemubox/minbase-bookworm (a debootstrap minbase
// rootfs) or /usr/share if that is absent. Prints a Markdown table.
import EROFSImage
import Foundation
import Glibc

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// User + system CPU seconds of this process (who == RUSAGE_SELF) or of its
/// waited-for children (RUSAGE_CHILDREN).
func cpuSeconds(_ who: Int32) -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(who), &usage)
    func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return s(usage.ru_utime) + s(usage.ru_stime)
}

func fileSize(_ path: String) -> UInt64 {
    var st = stat()
    return stat(path, &st) == 0 ? UInt64(st.st_size) : 0
}

func runMkfs(_ args: [String]) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/mkfs.erofs")
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw EROFSError(.io, "mkfs.erofs \(args) failed") }
}

let args = CommandLine.arguments
let defaultTree = FileManager.default.fileExists(atPath: "/var/cache/qemubox/minbase-bookworm")
    ? "/var/cache/qemubox/minbase-bookworm" : "/usr/share"
let tree = args.count > 1 ? args[1] : defaultTree
let rounds = args.count > 2 ? Int(args[2]) ?? 3 : 3
let scratch = FileManager.default.temporaryDirectory.path + "/erofs-bench-\(getpid())"
try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: scratch) }

struct Mode {
    var name: String
    var compression: EROFSCompression
    var mkfsArgs: [String]
}
let modes = [
    Mode(name: "none", compression: .none, mkfsArgs: []),
    Mode(name: "lz4", compression: .lz4, mkfsArgs: ["-zlz4"]),
    Mode(name: "lz4hc", compression: .lz4hc(level: 9), mkfsArgs: ["-zlz4hc,9"]),
]

// Warm the page cache so neither side pays for cold reads.
try runMkfs([scratch + "/warm.erofs", tree])

print("Tree: `\(tree)`, \(rounds) rounds each, median wall time.\n")
print("| mode | mkfs.erofs time | EROFSImage time | time ratio | mkfs.erofs CPU | EROFSImage CPU | CPU ratio | mkfs.erofs size | EROFSImage size | size ratio |")
print("|---|---|---|---|---|---|---|---|---|---|")
for mode in modes {
    var theirs: [Double] = []
    var ours: [Double] = []
    var theirCPU: [Double] = []
    var ourCPU: [Double] = []
    var theirSize: UInt64 = 0
    var ourSize: UInt64 = 0
    for _ in 0..<rounds {
        let ref = scratch + "/ref-\(mode.name).erofs"
        var t = now()
        var c = cpuSeconds(RUSAGE_CHILDREN.rawValue)
        try runMkfs(mode.mkfsArgs + [ref, tree])
        theirs.append(now() - t)
        theirCPU.append(cpuSeconds(RUSAGE_CHILDREN.rawValue) - c)
        theirSize = fileSize(ref)
        try? FileManager.default.removeItem(atPath: ref)

        let mine = scratch + "/ours-\(mode.name).erofs"
        t = now()
        c = cpuSeconds(RUSAGE_SELF.rawValue)
        var options = EROFSWriterOptions()
        options.compression = mode.compression
        let writer = try EROFSImageWriter(path: mine, options: options)
        try writer.addDirectory(tree)
        try writer.finish()
        ours.append(now() - t)
        ourCPU.append(cpuSeconds(RUSAGE_SELF.rawValue) - c)
        ourSize = fileSize(mine)
        try? FileManager.default.removeItem(atPath: mine)
    }
    let tm = theirs.sorted()[theirs.count / 2]
    let om = ours.sorted()[ours.count / 2]
    let tc = theirCPU.sorted()[theirCPU.count / 2]
    let oc = ourCPU.sorted()[ourCPU.count / 2]
    print(String(format: "| %@ | %.2f s | %.2f s | %.2f× | %.2f s | %.2f s | %.2f× | %d B | %d B | %.4f× |",
                 mode.name, tm, om, om / tm, tc, oc, oc / tc, theirSize, ourSize,
                 Double(ourSize) / Double(theirSize)))
}
